"""`commsrisk thresholds`: show, diff, apply, history, verify, rollback and tune the per-unit thresholds."""

from __future__ import annotations

import getpass
import os
import re
import sqlite3
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from commsrisk.cli.console import (
    MapFile,
    MapPairs,
    column_map_or_fail,
    command_line,
    err,
    fail,
    out,
    read_labeled_or_fail,
)
from commsrisk.errors import CommsriskError
from commsrisk.schema import RISKS
from commsrisk.settings import Settings

thresholds_app = typer.Typer(
    help="Per-business-unit thresholds: show, diff, apply, history, verify, rollback, tune.", no_args_is_help=True
)
AUTHOR_HELP = (
    "A note kept beside the author, e.g. on whose behalf or a ticket. The author recorded is always the OS user "
    "running the command: 'osuser (annotation: NOTE)'."
)
VERIFY_BROKEN = 3
"""Exit status of `thresholds verify` when the history's hash chain does not hold."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def os_user() -> str:
    """The OS account running the command, by its real uid where there is one.

    The uid's name comes first because `getpass.getuser()` trusts $USER and $LOGNAME, which anyone
    can set; it is the fallback where there is no password database (e.g. Windows).
    """
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError, AttributeError):
        pass
    try:
        return getpass.getuser()
    except (ImportError, KeyError, OSError):
        return "(unknown OS user)"


def recorded_author(annotation: str | None) -> str:
    """The author for a change record: the OS user, with --author kept only as an annotation."""
    user = os_user()
    note = _CONTROL.sub(" ", annotation or "").strip()[:200]  # one line: no forged log or table rows
    return f"{user} (annotation: {note})" if note else user


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


@thresholds_app.command("tune")
def thresholds_tune(
    data: Annotated[Path, typer.Option(help="Labeled file with business_unit (CSV, JSONL, Parquet).")],
    target: Annotated[
        str,
        typer.Option(help="precision=P or recall=R that every threshold must meet, or f1=F: the best-F1 threshold."),
    ] = "precision=0.8",
    targets: Annotated[
        Path | None,
        typer.Option(help="Per-unit targets YAML (targets, alert budgets, minimum evidence); overrides --target."),
    ] = None,
    max_alerts_per_1000: Annotated[
        float | None, typer.Option(help="Alert budget for --target: at most this many flags per 1,000 messages.")
    ] = None,
    min_positives: Annotated[int, typer.Option(help="Units with fewer positives for a risk keep the default.")] = 15,
    min_flags: Annotated[int, typer.Option(help="Units whose threshold flags fewer messages keep the default.")] = 5,
    output: Annotated[Path, typer.Option(help="Where to write the proposed policy.")] = Path(
        "reports/thresholds/proposed.yaml"
    ),
    report_dir: Annotated[Path, typer.Option(help="Folder for report.md, curves and raw scores.")] = Path(
        "reports/thresholds"
    ),
    held_out_only: Annotated[
        bool | None,
        typer.Option(
            help="Use only messages the model did not train on (default: on when the file is its training data)."
        ),
    ] = None,
    log_mlflow: Annotated[bool, typer.Option("--mlflow", help="Log the report as an MLflow run.")] = False,
    map_pairs: MapPairs = None,
    map_file: MapFile = None,
) -> None:
    """Score labeled messages with the model in force and propose per-unit thresholds that meet the targets.

    The defaults are tuned on all units together; a unit gets its own threshold only with
    --min-positives positives and --min-flags flags, else the default is kept and the report
    says why. The report gives precision and recall with 95% bootstrap intervals and the alert
    volume, and names the model version, data digest, targets and command.
    """
    from commsrisk.scoring import build_scorer
    from commsrisk.thresholds.policy import dump_policy
    from commsrisk.thresholds.store import diff_policies, policy_in_force
    from commsrisk.thresholds.tuning import Target, TuningTargets, log_tuning_run, tune_policy, write_report
    from commsrisk.training.scored_evaluation import rows_to_judge, score_table

    settings = Settings.load()
    labeled = read_labeled_or_fail(data, settings.limits, columns_map=column_map_or_fail(map_pairs, map_file))
    try:
        goal = Target.parse(target)
        goal = Target(goal.metric, goal.value, max_alerts_per_1000)
        plan = TuningTargets.load(targets) if targets else TuningTargets.single(goal, min_positives, min_flags)
        with err.status("loading models ..."):
            scorer = build_scorer(settings)
        scorer.explain = "signals"
        metadata = getattr(scorer.classifier, "metadata", {}) or {}
        frame, note = rows_to_judge(labeled, metadata, splits=("calibration", "test"), held_out_only=held_out_only)
        scored = score_table(scorer, frame)
        base = policy_in_force(settings.thresholds)
        policy, rows = tune_policy(
            scored[[f"score_{r}" for r in RISKS]].to_numpy(),
            scored[list(RISKS)].to_numpy(),
            scored["business_unit"].tolist(),
            plan,
            base,
        )
    except CommsriskError as error:
        raise fail(error) from error
    policy = policy.model_copy(update={"tuned_for": scorer.model_version})
    provenance = {
        "model_version": scorer.model_version,
        "data": str(data),
        "data_digest": labeled.digest,
        "messages": note,
        "targets": str(targets) if targets else str(goal),
        "policy_in_force": base.version,
        "command": command_line("thresholds"),
    }
    report = write_report(scored, rows, policy, plan if targets else goal, report_dir, provenance)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(dump_policy(policy), encoding="utf-8")
    _print_rows(rows, f"proposed thresholds for model {scorer.model_version} ({note})")
    out.print("changes against the policy in force:\n  " + ("\n  ".join(diff_policies(base, policy)) or "none"))
    out.print(f"proposed policy: {output}\nreport: {report}")
    out.print(f'apply with: commsrisk thresholds apply {output} --reason "..."')
    if log_mlflow:
        tracking = settings.tracking
        run_id = log_tuning_run(tracking.resolved_uri(), tracking.experiment, report_dir, rows, provenance)
        out.print(f"logged to MLflow run {run_id}")


def _print_rows(rows: list, title: str) -> None:  # type: ignore[type-arg]
    table = Table(title=title)
    for column in ("unit", "risk", "threshold", "precision [95% CI]", "recall [95% CI]", "alerts/1000", "status"):
        table.add_column(column)
    for r in rows:
        precision = "n/a" if r.precision is None else f"{r.precision:.3f}" + _ci(r.precision_ci)
        recall = f"{r.recall:.3f}" + _ci(r.recall_ci)
        table.add_row(
            r.business_unit, r.risk, f"{r.threshold:.3f}", precision, recall, f"{r.alerts_per_1000:.1f}", r.status
        )
    out.print(table)


def _ci(interval: tuple[float, float] | None) -> str:
    return f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
