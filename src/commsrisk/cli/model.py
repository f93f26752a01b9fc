"""`commsrisk model`: which model served when, and rolling production back to an earlier one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from commsrisk.cli.console import fail, out
from commsrisk.errors import CommsriskError
from commsrisk.settings import Settings

model_app = typer.Typer(help="The production model's history and rollback.", no_args_is_help=True)


@model_app.command("history")
def model_history_command() -> None:
    """List every promotion, refusal and rollback: when, who, why, from which version to which."""
    import mlflow

    from commsrisk.training.promotion import model_history, production_version

    settings = Settings.load()
    mlflow.set_tracking_uri(settings.tracking.resolved_uri())
    table = Table(title=f"{settings.tracking.registered_model}: moves of the production alias")
    for column in ("when (UTC)", "action", "from", "to", "author", "reason", "MLflow run"):
        table.add_column(column)
    for move in model_history(settings):
        table.add_row(move.when, move.action, move.from_version, move.to_version, move.author, move.reason, move.run_id)
    out.print(table)
    out.print(f"in production: {production_version(settings.tracking.registered_model)}")


@model_app.command("rollback")
def model_rollback(
    version: Annotated[str, typer.Argument(help="A registry version that served before, or 'default'.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the move record).")],
    author: Annotated[str | None, typer.Option(help="Who; default: the current user.")] = None,
) -> None:
    """Point production back at a model that served before ('default': the shipped default model).

    The thresholds policy is not changed: check `commsrisk thresholds history` for the one tuned
    for that model.
    """
    from commsrisk.training.promotion import rollback

    try:
        move = rollback(Settings.load(), version, author=author, reason=reason)
    except CommsriskError as error:
        raise fail(error, code=1) from error
    out.print(f"[green]rolled back[/]: production {move.from_version} -> {move.to_version} by {move.author}")
