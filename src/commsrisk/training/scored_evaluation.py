"""Error analysis of the whole scoring pipeline on a labeled file: what `commsrisk evaluate` reports.

Messages go through the real Scorer (language, PII, classifier, combiner, the thresholds of each
message's business unit), so the figures are those a surveillance team would see. Besides F1 per
risk, language and hard cases it answers the question a data scientist asks next: when a risk
was missed, what was the message flagged as instead?
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from commsrisk.schema import RISKS, Message  # noqa: E402
from commsrisk.training.data import LabeledData, split_labeled  # noqa: E402
from commsrisk.training.evaluate import (  # noqa: E402
    ModelEvaluation,
    evaluate_decisions,
    hard_case_mask,
    language_slices,
)

NONE = "nothing"
"""Column of the confusion table for misses that were flagged as no risk at all."""


@dataclass
class ScoredEvaluation:
    """The pipeline's results on a labeled file."""

    evaluation: ModelEvaluation
    missed_as: pd.DataFrame
    """Rows: the risk a message carries but was not flagged for; columns: what it was flagged as."""
    false_alarms_as: pd.DataFrame
    """Rows: the risk flagged without the label; columns: what the message really carries."""
    scored: pd.DataFrame
    """Per message: id, slice, labels, scores and flags (no text)."""


def score_frame(scorer: Any, messages: Sequence[Message], *, batch_size: int = 128, progress: bool = True) -> list[Any]:
    """Score messages in batches with a progress bar on stderr."""
    results: list[Any] = []
    for start in tqdm(
        range(0, len(messages), batch_size), desc="scoring", unit="batch", file=sys.stderr, disable=not progress
    ):
        results += scorer.score_batch(messages[start : start + batch_size])
    return results


def rows_to_judge(
    labeled: LabeledData,
    metadata: Mapping[str, Any],
    *,
    splits: tuple[str, ...],
    held_out_only: bool | None = None,
    sample: int | None = None,
) -> tuple[pd.DataFrame, str]:
    """The rows a model may be judged or tuned on, and a note saying which.

    When the file is the model's own training data (same digest), only the named splits of its
    seeded split are kept by default: scores on rows it trained on would flatter it.
    `held_out_only` forces the choice either way. `sample` keeps a fixed random sample of that
    many of those rows (a quick look: fewer to score, wider intervals), said in the note.
    """
    frame = labeled.frame
    same_data = metadata.get("data_digest") == labeled.digest
    if held_out_only if held_out_only is not None else same_data:
        split = split_labeled(frame, seed=int(metadata.get("seed", 13))).to_numpy()
        kept = frame[np.isin(split, splits)].reset_index(drop=True)
        note = f"{len(kept)} messages the model did not train on ({'/'.join(splits)} split)"
    elif same_data:
        kept, note = frame, f"all {len(frame)} messages, INCLUDING the model's training data: scores are optimistic"
    else:
        kept, note = frame, f"all {len(frame)} messages"
    if sample is not None and sample < len(kept):
        kept = kept.sample(n=sample, random_state=0).reset_index(drop=True)
        note = f"a sample of {sample} of {note}"
    return kept, note


def score_table(scorer: Any, frame: pd.DataFrame, *, batch_size: int = 128) -> pd.DataFrame:
    """Per row of a labeled frame: id, business unit, the pipeline's score per risk and the label per risk."""
    from commsrisk.training.pipeline import frame_messages

    results = score_frame(scorer, frame_messages(frame), batch_size=batch_size)
    return pd.DataFrame(
        {
            "message_id": frame["message_id"],
            "business_unit": frame["business_unit"],
            **{f"score_{r}": [s.risks[r].score for s in results] for r in RISKS},
            **{r: frame[r] for r in RISKS},
        }
    )


