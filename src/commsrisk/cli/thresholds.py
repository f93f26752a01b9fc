"""`commsrisk thresholds`: show, diff, apply, history, rollback and tune the per-unit thresholds."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from commsrisk.cli.console import err, fail, out, read_labeled_or_fail
from commsrisk.errors import CommsriskError
from commsrisk.schema import RISKS
from commsrisk.settings import Settings

thresholds_app = typer.Typer(
    help="Per-business-unit thresholds: show, diff, apply, history, rollback, tune.", no_args_is_help=True
)
AUTHOR_HELP = "Who; default: the current user."


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
        change = apply_policy(load_policy(policy_file), settings, author=author or getpass.getuser(), reason=reason)
    except CommsriskError as error:
        raise fail(error, code=1) from error
    out.print(f"[green]applied {change.version}[/] (was {change.parent}) by {change.author}:")
    out.print("\n".join(f"  {line}" for line in change.diff), highlight=False)


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


@thresholds_app.command("rollback")
def thresholds_rollback(
    version: Annotated[str, typer.Argument(help="The version whose thresholds to restore.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the change record).")],
    author: Annotated[str | None, typer.Option(help=AUTHOR_HELP)] = None,
) -> None:
    """Restore an earlier version's thresholds, recorded as a new version."""
    from commsrisk.thresholds.store import rollback_policy

    try:
        change = rollback_policy(version, Settings.load().thresholds, author=author or getpass.getuser(), reason=reason)
    except CommsriskError as error:
        raise fail(error, code=1) from error
    out.print(f"[green]rolled back[/]: {change.version} restores {version}")
    out.print("\n".join(f"  {line}" for line in change.diff), highlight=False)


@thresholds_app.command("tune")
def thresholds_tune(
    data: Annotated[Path, typer.Option(help="Labeled file with business_unit (CSV, JSONL, Parquet).")],
    target: Annotated[
        str,
        typer.Option(help="precision=P or recall=R that every threshold must meet, or f1=F: the best-F1 threshold."),
    ] = "precision=0.8",
    min_positives: Annotated[int, typer.Option(help="Units with fewer positives for a risk keep the default.")] = 15,
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
) -> None:
    """Score labeled messages and propose per-unit thresholds that meet the target."""
    from commsrisk.scoring import build_scorer
    from commsrisk.thresholds.policy import dump_policy
    from commsrisk.thresholds.store import diff_policies, policy_in_force
    from commsrisk.thresholds.tuning import Target, log_tuning_run, tune_policy, write_report
    from commsrisk.training.pipeline import frame_messages
    from commsrisk.training.scored_evaluation import rows_to_judge, score_table

    settings = Settings.load()
    labeled = read_labeled_or_fail(data, settings.limits)
    try:
        goal = Target.parse(target)
        with err.status("loading models ..."):
            scorer = build_scorer(settings)
        scorer.explain = False
        metadata = getattr(scorer.classifier, "metadata", {}) or {}
        frame, note = rows_to_judge(labeled, metadata, splits=("calibration", "test"), held_out_only=held_out_only)
        scored = score_table(scorer, frame, frame_messages(frame))
        base = policy_in_force(settings.thresholds)
        policy, rows = tune_policy(
            scored[[f"score_{r}" for r in RISKS]].to_numpy(),
            scored[list(RISKS)].to_numpy(),
            scored["business_unit"].tolist(),
            goal,
            base,
            min_positives=min_positives,
        )
    except CommsriskError as error:
        raise fail(error) from error
    report = write_report(scored, rows, policy, goal, report_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(dump_policy(policy), encoding="utf-8")
    table = Table(title=f"proposed thresholds ({goal.metric} >= {goal.value}; {note})")
    for column in ("unit", "risk", "threshold", "precision", "recall", "positives", "status"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.business_unit,
            r.risk,
            f"{r.threshold:.3f}",
            f"{r.precision:.3f}",
            f"{r.recall:.3f}",
            str(r.positives),
            r.status,
        )
    out.print(table)
    out.print("changes against the policy in force:\n  " + ("\n  ".join(diff_policies(base, policy)) or "none"))
    out.print(f"proposed policy: {output}\nreport: {report}")
    out.print(f'apply with: commsrisk thresholds apply {output} --reason "..."')
    if log_mlflow:
        tracking = settings.tracking
        run_id = log_tuning_run(tracking.resolved_uri(), tracking.experiment, report_dir, rows, goal, note)
        out.print(f"logged to MLflow run {run_id}")
