"""`commsrisk thresholds tune`: propose per-unit thresholds from labeled messages, with the evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from commsrisk.cli import review_options
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
from commsrisk.cli.thresholds import thresholds_app
from commsrisk.errors import CommsriskError
from commsrisk.schema import RISKS
from commsrisk.settings import Settings


@thresholds_app.command("tune")
def thresholds_tune(
    data: Annotated[
        Path | None, typer.Option(help="Labeled file with business_unit (CSV, JSONL, Parquet); or --from-reviews.")
    ] = None,
    from_reviews: Annotated[
        bool, typer.Option("--from-reviews", help="Tune on the review store: its messages with every risk reviewed.")
    ] = False,
    since: review_options.Since = None,
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
    sample: Annotated[
        int | None,
        typer.Option(
            min=1, help="Tune on a fixed random sample of this many of those messages (a quick look: wider intervals)."
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
    if (data is None) != from_reviews:
        raise fail(CommsriskError("give the labeled messages to tune on: --data FILE or --from-reviews (not both)"))
    if data is None:
        labeled = review_options.reviews_labeled_or_fail(settings, since)
    else:
        labeled = read_labeled_or_fail(data, settings.limits, columns_map=column_map_or_fail(map_pairs, map_file))
    try:
        goal = Target.parse(target)
        goal = Target(goal.metric, goal.value, max_alerts_per_1000)
        plan = TuningTargets.load(targets) if targets else TuningTargets.single(goal, min_positives, min_flags)
        with err.status("loading models ..."):
            scorer = build_scorer(settings)
        scorer.explain = "signals"
        metadata = getattr(scorer.classifier, "metadata", {}) or {}
        frame, note = rows_to_judge(
            labeled, metadata, splits=("calibration", "test"), held_out_only=held_out_only, sample=sample
        )
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
        "data": labeled.source,
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
