"""`commsrisk score-archive`: score an archive's exports into Parquet, resumable after a kill."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from commsrisk.cli.console import MapFile, MapPairs, column_map_or_fail, err, fail
from commsrisk.cli.score import ExitCode
from commsrisk.errors import CommsriskError
from commsrisk.schema import RISKS, Explain

if TYPE_CHECKING:
    from commsrisk.archives.runner import ArchiveSummary


def score_archive_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Files or folders: JSONL, CSV, Parquet (with --map for other column names), .eml, .mbox, "
            "Outlook .msg, WhatsApp .txt exports, Slack export folders or files, Teams JSON; folders are read "
            "in name order."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder of the results; a rerun with it continues the run.")],
    map_pairs: MapPairs = None,
    map_file: MapFile = None,
    business_unit: Annotated[
        str | None, typer.Option(help="Business unit of every message that does not name its own.")
    ] = None,
    partition_by: Annotated[
        str | None, typer.Option(help="Result folders by 'date' (sent, UTC), 'business_unit' or 'none'.")
    ] = None,
    chunk_size: Annotated[
        int | None, typer.Option(min=1, help="Records per chunk (each chunk is written and checkpointed).")
    ] = None,
    explain: Annotated[
        Explain,
        typer.Option(help="'signals' (fast), or 'phrases' too for flagged risks (a forward pass per batch of them)."),
    ] = "signals",
    include_text: Annotated[
        bool, typer.Option(help="Write each message's text in the results (off: ids only).")
    ] = False,
    restart: Annotated[bool, typer.Option(help="Delete the results in --out and score again from the start.")] = False,
    model: Annotated[str | None, typer.Option(help="Classifier location (folder, models:/ URI, HF id).")] = None,
    day_first: Annotated[
        bool | None,
        typer.Option("--day-first/--month-first", help="WhatsApp exports: the date order (default: from the dates)."),
    ] = None,
    timezone: Annotated[str, typer.Option(help="WhatsApp exports: the zone of their times (IANA name).")] = "UTC",
) -> None:
    """Score an archive into Parquet under --out, chunk by chunk, with a checkpoint after each chunk.

    Run the same command again after a crash or a kill: the chunks already
    written are skipped and every message's result is written exactly once,
    as in a run that was never stopped. A rerun over changed inputs or with
    other options is refused (use a new --out, or --restart).

    Output: results/ (Parquet, one row per message keyed by its message_id,
    or a stable hash of the record when it has none; model and thresholds
    versions on every row; no text unless --include-text), rejected/ (every
    record that could not be scored, with its file, position and reason),
    manifest.json (the checkpoint) and summary.json.

    Exit codes: 0 every record scored, 1 some records rejected (listed in
    rejected/), 2 failed (bad input or options, a model that failed to load).
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from pydantic import ValidationError
    from tqdm.auto import tqdm

    from commsrisk.archives.inputs import InputOptions
    from commsrisk.archives.runner import ArchiveJob, score_archive
    from commsrisk.ingest.archive import ReadOptions
    from commsrisk.ingest.columns import ColumnMap
    from commsrisk.schema import describe_validation_error
    from commsrisk.scoring import build_scorer
    from commsrisk.settings import ArchiveSettings, Settings

    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise fail(ValueError(f"--timezone {timezone!r} is not a known IANA zone, e.g. Asia/Hong_Kong")) from error
    try:
        settings = Settings.load()
        given = {"partition_by": partition_by, "chunk_size": chunk_size}
        archive = ArchiveSettings.model_validate(
            {**settings.archive.model_dump(), **{k: v for k, v in given.items() if v is not None}}
        )
    except ValidationError as error:
        raise fail(ValueError(describe_validation_error(error)), ExitCode.FAILED) from error
    reading = InputOptions(
        column_map=column_map_or_fail(map_pairs, map_file) or ColumnMap(),
        limits=settings.limits,
        read=ReadOptions(day_first=day_first, assume_tz=zone),
        business_unit=business_unit,
    )
    job = ArchiveJob(
        inputs=inputs, out=out, reading=reading, archive=archive, explain=explain, include_text=include_text
    )
    try:
        with err.status("loading models ..."):
            scorer = build_scorer(settings, classifier_location=model)
    except CommsriskError as error:
        raise fail(error, ExitCode.FAILED) from error
    bar = tqdm(desc="scoring", unit="rec", file=sys.stderr, total=_count_records(inputs), dynamic_ncols=True)
    try:
        summary = score_archive(scorer, job, restart=restart, progress=bar.update)
    except CommsriskError as error:
        bar.close()
        raise fail(error, ExitCode.FAILED) from error
    bar.close()
    _print_summary(summary, out)
    raise typer.Exit(ExitCode.REJECTED if summary.rejected else ExitCode.SCORED)


def _count_records(inputs: list[Path]) -> int | None:
    """How many records the inputs hold, when that is cheap to know (tabular files only), for the ETA."""
    from commsrisk.archives.inputs import TABULAR_SUFFIXES, input_files
    from commsrisk.ingest.tabular import stream_rows

    try:
        files = input_files(inputs)
    except CommsriskError:
        return None
    if not all(path.is_file() and path.suffix.lower() in TABULAR_SUFFIXES for path in files):
        return None
    total = 0
    for path in files:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            try:
                total += pq.ParquetFile(path).metadata.num_rows
            except Exception:  # an unreadable file is reported by the run itself
                return None
            continue
        try:
            rows, _ = stream_rows(path)
            total += sum(1 for _ in rows)
        except CommsriskError:
            return None
    return total


def _print_summary(summary: ArchiveSummary, out: Path) -> None:
    """Messages, flags per unit and risk, and rejections by reason, for people (summary.json for machines)."""
    resumed = f", continuing after {summary.resumed_after:,} records already done" if summary.resumed_after else ""
    err.print(
        f"scored {summary.messages:,} messages in {summary.chunks} chunks ({summary.scored:,} through the models, "
        f"the rest identical to one of them){resumed}; {summary.rejected:,} records rejected"
    )
    table = Table(title="flags per business unit")
    table.add_column("business unit")
    table.add_column("messages", justify="right")
    for risk in RISKS:
        table.add_column(risk, justify="right")
    for unit, flags in summary.flags.items():
        table.add_row(escape(unit), f"{summary.units.get(unit, 0):,}", *(f"{flags.get(r, 0):,}" for r in RISKS))
    err.print(table)
    if summary.reasons:
        reasons = Table(
            title=f"{summary.rejected:,} rejected records (each in {out}/rejected/, with file and position)"
        )
        reasons.add_column("records", justify="right")
        reasons.add_column("reason")
        for reason, count in list(summary.reasons.items())[:20]:
            reasons.add_row(f"{count:,}", escape(reason))
        if len(summary.reasons) > 20:
            reasons.add_row("...", f"{len(summary.reasons) - 20} more reasons in {out}/summary.json")
        err.print(reasons)
    err.print(f"results: {out}/results (Parquet), summary: {out}/summary.json")
