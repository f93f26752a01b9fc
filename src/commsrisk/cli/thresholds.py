"""`commsrisk thresholds`: show, diff, apply, history, verify, rollback and tune the per-unit thresholds."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from commsrisk.cli.console import (
    err,
    fail,
    out,
)
from commsrisk.errors import CommsriskError
from commsrisk.settings import Settings
from commsrisk.thresholds.authors import recorded_author

thresholds_app = typer.Typer(
    help="Per-business-unit thresholds: show, diff, apply, history, verify, rollback, tune.", no_args_is_help=True
)
AUTHOR_HELP = (
    "A note kept beside the author, e.g. on whose behalf or a ticket. The author recorded is always the OS user "
    "running the command: 'osuser (annotation: NOTE)'."
)
VERIFY_BROKEN = 3
"""Exit status of `thresholds verify` when the history's hash chain does not hold."""


@thresholds_app.command("show")
def thresholds_show(
    version: Annotated[str | None, typer.Option(help="A version from history; default: the one in force.")] = None,
) -> None:
    """Print a thresholds policy as YAML."""
    from commsrisk.thresholds.policy import dump_policy
    from commsrisk.thresholds.store import PolicyHistory, policy_in_force

    settings = Settings.load().thresholds
    try:
        text = (
            PolicyHistory(settings.history_db).get(version).policy_yaml
            if version
            else dump_policy(policy_in_force(settings))
        )
    except CommsriskError as error:
        raise fail(error) from error
    out.print(text, end="", highlight=False)


@thresholds_app.command("diff")
def thresholds_diff(
    new: Annotated[str, typer.Argument(help="Policy file or version to compare.")],
    old: Annotated[
        str | None, typer.Argument(help="Policy file or version to compare against; default: in force.")
    ] = None,
) -> None:
    """Show what would change between two policies (default: against the one in force)."""
    from commsrisk.thresholds.store import diff_policies, policy_in_force, resolve_policy

    settings = Settings.load().thresholds
    try:
        before = resolve_policy(old, settings) if old else policy_in_force(settings)
        after = resolve_policy(new, settings)
    except CommsriskError as error:
        raise fail(error) from error
    lines = diff_policies(before, after)
    out.print("\n".join(lines) if lines else "no differences", highlight=False)


@thresholds_app.command("apply")
def thresholds_apply(
    policy_file: Annotated[Path, typer.Argument(help="The policy YAML to put in force.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the change record).")],
    author: Annotated[str | None, typer.Option(help=AUTHOR_HELP)] = None,
) -> None:
    """Validate a policy and put it in force as a new version (a rejected file changes nothing)."""
    from commsrisk.thresholds.policy import load_policy
    from commsrisk.thresholds.store import apply_policy

    settings = Settings.load().thresholds
    try:
        change = apply_policy(load_policy(policy_file), settings, author=recorded_author(author), reason=reason)
    except CommsriskError as error:
        raise fail(error, code=1) from error
    out.print(f"[green]applied {change.version}[/] (was {change.parent}) by {escape(change.author)}:")
    out.print("\n".join(f"  {line}" for line in change.diff), highlight=False)
    out.print(f"record hash {change.record_hash} (an anchor for 'thresholds verify --anchor')", highlight=False)


@thresholds_app.command("history")
def thresholds_history() -> None:
    """List every applied version: who, when, why, what changed."""
    from commsrisk.thresholds.store import PolicyHistory, policy_in_force

    settings = Settings.load().thresholds
    table = Table(title=f"thresholds history ({settings.history_db})")
    for column in ("version", "parent", "author", "when (UTC)", "reason", "changes"):
        table.add_column(column)
    for change in PolicyHistory(settings.history_db).changes():
        table.add_row(
            change.version, change.parent or "", change.author, change.created_at, change.reason, "\n".join(change.diff)
        )
    out.print(table)
    out.print(f"in force: {policy_in_force(settings).version}")


@thresholds_app.command("verify")
def thresholds_verify(
    anchor: Annotated[
        str | None,
        typer.Option(
            help="A record hash noted earlier (printed by apply and rollback, or by an earlier verify as the "
            "head): fail unless a record still carries it, which shows a rewritten or truncated history."
        ),
    ] = None,
) -> None:
    """Check that the thresholds history is intact: recompute its hash chain, record by record.

    Each record carries the hash of the record before it, so a record changed or removed after it
    was written (say, around the append-only triggers with DROP TRIGGER) breaks the chain here.
    Prints the records checked and the head hash (note it, and pass it as --anchor later), or the
    first broken record's seq and version and why. Records removed from the end leave a chain that
    holds: only --anchor shows that for sure (a policy file that no longer matches the last record
    is warned about, as it often is then).

    Exit status: 0 the chain holds; 1 the history cannot be read; 2 usage error; 3 the chain does
    not hold (or --anchor is not found).
    """
    from commsrisk.thresholds.store import DELETED_YAML, PolicyHistory, text_digest

    settings = Settings.load().thresholds
    try:
        history = PolicyHistory(settings.history_db)
        result = history.verify(anchor)
        head = history.head()
    except sqlite3.Error as error:
        err.print(f"[bold red]error:[/] {settings.history_db}: cannot read the thresholds history ({error})")
        raise typer.Exit(1) from error
    warnings = list(result.warnings)
    if head is not None:  # a removed last record usually leaves the file as that record had it
        try:
            on_disk: str | None = text_digest(Path(settings.policy_file).read_bytes().decode("utf-8"))
        except FileNotFoundError:
            on_disk = text_digest(DELETED_YAML)
        except (OSError, UnicodeDecodeError):
            on_disk = None
        if on_disk != text_digest(head.policy_yaml):
            warnings.append(
                f"the policy file {settings.policy_file} does not match the last record ({head.version}): "
                "a change outside commsrisk not yet recorded, or records removed from the end"
            )
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if result.ok:
        out.print(
            f"[green]history intact[/]: {result.checked} records checked in {settings.history_db}; "
            f"head hash {result.head_hash or 'none (empty history)'}",
            highlight=False,
        )
        return
    if result.bad_seq is not None:
        where = f" at seq {result.bad_seq} (version {escape(str(result.bad_version))})"
        tail = f"{result.checked} records before it are intact"
    else:
        where, tail = "", f"the {result.checked} records there chain, from head hash {result.head_hash or 'none'}"
    err.print(f"[bold red]history broken[/]{where}: {escape(str(result.problem))}; {tail}", highlight=False)
    raise typer.Exit(VERIFY_BROKEN)


@thresholds_app.command("rollback")
def thresholds_rollback(
    version: Annotated[str, typer.Argument(help="The version whose thresholds to restore.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the change record).")],
    author: Annotated[str | None, typer.Option(help=AUTHOR_HELP)] = None,
) -> None:
    """Restore an earlier version's thresholds, recorded as a new version."""
    from commsrisk.thresholds.store import rollback_policy

    try:
        change = rollback_policy(version, Settings.load().thresholds, author=recorded_author(author), reason=reason)
    except CommsriskError as error:
        raise fail(error, code=1) from error
    out.print(f"[green]rolled back[/]: {change.version} restores {version}")
    out.print("\n".join(f"  {line}" for line in change.diff), highlight=False)
    out.print(f"record hash {change.record_hash} (an anchor for 'thresholds verify --anchor')", highlight=False)
