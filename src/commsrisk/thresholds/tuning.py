"""Tune thresholds per business unit from labeled, scored messages; report the evidence.

For each unit and risk: among all thresholds that meet the target (e.g. precision >= 0.8), take
the one with the best other metric (recall, or precision for a recall target). A unit with too
few positives keeps the default and the report says so. Precision and recall are computed as
the service decides: flagged when score >= threshold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from commsrisk.errors import ConfigurationError  # noqa: E402
from commsrisk.schema import RISKS  # noqa: E402
from commsrisk.thresholds.policy import ThresholdPolicy  # noqa: E402

DEFAULTS_UNIT = "(all units)"


@dataclass(frozen=True)
class Target:
    """What a threshold must reach: precision, recall or F1 at least `value`.

    For precision (recall) the threshold with the best recall (precision) among those that reach
    the target wins; for F1, the threshold with the best F1 (when it reaches `value`).
    """

    metric: Literal["precision", "recall", "f1"]
    value: float

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse 'precision=0.8', 'recall=0.9' or 'f1=0.5'.

        Raises:
            ConfigurationError: another metric, or a value outside (0, 1].
        """
        match = re.fullmatch(r"\s*(precision|recall|f1)\s*=\s*([0-9.]+)\s*", text)
        if not match or not 0 < float(match.group(2)) <= 1:
            raise ConfigurationError(f"--target '{text}': use precision=P, recall=R or f1=F with a value in (0, 1]")
        return cls(match.group(1), float(match.group(2)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class TuningRow:
    """The chosen threshold for one unit and risk, and what it achieves on the labeled data."""

    business_unit: str
    risk: str
    threshold: float
    precision: float
    recall: float
    positives: int
    messages: int
    flagged: int
    status: str


def precision_recall_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float, int]:
    """Precision, recall and flagged count when flagging score >= threshold."""
    flagged = scores >= threshold
    true_pos = int((flagged & (labels == 1)).sum())
    precision = true_pos / int(flagged.sum()) if flagged.any() else 1.0
    recall = true_pos / int(labels.sum()) if labels.sum() else 0.0
    return precision, recall, int(flagged.sum())


def choose_threshold(labels: np.ndarray, scores: np.ndarray, target: Target) -> float | None:
    """The threshold meeting `target` with the best other metric, or None if none meets it."""
    best: tuple[float, float] | None = None  # (other metric, threshold)
    for threshold in np.unique(scores):
        precision, recall, _ = precision_recall_at(labels, scores, float(threshold))
        if target.metric == "f1":
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            met, other = f1, f1
        else:
            met, other = (precision, recall) if target.metric == "precision" else (recall, precision)
        if met >= target.value and (best is None or other > best[0] or (other == best[0] and threshold > best[1])):
            best = (other, float(threshold))
    return None if best is None else best[1]


def tune_policy(
    scores: np.ndarray,
    labels: np.ndarray,
    units: Sequence[str | None],
    target: Target,
    base: ThresholdPolicy,
    *,
    min_positives: int = 15,
) -> tuple[ThresholdPolicy, list[TuningRow]]:
    """A proposed policy (defaults from all messages, overrides per unit) and a row per decision."""
    unit_array = np.array([u or "" for u in units], dtype=object)
    rows: list[TuningRow] = []
    defaults: dict[str, float] = {}
    groups = [(DEFAULTS_UNIT, np.ones(len(unit_array), dtype=bool))] + [
        (unit, unit_array == unit) for unit in sorted(set(unit_array) - {""})
    ]
    overrides: dict[str, dict[str, float]] = {}
    for unit, mask in groups:
        for j, risk in enumerate(RISKS):
            y, s = labels[mask, j], scores[mask, j]
            fallback = defaults.get(risk, base.defaults[risk])
            positives = int(y.sum())
            if positives < min_positives:
                threshold, status = fallback, f"default kept: {positives} positives < {min_positives}"
            else:
                chosen = choose_threshold(y, s, target)
                if chosen is None:
                    threshold, status = fallback, f"default kept: no threshold reaches {target.metric} {target.value}"
                else:
                    threshold, status = chosen, "tuned"
            precision, recall, flagged = precision_recall_at(y, s, threshold)
            rows.append(
                TuningRow(unit, risk, threshold, precision, recall, positives, int(mask.sum()), flagged, status)
            )
            if unit == DEFAULTS_UNIT:
                defaults[risk] = threshold
            elif status == "tuned" and threshold != defaults[risk]:
                overrides.setdefault(unit, {})[risk] = threshold
    policy = ThresholdPolicy(version="proposed", defaults=defaults, business_units=overrides)
    return policy, rows


def plot_unit_curves(
    scores: np.ndarray, labels: np.ndarray, rows: Sequence[TuningRow], unit: str, mask: np.ndarray, path: Path
) -> Path:
    """PR curves for one unit, one panel per risk, the chosen threshold marked."""
    fig, axes = plt.subplots(1, len(RISKS), figsize=(4.6 * len(RISKS), 4), constrained_layout=True)
    for j, (risk, ax) in enumerate(zip(RISKS, axes, strict=True)):
        y, s = labels[mask, j], scores[mask, j]
        if y.sum():
            cuts = np.unique(s)
            points = np.array([precision_recall_at(y, s, float(t))[:2] for t in cuts])
            ax.plot(points[:, 1], points[:, 0], drawstyle="steps-post", label="PR curve")
        row = next(r for r in rows if r.business_unit == unit and r.risk == risk)
        ax.scatter([row.recall], [row.precision], color="red", zorder=3, label=f"t={row.threshold:.3f}")
        ax.set_title(f"{risk}\n{row.status}", fontsize=9)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(f"{unit}: precision-recall and chosen thresholds")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(
    scored: pd.DataFrame, rows: Sequence[TuningRow], policy: ThresholdPolicy, target: Target, out_dir: Path
) -> Path:
    """Markdown report, a CSV of the rows, PR curve images, and the raw scores (no text)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = scored[[f"score_{r}" for r in RISKS]].to_numpy()
    labels = scored[list(RISKS)].to_numpy()
    units = scored["business_unit"].fillna("").to_numpy()
    scored.to_csv(out_dir / "scores.csv", index=False)
    pd.DataFrame([asdict(r) for r in rows]).to_csv(out_dir / "thresholds.csv", index=False)
    lines = [
        f"# Thresholds tuning report (target: {target.metric} >= {target.value})",
        "",
        f"{len(scored)} labeled messages. Precision and recall below flag score >= threshold, "
        "exactly as the service decides; `scores.csv` holds the raw scores to recompute them.",
        "",
        "| business unit | risk | threshold | precision | recall | positives | flagged | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.business_unit} | {r.risk} | {r.threshold:.4f} | {r.precision:.3f} | {r.recall:.3f} | "
            f"{r.positives} | {r.flagged} | {r.status} |"
        )
    lines += ["", "## Curves", ""]
    for unit in [DEFAULTS_UNIT, *sorted({r.business_unit for r in rows} - {DEFAULTS_UNIT})]:
        mask = np.ones(len(units), dtype=bool) if unit == DEFAULTS_UNIT else units == unit
        name = "all-units" if unit == DEFAULTS_UNIT else re.sub(r"[^A-Za-z0-9_-]", "_", unit)
        plot_unit_curves(scores, labels, rows, unit, mask, out_dir / f"pr_{name}.png")
        lines.append(f"![{unit}](pr_{name}.png)")
    (out_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_dir / "report.md"


def log_tuning_run(
    tracking_uri: str, experiment: str, report_dir: Path, rows: Sequence[TuningRow], goal: Target, note: str
) -> str:
    """Log a tuning report as an MLflow run (its own experiment); returns the run id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"{experiment}-thresholds")
    with mlflow.start_run(run_name=f"tune-{goal.metric}-{goal.value}") as run:
        mlflow.log_params({"target_metric": goal.metric, "target_value": goal.value, "data": note})
        for r in rows:
            key = re.sub(r"[^A-Za-z0-9_-]", "_", f"{r.business_unit}.{r.risk}")
            mlflow.log_metrics(
                {f"{key}.threshold": r.threshold, f"{key}.precision": r.precision, f"{key}.recall": r.recall}
            )
        mlflow.log_artifacts(str(report_dir), "thresholds_report")
        return str(run.info.run_id)
