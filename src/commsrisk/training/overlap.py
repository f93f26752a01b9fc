"""Keep the dev set out of training: exact and near-duplicate texts between two sets.

A dev text counts as seen in training when its normalised form (case, whitespace, digits and
punctuation removed; at least MIN_CHARS characters left) equals a training text's, or when their
character 3-5-gram TF-IDF vectors have a cosine of at least `threshold` (a near-copy with a few
words changed).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from commsrisk.errors import DataValidationError

NEAR_DUPLICATE_COSINE = 0.85
"""Cosine of character n-gram TF-IDF at or above which two texts are one text lightly edited."""
MIN_CHARS = 8
"""Normalised texts shorter than this ("ok", "thx", "收到") are too generic for a match to mean a leak."""

_NOT_LETTER = re.compile(r"[\W\d_]+", re.UNICODE)


def normalise_text(text: str) -> str:
    """Case, width, whitespace, digits and punctuation folded away: what is left is the wording."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NOT_LETTER.sub(" ", folded).strip()


@dataclass(frozen=True)
class Overlap:
    """A dev text found in training: indices into both sets and their similarity (1.0 = exact)."""

    dev_index: int
    train_index: int
    similarity: float


def find_overlaps(
    train_texts: Sequence[str], dev_texts: Sequence[str], *, threshold: float = NEAR_DUPLICATE_COSINE
) -> list[Overlap]:
    """Every dev text that appears in training, exactly or nearly, with its closest training text."""
    train_norm = [normalise_text(t) for t in train_texts]
    dev_norm = [normalise_text(t) for t in dev_texts]
    exact = {text: i for i, text in enumerate(train_norm) if len(text) >= MIN_CHARS}
    found: dict[int, Overlap] = {}
    for j, text in enumerate(dev_norm):
        if text in exact:
            found[j] = Overlap(j, exact[text], 1.0)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=1, sublinear_tf=True)
    vectorizer.fit(train_norm + dev_norm)
    train_matrix = vectorizer.transform(train_norm)
    dev_matrix = vectorizer.transform(dev_norm)
    for start in range(0, len(dev_norm), 256):
        block = (dev_matrix[start : start + 256] @ train_matrix.T).toarray()
        best = block.argmax(axis=1) if block.size else np.zeros(0, dtype=int)
        for offset, k in enumerate(best):
            j = start + offset
            score = float(block[offset, k])
            if j not in found and score >= threshold and len(dev_norm[j]) >= MIN_CHARS:
                found[j] = Overlap(j, int(k), round(score, 4))
    return sorted(found.values(), key=lambda o: o.dev_index)


def require_dev_isolation(train_texts: Sequence[str], dev_texts: Sequence[str], dev_ids: Sequence[str]) -> None:
    """Refuse to train when a dev message is in the training data: the yardstick would be bent.

    Raises:
        DataValidationError: naming how many dev messages (and the first ids) appear in training.
    """
    overlaps = find_overlaps(train_texts, dev_texts)
    if overlaps:
        ids = ", ".join(str(dev_ids[o.dev_index]) for o in overlaps[:5])
        raise DataValidationError(
            f"{len(overlaps)} dev-set messages appear in the training data, exactly or nearly (e.g. {ids}); "
            "the dev set must never be trained on: remove them from the training file or pass --no-dev"
        )


FINGERPRINTS_FILE = "training_fingerprints.txt"
"""Beside a model: one fingerprint per message it was trained, calibrated or tested on (no text)."""


def text_fingerprint(text: str) -> str:
    """A short digest of a text's wording (normalised as above): equal for exact and trivial copies."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()[:16]


def write_fingerprints(texts: Sequence[str], model_dir: Path) -> Path:
    """Record which wordings a model has seen, so a later yardstick can prove it is unseen."""
    path = model_dir / FINGERPRINTS_FILE
    kept = sorted({text_fingerprint(t) for t in texts if len(normalise_text(t)) >= MIN_CHARS})
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


def read_fingerprints(model_dir: Path) -> frozenset[str] | None:
    """The fingerprints saved beside a model, or None for a model saved without them."""
    path = model_dir / FINGERPRINTS_FILE
    if not path.is_file():
        return None
    return frozenset(line for line in path.read_text(encoding="utf-8").split() if line)


def seen_in_training(texts: Sequence[str], fingerprints: frozenset[str]) -> list[int]:
    """Indices of the texts whose wording a model has seen (exact up to case, digits, punctuation)."""
    return [
        i
        for i, text in enumerate(texts)
        if len(normalise_text(text)) >= MIN_CHARS and text_fingerprint(text) in fingerprints
    ]
