"""Combine the classifier's probabilities with evidence signals into calibrated risk scores.

One logistic regression per risk (scikit-learn), fitted on the calibration split that the
classifier never trained on: Platt-style calibration that also weighs PII, external recipients and
channel. It is linear, so it is stored as plain JSON (no pickle) and each signal's contribution to
a score is exact: coefficient x value / scale, in log-odds, measured from the signal's absence
(value 0), so a channel the message was not sent on contributes nothing; the standardisation's
means fold into one baseline per risk.

PII found in a message never lowers a risk score by itself: the weights of `pii_*` features are
constrained to be >= 0 (see `RiskCombiner.fit`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

from commsrisk.errors import ModelNotAvailableError
from commsrisk.schema import RISKS
from commsrisk.signals import DEFAULT_SIGNALS, Evidence, resolve_signals

COMBINER_FILE = "combiner.json"
NON_NEGATIVE_PREFIXES = ("pii_",)
"""Features whose weight may not be negative: finding PII may raise a score, never lower it."""

logger = logging.getLogger(__name__)


def signal_features(evidence: Sequence[Evidence], signal_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The (n, k) feature matrix and the k feature names the signals produce."""
    resolved = resolve_signals(signal_names)
    rows: list[dict[str, float]] = []
    for item in evidence:
        row: dict[str, float] = {}
        for _, fn in resolved:
            row.update(fn(item))
        rows.append(row)
    names = list(rows[0]) if rows else []
    return np.array([[row[name] for name in names] for row in rows], dtype=np.float64), names


def _fit_bounded(
    x: np.ndarray, y: np.ndarray, c: float, non_negative: np.ndarray, coef: np.ndarray, intercept: float
) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression (scikit-learn's objective) with `coef[non_negative] >= 0`.

    Minimises C * sum(log-loss) + |w|^2 / 2 with L-BFGS-B, starting from the unconstrained
    solution `coef`, `intercept` with the negative bounded weights set to 0.
    """
    sign = np.where(np.asarray(y) > 0, 1.0, -1.0)

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1], params[-1]
        margin = sign * (x @ w + b)
        loss = c * np.logaddexp(0.0, -margin).sum() + 0.5 * w @ w
        residual = -c * sign * np.exp(-np.logaddexp(0.0, margin))  # d loss / d (x @ w + b)
        return float(loss), np.append(x.T @ residual + w, residual.sum())

    start = np.append(np.where(non_negative, np.maximum(coef, 0.0), coef), intercept)
    bounds = [(0.0, None) if flag else (None, None) for flag in non_negative] + [(None, None)]
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000})
    if not result.success:
        logger.warning("bounded combiner fit did not converge: %s", result.message)
    return result.x[:-1], float(result.x[-1])


@dataclass
class RiskCombiner:
    """Per-risk linear models over standardised signal features."""

    signal_names: list[str]
    feature_names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (len(RISKS), k)
    intercept: np.ndarray  # (len(RISKS),)

    @classmethod
    def fit(
        cls,
        evidence: Sequence[Evidence],
        labels: np.ndarray,
        signal_names: Sequence[str] = DEFAULT_SIGNALS,
        regularisation: float = 0.5,
    ) -> RiskCombiner:
        """Fit on held-out evidence and labels (never on the classifier's training data).

        Features named in NON_NEGATIVE_PREFIXES (the PII counts) get weights >= 0. PII is
        evidence for a risk or for nothing: on a calibration split where, say, leakage messages
        happen to carry fewer names than clean ones, an unconstrained fit learns a negative weight
        and a sender could lower a message's score by pasting PII into it. Where the plain fit
        gives such a feature a negative weight, the same objective (L2-penalised log-loss, C =
        `regularisation`, intercept unpenalised) is solved again with those weights bounded at 0.
        """
        features, names = signal_features(evidence, signal_names)
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale < 1e-9] = 1.0
        standardised = (features - mean) / scale
        non_negative = np.array([name.startswith(NON_NEGATIVE_PREFIXES) for name in names], dtype=bool)
        coef = np.zeros((len(RISKS), len(names)))
        intercept = np.zeros(len(RISKS))
        for j, risk in enumerate(RISKS):
            if len(np.unique(labels[:, j])) < 2:
                # No positives (or no negatives) to calibrate on: pass the classifier through unchanged.
                logger.warning("calibration split has one class for %s: using the classifier's probability", risk)
                k = names.index(f"clf_{risk}")
                coef[j, k], intercept[j] = scale[k], mean[k]
                continue
            model = LogisticRegression(C=regularisation, max_iter=2000)
            model.fit(standardised, labels[:, j])
            coef[j] = model.coef_[0]
            intercept[j] = model.intercept_[0]
            if (coef[j][non_negative] < 0).any():
                logger.info("refitting %s with non-negative PII weights", risk)
                coef[j], intercept[j] = _fit_bounded(
                    standardised, labels[:, j], regularisation, non_negative, coef[j], intercept[j]
                )
        return cls(list(signal_names), names, mean, scale, coef, intercept)

    @property
    def baseline(self) -> np.ndarray:
        """Per risk, the log-odds of a message whose every feature is 0 (shape (len(RISKS),))."""
        return self.intercept - (self.coef * (self.mean / self.scale)[None, :]).sum(axis=1)

    def contributions(self, evidence: Sequence[Evidence]) -> tuple[np.ndarray, np.ndarray]:
        """Per message, risk and feature, the log-odds the feature adds to `baseline`; and the raw features."""
        features, names = signal_features(evidence, self.signal_names)
        if names and names != self.feature_names:
            raise ModelNotAvailableError(
                f"signals produce features {names}, the combiner was trained on {self.feature_names}; "
                "retrain or pin the signal versions it was trained with"
            )
        return (features / self.scale)[:, None, :] * self.coef[None, :, :], features

    def probabilities(self, contributions: np.ndarray) -> np.ndarray:
        """Calibrated P(risk) from `contributions`' output, shape (n, len(RISKS))."""
        return 1.0 / (1.0 + np.exp(-(contributions.sum(axis=2) + self.baseline)))

    def predict_proba(self, evidence: Sequence[Evidence]) -> np.ndarray:
        """Calibrated P(risk), shape (n, len(RISKS))."""
        if not evidence:
            return np.zeros((0, len(RISKS)))
        contributions, _ = self.contributions(evidence)
        return self.probabilities(contributions)

    def save(self, directory: Path) -> Path:
        """Write as JSON next to the classifier delta."""
        payload = {
            "risks": list(RISKS),
            "signals": self.signal_names,
            "features": self.feature_names,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }
        path = directory / COMBINER_FILE
        path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: Path) -> RiskCombiner:
        """Read a combiner saved by `save`.

        Raises:
            ModelNotAvailableError: the file is missing or was trained for other risks.
        """
        path = directory / COMBINER_FILE
        if not path.is_file():
            raise ModelNotAvailableError(f"{directory}: no {COMBINER_FILE}; the model was not trained by commsrisk")
        payload = json.loads(path.read_text(encoding="utf-8"))
        if payload["risks"] != list(RISKS):
            raise ModelNotAvailableError(f"{path}: trained for risks {payload['risks']}, expected {list(RISKS)}")
        return cls(
            payload["signals"],
            payload["features"],
            np.asarray(payload["mean"]),
            np.asarray(payload["scale"]),
            np.asarray(payload["coef"]),
            np.asarray(payload["intercept"]),
        )
