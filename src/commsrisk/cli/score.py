"""`commsrisk score` and `serve`: score messages from the command line, or start the HTTP service."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from commsrisk.cli.console import err, fail, out
from commsrisk.errors import CommsriskError
from commsrisk.schema import Explain, ScoreResult
from commsrisk.settings import Settings

SERVICE = "commsrisk.service.app:CommsriskService"


def score(
    source: Annotated[
        str | None, typer.Argument(help="Message text, a file (JSONL, CSV, Parquet), or '-' for stdin.")
    ] = None,
    lang: Annotated[str | None, typer.Option(help="Language of every message (ISO 639-1); else detected.")] = None,
    business_unit: Annotated[str | None, typer.Option(help="Business unit whose thresholds decide the flags.")] = None,
    show_pii_values: Annotated[bool, typer.Option(help="Print PII and entity values instead of masking them.")] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="'json' (JSON Lines), 'table', or 'auto' (table on a terminal).")
    ] = "auto",
    model: Annotated[str | None, typer.Option(help="Classifier location (folder, models:/ URI, HF id).")] = None,
    batch_size: Annotated[int, typer.Option(help="Messages scored per batch.")] = 128,
    explain: Annotated[
        Explain,
        typer.Option(help="'phrases': the phrases behind each flagged risk too; 'signals': the signals only (faster)."),
    ] = "phrases",
) -> None:
    """Score messages: JSON Lines out (one result per message), or a readable table on a terminal.

    Bad lines in a file are reported on stderr with their line number and reason; the rest are
    scored. Exit code 0 when every message scored, 1 when some lines were rejected, 2 on errors.
    """
    from pydantic import ValidationError
    from tqdm.auto import tqdm

    from commsrisk.ingest.messages import MessageLine, parse_message, read_message_file, read_message_stream
    from commsrisk.schema import describe_validation_error
    from commsrisk.scoring import build_scorer, score_lines

    settings = Settings.load()
    if source is None and sys.stdin.isatty():
        raise fail(ValueError("nothing to score: give a text, a file, or pipe messages on stdin"))
    total = None
    if source is None or source == "-":
        lines = read_message_stream(iter(sys.stdin.buffer), settings.limits)
    elif Path(source).is_file():
        lines = read_message_file(Path(source), settings.limits)
    else:
        try:
            lines = iter([MessageLine(1, parse_message({"text": source}, settings.limits), None)])
        except ValidationError as error:
            raise fail(ValueError(describe_validation_error(error))) from error
        total = 1
    as_table = output_format == "table" or (output_format == "auto" and sys.stdout.isatty())
    rejected = scored = 0
    bar = tqdm(total=total, desc="scoring", unit="msg", file=sys.stderr, disable=total == 1 or not sys.stderr.isatty())
    try:
        with err.status("loading models ..."):
            scorer = build_scorer(settings, classifier_location=model)
        overrides = {"lang": lang, "business_unit": business_unit}
        for chunk in score_lines(
            scorer, lines, batch_size=batch_size, overrides=overrides, show_values=show_pii_values, explain=explain
        ):
            for item in chunk.rejected:
                err.print(f"[yellow]line {item.line} rejected:[/] {item.error}")
            for result in chunk.results:
                if as_table:
                    _print_result(result)
                else:
                    sys.stdout.write(result.model_dump_json() + "\n")
            rejected += len(chunk.rejected)
            scored += len(chunk.results)
            bar.update(chunk.lines)
    except CommsriskError as error:
        raise fail(error) from error
    finally:
        bar.close()
    err.print(f"scored {scored} messages" + (f", rejected {rejected} lines" if rejected else ""))
    if rejected:
        raise typer.Exit(1)


def _print_result(result: ScoreResult) -> None:
    """A compact, readable block per message."""
    flags = [risk for risk, decision in result.risks.items() if decision.flagged]
    title = f"{result.message_id or '-'}  [{result.language}]  " + (
        "[bold red]FLAGGED: " + ", ".join(flags) + "[/]" if flags else "[green]no flag[/]"
    )
    table = Table(title=title, title_justify="left", show_header=True, expand=False)
    table.add_column("risk")
    table.add_column("score", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("why")
    for risk, decision in result.risks.items():
        style = "bold red" if decision.flagged else ""
        table.add_row(
            risk,
            f"[{style}]{decision.score:.2f}[/]" if style else f"{decision.score:.2f}",
            f"{decision.threshold:.2f}",
            decision.explanation.summary,
        )
    out.print(table)
    if result.pii:
        out.print(
            "  PII: " + ", ".join(f"{p.entity_type} {p.value} [{p.start}:{p.end}] {p.score:.2f}" for p in result.pii)
        )
    if result.entities:
        out.print(
            "  entities: "
            + ", ".join(f"{e.label}{' ' + e.text if e.text else ''} [{e.start}:{e.end}]" for e in result.entities)
        )
    out.print(f"  model {result.model_version} · thresholds {result.thresholds_version} ({result.thresholds_source})\n")


def serve(
    host: Annotated[str, typer.Option(help="Address to bind; keep loopback unless a proxy fronts it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 3000,
) -> None:
    """Start the HTTP service (BentoML) with the model and thresholds from settings."""
    import os
    import shutil

    bentoml_bin = shutil.which("bentoml") or str(Path(sys.executable).with_name("bentoml"))
    err.print(f"serving commsrisk on http://{host}:{port} (docs at /docs, Ctrl-C to stop)")
    os.execv(bentoml_bin, [bentoml_bin, "serve", SERVICE, "--host", host, "--port", str(port)])
