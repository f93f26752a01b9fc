"""Does the way a message is written give its label away? A style-only classifier says.

If writers wrote risky messages longer, with more emoji or more formally than harmless ones, a
model learns the writers' habits instead of the risks. We fit a classifier on style features
alone (length, punctuation, emoji, casing, line breaks, the writer) and compare its
cross-validated accuracy and ROC-AUC with what the label's base rate gives. Digits are left out:
in this corpus they are the identifiers a message carries (content, filled in by the build), and
carrying an identifier is part of what leakage is about.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from commsrisk.schema import RISKS

STYLE_FEATURES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "punct_share",
    "upper_share",
    "emoji_count",
    "newlines",
    "question_marks",
    "exclamations",
)


def style_features(texts: Sequence[str]) -> pd.DataFrame:
    """Surface features of each text that say how it is written, not what it says."""
    rows = []
    for text in texts:
        letters = sum(ch.isalpha() for ch in text) or 1
        chars = len(text) or 1
        rows.append(
            {
                "log_chars": math.log1p(len(text)),
                "log_words": math.log1p(len(text.split())),
                "punct_share": sum(unicodedata.category(ch).startswith("P") for ch in text) / chars,
                "upper_share": sum(ch.isupper() for ch in text) / letters,
                "emoji_count": sum(unicodedata.category(ch) == "So" for ch in text),
                "newlines": text.count("\n"),
                "question_marks": text.count("?") + text.count("？"),
                "exclamations": text.count("!") + text.count("！"),
            }
        )
    return pd.DataFrame(rows, columns=list(STYLE_FEATURES))


@dataclass(frozen=True)
class StyleLeak:
    """How well style alone predicts one label, next to the base rate."""

    risk: str
    base_rate_accuracy: float
    style_accuracy: float
    style_roc_auc: float

    @property
    def accuracy_gain(self) -> float:
        """Accuracy above always answering the majority class."""
        return self.style_accuracy - self.base_rate_accuracy


def style_leak(frame: pd.DataFrame, *, seed: int = 0, folds: int = 5) -> list[StyleLeak]:
    """Cross-validated style-only prediction of each risk (groups are not needed: no text is read)."""
    features = style_features(frame["text"].tolist())
    if "writer" in frame:
        features = features.join(pd.get_dummies(frame["writer"].fillna("unknown"), prefix="writer", dtype=float))
    out = []
    for risk in RISKS:
        labels = frame[risk].astype(int).to_numpy()
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        proba = cross_val_predict(model, features, labels, cv=cv, method="predict_proba")[:, 1]
        base = max(labels.mean(), 1 - labels.mean())
        accuracy = float(((proba >= 0.5).astype(int) == labels).mean())
        out.append(StyleLeak(risk, float(base), accuracy, float(roc_auc_score(labels, proba))))
    return out


def style_leak_markdown(results: Sequence[StyleLeak]) -> str:
    """The table the data card shows."""
    lines = ["| risk | base-rate accuracy | style-only accuracy | gain | style-only ROC-AUC |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.risk} | {r.base_rate_accuracy:.3f} | {r.style_accuracy:.3f} | {r.accuracy_gain:+.3f} | "
            f"{r.style_roc_auc:.3f} |"
        )
    return "\n".join(lines)


def written_only(frame: pd.DataFrame) -> pd.DataFrame:
    """The hand-written rows of a corpus (variants copy their source's style choices)."""
    return frame[frame.get("origin", pd.Series("written", index=frame.index)) == "written"].reset_index(drop=True)


__all__ = ["StyleLeak", "style_features", "style_leak", "style_leak_markdown", "written_only"]
