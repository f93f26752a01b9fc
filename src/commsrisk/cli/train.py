"""`commsrisk train`, `stack-ngram` and `promote`: fit a model, log it to MLflow, gate it into production."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown

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
from commsrisk.errors import CommsriskError
from commsrisk.settings import Settings


def train(
    data: Annotated[
        Path, typer.Option(help="Labeled file (CSV, JSONL, Parquet): text, leakage, misconduct, off_channel.")
    ],
    output: Annotated[Path, typer.Option(help="Where the trained delta is written.")] = Path("models/candidate"),
    epochs: Annotated[int, typer.Option(help="Passes over the training split.")] = 6,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimiser steps (quick runs).")] = None,
    limit: Annotated[int | None, typer.Option(help="Use about this many messages (whole conversations).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for split, initialisation and batch order.")] = 13,
    batch_size: Annotated[int, typer.Option(help="Messages per optimiser step.")] = 16,
    learning_rate: Annotated[
        float | None,
        typer.Option(help="AdamW learning rate; default per method (lora 8e-4, lora-mean 5e-4, full 3e-5)."),
    ] = None,
    method: Annotated[str, typer.Option(help="lora | lora-mean | full | frozen (see the model card).")] = "lora",
    dev_data: Annotated[
        Path | None,
        typer.Option(help="Out-of-distribution dev set to select and report on; default: tracking.dev_set if present."),
    ] = None,
    no_dev: Annotated[bool, typer.Option("--no-dev", help="Train without the dev set (no selection on it).")] = False,
    stack_ngram: Annotated[
        bool,
        typer.Option(
            "--stack-ngram/--no-stack-ngram",
            help="Stack a character n-gram classifier with the transformer (its log-odds feed the combiner).",
        ),
    ] = False,
    eval_every: Annotated[
        int | None, typer.Option(help="Score the dev set every this many steps (default: once per epoch).")
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Early stopping: stop after this many dev scores without improvement.")
    ] = None,
    encoder_layers: Annotated[
        int | None, typer.Option(min=1, help="A faster student: keep only the base encoder's first N layers.")
    ] = None,
    max_rejected: Annotated[float, typer.Option(help="Fail if more than this share of rows is rejected.")] = 0.2,
    register: Annotated[bool, typer.Option(help="Register the model as commsrisk@candidate.")] = True,
    run_name: Annotated[str | None, typer.Option(help="MLflow run name.")] = None,
    map_pairs: MapPairs = None,
    map_file: MapFile = None,
    from_reviews: review_options.FromReviews = False,
    since: review_options.Since = None,
    business_unit: review_options.BusinessUnits = None,
    review_ratio: review_options.ReviewRatio = 0.3,
    holdout_out: review_options.HoldoutOut = review_options.DEFAULT_HOLDOUT_FILE,
) -> None:
    """Fine-tune the classifier, compare it with the baselines, log the run to MLflow (--from-reviews: with reviews)."""
    from commsrisk.nlp.text_analyzer import build_text_analyzer
    from commsrisk.training.finetune import METHODS, FineTuneConfig
    from commsrisk.training.model_card import write_model_card
    from commsrisk.training.pipeline import run_training

    settings = Settings.load()
    labeled = read_labeled_or_fail(data, settings.limits, max_rejected, column_map_or_fail(map_pairs, map_file))
    if method not in METHODS:
        raise fail(CommsriskError(f"--method {method!r} is not one of {list(METHODS)}"))
    dev_path = dev_data or settings.tracking.dev_set
    use_dev = not no_dev and (dev_data is not None or dev_path.is_file())
    dev = read_labeled_or_fail(dev_path, settings.limits) if use_dev else None
    mix = review_options.mix_or_none(
        from_reviews, settings, labeled, dev, since, business_unit, review_ratio, holdout_out
    )
    config = FineTuneConfig.for_method(
        method,
        base_model=settings.model.base_model,
        seed=seed,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=settings.model.max_length,
        tail_tokens=settings.model.tail_tokens,
        torch_threads=settings.model.torch_threads,
        eval_every=eval_every,
        patience=patience,
        stack_ngram=stack_ngram,
        encoder_layers=encoder_layers,
    )
    try:
        with err.status("loading the NLP pipelines ..."):
            analyzer = build_text_analyzer(settings.nlp)
        outcome = run_training(
            mix.training if mix else labeled,
            config=config,
            analyzer=analyzer,
            out_dir=output,
            tracking_uri=settings.tracking.resolved_uri(),
            experiment=settings.tracking.experiment,
            registered_model=settings.tracking.registered_model if register else None,
            limit=limit,
            run_name=run_name,
            dev=dev,
            reviews=mix,
        )
    except CommsriskError as error:
        raise fail(error) from error
    write_model_card(
        output / "MODEL_CARD.md",
        metadata=outcome.metadata,
        evaluations=outcome.evaluations,
        report=outcome.report,
        data_source=data.name,
        command=command_line("train"),
        dev_evaluations=outcome.dev_evaluations,
    )
    out.print(outcome.report)
    for warning in outcome.warnings:
        err.print(f"[bold yellow]warning:[/] {warning}")
    where = (
        f", registered as {settings.tracking.registered_model} v{outcome.model_version} @candidate"
        if outcome.model_version
        else ""
    )
    out.print(f"\n[green]run {outcome.run_id}[/]: model in {outcome.delta_dir}{where}")
    out.print(f"MLflow: mlflow ui --backend-store-uri {settings.tracking.resolved_uri()}")


def stack_ngram_command(
    model: Annotated[Path, typer.Option(help="A trained model folder (its transformer is kept as is).")],
    data: Annotated[Path, typer.Option(help="The labeled file the model was trained on (same digest).")],
    output: Annotated[Path, typer.Option(help="Where the stacked model is written.")],
    dev_data: Annotated[
        Path | None, typer.Option(help="Out-of-distribution dev set to report on; default: tracking.dev_set.")
    ] = None,
) -> None:
    """Stack a character n-gram classifier onto a trained model: refit the combiner with its log-odds.

    The n-gram classifier is fit on the model's training split, the combiner on its calibration
    split; reported on the test split and the dev set, logged to MLflow.
    """
    from commsrisk.classifier.model import read_metadata
    from commsrisk.nlp.text_analyzer import build_text_analyzer
    from commsrisk.training.model_card import comparison_section, write_model_card
    from commsrisk.training.stacking import stack_ngram

    settings = Settings.load()
    labeled = read_labeled_or_fail(data, settings.limits)
    dev = read_labeled_or_fail(dev_data or settings.tracking.dev_set, settings.limits)
    try:
        with err.status("loading the NLP pipelines ..."):
            analyzer = build_text_analyzer(settings.nlp)
        outcome = stack_ngram(
            model,
            labeled,
            dev,
            analyzer,
            output,
            base_model=settings.model.base_model,
            tracking_uri=settings.tracking.resolved_uri(),
            experiment=settings.tracking.experiment,
        )
    except CommsriskError as error:
        raise fail(error) from error
    write_model_card(
        output / "MODEL_CARD.md",
        metadata=read_metadata(output),
        evaluations=outcome.test,
        report=outcome.report,
        data_source=data.name,
        command=command_line("stack-ngram"),
        dev_evaluations=outcome.dev,
        final_name="stacked",
        extra_sections=comparison_section(Path("benchmarks/results/training_comparison.json")),
    )
    out.print(outcome.report)
    out.print(f"\n[green]stacked model in {outcome.out_dir}[/] (MLflow run {outcome.run_id})")


def promote(
    reason: Annotated[str, typer.Option(help="Why this model should serve (kept in the move record).")] = "",
    eval_data: Annotated[
        Path | None,
        typer.Option(help="The fixed evaluation set both models are scored on; default: tracking.dev_set."),
    ] = None,
    holdout: Annotated[
        Path | None,
        typer.Option(help="The firm's own reviewed held-out slice, scored beside the dev set; default: gate.holdout."),
    ] = None,
    new_yardstick: Annotated[
        bool, typer.Option("--new-yardstick", help="Accept (and freeze) a yardstick other than the frozen one.")
    ] = False,
    author: Annotated[str | None, typer.Option(help="Who; default: the current user.")] = None,
) -> None:
    """Move production to the candidate if it passes the gate on the fixed yardstick.

    Both models are scored on the out-of-distribution dev set (plus --holdout) that neither has
    seen; no risk's F1 or PR-AUC may be worse than production's beyond gate.risk_tolerance and
    macro-F1 may not fall. With no production model yet, the shipped default is the one to beat.
    Exit code 1 on a refusal (recorded, with the report, in the MLflow experiment
    '<experiment>-model-moves'). When the thresholds in force were tuned for another model, a
    re-tuned proposal is written next to the report.
    """
    from commsrisk.thresholds.policy import dump_policy
    from commsrisk.thresholds.store import policy_in_force
    from commsrisk.training.promotion import build_yardstick, propose_thresholds
    from commsrisk.training.promotion import promote as promote_candidate

    settings = Settings.load()
    parts = [read_labeled_or_fail(eval_data or settings.tracking.dev_set, settings.limits)]
    if holdout or settings.gate.holdout:
        parts.append(read_labeled_or_fail(holdout or settings.gate.holdout, settings.limits))  # type: ignore[arg-type]
    yardstick = build_yardstick(parts)
    try:
        with err.status(f"scoring candidate and production on {len(yardstick.frame)} yardstick messages ..."):
            decision = promote_candidate(settings, yardstick, author=author, reason=reason, new_yardstick=new_yardstick)
    except CommsriskError as error:
        if getattr(error, "report", None):
            out.print(Markdown(error.report))  # type: ignore[attr-defined]
        raise fail(error, code=1) from error
    out.print(Markdown(decision.report.markdown()))
    out.print(f"[green]promoted[/] v{decision.candidate_version} to production: {decision.reason}")
    policy = policy_in_force(settings.thresholds)
    if policy.tuned_for != decision.candidate.model_version:
        proposal = propose_thresholds(decision, yardstick, policy)
        path = Path("reports/thresholds") / f"proposed-for-v{decision.candidate_version}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_policy(proposal), encoding="utf-8")
        out.print(
            f"[yellow]thresholds {policy.version} were tuned for {policy.tuned_for or 'an unrecorded model'}[/]: "
            f"proposed re-tuned thresholds (best F1 on the yardstick) in {path}; review, or tune on your own "
            f'reviews with commsrisk thresholds tune, then: commsrisk thresholds apply {path} --reason "..."'
        )
