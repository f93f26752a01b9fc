"""Character n-gram classifier: hashed 2-4-gram TF-IDF and one logistic regression per risk.

Stacked with the transformer (its log-odds are a signal of the combiner), it carries what the
encoder misses: the exact desk words, spellings and scripts of the training data. On the
out-of-distribution dev set a TF-IDF + LR baseline outscored every encoder-only model trained
here, so the shipped model uses both. Hashing keeps the artifact free of a vocabulary (no
pickle, no text): the file holds the inverse document frequencies and the weights only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

NGRAM_FILE = "ngram.npz"
N_FEATURES = 2**19
NGRAM_RANGE = (2, 4)


def _vectorizer() -> HashingVectorizer:
    return HashingVectorizer(
        analyzer="char_wb", ngram_range=NGRAM_RANGE, n_features=N_FEATURES, alternate_sign=False, norm=None
    )


class CharNgramClassifier:
    """P(risk) from character n-grams; fit on the training split only, like the transformer."""

    def __init__(self, idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray, c: float) -> None:
        self.idf = idf.astype(np.float32)
        self.coef = coef.astype(np.float32)
        self.intercept = intercept.astype(np.float32)
        self.c = c
        self._vectorizer = _vectorizer()
        self._coef_t = np.ascontiguousarray(self.coef.T)
        """(features, risks) in memory order: scipy would copy the transpose on every product."""

    def _features(self, texts: Sequence[str]):  # type: ignore[no-untyped-def]
        counts = self._vectorizer.transform(list(texts))
        counts.data = 1.0 + np.log(counts.data)  # sublinear term frequency
        return normalize(counts.multiply(self.idf).tocsr())

    @classmethod
    def fit(cls, texts: Sequence[str], labels: np.ndarray, *, seed: int = 0, c: float = 4.0) -> CharNgramClassifier:
        """Fit on texts and their (n, risks) 0/1 labels (balanced classes, as the baseline)."""
        counts = _vectorizer().transform(list(texts))
        df = np.bincount(counts.indices, minlength=N_FEATURES)
        idf = np.log((1 + counts.shape[0]) / (1 + df)) + 1.0
        model = cls(idf, np.zeros((labels.shape[1], N_FEATURES)), np.zeros(labels.shape[1]), c)
        features = model._features(texts)
        for j in range(labels.shape[1]):
            lr = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
            lr.fit(features, labels[:, j])
            model.coef[j] = lr.coef_[0]
            model.intercept[j] = lr.intercept_[0]
        return cls(model.idf, model.coef, model.intercept, c)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), risks)."""
        if not texts:
            return np.zeros((0, len(self.intercept)))
        logits = np.asarray(self._features(texts) @ self._coef_t) + self.intercept
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    def save(self, directory: Path) -> Path:
        """Write ngram.npz (float16 weights: a few MB) next to the transformer's files."""
        path = directory / NGRAM_FILE
        params = json.dumps({"n_features": N_FEATURES, "ngram_range": NGRAM_RANGE, "analyzer": "char_wb", "c": self.c})
        np.savez_compressed(
            path,
            idf=self.idf.astype(np.float16),
            coef=self.coef.astype(np.float16),
            intercept=self.intercept,
            params=np.array(params),
        )
        return path

    @classmethod
    def load(cls, directory: Path) -> CharNgramClassifier | None:
        """The n-gram classifier saved in `directory`, or None when the model has none."""
        path = directory / NGRAM_FILE
        if not path.is_file():
            return None
        data = np.load(path, allow_pickle=False)
        params = json.loads(str(data["params"]))
        if params["n_features"] != N_FEATURES or tuple(params["ngram_range"]) != NGRAM_RANGE:
            raise ValueError(f"{path}: n-gram settings {params} differ from this version's")
        return cls(data["idf"], data["coef"], data["intercept"], float(params["c"]))
