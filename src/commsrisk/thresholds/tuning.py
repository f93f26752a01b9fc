"""Tune thresholds per business unit from labeled, scored messages; report the evidence.

For each unit and risk: among all thresholds that meet the unit's target (e.g. precision >= 0.8)
and its alert budget (at most N flags per 1,000 messages), take the one with the best other
metric (recall, or precision for a recall target). The defaults are tuned on all messages
together; a unit gets its own threshold only with enough positives and enough flags, else it
keeps the default and the report says why. Precision and recall are computed as the service
decides (flagged when score >= threshold), with bootstrap intervals; precision is n/a when
nothing is flagged.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import matplotlib
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    max_alerts_per_1000: float | None = None
    """An alert budget: thresholds flagging more than this per 1,000 messages are not eligible."""

    def __str__(self) -> str:
        budget = f", <= {self.max_alerts_per_1000:g} alerts/1000" if self.max_alerts_per_1000 is not None else ""
        return f"{self.metric} >= {self.value}{budget}"

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


class UnitTarget(BaseModel):
    """One unit's target in a targets file."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(..., description="precision=P, recall=R or f1=F")
    max_alerts_per_1000: float | None = Field(None, gt=0, le=1000)

    def parsed(self) -> Target:
        """The Target this entry describes."""
        base = Target.parse(self.target)
        return Target(base.metric, base.value, self.max_alerts_per_1000)


class TuningTargets(BaseModel):
    """Targets per business unit, and the evidence a unit needs before it gets its own threshold.

    Only the units listed here may appear in the labeled data: a misspelled unit is an error.
    """

    model_config = ConfigDict(extra="forbid")

    default: UnitTarget = Field(..., description="The target for the defaults (tuned on all units together).")
    min_positives: int = Field(
        15, ge=1, description="A unit needs this many positives of a risk for its own threshold."
    )
    min_flags: int = Field(5, ge=1, description="... and its threshold must flag at least this many messages.")
    business_units: dict[str, UnitTarget | None] = Field(
        default_factory=dict, description="Declared units; a unit without a target uses the default's."
    )

    @classmethod
    def load(cls, path: Path) -> TuningTargets:
        """Read a targets YAML file.

        Raises:
            ConfigurationError: the file is missing, not YAML, or breaks the schema (the field is named).
        """
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls.model_validate(raw)
        except (OSError, yaml.YAMLError) as error:
            raise ConfigurationError(f"{path}: cannot read the targets file ({error})") from error
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise ConfigurationError(f"{path}: {problems}") from error

    @classmethod
    def single(cls, target: Target, min_positives: int = 15, min_flags: int = 5) -> TuningTargets:
        """One target for every unit (the --target option)."""
        budget = target.max_alerts_per_1000
        entry = UnitTarget(target=f"{target.metric}={target.value}", max_alerts_per_1000=budget)
        return cls(default=entry, min_positives=min_positives, min_flags=min_flags)

    def for_unit(self, unit: str) -> Target:
        """The unit's target (the default's when the unit has none)."""
        entry = self.business_units.get(unit)
        return (entry or self.default).parsed()


@dataclass(frozen=True)
class TuningRow:
    """The chosen threshold for one unit and risk, and what it achieves on the labeled data."""

    business_unit: str
    risk: str
    threshold: float
    precision: float | None
    """None when nothing is flagged: precision is undefined, not perfect."""
    recall: float
    positives: int
    messages: int
    flagged: int
    status: str
    precision_ci: tuple[float, float] | None = None
    recall_ci: tuple[float, float] | None = None
    target: str = ""

    @property
    def alerts_per_1000(self) -> float:
        """Alert volume at this threshold."""
        return 1000.0 * self.flagged / self.messages if self.messages else 0.0


def precision_recall_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float, int]:
    """Precision, recall and flagged count when flagging score >= threshold (precision NaN if none flagged)."""
    flagged = scores >= threshold
    true_pos = int((flagged & (labels == 1)).sum())
    precision = true_pos / int(flagged.sum()) if flagged.any() else float("nan")
    recall = true_pos / int(labels.sum()) if labels.sum() else 0.0
    return precision, recall, int(flagged.sum())


