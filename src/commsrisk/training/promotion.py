"""Moving `production`: a gate on a fixed yardstick, every move on record, rollback to any earlier model.

The yardstick is the out-of-distribution dev set (plus, when configured, the firm's own reviewed
held-out slice), frozen by digest in the registry at the first gated promotion. Both models are
scored on it through the whole pipeline; neither may have seen any of its texts (each model
keeps fingerprints of the messages it was trained on). The candidate passes only if, risk by
risk, its F1 and PR-AUC are not worse than production's beyond the tolerance and its macro-F1
is not worse; the report gives paired-bootstrap intervals of the differences. With no production
model yet, the candidate is gated against the shipped default. Every promotion, refusal and
rollback is an MLflow run (who, when, why, the report) in the experiment `<experiment>-model-moves`.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from commsrisk.errors import ModelNotAvailableError, PromotionRefusedError
from commsrisk.schema import RISKS
from commsrisk.settings import Settings
from commsrisk.thresholds.policy import BUILTIN_POLICY, ThresholdPolicy
from commsrisk.training.data import LabeledData
from commsrisk.training.overlap import read_fingerprints, seen_in_training
from commsrisk.training.pipeline import BEATEN_TAG, frame_messages
from commsrisk.training.registry import CANDIDATE_ALIAS, PRODUCTION_ALIAS
from commsrisk.training.scored_evaluation import score_frame

logger = logging.getLogger(__name__)

YARDSTICK_TAG = "commsrisk.yardstick_digest"
DEFAULT_VERSION = "default"
"""The shipped default model, as a version name in history and rollback."""


@dataclass(frozen=True)
class Yardstick:
    """The fixed evaluation messages both models are judged on."""

    frame: pd.DataFrame
    sources: tuple[str, ...]
    digest: str


def build_yardstick(parts: Sequence[LabeledData]) -> Yardstick:
    """One yardstick from the dev set and any held-out slices; its digest covers every part."""
    digest = hashlib.sha256("|".join(p.digest for p in parts).encode()).hexdigest()[:16]
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    return Yardstick(frame, tuple(p.source for p in parts), digest)


@dataclass(frozen=True)
class ScoredModel:
    """One model's pipeline scores on the yardstick, at its own F1 thresholds."""

    label: str
    version: str
    model_version: str
    scores: np.ndarray
    thresholds: np.ndarray


def score_model(
    label: str, version: str, location: str, yardstick: Yardstick, settings: Settings, analyzer: Any
) -> ScoredModel:
    """Score the yardstick with one model, after proving the model never saw any of its texts.

    Raises:
        PromotionRefusedError: the model saw yardstick texts, or has no fingerprints to prove it did not.
        ModelNotAvailableError: the model cannot be loaded or has no recorded F1 thresholds.
    """
    from commsrisk.scoring import build_scorer

    scorer = build_scorer(settings, classifier_location=location, analyzer=analyzer, policy=lambda: BUILTIN_POLICY)
    local_dir = getattr(scorer.classifier, "local_dir", None)
    fingerprints = read_fingerprints(local_dir) if local_dir is not None else None
    if fingerprints is None:
        raise PromotionRefusedError(
            f"{label} ({location}) has no training fingerprints, so it cannot be shown not to have seen the "
            "yardstick; retrain it with this version of commsrisk"
        )
    texts = yardstick.frame["text"].tolist()
    seen = seen_in_training(texts, fingerprints)
    if seen:
        ids = ", ".join(str(yardstick.frame["message_id"].iloc[i]) for i in seen[:5])
        raise PromotionRefusedError(
            f"{len(seen)} of the {len(texts)} yardstick messages are in the training data of {label} (e.g. {ids}); "
            "the yardstick must be unseen by both models"
        )
    metadata = getattr(scorer.classifier, "metadata", {}) or {}
    if "f1_thresholds" not in metadata:
        raise ModelNotAvailableError(f"{location} has no recorded F1 thresholds; was it trained by commsrisk?")
    scorer.explain = "signals"
    results = score_frame(scorer, frame_messages(yardstick.frame), progress=False)
    scores = np.array([[r.risks[risk].score for risk in RISKS] for r in results], dtype=float)
    thresholds = np.array([metadata["f1_thresholds"][risk] for risk in RISKS], dtype=float)
    return ScoredModel(label, version, scorer.model_version, scores, thresholds)


