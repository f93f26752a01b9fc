"""One training run end to end: split, baselines, fine-tune, calibrate, evaluate, log, register.

Every run is an MLflow run: params, the dataset's digest and counts, per-epoch losses, held-out
metrics for the fine-tuned model and both baselines side by side, PR curves and confusion
matrices as PNG, the rejected rows (ids and reasons, no text), and the model itself, registered
with the alias ``candidate``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from commsrisk.classifier.model import RiskClassifier, base_model_identity
from commsrisk.classifier.ngram import CharNgramClassifier
from commsrisk.combiner import RiskCombiner
from commsrisk.schema import RISKS, Message
from commsrisk.signals import DEFAULT_SIGNALS, NGRAM_SIGNAL, Evidence
from commsrisk.training.baselines import KeywordLexicon, TfidfLogReg
from commsrisk.training.data import LabeledData, label_matrix, near_copies_across_splits, split_labeled
from commsrisk.training.evaluate import (
    ModelEvaluation,
    best_f1_thresholds,
    comparison_markdown,
    evaluate_model,
    hard_case_mask,
    language_slices,
    per_slice_macro_f1,
    plot_confusion_matrices,
    plot_pr_curves,
)
from commsrisk.training.finetune import FineTuneConfig, fine_tune, save_delta
from commsrisk.training.frozen_encoder import fit_frozen_head
from commsrisk.training.overlap import require_dev_isolation, text_fingerprint, write_fingerprints
from commsrisk.training.registry import CANDIDATE_ALIAS, log_and_register_model, tracking_client

if TYPE_CHECKING:
    from commsrisk.training.from_reviews import ReviewsMix

logger = logging.getLogger(__name__)

FINAL_MODEL = "fine-tuned"
BEATEN_TAG = "commsrisk.beaten_by_baseline"
"""Set on a run and its model version when a baseline scores better: such a model is never promoted."""


class PiiSource(Protocol):
    """Anything that finds PII in texts (the nlp step's TextAnalyzer)."""

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str | None]) -> Sequence[Any]:
        """One analysis with `.pii` and `.language` per text."""
        ...


@dataclass
class SplitScores:
    """One split's labels, slices and a model's probabilities, aligned by row."""

    message_ids: list[str]
    labels: np.ndarray
    proba: np.ndarray
    languages: list[str]
    hard: np.ndarray | None


@dataclass
class TrainingOutcome:
    """What a run produced and measured."""

    run_id: str
    model_version: str | None
    delta_dir: Path
    evaluations: list[ModelEvaluation]
    report: str
    split_counts: dict[str, int]
    metadata: dict[str, Any] = field(default_factory=dict)
    dev_evaluations: list[ModelEvaluation] = field(default_factory=list)
    final_scores: dict[str, SplitScores] = field(default_factory=dict)
    """The final model's probabilities per split (calibration, test, dev), for ensembles and analysis."""
    warnings: list[str] = field(default_factory=list)
    """What a reviewer of the run must read (a baseline beat the model, near-copies across splits)."""
    review_evaluations: list[ModelEvaluation] = field(default_factory=list)
    """Every model on the reviews' held-out slice (training from the review store)."""

    def evaluation(self, name: str) -> ModelEvaluation:
        """The evaluation of one model by name."""
        return next(ev for ev in self.evaluations if ev.name == name)


def frame_messages(frame: pd.DataFrame) -> list[Message]:
    """Messages for the rows of a labeled frame (optional columns passed through)."""
    messages = []
    for row in frame.itertuples(index=False):
        messages.append(
            Message(
                text=row.text,
                message_id=row.message_id,
                lang=row.lang if isinstance(row.lang, str) else None,
                business_unit=row.business_unit if isinstance(row.business_unit, str) else None,
                channel=row.channel if isinstance(row.channel, str) else None,
                external=bool(row.external) if isinstance(row.external, (bool, np.bool_)) else None,
                conversation_id=row.conversation_id,
            )
        )
    return messages


