"""`commsrisk reviews`: import reviewers' decisions from review tools' exports, list and report on the store."""

from __future__ import annotations

import json
import sys
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from commsrisk.cli.console import MapFile, MapPairs, column_map_or_fail, err, fail, out, print_rejected, table_of
from commsrisk.cli.review_options import BusinessUnits, Since, policy_versions
from commsrisk.errors import CommsriskError
from commsrisk.schema import RISKS
from commsrisk.settings import Settings

if TYPE_CHECKING:
    from commsrisk.reviews.store import ReviewStore

reviews_app = typer.Typer(
    help="Reviewers' decisions: the labeled-review store (settings reviews.url, COMMSRISK_REVIEWS__URL).",
    no_args_is_help=True,
)


class ImportExit(IntEnum):
    """What `commsrisk reviews import` exits with (as `commsrisk score`: scripts branch on these)."""

    IMPORTED = 0
    """Every row was stored (or was already in the store)."""
    REJECTED = 1
    """Some rows were rejected, each listed with its line and reason; the others were stored."""
    FAILED = 2
    """Nothing was stored: a bad file, mapping or option, or a store that cannot be opened or written."""


@reviews_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A review tool's export: CSV, JSON Lines or Parquet.")],
    map_pairs: MapPairs = None,
    map_file: MapFile = None,
    reviewer: Annotated[
        str | None, typer.Option(help="Who decided, for rows without a reviewer column or value of their own.")
    ] = None,
) -> None:
    """Store the decisions of an export, all of the file in one transaction (all or nothing).

    Columns and label words are those of `commsrisk data check` and `train`
    (--map for other column names); a blank label cell means the risk was not
    reviewed. A row that repeats a stored decision (its decision_id, or the same
    message, reviewer, time and labels) is skipped and counted, so importing a
    file again stores nothing twice. Prints a JSON summary on stdout and every
    rejected row (line, reason; never the text) on stderr.

    Exit codes:
      0  every row stored or already stored
      1  some rows rejected (each listed), the others stored
      2  failed, nothing stored (unreadable file, bad mapping, store error)
    """
    from commsrisk.reviews.importer import read_review_file

    settings = _settings_or_fail()
    columns_map = column_map_or_fail(map_pairs, map_file)
    try:
        read = read_review_file(file, limits=settings.limits, columns_map=columns_map, reviewer=reviewer)
    except CommsriskError as error:
        raise fail(error, ImportExit.FAILED) from error
    print_rejected(read.rejected)
    accepted = duplicates = 0
    if read.decisions:
        err.print(f"storing {len(read.decisions)} decisions from {file.name} in one transaction ...")
        with _open_store(settings) as store:
            try:
                result = store.append(read.decisions, source=f"import:{file.name}")
            except CommsriskError as error:
                raise fail(error, ImportExit.FAILED) from error
        accepted, duplicates = result.accepted, result.duplicates
    summary = {
        "file": str(file),
        "rows": read.rows_read,
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": len(read.rejected),
    }
    typer.echo(json.dumps(summary))
    err.print(
        f"{file.name}: {accepted} decisions stored, {duplicates} already stored (skipped), "
        f"{len(read.rejected)} rows rejected"
    )
    raise typer.Exit(ImportExit.REJECTED if read.rejected else ImportExit.IMPORTED)


