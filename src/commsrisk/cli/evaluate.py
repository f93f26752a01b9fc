"""`commsrisk evaluate`: the whole pipeline on a labeled file, with the error analysis a data scientist reads next."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from commsrisk.cli.console import err, fail, out, read_labeled_or_fail
from commsrisk.errors import CommsriskError
from commsrisk.schema import RISKS
from commsrisk.settings import Settings


def evaluate(
    data: Annotated[
        Path | None,
        typer.Option(help="Labeled file (CSV, JSONL, Parquet); default: the out-of-distribution dev set."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Classifier location (folder, models:/name@alias); default: model.classifier.")
    ] = None,
    mlflow_run: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log the evaluation as an MLflow run.")
    ] = True,
    batch_size: Annotated[int, typer.Option(help="Messages per scoring batch.")] = 128,
) -> None:
    """Score a labeled file through the whole pipeline and report F1 per risk, language and hard cases.

    Flags come from each message's business-unit thresholds, as in production. When FILE is the
    model's own training data, only its held-out test split is scored. The confusions
    (what a missed risk was flagged as, what a false alarm really was) go to the terminal and,
    with a plot and per-message scores (ids only), to an MLflow run.
    """
    import mlflow

    from commsrisk.scoring import build_scorer
    from commsrisk.training.pipeline import frame_messages
    from commsrisk.training.scored_evaluation import evaluate_results, log_to_mlflow, rows_to_judge, score_frame

    settings = Settings.load()
    path = data or settings.tracking.dev_set
    labeled = read_labeled_or_fail(path, settings.limits)
    try:
        with err.status("loading models ..."):
            scorer = build_scorer(settings, classifier_location=model)
    except CommsriskError as error:
        raise fail(error) from error
    metadata = getattr(scorer.classifier, "metadata", {}) or {}
    frame, note = rows_to_judge(labeled, metadata, splits=("test",))
    scorer.explain = "signals"
    results = score_frame(scorer, frame_messages(frame), batch_size=batch_size)
    outcome = evaluate_results(frame, results)
    ev = outcome.evaluation
    table = Table(title=f"{path.name}: {note}, model {scorer.model_version}")
    for column in ("risk", "precision", "recall", "F1", "PR-AUC", "positives"):
        table.add_column(column, justify="right")
    for risk in RISKS:
        m = ev.per_risk[risk]
        table.add_row(risk, f"{m.precision:.3f}", f"{m.recall:.3f}", f"{m.f1:.3f}", f"{m.pr_auc:.3f}", str(m.support))
    table.add_row("macro", "", "", f"{ev.macro_f1:.3f}", "", "")
    out.print(table)
    slices = Table(title="macro-F1 by slice")
    for column in ("slice", "messages", "macro-F1", *RISKS):
        slices.add_column(column, justify="right")
    for name, scores in [*sorted(ev.per_language.items()), *([("hard cases", ev.hard_cases)] if ev.hard_cases else [])]:
        slices.add_row(
            name, str(int(scores["support"])), f"{scores['macro_f1']:.3f}", *(f"{scores[r]:.3f}" for r in RISKS)
        )
    out.print(slices)
    out.print("[bold]missed[/] (rows: risk carried but not flagged; columns: what it was flagged as)")
    out.print(outcome.missed_as.to_string())
    out.print("[bold]false alarms[/] (rows: risk flagged but not carried; columns: what the message carries)")
    out.print(outcome.false_alarms_as.to_string())
    if mlflow_run:
        mlflow.set_tracking_uri(settings.tracking.resolved_uri())
        mlflow.set_experiment(settings.tracking.experiment)
        run_id = log_to_mlflow(
            outcome, data_name=path.name, data_digest=labeled.digest, model_version=scorer.model_version
        )
        out.print(f"[green]MLflow run {run_id}[/]: metrics, confusions.png, missed_as.csv, scores.csv (ids only)")