def evaluate_results(frame: pd.DataFrame, results: Sequence[Any], name: str = "commsrisk") -> ScoredEvaluation:
    """Per-risk, per-language and hard-case metrics plus the confusions, from scored results."""
    labels = frame[list(RISKS)].astype(int).to_numpy()
    scores = np.array([[r.risks[risk].score for risk in RISKS] for r in results], dtype=float)
    flags = np.array([[int(r.risks[risk].flagged) for risk in RISKS] for r in results], dtype=int)
    thresholds = np.array([[r.risks[risk].threshold for risk in RISKS] for r in results], dtype=float)
    languages = language_slices(frame)
    evaluation = evaluate_decisions(
        name, labels, scores, flags, np.median(thresholds, axis=0), languages, hard_case_mask(frame)
    )
    scored = pd.DataFrame({"message_id": frame["message_id"].to_numpy(), "slice": languages})
    for j, risk in enumerate(RISKS):
        scored[risk] = labels[:, j]
        scored[f"score_{risk}"] = scores[:, j]
        scored[f"flag_{risk}"] = flags[:, j]
    return ScoredEvaluation(evaluation, _crossed(labels, flags), _crossed(flags, labels), scored)


def _crossed(present: np.ndarray, other: np.ndarray) -> pd.DataFrame:
    """Per risk present in `present` but not in `other`: what `other` holds for those rows instead.

    `_crossed(labels, flags)` is the misses by what they were flagged as; `_crossed(flags, labels)`
    the false alarms by what the messages really carry.
    """
    table = pd.DataFrame(0, index=list(RISKS), columns=[*RISKS, NONE])
    for j, risk in enumerate(RISKS):
        for i in np.flatnonzero((present[:, j] == 1) & (other[:, j] == 0)):
            for instead in [RISKS[k] for k in range(len(RISKS)) if other[i, k]] or [NONE]:
                table.loc[risk, instead] += 1
    return table


def plot_confusions(result: ScoredEvaluation, path: Path) -> Path:
    """Two heat maps: misses by what they were flagged as, false alarms by what they really were."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, table, title, ylabel, xlabel in (
        (axes[0], result.missed_as, "missed: flagged as", "risk carried, not flagged", "flagged as"),
        (axes[1], result.false_alarms_as, "false alarms: really", "risk flagged, not carried", "really carries"),
    ):
        ax.imshow(table.to_numpy(), cmap="Oranges")
        for (i, k), value in np.ndenumerate(table.to_numpy()):
            ax.text(k, i, str(value), ha="center", va="center", fontsize=11)
        ax.set_xticks(range(len(table.columns)), list(table.columns), rotation=20)
        ax.set_yticks(range(len(table.index)), list(table.index))
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(xlabel)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_to_mlflow(result: ScoredEvaluation, *, data_name: str, data_digest: str, model_version: str) -> str:
    """One MLflow run with every metric, the confusion tables and plot, and per-message scores (ids only)."""
    import tempfile

    import mlflow

    with mlflow.start_run(run_name=f"evaluate {data_name}") as run, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        mlflow.set_tags({"commsrisk.kind": "evaluation", "commsrisk.data_digest": data_digest})
        mlflow.log_params({"data_source": data_name, "data_digest": data_digest, "model_version": model_version})
        mlflow.log_metrics(result.evaluation.flat_metrics())
        mlflow.log_dict(result.evaluation.to_dict(), "evaluation/evaluation.json")
        mlflow.log_text(result.missed_as.to_csv(), "evaluation/missed_as.csv")
        mlflow.log_text(result.false_alarms_as.to_csv(), "evaluation/false_alarms_as.csv")
        mlflow.log_artifact(str(plot_confusions(result, workdir / "confusions.png")), "evaluation")
        result.scored.to_csv(workdir / "scores.csv", index=False)
        mlflow.log_artifact(str(workdir / "scores.csv"), "evaluation")
        mlflow.log_text(json.dumps({"messages": len(result.scored)}), "evaluation/size.json")
        return str(run.info.run_id)
