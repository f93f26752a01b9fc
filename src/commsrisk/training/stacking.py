"""Stack a character n-gram classifier onto a trained model: new combiner, same transformer.

The transformer is left as trained; a character n-gram classifier is fit on the same training
split (the model's seed and data digest say which rows), and the combiner is refit on the
calibration split with the n-gram log-odds as one more signal. The result is evaluated on the
in-corpus test split and the out-of-distribution dev set like any training run, logged to MLflow,
and written as a complete model folder. `commsrisk train --stack-ngram` does the same in one run;
this adds the stack to a model that already exists without retraining its encoder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from commsrisk.classifier.model import METADATA_FILE, load_classifier, read_metadata
from commsrisk.classifier.ngram import CharNgramClassifier
from commsrisk.combiner import RiskCombiner
from commsrisk.errors import DataValidationError
from commsrisk.schema import RISKS
from commsrisk.signals import DEFAULT_SIGNALS, NGRAM_SIGNAL
from commsrisk.training.data import LabeledData, label_matrix, split_labeled
from commsrisk.training.evaluate import (
    ModelEvaluation,
    best_f1_thresholds,
    comparison_markdown,
    evaluate_model,
    hard_case_mask,
    language_slices,
)
from commsrisk.training.overlap import require_dev_isolation
from commsrisk.training.pipeline import FINAL_MODEL, PiiSource, build_evidence, frame_messages

STACKED_MODEL = "stacked"


@dataclass
class StackOutcome:
    """The stacked model's evaluations (test and dev) next to the model it was built from."""

    out_dir: Path
    test: list[ModelEvaluation]
    dev: list[ModelEvaluation]
    report: str
    run_id: str


def stack_ngram(
    model_dir: Path,
    data: LabeledData,
    dev: LabeledData,
    analyzer: PiiSource,
    out_dir: Path,
    *,
    base_model: str | None = None,
    tracking_uri: str | None = None,
    experiment: str = "commsrisk",
) -> StackOutcome:
    """Build the stacked model in `out_dir` from the trained model in `model_dir`.

    Raises:
        DataValidationError: `data` is not the model's training data (digest differs), or it holds
            dev messages.
    """
    metadata = read_metadata(model_dir)
    if metadata.get("data_digest") != data.digest:
        raise DataValidationError(
            f"{Path(data.source).name} (digest {data.digest}) is not the data {model_dir} was trained on "
            f"(digest {metadata.get('data_digest')}): the n-gram classifier must see the same training split"
        )
    require_dev_isolation(data.frame["text"].tolist(), dev.frame["text"].tolist(), dev.frame["message_id"].tolist())
    seed = int(metadata.get("seed", 13))
    split = split_labeled(data.frame, seed=seed).to_numpy()
    parts = {name: data.frame[split == name].reset_index(drop=True) for name in ("train", "calibration", "test")}
    parts["dev"] = dev.frame
    labels = {name: label_matrix(part) for name, part in parts.items()}
    texts = {name: part["text"].tolist() for name, part in parts.items()}
    classifier = load_classifier(str(model_dir), base_model=base_model, batch_size=64)
    clf = {name: classifier.predict_proba(texts[name]) for name in ("calibration", "test", "dev")}
    ngram = CharNgramClassifier.fit(texts["train"], labels["train"], seed=seed)
    signal_names = (*DEFAULT_SIGNALS, NGRAM_SIGNAL)
    evaluations: dict[str, list[ModelEvaluation]] = {"test": [], "dev": []}
    combiners: dict[str, RiskCombiner] = {}
    cuts: dict[str, np.ndarray] = {}
    for name, grams, signals in ((FINAL_MODEL, None, DEFAULT_SIGNALS), (STACKED_MODEL, ngram, signal_names)):
        evidence = {
            split_name: build_evidence(frame_messages(parts[split_name]), clf[split_name], analyzer, grams)
            for split_name in ("calibration", "test", "dev")
        }
        combiner = RiskCombiner.fit(evidence["calibration"], labels["calibration"], signals)
        cut = best_f1_thresholds(labels["calibration"], combiner.predict_proba(evidence["calibration"]))
        combiners[name], cuts[name] = combiner, cut
        for split_name in ("test", "dev"):
            frame = parts[split_name]
            evaluations[split_name].append(
                evaluate_model(
                    name,
                    labels[split_name],
                    combiner.predict_proba(evidence[split_name]),
                    cut,
                    language_slices(frame),
                    hard_case_mask(frame),
                )
            )
    for split_name in ("test", "dev"):
        evaluations[split_name].append(
            evaluate_model(
                "char-ngram-only",
                labels[split_name],
                ngram.predict_proba(texts[split_name]),
                best_f1_thresholds(labels["calibration"], ngram.predict_proba(texts["calibration"])),
                language_slices(parts[split_name]),
                hard_case_mask(parts[split_name]),
            )
        )
    report = (
        "Out-of-distribution dev set (thresholds from the calibration split):\n\n"
        + comparison_markdown(evaluations["dev"], split="dev")
        + "\n\nIn-corpus held-out split:\n\n"
        + comparison_markdown(evaluations["test"])
    )
    if out_dir.resolve() != model_dir.resolve():
        shutil.copytree(model_dir, out_dir, dirs_exist_ok=True)
    combiners[STACKED_MODEL].save(out_dir)
    ngram.save(out_dir)
    run_id = _log_run(tracking_uri, experiment, model_dir, data, dev, evaluations, report)
    metadata.update(
        {
            "signals": list(signal_names),
            "f1_thresholds": dict(zip(RISKS, map(float, cuts[STACKED_MODEL]), strict=True)),
            "stacked_from": {"run_id": metadata.get("run_id"), "version": metadata.get("version")},
            "stack_run_id": run_id,
            "dev": {ev.name: {"macro_f1": ev.macro_f1} for ev in evaluations["dev"]},
            "held_out": {ev.name: {"macro_f1": ev.macro_f1} for ev in evaluations["test"]},
            "version": f"{metadata.get('version', 'model')}+ngram",
        }
    )
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "evaluation.md").write_text(report + "\n", encoding="utf-8")
    return StackOutcome(out_dir, evaluations["test"], evaluations["dev"], report, run_id)


def _log_run(
    tracking_uri: str | None,
    experiment: str,
    model_dir: Path,
    data: LabeledData,
    dev: LabeledData,
    evaluations: dict[str, list[ModelEvaluation]],
    report: str,
) -> str:
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    metadata = read_metadata(model_dir)
    with mlflow.start_run(run_name=f"stack n-gram on {metadata.get('version', model_dir.name)}") as run:
        mlflow.set_tags({"commsrisk.kind": "stacking", "commsrisk.data_digest": data.digest})
        mlflow.log_params(
            {
                "base_run_id": metadata.get("run_id"),
                "data_digest": data.digest,
                "dev_digest": dev.digest,
                "signals": ",".join((*DEFAULT_SIGNALS, NGRAM_SIGNAL)),
            }
        )
        for split_name, evs in evaluations.items():
            for ev in evs:
                mlflow.log_metrics(ev.flat_metrics(f"{ev.name.replace('-', '_')}_{split_name}_"))
        mlflow.log_text(report, "evaluation/report.md")
        return str(run.info.run_id)
