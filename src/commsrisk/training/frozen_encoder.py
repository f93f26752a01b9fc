"""Frozen encoder + logistic regression: the encoder's mean-pooled vectors, a linear head on top.

Nothing in the encoder moves, so nothing of how the training corpus is written can be learned
into it: the head only weighs what the multilingual encoder already represents. The
regularisation strength is chosen on the selection (dev) set when one is given. The standard
scaler is folded into the head, so the result is one ``MeanPoolingClassifier``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from commsrisk.classifier.mean_pooling import MeanPoolingClassifier
from commsrisk.classifier.tokens import encode
from commsrisk.training.finetune import FineTuneConfig, build_trainable

logger = logging.getLogger(__name__)

C_GRID: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
"""Inverse regularisation strengths tried when a selection set is given."""
DEFAULT_C = 0.1


def embed(
    model: MeanPoolingClassifier,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int,
    tail_tokens: int,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Mean-pooled, normalised vectors of `texts` in input order (length-sorted batches)."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="embedding", unit="batch", disable=not progress):
            idx = order[start : start + batch_size]
            batch = encode(tokenizer, [texts[i] for i in idx], max_length=max_length, tail_tokens=tail_tokens)
            out[idx] = model.pooled(batch["input_ids"], batch["attention_mask"]).numpy()
    return out


def _fit(features: np.ndarray, labels: np.ndarray, c: float, seed: int) -> list[LogisticRegression]:
    return [
        LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed).fit(features, labels[:, j])
        for j in range(labels.shape[1])
    ]


def fit_frozen_head(
    texts: Sequence[str],
    labels: np.ndarray,
    config: FineTuneConfig,
    *,
    select_texts: Sequence[str] | None = None,
    select_labels: np.ndarray | None = None,
) -> tuple[MeanPoolingClassifier, PreTrainedTokenizerBase]:
    """Embed once, fit one logistic regression per risk, fold scaler and weights into the head."""
    model, tokenizer = build_trainable(config.model_copy(update={"method": "frozen"}))
    if not isinstance(model, MeanPoolingClassifier):
        raise TypeError("the frozen method builds a MeanPoolingClassifier")
    train = embed(model, tokenizer, texts, max_length=config.max_length, tail_tokens=config.tail_tokens, progress=True)
    scaler = StandardScaler().fit(train)
    scaled = scaler.transform(train)
    c = DEFAULT_C
    if select_texts is not None and select_labels is not None and len(select_texts):
        dev = scaler.transform(
            embed(model, tokenizer, select_texts, max_length=config.max_length, tail_tokens=config.tail_tokens)
        )
        scores = {}
        for candidate in C_GRID:
            heads = _fit(scaled, labels, candidate, config.seed)
            scores[candidate] = float(
                np.mean(
                    [
                        average_precision_score(select_labels[:, j], heads[j].decision_function(dev))
                        for j in range(labels.shape[1])
                    ]
                )
            )
        c = max(scores, key=lambda k: scores[k])
        logger.info("frozen head: selection macro PR-AUC by C %s, chose C=%s", scores, c)
    heads = _fit(scaled, labels, c, config.seed)
    weight = np.stack([h.coef_[0] for h in heads]) / scaler.scale_
    bias = np.array([h.intercept_[0] for h in heads]) - weight @ scaler.mean_
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        model.head.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    model.eval()
    return model, tokenizer