@dataclass(frozen=True)
class RiskCheck:
    """Candidate against production on one risk."""

    risk: str
    candidate_f1: float
    production_f1: float
    candidate_pr_auc: float
    production_pr_auc: float
    f1_delta_interval: tuple[float, float]
    passed: bool


@dataclass(frozen=True)
class GateReport:
    """The comparison behind a promotion decision, with its intervals and every failed rule."""

    candidate: str
    production: str
    messages: int
    yardstick_digest: str
    candidate_macro_f1: float
    production_macro_f1: float
    macro_delta_interval: tuple[float, float]
    risks: list[RiskCheck]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no rule failed."""
        return not self.failures

    def markdown(self) -> str:
        """The report as a table a model-risk reviewer reads."""
        low, high = self.macro_delta_interval
        lines = [
            f"# Promotion gate: {self.candidate} vs {self.production}",
            "",
            f"{self.messages} yardstick messages (digest {self.yardstick_digest}), unseen by both models; each model "
            "at its own F1 thresholds. Intervals: 95% paired bootstrap of candidate - production.",
            "",
            "| risk | F1 candidate | F1 production | F1 difference (95% CI) | PR-AUC candidate | PR-AUC production | |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in self.risks:
            lines.append(
                f"| {c.risk} | {c.candidate_f1:.4f} | {c.production_f1:.4f} | {c.candidate_f1 - c.production_f1:+.4f} "
                f"[{c.f1_delta_interval[0]:+.4f}, {c.f1_delta_interval[1]:+.4f}] | {c.candidate_pr_auc:.4f} | "
                f"{c.production_pr_auc:.4f} | {'ok' if c.passed else 'WORSE'} |"
            )
        lines.append(
            f"| macro | {self.candidate_macro_f1:.4f} | {self.production_macro_f1:.4f} | "
            f"{self.candidate_macro_f1 - self.production_macro_f1:+.4f} [{low:+.4f}, {high:+.4f}] | | | |"
        )
        verdict = "PASSED" if self.passed else "REFUSED: " + "; ".join(self.failures)
        return "\n".join([*lines, "", verdict, ""])


def _f1(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """F1 along the last axis (vectorised over bootstrap resamples)."""
    tp = (labels & predicted).sum(-1)
    denominator = labels.sum(-1) + predicted.sum(-1)
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def compare(
    labels: np.ndarray,
    candidate: ScoredModel,
    production: ScoredModel,
    *,
    yardstick_digest: str,
    risk_tolerance: float,
    macro_tolerance: float,
    bootstrap: int = 1000,
    seed: int = 0,
) -> GateReport:
    """Apply the gate's rules to two models' scores on the same labeled messages."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, n, size=(bootstrap, n)) if bootstrap else np.zeros((0, n), dtype=int)
    cand_pred = (candidate.scores >= candidate.thresholds).astype(int)
    prod_pred = (production.scores >= production.thresholds).astype(int)
    checks: list[RiskCheck] = []
    failures: list[str] = []
    deltas = []
    for j, risk in enumerate(RISKS):
        y = labels[:, j].astype(int)
        cand_f1, prod_f1 = float(_f1(y, cand_pred[:, j])), float(_f1(y, prod_pred[:, j]))
        both = 0 < y.sum() < n
        cand_auc = float(average_precision_score(y, candidate.scores[:, j])) if both else float("nan")
        prod_auc = float(average_precision_score(y, production.scores[:, j])) if both else float("nan")
        delta = _f1(y[resamples], cand_pred[resamples, j]) - _f1(y[resamples], prod_pred[resamples, j])
        deltas.append(delta)
        interval = _interval(delta, cand_f1 - prod_f1)
        ok = True
        if cand_f1 < prod_f1 - risk_tolerance:
            failures.append(f"{risk} F1 {cand_f1:.4f} < production {prod_f1:.4f} - {risk_tolerance}")
            ok = False
        if both and cand_auc < prod_auc - risk_tolerance:
            failures.append(f"{risk} PR-AUC {cand_auc:.4f} < production {prod_auc:.4f} - {risk_tolerance}")
            ok = False
        checks.append(RiskCheck(risk, cand_f1, prod_f1, cand_auc, prod_auc, interval, ok))
    cand_macro = float(np.mean([c.candidate_f1 for c in checks]))
    prod_macro = float(np.mean([c.production_f1 for c in checks]))
    if cand_macro < prod_macro - macro_tolerance:
        failures.append(f"macro-F1 {cand_macro:.4f} < production {prod_macro:.4f} - {macro_tolerance}")
    macro_interval = _interval(np.mean(deltas, axis=0) if bootstrap else np.zeros(0), cand_macro - prod_macro)
    return GateReport(
        candidate.label,
        production.label,
        n,
        yardstick_digest,
        cand_macro,
        prod_macro,
        macro_interval,
        checks,
        failures,
    )