def bootstrap_intervals(
    labels: np.ndarray, scores: np.ndarray, threshold: float, *, resamples: int = 1000, seed: int = 0
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """95% percentile-bootstrap intervals of precision and recall at one threshold."""
    if not len(labels) or not resamples:
        return None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), size=(resamples, len(labels)))
    y, f = labels[idx] == 1, scores[idx] >= threshold
    tp, flagged, positives = (y & f).sum(1), f.sum(1), y.sum(1)
    precision = tp[flagged > 0] / flagged[flagged > 0]
    recall = tp[positives > 0] / positives[positives > 0]

    def interval(values: np.ndarray) -> tuple[float, float] | None:
        return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))) if len(values) else None

    return interval(precision), interval(recall)


def choose_threshold(labels: np.ndarray, scores: np.ndarray, target: Target) -> float | None:
    """The threshold meeting `target` (and its alert budget) with the best other metric, or None."""
    best: tuple[float, float] | None = None  # (other metric, threshold)
    budget = target.max_alerts_per_1000
    for threshold in np.unique(scores):
        precision, recall, flagged = precision_recall_at(labels, scores, float(threshold))
        if flagged == 0 or (budget is not None and 1000.0 * flagged / len(scores) > budget):
            continue
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
    target: Target | TuningTargets,
    base: ThresholdPolicy,
    *,
    min_positives: int = 15,
    min_flags: int = 5,
    resamples: int = 1000,
) -> tuple[ThresholdPolicy, list[TuningRow]]:
    """A proposed policy (defaults from all messages, overrides per unit) and a row per decision.

    Raises:
        ConfigurationError: with a targets file, the data has units it does not declare; without
            one, a unit looks like a misspelling of another.
    """
    targets = target if isinstance(target, TuningTargets) else TuningTargets.single(target, min_positives, min_flags)
    unit_array = np.array([u or "" for u in units], dtype=object)
    data_units = sorted(set(unit_array) - {""})
    _check_units({u: int((unit_array == u).sum()) for u in data_units}, targets, base)
    rows: list[TuningRow] = []
    defaults: dict[str, float] = {}
    groups = [(DEFAULTS_UNIT, np.ones(len(unit_array), dtype=bool))] + [(u, unit_array == u) for u in data_units]
    overrides: dict[str, dict[str, float]] = {}
    for unit, mask in groups:
        goal = targets.default.parsed() if unit == DEFAULTS_UNIT else targets.for_unit(unit)
        for j, risk in enumerate(RISKS):
            y, s = labels[mask, j], scores[mask, j]
            fallback = defaults.get(risk, base.defaults[risk])
            threshold, status = _decide(y, s, goal, fallback, targets, is_default=unit == DEFAULTS_UNIT)
            precision, recall, flagged = precision_recall_at(y, s, threshold)
            precision_ci, recall_ci = bootstrap_intervals(y, s, threshold, resamples=resamples)
            rows.append(
                TuningRow(
                    unit,
                    risk,
                    threshold,
                    None if np.isnan(precision) else precision,
                    recall,
                    int(y.sum()),
                    int(mask.sum()),
                    flagged,
                    status,
                    precision_ci,
                    recall_ci,
                    str(goal),
                )  # fmt: skip
            )
            if unit == DEFAULTS_UNIT:
                defaults[risk] = threshold
            elif status == "tuned" and threshold != defaults[risk]:
                overrides.setdefault(unit, {})[risk] = threshold
    policy = ThresholdPolicy(version="proposed", defaults=defaults, business_units=overrides)
    return policy, rows


def _decide(
    y: np.ndarray, s: np.ndarray, goal: Target, fallback: float, targets: TuningTargets, *, is_default: bool
) -> tuple[float, str]:
    """The threshold for one unit and risk and why (tuned, or the default kept with the reason)."""
    kept = "policy default kept" if is_default else "default kept"
    positives = int(y.sum())
    if positives < targets.min_positives:
        return fallback, f"{kept}: {positives} positives < {targets.min_positives}"
    chosen = choose_threshold(y, s, goal)
    if chosen is None:
        return fallback, f"{kept}: no threshold reaches {goal}"
    flagged = int((s >= chosen).sum())
    if flagged < targets.min_flags:
        return fallback, f"{kept}: the best threshold flags {flagged} < {targets.min_flags} messages"
    return chosen, "tuned"


