"""Combine the classifier's probabilities with evidence signals into calibrated risk scores.

One logistic regression per risk (scikit-learn), fitted on the calibration split that the
classifier never trained on: Platt-style calibration that also weighs PII, external recipients and
channel. It is linear, so it is stored as plain JSON (no pickle) and each signal's contribution to
a score is exact: coefficient x value / scale, in log-odds, measured from the signal's absence
(value 0), so a channel the message was not sent on contributes nothing; the standardisation's
means fold into one baseline per risk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from commsrisk.errors import ModelNotAvailableError
from commsrisk.schema import RISKS
from commsrisk.signals import DEFAULT_SIGNALS, Evidence, resolve_signals

COMBINER_FILE = "combiner.json"

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
        """Fit on held-out evidence and labels (never on the classifier's training data)."""
        features, names = signal_features(evidence, signal_names)
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale < 1e-9] = 1.0
        standardised = (features - mean) / scale
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
