"""Held-out evaluation: per-risk and per-language metrics, PR curves and confusion matrices.

Thresholds are chosen on the calibration split (best F1) and applied unchanged to the test
split, for every model alike, so the comparison with the baselines is fair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
)

from commsrisk.schema import RISKS  # noqa: E402

MIN_LANGUAGE_SUPPORT = 5
"""A language needs this many held-out messages to get its own row in the report."""


@dataclass
class RiskMetrics:
    """Metrics of one model on one risk at its chosen threshold."""

    precision: float
    recall: float
    f1: float
    pr_auc: float
    support: int
    threshold: float


@dataclass
class ModelEvaluation:
    """A model's held-out results: per risk, macro, per language."""

    name: str
    per_risk: dict[str, RiskMetrics]
    macro_f1: float
    per_language: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: dict[str, list[list[int]]] = field(default_factory=dict)
    hard_cases: dict[str, float] = field(default_factory=dict)

    def flat_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat {name: value} for MLflow log_metrics."""
        out = {f"{prefix}macro_f1": self.macro_f1}
        for risk, metrics in self.per_risk.items():
            for key in ("precision", "recall", "f1", "pr_auc", "threshold"):
                out[f"{prefix}{risk}_{key}"] = float(getattr(metrics, key))
        for lang, scores in self.per_language.items():
            out[f"{prefix}lang_{lang}_macro_f1"] = scores["macro_f1"]
        if self.hard_cases:
            out[f"{prefix}hard_macro_f1"] = self.hard_cases["macro_f1"]
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def best_f1_thresholds(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Per risk, the probability threshold with the best F1 on these labels (0.5 if no positives)."""
    thresholds = np.full(labels.shape[1], 0.5)
    for j in range(labels.shape[1]):
        if labels[:, j].sum() == 0:
            continue
        precision, recall, cut = precision_recall_curve(labels[:, j], proba[:, j])
        f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
        best = int(np.argmax(f1[:-1])) if len(cut) else 0
        thresholds[j] = float(cut[best]) if len(cut) else 0.5
    return thresholds


def language_slices(frame: Any) -> list[str]:
    """The language each labeled row is reported under: its language, or "mixed" if code-switched."""
    langs = frame["lang"].fillna("unknown") if "lang" in frame else ["unknown"] * len(frame)
    mixed = frame["mixed_with"].fillna("") if "mixed_with" in frame else [""] * len(frame)
    return ["mixed" if m else str(lang) for lang, m in zip(langs, mixed, strict=True)]


def per_slice_macro_f1(
    labels: np.ndarray, proba: np.ndarray, thresholds: np.ndarray, slices: Sequence[str]
) -> dict[str, dict[str, float]]:
    """F1 per risk and macro-F1 per slice (business unit, language) with enough messages."""
    predicted = (proba >= np.asarray(thresholds)).astype(int)
    names = np.asarray(slices)
    return {
        name: _slice_f1(labels, predicted, names == name)
        for name in sorted(set(slices))
        if (names == name).sum() >= MIN_LANGUAGE_SUPPORT
    }


def hard_case_mask(frame: Any) -> np.ndarray | None:
    """Rows tagged as hard cases, or None when the data has no hard-case column."""
    if "hard_case" not in frame:
        return None
    return frame["hard_case"].fillna("").astype(str).str.len().to_numpy() > 0