def propose_threshold(
    labels: np.ndarray, scores: np.ndarray, target: Target, fallback: float, targets: TuningTargets
) -> tuple[float, str]:
    """One unit's threshold for one risk, chosen as `tune_policy` chooses it (same evidence rules), and why.

    For labeled scores `tune_policy` cannot take as a whole, e.g. reviews in which some risks
    were not reviewed or not scored. `fallback` (the threshold in force) is kept when the
    evidence is short; the status then says why ("default kept: ...").
    """
    return _decide(labels, scores, target, fallback, targets, is_default=False)


def _check_units(counts: dict[str, int], targets: TuningTargets, base: ThresholdPolicy) -> None:
    """Refuse units nobody declared (with a targets file), or that look like misspellings (without).

    Without a targets file, a unit whose name is within a few letters of a unit of the policy
    in force or of a more frequent unit in the data is taken for a misspelling of it.
    """
    data_units = sorted(counts)
    if targets.business_units:
        unknown = [u for u in data_units if u not in targets.business_units]
        if unknown:
            hints = [
                f"{u} (did you mean {difflib.get_close_matches(u, targets.business_units, n=1)}?)" for u in unknown
            ]
            raise ConfigurationError(
                f"business units not declared in the targets file: {', '.join(hints)}; declare them or fix the data"
            )
        return
    for unit in data_units:
        known = [k for k in {*base.business_units, *counts} if k != unit and counts.get(k, 10**9) >= counts[unit]]
        close = difflib.get_close_matches(unit, known, n=3, cutoff=0.85)
        if close:
            raise ConfigurationError(
                f"business unit {unit!r} looks like a misspelling of {close}; fix the data or declare every unit "
                "in a targets file (--targets)"
            )


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
        if row.precision is not None:
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


def _fmt(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None:
        return "n/a (none flagged)"
    return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def write_report(
    scored: pd.DataFrame,
    rows: Sequence[TuningRow],
    policy: ThresholdPolicy,
    target: Target | TuningTargets,
    out_dir: Path,
    provenance: dict[str, str] | None = None,
) -> Path:
    """Markdown report, a CSV of the rows, PR curve images, and the raw scores (no text).

    `provenance` (model version, data digest, command, ...) heads the report, so a reader knows
    exactly which model and data the thresholds were tuned on.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = scored[[f"score_{r}" for r in RISKS]].to_numpy()
    labels = scored[list(RISKS)].to_numpy()
    units = scored["business_unit"].fillna("").to_numpy()
    scored.to_csv(out_dir / "scores.csv", index=False)
    pd.DataFrame([{**asdict(r), "alerts_per_1000": r.alerts_per_1000} for r in rows]).to_csv(
        out_dir / "thresholds.csv", index=False
    )
    title = str(target) if isinstance(target, Target) else "per-unit targets file"
    lines = [f"# Thresholds tuning report (target: {title})", ""]
    lines += [f"- {key}: `{value}`" for key, value in (provenance or {}).items()]
    lines += [
        "",
        f"{len(scored)} labeled messages. Precision and recall below flag score >= threshold, "
        "exactly as the service decides, with 95% bootstrap intervals; `scores.csv` holds the raw "
        "scores to recompute them. Alerts: flags per 1,000 messages of the unit.",
        "",
        "| business unit | risk | target | threshold | precision | recall | alerts / 1000 | positives | flagged "
        "| status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.business_unit} | {r.risk} | {r.target} | {r.threshold:.4f} | {_fmt(r.precision, r.precision_ci)} | "
            f"{_fmt(r.recall, r.recall_ci)} | {r.alerts_per_1000:.1f} | {r.positives} | {r.flagged} | {r.status} |"
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
    tracking_uri: str,
    experiment: str,
    report_dir: Path,
    rows: Sequence[TuningRow],
    provenance: dict[str, str],
) -> str:
    """Log a tuning report as an MLflow run (its own experiment); returns the run id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"{experiment}-thresholds")
    with mlflow.start_run(run_name="tune thresholds") as run:
        mlflow.log_params({key: value[:500] for key, value in provenance.items()})
        mlflow.set_tags({f"commsrisk.{key}": value[:5000] for key, value in provenance.items()})
        for r in rows:
            key = re.sub(r"[^A-Za-z0-9_-]", "_", f"{r.business_unit}.{r.risk}")
            metrics = {f"{key}.threshold": r.threshold, f"{key}.recall": r.recall, f"{key}.flagged": r.flagged}
            if r.precision is not None:
                metrics[f"{key}.precision"] = r.precision
            mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(report_dir), "thresholds_report")
        return str(run.info.run_id)