def build_evidence(
    messages: Sequence[Message],
    probabilities: np.ndarray,
    analyzer: PiiSource,
    ngram: CharNgramClassifier | None = None,
) -> list[Evidence]:
    """Evidence per message: classifier (and n-gram) probabilities plus PII from one NLP pass."""
    analyses = analyzer.analyze_batch([m.text for m in messages], [m.lang for m in messages])
    grams = ngram.predict_proba([m.text for m in messages]) if ngram is not None else [None] * len(messages)
    return [
        Evidence(
            message=m,
            probabilities=tuple(float(p) for p in probs),
            pii=list(a.pii),
            language=a.language,
            ngram_probabilities=None if g is None else tuple(float(x) for x in g),
        )
        for m, probs, g, a in zip(messages, probabilities, grams, analyses, strict=True)
    ]


def _limit(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """A reproducible sample of whole conversations, for quick runs."""
    if limit is None or limit >= len(frame):
        return frame
    conversations = frame["conversation_id"].drop_duplicates().sample(frac=1.0, random_state=seed)
    sizes = frame.groupby("conversation_id").size()
    keep = conversations[sizes.loc[conversations].cumsum().to_numpy() <= limit]
    return frame[frame["conversation_id"].isin(set(keep))].reset_index(drop=True)


def run_training(
    data: LabeledData,
    *,
    config: FineTuneConfig,
    analyzer: PiiSource,
    out_dir: Path,
    tracking_uri: str,
    experiment: str,
    registered_model: str | None,
    limit: int | None = None,
    progress: bool = True,
    run_name: str | None = None,
    dev: LabeledData | None = None,
    reviews: ReviewsMix | None = None,
) -> TrainingOutcome:
    """Train, evaluate against the baselines, and log everything as one MLflow run.

    With `dev` (the out-of-distribution dev set, never trained on) the run also selects on it
    (early stopping, the frozen head's regularisation) and reports every model on it: the figure
    models are compared and promoted on. With `reviews` (`data` is then its training mix) the
    snapshot is logged as a dataset and every model is also reported on the reviews' held-out slice.
    """
    import mlflow

    from commsrisk.training.from_reviews import log_reviews

    frame = _limit(data.frame, limit, config.seed)
    frame = frame.assign(split=split_labeled(frame, seed=config.seed).to_numpy())
    warnings: list[str] = []
    near_copies = near_copies_across_splits(frame, frame["split"])
    if near_copies:
        warnings.append(
            f"{near_copies} held-out messages have a near-copy in the training split (other conversation ids); "
            "held-out figures may be optimistic"
        )
    parts = {name: frame[frame["split"] == name].reset_index(drop=True) for name in ("train", "calibration", "test")}
    counts = {name: len(part) for name, part in parts.items()}
    logger.info("split: %s", counts)
    labels = {name: label_matrix(part) for name, part in parts.items()}
    texts = {name: part["text"].tolist() for name, part in parts.items()}
    test_langs = detected_where_missing(language_slices(parts["test"]), texts["test"], analyzer)
    test_hard = hard_case_mask(parts["test"])
    if dev is not None:
        texts["dev"] = dev.frame["text"].tolist()
        labels["dev"] = label_matrix(dev.frame)
        require_dev_isolation(frame["text"].tolist(), texts["dev"], dev.frame["message_id"].tolist())
    holdout = reviews.holdout if reviews is not None else None
    if holdout is not None:
        texts["reviews"], labels["reviews"] = holdout.frame["text"].tolist(), label_matrix(holdout.frame)

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        mlflow.log_params({f"ft_{k}": v for k, v in config.model_dump().items()})
        mlflow.log_params(
            {
                "data_source": Path(data.source).name,
                "data_digest": data.digest,
                "rows_read": data.rows_read,
                "rows_rejected": len(data.rejected),
                "rows_used": len(frame),
                "limit": limit,
                "signals": ",".join((*DEFAULT_SIGNALS, NGRAM_SIGNAL) if config.stack_ngram else DEFAULT_SIGNALS),
                **{f"n_{name}": count for name, count in counts.items()},
            }
        )
        mlflow.set_tags(
            {
                "commsrisk.data_digest": data.digest,
                "commsrisk.kind": "training",
                "commsrisk.method": config.method,
                "commsrisk.data_path": str(Path(data.source).resolve()),
                "commsrisk.git_commit": git_commit(),
            }
        )
        mlflow.log_param("near_copies_across_splits", near_copies)
        if dev is not None:
            mlflow.log_params({"dev_source": Path(dev.source).name, "dev_digest": dev.digest, "n_dev": len(dev.frame)})
        _log_dataset(mlflow, frame, data)
        if reviews is not None:
            log_reviews(mlflow, reviews, workdir)
        _log_counts(mlflow, frame, workdir)
        if data.rejected:
            rejected = pd.DataFrame([r.__dict__ for r in data.rejected])
            rejected.to_csv(workdir / "rejected_rows.csv", index=False)
            mlflow.log_artifact(str(workdir / "rejected_rows.csv"), "data")

        # Baselines: the same splits, thresholds chosen on calibration, scored on test.
        baselines = {"lexicon": KeywordLexicon(), "tfidf-logreg": TfidfLogReg(seed=config.seed)}
        probas: dict[str, np.ndarray] = {}
        dev_probas: dict[str, np.ndarray] = {}
        dev_cuts: dict[str, np.ndarray] = {}
        review_probas: dict[str, np.ndarray] = {}
        review_cuts: dict[str, np.ndarray] = {}
        evaluations: list[ModelEvaluation] = []
        for name, baseline in baselines.items():
            baseline.fit(texts["train"], labels["train"])
            cut = best_f1_thresholds(labels["calibration"], baseline.predict_proba(texts["calibration"]))
            if name == "lexicon":
                cut = np.full(len(RISKS), 0.5)  # a keyword hit is the decision
            probas[name] = baseline.predict_proba(texts["test"])
            evaluations.append(evaluate_model(name, labels["test"], probas[name], cut, test_langs, test_hard))
            if dev is not None:
                dev_probas[name] = baseline.predict_proba(texts["dev"])
                dev_cuts[name] = cut
            if holdout is not None:
                review_probas[name], review_cuts[name] = baseline.predict_proba(texts["reviews"]), cut

        def on_epoch_end(step: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics(metrics, step=step)

        def on_step(step: int, loss: float) -> None:
            mlflow.log_metric("train_loss_step", loss, step=step)

        select = {"select_texts": texts.get("dev"), "select_labels": labels.get("dev")}
        if config.method == "frozen":
            model, tokenizer = fit_frozen_head(texts["train"], labels["train"], config, **select)
        else:
            model, tokenizer = fine_tune(
                texts["train"],
                labels["train"],
                config,
                eval_texts=texts["calibration"],
                eval_labels=labels["calibration"],
                on_epoch_end=on_epoch_end,
                on_step=on_step,
                progress=progress,
                **select,
            )
        classifier = RiskClassifier(
            model,
            tokenizer,
            "in-training",
            max_length=config.max_length,
            batch_size=64,
            tail_tokens=config.tail_tokens,
        )
        scored = ("calibration", "test", "dev") if dev is not None else ("calibration", "test")
        scored += ("reviews",) if holdout is not None else ()
        clf_proba = {name: classifier.predict_proba(texts[name]) for name in scored}
        cut = best_f1_thresholds(labels["calibration"], clf_proba["calibration"])
        probas["classifier-only"] = clf_proba["test"]
        evaluations.append(
            evaluate_model("classifier-only", labels["test"], clf_proba["test"], cut, test_langs, test_hard)
        )

        frames = {**parts, "dev": dev.frame} if dev is not None else parts
        frames = {**frames, "reviews": holdout.frame} if holdout is not None else frames
        ngram = (
            CharNgramClassifier.fit(texts["train"], labels["train"], seed=config.seed) if config.stack_ngram else None
        )
        evidence = {
            name: build_evidence(frame_messages(frames[name]), clf_proba[name], analyzer, ngram) for name in scored
        }
        signal_names = (*DEFAULT_SIGNALS, NGRAM_SIGNAL) if ngram is not None else DEFAULT_SIGNALS
        combiner = RiskCombiner.fit(evidence["calibration"], labels["calibration"], signal_names)
        final_calib = combiner.predict_proba(evidence["calibration"])
        final_cut = best_f1_thresholds(labels["calibration"], final_calib)
        probas[FINAL_MODEL] = combiner.predict_proba(evidence["test"])
        final = evaluate_model(FINAL_MODEL, labels["test"], probas[FINAL_MODEL], final_cut, test_langs, test_hard)
        evaluations.append(final)
        dev_evaluations: list[ModelEvaluation] = []
        if dev is not None:
            dev_probas["classifier-only"], dev_cuts["classifier-only"] = clf_proba["dev"], cut
            dev_probas[FINAL_MODEL], dev_cuts[FINAL_MODEL] = combiner.predict_proba(evidence["dev"]), final_cut
            dev_langs = detected_where_missing(language_slices(dev.frame), texts["dev"], analyzer)
            dev_hard = hard_case_mask(dev.frame)
            for name, proba in dev_probas.items():
                ev = evaluate_model(name, labels["dev"], proba, dev_cuts[name], dev_langs, dev_hard)
                dev_evaluations.append(ev)
                prefix = "dev_" if name == FINAL_MODEL else f"{name.replace('-', '_')}_dev_"
                mlflow.log_metrics(ev.flat_metrics(prefix))
            _log_dev_scores(mlflow, dev.frame, dev_probas, workdir)
        review_evaluations: list[ModelEvaluation] = []
        if holdout is not None:
            review_probas["classifier-only"], review_cuts["classifier-only"] = clf_proba["reviews"], cut
            review_probas[FINAL_MODEL], review_cuts[FINAL_MODEL] = (
                combiner.predict_proba(evidence["reviews"]),
                final_cut,
            )
            review_langs = detected_where_missing(language_slices(holdout.frame), texts["reviews"], analyzer)
            for name, proba in review_probas.items():
                ev = evaluate_model(name, labels["reviews"], proba, review_cuts[name], review_langs)
                review_evaluations.append(ev)
                prefix = "reviews_" if name == FINAL_MODEL else f"{name.replace('-', '_')}_reviews_"
                mlflow.log_metrics(ev.flat_metrics(prefix))

        for ev in evaluations:
            prefix = "test_" if ev.name == FINAL_MODEL else f"{ev.name.replace('-', '_')}_test_"
            mlflow.log_metrics(ev.flat_metrics(prefix))
        per_unit = {
            "test": per_slice_macro_f1(labels["test"], probas[FINAL_MODEL], final_cut, _units(parts["test"])),
        }
        if dev is not None:
            per_unit["dev"] = per_slice_macro_f1(labels["dev"], dev_probas[FINAL_MODEL], final_cut, _units(dev.frame))
        if holdout is not None:
            review_units = _units(holdout.frame)
            per_unit["reviews"] = per_slice_macro_f1(
                labels["reviews"], review_probas[FINAL_MODEL], final_cut, review_units
            )
        for split_name, units in per_unit.items():
            mlflow.log_metrics(
                {f"{split_name}_unit_{_metric_key(u)}_macro_f1": m["macro_f1"] for u, m in units.items()}
            )
        mlflow.log_dict(per_unit, "evaluation/per_business_unit.json")
        beaten = _beaten_by_baseline(dev_evaluations or evaluations)
        if beaten:
            warnings.append(beaten)
            mlflow.set_tag(BEATEN_TAG, beaten)
        for warning in warnings:
            logger.warning("training run %s: %s", run.info.run_id, warning)
        report = comparison_markdown(evaluations)
        if dev_evaluations:
            report = (
                "Out-of-distribution dev set (thresholds from the calibration split):\n\n"
                + comparison_markdown(dev_evaluations, split="dev")
                + "\n\nIn-corpus held-out split:\n\n"
                + report
            )
        if review_evaluations:
            report += (
                f"\n\nReviews' held-out slice ({len(labels['reviews'])} messages of the review store, never trained "
                "on; per business unit in evaluation/per_business_unit.json):\n\n"
                + comparison_markdown(review_evaluations, split="reviews")
            )
        mlflow.log_text(report, "evaluation/report.md")
        mlflow.log_dict({ev.name: ev.to_dict() for ev in evaluations}, "evaluation/evaluation.json")
        mlflow.log_artifact(str(plot_pr_curves(labels["test"], probas, workdir / "pr_curves.png")), "evaluation")
        for ev in evaluations:
            png = plot_confusion_matrices(ev, workdir / f"confusion_{ev.name}.png")
            mlflow.log_artifact(str(png), "evaluation")
        held_out = workdir / "test_ids.parquet"
        ids = parts["test"][["message_id", "conversation_id", *RISKS]].assign(
            text_fingerprint=parts["test"]["text"].map(text_fingerprint)
        )
        ids.to_parquet(held_out, index=False)
        mlflow.log_artifact(str(held_out), "held_out")
        mlflow.log_dict(config.model_dump(), "config/fine_tune.json")

        metadata = {
            "base_model": config.base_model,
            "base_model_identity": base_model_identity(config.base_model),
            "max_length": config.max_length,
            "tail_tokens": config.tail_tokens,
            "run_id": run.info.run_id,
            "seed": config.seed,
            "data_digest": data.digest,
            "split_counts": counts,
            "signals": list(signal_names),
            "f1_thresholds": dict(zip(RISKS, map(float, final_cut), strict=True)),
            "method": config.method,
            **({"encoder_layers": config.encoder_layers} if config.encoder_layers else {}),
            "held_out": {ev.name: {"macro_f1": ev.macro_f1} for ev in evaluations},
            "dev": {ev.name: {"macro_f1": ev.macro_f1} for ev in dev_evaluations},
            "version": f"run-{run.info.run_id[:12]}",
        }
        if reviews is not None:
            metadata["reviews"] = reviews.summary()
        save_delta(model, out_dir, metadata)
        write_fingerprints(frame["text"].tolist(), out_dir)
        combiner.save(out_dir)
        if ngram is not None:
            ngram.save(out_dir)
        model_version = None
        if registered_model:
            model_version = log_and_register_model(out_dir, registered_model, macro_f1=final.macro_f1)
            client = tracking_client()
            client.set_registered_model_alias(registered_model, CANDIDATE_ALIAS, model_version)  # type: ignore[attr-defined]
            if beaten:
                client.set_model_version_tag(registered_model, model_version, BEATEN_TAG, beaten)  # type: ignore[attr-defined]
            logger.info("registered %s version %s as @%s", registered_model, model_version, CANDIDATE_ALIAS)
        (out_dir / "evaluation.md").write_text(report + "\n", encoding="utf-8")
        outcome = TrainingOutcome(run.info.run_id, model_version, out_dir, evaluations, report, counts, metadata)
        outcome.dev_evaluations = dev_evaluations
        outcome.warnings = warnings
        outcome.review_evaluations = review_evaluations
        outcome.final_scores = {
            "calibration": SplitScores(
                parts["calibration"]["message_id"].tolist(), labels["calibration"], final_calib, [], None
            ),
            "test": SplitScores(
                parts["test"]["message_id"].tolist(), labels["test"], probas[FINAL_MODEL], test_langs, test_hard
            ),
        }
        if dev is not None:
            outcome.final_scores["dev"] = SplitScores(
                dev.frame["message_id"].tolist(), labels["dev"], dev_probas[FINAL_MODEL], dev_langs, dev_hard
            )
        return outcome


def detected_where_missing(languages: list[str], texts: Sequence[str], analyzer: PiiSource) -> list[str]:
    """Slice names with the detected language where the file gave none (else all would be 'unknown')."""
    missing = [i for i, lang in enumerate(languages) if lang == "unknown"]
    if not missing:
        return languages
    analyses = analyzer.analyze_batch([texts[i] for i in missing], [None] * len(missing))
    filled = list(languages)
    for i, analysis in zip(missing, analyses, strict=True):
        filled[i] = str(analysis.language)
    return filled


def _units(frame: pd.DataFrame) -> list[str]:
    units = frame["business_unit"] if "business_unit" in frame else pd.Series([None] * len(frame))
    return [str(u) if isinstance(u, str) and u else "(no unit)" for u in units]


def _metric_key(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _beaten_by_baseline(evaluations: Sequence[ModelEvaluation]) -> str | None:
    """A warning when a baseline's macro-F1 is higher than the final model's on the same split."""
    final = next(ev for ev in evaluations if ev.name == FINAL_MODEL)
    baselines = [ev for ev in evaluations if ev.name in ("lexicon", "tfidf-logreg")]
    best = max(baselines, key=lambda ev: ev.macro_f1, default=None)
    if best is None or best.macro_f1 <= final.macro_f1:
        return None
    return (
        f"baseline {best.name} beats the model: macro-F1 {best.macro_f1:.4f} > {final.macro_f1:.4f}; "
        "this model cannot be promoted"
    )


def git_commit() -> str:
    """The commit of the working tree the run started from ('unknown' outside a git checkout)."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True, cwd=Path.cwd()
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], capture_output=True, text=True, timeout=5)
    return done.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _log_dataset(mlflow: Any, frame: pd.DataFrame, data: LabeledData) -> None:
    """Record the dataset (digest, schema, row count) as the run's input; the texts stay out."""
    profile = frame.drop(columns=["text"]).astype(dict.fromkeys(RISKS, "float64"))
    dataset = mlflow.data.from_pandas(
        profile, source=Path(data.source).name, name="labeled-reviews", digest=data.digest
    )
    mlflow.log_input(dataset, context="training")


def _log_dev_scores(mlflow: Any, frame: pd.DataFrame, probas: dict[str, np.ndarray], workdir: Path) -> None:
    """Every model's dev-set probabilities by message id (no text), for ensembles and error analysis."""
    table = frame[["message_id", *RISKS]].copy()
    for name, proba in probas.items():
        for j, risk in enumerate(RISKS):
            table[f"{name}:{risk}"] = proba[:, j]
    path = workdir / "dev_scores.csv"
    table.to_csv(path, index=False)
    mlflow.log_artifact(str(path), "evaluation")


def _log_counts(mlflow: Any, frame: pd.DataFrame, workdir: Path) -> None:
    """Counts per split x language x label, as a table artifact."""
    table = frame.assign(lang=frame["lang"].fillna("unknown")).groupby(["split", "lang"])[list(RISKS)].agg(["sum"])
    table.columns = list(RISKS)
    table["messages"] = frame.assign(lang=frame["lang"].fillna("unknown")).groupby(["split", "lang"]).size()
    path = workdir / "counts.csv"
    table.to_csv(path)
    mlflow.log_artifact(str(path), "data")
    summary = {f"positives_{risk}": int(frame[risk].sum()) for risk in RISKS}
    mlflow.log_metrics({k: float(v) for k, v in summary.items()})
    mlflow.log_text(json.dumps(summary), "data/positives.json")