def _slice_f1(labels: np.ndarray, predicted: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    scores = {
        risk: float(
            precision_recall_fscore_support(labels[mask, j], predicted[mask, j], average="binary", zero_division=0)[2]
        )
        for j, risk in enumerate(RISKS)
    }
    scores["macro_f1"] = float(np.mean(list(scores.values())))
    scores["support"] = float(mask.sum())
    return scores


def evaluate_model(
    name: str,
    labels: np.ndarray,
    proba: np.ndarray,
    thresholds: np.ndarray,
    languages: Sequence[str],
    hard: np.ndarray | None = None,
) -> ModelEvaluation:
    """Score one model's probabilities against held-out labels (per risk, language, hard cases)."""
    predicted = (proba >= thresholds).astype(int)
    return evaluate_decisions(name, labels, proba, predicted, thresholds, languages, hard)


def evaluate_decisions(
    name: str,
    labels: np.ndarray,
    proba: np.ndarray,
    predicted: np.ndarray,
    thresholds: np.ndarray,
    languages: Sequence[str],
    hard: np.ndarray | None = None,
) -> ModelEvaluation:
    """Score flags already decided (e.g. by per-unit thresholds) and the scores behind them."""
    per_risk: dict[str, RiskMetrics] = {}
    confusion: dict[str, list[list[int]]] = {}
    for j, risk in enumerate(RISKS):
        p, r, f, _ = precision_recall_fscore_support(labels[:, j], predicted[:, j], average="binary", zero_division=0)
        has_both = 0 < labels[:, j].sum() < len(labels)
        pr_auc = float(average_precision_score(labels[:, j], proba[:, j])) if has_both else float("nan")
        per_risk[risk] = RiskMetrics(
            float(p), float(r), float(f), pr_auc, int(labels[:, j].sum()), float(thresholds[j])
        )
        confusion[risk] = confusion_matrix(labels[:, j], predicted[:, j], labels=[0, 1]).tolist()
    macro = float(np.mean([m.f1 for m in per_risk.values()]))
    per_language: dict[str, dict[str, float]] = {}
    langs = np.asarray(languages)
    for lang in sorted(set(languages)):
        mask = langs == lang
        if mask.sum() < MIN_LANGUAGE_SUPPORT:
            continue
        per_language[lang] = _slice_f1(labels, predicted, mask)
    hard_cases = _slice_f1(labels, predicted, hard) if hard is not None and hard.sum() else {}
    return ModelEvaluation(name, per_risk, macro, per_language, confusion, hard_cases)


def plot_pr_curves(labels: np.ndarray, probas: Mapping[str, np.ndarray], path: Path) -> Path:
    """One panel per risk, one curve per model, the chosen points marked."""
    fig, axes = plt.subplots(1, len(RISKS), figsize=(5 * len(RISKS), 4.4), constrained_layout=True)
    for j, (risk, ax) in enumerate(zip(RISKS, axes, strict=True)):
        for name, proba in probas.items():
            if labels[:, j].sum() == 0:
                continue
            precision, recall, _ = precision_recall_curve(labels[:, j], proba[:, j])
            ap = average_precision_score(labels[:, j], proba[:, j])
            ax.step(recall, precision, where="post", label=f"{name} (AP {ap:.2f})")
        ax.set_title(risk)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle("Precision-recall on the held-out split")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion_matrices(evaluation: ModelEvaluation, path: Path) -> Path:
    """A 2x2 confusion matrix per risk at the chosen threshold."""
    fig, axes = plt.subplots(1, len(RISKS), figsize=(4 * len(RISKS), 3.6), constrained_layout=True)
    for risk, ax in zip(RISKS, axes, strict=True):
        matrix = np.asarray(evaluation.confusion[risk])
        ax.imshow(matrix, cmap="Blues")
        for (i, k), value in np.ndenumerate(matrix):
            ax.text(k, i, str(value), ha="center", va="center", color="black", fontsize=12)
        ax.set_xticks([0, 1], ["pred 0", "pred 1"])
        ax.set_yticks([0, 1], ["true 0", "true 1"])
        ax.set_title(f"{risk} (t={evaluation.per_risk[risk].threshold:.2f})")
    fig.suptitle(f"{evaluation.name}: confusion on the held-out split")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def comparison_markdown(evaluations: Sequence[ModelEvaluation], split: str = "held-out") -> str:
    """The side-by-side report: macro-F1, per-risk F1/PR-AUC, hard cases and per-language macro-F1."""
    lines = ["| model | macro-F1 | " + " | ".join(f"{r} F1 | {r} PR-AUC" for r in RISKS) + " | hard cases |"]
    lines.append("|---" * (3 + 2 * len(RISKS)) + "|")
    for ev in evaluations:
        cells = [f"{ev.per_risk[r].f1:.3f} | {ev.per_risk[r].pr_auc:.3f}" for r in RISKS]
        hard = f"{ev.hard_cases['macro_f1']:.3f}" if ev.hard_cases else "-"
        lines.append(f"| {ev.name} | {ev.macro_f1:.3f} | " + " | ".join(cells) + f" | {hard} |")
    languages = sorted({lang for ev in evaluations for lang in ev.per_language})
    if languages:
        lines += ["", f"Per-language macro-F1 ({split}):", ""]
        lines.append("| model | " + " | ".join(languages) + " |")
        lines.append("|---" * (1 + len(languages)) + "|")
        for ev in evaluations:
            row = [f"{ev.per_language[lang]['macro_f1']:.3f}" if lang in ev.per_language else "-" for lang in languages]
            lines.append(f"| {ev.name} | " + " | ".join(row) + " |")
        support = [str(int(evaluations[0].per_language.get(lang, {}).get("support", 0))) for lang in languages]
        lines.append("| (messages) | " + " | ".join(support) + " |")
    return "\n".join(lines)
