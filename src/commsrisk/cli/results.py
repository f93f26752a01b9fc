"""How `commsrisk score` writes results: JSON Lines for programs, a readable block per message for people."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from commsrisk.cli.console import out
from commsrisk.schema import ScoreResult


def write_json(results: Sequence[ScoreResult]) -> None:
    """One batch as JSON Lines, UTF-8 whatever the locale, flushed so it survives a later failure."""
    data = "".join(result.model_dump_json() + "\n" for result in results)
    stream = getattr(sys.stdout, "buffer", None)
    if stream is None:
        sys.stdout.write(data)
    else:
        sys.stdout.flush()
        stream.write(data.encode("utf-8"))
        stream.flush()
    sys.stdout.flush()


def print_result(result: ScoreResult) -> None:
    """A compact, readable block per message; values are escaped, so no '[' in them is read as markup."""
    flags = [risk for risk, decision in result.risks.items() if decision.flagged]
    title = f"{escape(result.message_id or '-')}  \\[{escape(result.language)}]  " + (
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
            escape(decision.explanation.summary),
        )
    out.print(table)
    if result.pii:
        out.print(
            "  PII: "
            + ", ".join(
                f"{p.entity_type} {escape(p.value or '')} \\[{p.start}:{p.end}] {p.score:.2f}" for p in result.pii
            )
        )
    if result.entities:
        out.print(
            "  entities: "
            + ", ".join(
                f"{e.label}{' ' + escape(e.text) if e.text else ''} \\[{e.start}:{e.end}]" for e in result.entities
            )
        )
    out.print(
        f"  model {escape(result.model_version)} · thresholds {escape(result.thresholds_version)} "
        f"({result.thresholds_source})\n"
    )