@reviews_app.command("list")
def list_command(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many of the latest decisions.")] = 20,
    output_format: Annotated[
        str, typer.Option("--format", help="'json' (JSON Lines), 'table', or 'auto' (table on a terminal).")
    ] = "auto",
) -> None:
    """The latest decisions stored, newest first: ids, reviewer, labels, time and source (never the text)."""
    if output_format not in ("auto", "json", "table"):
        raise fail(ValueError(f"--format {output_format!r}: use one of ['auto', 'json', 'table']"))
    settings = _settings_or_fail()
    with _open_store(settings) as store:
        try:
            decisions, total = store.recent(limit), store.count()
        except CommsriskError as error:
            raise fail(error) from error
    if output_format == "json" or (output_format == "auto" and not sys.stdout.isatty()):
        for decision in decisions:
            record = {k: getattr(decision, k) for k in ("seq", "decision_id", "message_id", "reviewer", "labels")}
            record |= {"decided_at": decision.decided_at.isoformat(), "source": decision.source}
            typer.echo(json.dumps(record, ensure_ascii=False))
        return
    table = Table(title=f"{len(decisions)} of {total} decisions in {store.url}")
    for column in ("seq", "decided_at", "message_id", "reviewer", *RISKS, "source", "decision_id"):
        table.add_column(column, justify="right" if column in ("seq", *RISKS) else "left")
    for decision in decisions:
        labels = ["-" if decision.labels[risk] is None else str(decision.labels[risk]) for risk in RISKS]
        table.add_row(
            str(decision.seq),
            decision.decided_at.isoformat(timespec="seconds"),
            decision.message_id,
            decision.reviewer,
            *labels,
            decision.source,
            decision.decision_id[:19],
        )
    out.print(table)


@reviews_app.command("report")
def report_command(
    since: Since = None,
    business_unit: BusinessUnits = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the report, its CSVs and its plot.")] = Path(
        "reports/reviews"
    ),
    targets: Annotated[
        Path | None, typer.Option(help="Per-unit targets YAML (as thresholds tune --targets): precision targets.")
    ] = None,
    precision_target: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="The precision target of units without one in --targets.")
    ] = 0.5,
    recent_weeks: Annotated[
        int, typer.Option(min=1, max=52, help="Weeks of a unit's reviews its suggested threshold is tuned on.")
    ] = 4,
    log_mlflow: Annotated[bool, typer.Option("--mlflow", help="Log the report as an MLflow run.")] = False,
) -> None:
    """Weekly per business unit and risk: alerts reviewers saw, confirmed precision, the threshold in force.

    An alert is a decision whose seen score was at or over the threshold of the seen thresholds
    version (from the thresholds history) for the message's unit; precision is confirmed / alerts.
    A unit under its precision target in its latest week gets a call-out with the threshold
    `thresholds tune` proposes on its recent reviews (the scores reviewers saw). Writes report.md,
    weekly.csv, callouts.csv and reviews_report.png to --out: ids and counts, never text.
    """
    from commsrisk.reviews.report import REPORT_PNG, WEEKLY_CSV, build_report, log_report_run, write_report
    from commsrisk.thresholds.tuning import TuningTargets

    settings = _settings_or_fail()
    try:
        plan = TuningTargets.load(targets) if targets else None
        with _open_store(settings) as store:
            decisions = store.decisions(since, business_unit)
        versions = policy_versions(settings)
        report = build_report(decisions, versions, plan, precision_target=precision_target, recent_weeks=recent_weeks)
    except CommsriskError as error:
        raise fail(error) from error
    path = write_report(report, out_dir)
    rows = [{**r, "precision": "n/a" if r["precision"] is None else r["precision"]} for r in report.records()]
    out.print(table_of(f"weekly, from {report.decisions} decisions ({report.judgements} decided risks)", rows))
    for reason, count in sorted(report.left_out.items()):
        err.print(f"left out, {reason}: {count}")
    for callout in report.callouts:
        out.print(f"[bold red]precision under target:[/] {callout.sentence()}")
    out.print(f"report: {path}; table: {out_dir / WEEKLY_CSV}; plot: {out_dir / REPORT_PNG}")
    if log_mlflow:
        params = {"since": since.isoformat() if since else "", "business_units": ",".join(business_unit or [])}
        tracking = settings.tracking
        run_id = log_report_run(tracking.resolved_uri(), tracking.experiment, report, out_dir, params)
        out.print(f"logged to MLflow run {run_id}")


def _settings_or_fail() -> Settings:
    from pydantic import ValidationError

    from commsrisk.schema import describe_validation_error

    try:
        return Settings.load()
    except ValidationError as error:
        raise fail(ValueError(f"settings: {describe_validation_error(error)}"), ImportExit.FAILED) from error


def _open_store(settings: Settings) -> ReviewStore:
    from commsrisk.reviews.store import ReviewStore

    try:
        return ReviewStore.open(settings.reviews)
    except CommsriskError as error:
        raise fail(error, ImportExit.FAILED) from error
