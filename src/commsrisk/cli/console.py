"""What every command shares: the two consoles, logging set-up, errors and rejected-row tables.

Results for machines go to stdout (`out`); tables, progress and errors for people to stderr (`err`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from commsrisk.errors import CommsriskError
from commsrisk.ingest.columns import ColumnMap
from commsrisk.schema import Limits
from commsrisk.training.data import LabeledData, RejectedRow, read_labeled_file

out = Console()
err = Console(stderr=True, soft_wrap=True)

MapPairs = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help='Column mapping for exports, repeatable: --map text="Message Text" --map leakage="Leakage Flag".',
    ),
]
MapFile = Annotated[Path | None, typer.Option(help="Column mapping as YAML (field: Column name); --map adds to it.")]
NOISY_LOGGERS = ("presidio-analyzer", "mlflow", "urllib3", "alembic", "jieba", "httpx")


def setup_logging(level: str) -> None:
    """Log to stderr at `level`; third-party chatter only from WARNING up."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(error: Exception, code: int = 2) -> typer.Exit:
    """Print an error for people and give the exit to raise."""
    err.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code)


def print_rejected(rejected: Sequence[RejectedRow]) -> None:
    """A table of rejected rows: line, message id, reason (never the text)."""
    if not rejected:
        return
    table = Table(title=f"{len(rejected)} rejected rows")
    table.add_column("line", justify="right")
    table.add_column("message_id")
    table.add_column("reason")
    for row in rejected:
        table.add_row(str(row.line), row.message_id or "", row.reason)
    err.print(table)


def column_map_or_fail(pairs: list[str] | None, file: Path | None) -> ColumnMap | None:
    """The mapping given by --map and --map-file, or None."""
    if not pairs and file is None:
        return None
    try:
        return ColumnMap.parse(pairs or [], file)
    except CommsriskError as error:
        raise fail(error) from error


def read_labeled_or_fail(
    path: Path, limits: Limits, max_rejected: float = 0.2, columns_map: ColumnMap | None = None
) -> LabeledData:
    """Read a labeled file, listing every rejected row; on too many, list them and exit 2."""
    try:
        labeled = read_labeled_file(path, limits=limits, max_rejected_share=max_rejected, columns_map=columns_map)
    except CommsriskError as error:
        _print_rejected_of_failed_file(path, columns_map)
        raise fail(error) from error
    print_rejected(labeled.rejected)
    return labeled


def _print_rejected_of_failed_file(path: Path, columns_map: ColumnMap | None) -> None:
    """On a failed validation, still list the rows (the error only has the summary)."""
    try:
        labeled = read_labeled_file(path, max_rejected_share=1.0, columns_map=columns_map)
    except CommsriskError:
        return
    print_rejected(labeled.rejected)


def command_line(name: str) -> str:
    """The command as the user typed it (for model cards and reports)."""
    return f"commsrisk {name} " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else f"commsrisk {name}"


def table_of(title: str, rows: Sequence[dict[str, Any]]) -> Table:
    """A table with one column per key of the first row (numbers right-aligned, floats to 3 places)."""
    table = Table(title=title)
    columns = list(rows[0]) if rows else []
    for column in columns:
        table.add_column(column, justify="right" if rows and isinstance(rows[0][column], int | float) else "left")
    for row in rows:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in (row[c] for c in columns)))
    return table