def _interval(samples: np.ndarray, point: float) -> tuple[float, float]:
    if not len(samples):
        return (point, point)
    return (float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5)))


@dataclass(frozen=True)
class PromotionDecision:
    """A passed gate: what moved, and the evidence."""

    candidate_version: str
    production_version: str
    report: GateReport
    candidate: ScoredModel
    run_id: str

    @property
    def reason(self) -> str:
        """One line for the terminal."""
        r = self.report
        return f"macro-F1 {r.candidate_macro_f1:.4f} vs {r.production_macro_f1:.4f} ({r.production}), no risk worse"


@dataclass(frozen=True)
class ModelMove:
    """One entry of the production alias's history."""

    when: str
    action: str
    from_version: str
    to_version: str
    author: str
    reason: str
    run_id: str


def _client() -> Any:
    import mlflow

    return mlflow.MlflowClient()


def _version_by_alias(name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def production_version(registered_model: str) -> str:
    """The registry version in production, or 'default' when the shipped default serves."""
    production = _version_by_alias(registered_model, PRODUCTION_ALIAS)
    return DEFAULT_VERSION if production is None else str(production.version)


def _location(registered_model: str, version: str, settings: Settings) -> str:
    return str(settings.model.default_dir) if version == DEFAULT_VERSION else f"models:/{registered_model}/{version}"


def record_move(
    settings: Settings,
    *,
    action: str,
    from_version: str,
    to_version: str,
    author: str,
    reason: str,
    report: str | None = None,
) -> str:
    """Log one move (promotion, refusal, rollback) as an MLflow run; returns its id."""
    import mlflow

    tracking = settings.tracking
    mlflow.set_experiment(f"{tracking.experiment}-model-moves")
    with mlflow.start_run(run_name=f"{action} {from_version} -> {to_version}") as run:
        mlflow.set_tags(
            {
                "commsrisk.kind": "model-move",
                "commsrisk.registered_model": tracking.registered_model,
                "commsrisk.action": action,
                "commsrisk.from_version": from_version,
                "commsrisk.to_version": to_version,
                "commsrisk.author": author,
                "commsrisk.reason": reason,
                "commsrisk.when": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        if report:
            mlflow.log_text(report, "gate_report.md")
        return str(run.info.run_id)


def model_history(settings: Settings) -> list[ModelMove]:
    """Every recorded move of the production alias, oldest first."""
    import mlflow

    tracking = settings.tracking
    experiment = _client().get_experiment_by_name(f"{tracking.experiment}-model-moves")
    if experiment is None:
        return []
    runs = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.`commsrisk.registered_model` = '{tracking.registered_model}'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    return [
        ModelMove(
            r.data.tags.get("commsrisk.when", ""),
            r.data.tags.get("commsrisk.action", ""),
            r.data.tags.get("commsrisk.from_version", ""),
            r.data.tags.get("commsrisk.to_version", ""),
            r.data.tags.get("commsrisk.author", ""),
            r.data.tags.get("commsrisk.reason", ""),
            r.info.run_id,
        )
        for r in runs
    ]


def promote(
    settings: Settings,
    yardstick: Yardstick,
    *,
    analyzer: Any = None,
    author: str | None = None,
    reason: str = "",
    new_yardstick: bool = False,
) -> PromotionDecision:
    """Move `production` to the candidate if it passes the gate against production (or the default).

    Raises:
        ModelNotAvailableError: there is no candidate.
        PromotionRefusedError: any rule failed (the refusal is recorded too).
    """
    import mlflow

    from commsrisk.nlp.text_analyzer import build_text_analyzer

    mlflow.set_tracking_uri(settings.tracking.resolved_uri())
    name = settings.tracking.registered_model
    author = author or getpass.getuser()
    candidate = _version_by_alias(name, CANDIDATE_ALIAS)
    if candidate is None:
        raise ModelNotAvailableError(f"no '{name}@{CANDIDATE_ALIAS}' in the registry; train one with 'commsrisk train'")
    cand_version, prod_version = str(candidate.version), production_version(name)

    def refuse(message: str, report: str | None = None) -> PromotionRefusedError:
        record_move(
            settings, action="refuse", from_version=prod_version, to_version=cand_version, author=author,
            reason=message, report=report,
        )  # fmt: skip
        return PromotionRefusedError(
            f"candidate v{cand_version} not promoted: {message}; production stays {prod_version}", report
        )

    if cand_version == prod_version:
        raise PromotionRefusedError(f"candidate v{cand_version} is already production")
    beaten = (candidate.tags or {}).get(BEATEN_TAG)
    if beaten:
        raise refuse(beaten)
    frozen = (_client().get_registered_model(name).tags or {}).get(YARDSTICK_TAG)
    if frozen and frozen != yardstick.digest and not new_yardstick:
        raise refuse(
            f"the yardstick changed (digest {yardstick.digest}, frozen at {frozen}); pass --new-yardstick with a "
            "reason to re-freeze it"
        )
    analyzer = analyzer or build_text_analyzer(settings.nlp)
    prod_label = "the shipped default" if prod_version == DEFAULT_VERSION else f"production v{prod_version}"
    try:
        cand = score_model(
            f"candidate v{cand_version}", cand_version, _location(name, cand_version, settings), yardstick,
            settings, analyzer,
        )  # fmt: skip
        prod = score_model(
            prod_label, prod_version, _location(name, prod_version, settings), yardstick, settings, analyzer
        )
    except PromotionRefusedError as error:
        raise refuse(str(error)) from error
    gate = settings.gate
    labels = yardstick.frame[list(RISKS)].to_numpy(dtype=int)
    report = compare(
        labels, cand, prod, yardstick_digest=yardstick.digest, risk_tolerance=gate.risk_tolerance,
        macro_tolerance=gate.macro_tolerance, bootstrap=gate.bootstrap,
    )  # fmt: skip
    logger.info("gate v%s vs %s on %d messages: %s", cand_version, prod_version, report.messages, report.passed)
    if not report.passed:
        raise refuse("; ".join(report.failures), report.markdown())
    client = _client()
    client.set_registered_model_alias(name, PRODUCTION_ALIAS, cand_version)
    client.set_registered_model_tag(name, YARDSTICK_TAG, yardstick.digest)
    client.set_model_version_tag(name, cand_version, "commsrisk.promoted_by", author)
    run_id = record_move(
        settings, action="promote", from_version=prod_version, to_version=cand_version, author=author,
        reason=reason or "passed the gate", report=report.markdown(),
    )  # fmt: skip
    return PromotionDecision(cand_version, prod_version, report, cand, run_id)


def rollback(settings: Settings, version: str, *, author: str | None = None, reason: str) -> ModelMove:
    """Point `production` back at a model that served before ('default': the shipped default).

    Raises:
        PromotionRefusedError: no reason, or `version` never served as production.
    """
    import mlflow

    mlflow.set_tracking_uri(settings.tracking.resolved_uri())
    if not reason.strip():
        raise PromotionRefusedError("a reason is required for every rollback (--reason)")
    name = settings.tracking.registered_model
    author = author or getpass.getuser()
    history = model_history(settings)
    served = {DEFAULT_VERSION} | {m.to_version for m in history if m.action in ("promote", "rollback")}
    current = production_version(name)
    if version not in served:
        raise PromotionRefusedError(
            f"version {version} never served as production; earlier production models: {sorted(served)}"
        )
    if version == current:
        raise PromotionRefusedError(f"version {version} is already production")
    client = _client()
    if version == DEFAULT_VERSION:
        client.delete_registered_model_alias(name, PRODUCTION_ALIAS)
    else:
        client.set_registered_model_alias(name, PRODUCTION_ALIAS, version)
    record_move(settings, action="rollback", from_version=current, to_version=version, author=author, reason=reason)
    return model_history(settings)[-1]


def propose_thresholds(decision: PromotionDecision, yardstick: Yardstick, base: ThresholdPolicy) -> ThresholdPolicy:
    """Thresholds re-tuned for the promoted model on the yardstick (best F1), to review and apply."""
    from commsrisk.thresholds.tuning import Target, tune_policy

    labels = yardstick.frame[list(RISKS)].to_numpy(dtype=int)
    units = yardstick.frame["business_unit"].tolist() if "business_unit" in yardstick.frame else [None] * len(labels)
    policy, _ = tune_policy(decision.candidate.scores, labels, units, Target("f1", 0.01), base)
    return policy.model_copy(update={"tuned_for": decision.candidate.model_version})
