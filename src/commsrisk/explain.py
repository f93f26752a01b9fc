"""Explanations a reviewer can read: which phrases pushed a risk score up.

Gradient x input attributions of the classifier's logit for a risk, per token, grouped into
short phrases of the original text (character spans). Computed only for flagged risks, since
it costs one backward pass per risk.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from commsrisk.classifier.model import RiskClassifier
from commsrisk.schema import RISKS, EvidenceSpan

MAX_PHRASES = 3
WINDOW = 2
"""Tokens taken on each side of a top token to make a readable phrase."""


def phrase_attributions(classifier: RiskClassifier, text: str, risks: Sequence[str]) -> dict[str, list[EvidenceSpan]]:
    """The top phrases (character spans) behind each named risk's logit for one text."""
    if not risks:
        return {}
    model = classifier.pytorch()
    encoded = classifier.encode([text], offsets=True)
    offsets = [list(span) for span in encoded.pop("offset_mapping")[0]]
    embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach().requires_grad_(True)
    model.eval()
    with torch.enable_grad():
        logits = model(inputs_embeds=embeddings, attention_mask=encoded["attention_mask"]).logits[0]
        out: dict[str, list[EvidenceSpan]] = {}
        for i, risk in enumerate(risks):
            (grad,) = torch.autograd.grad(logits[RISKS.index(risk)], embeddings, retain_graph=i < len(risks) - 1)
            scores = (grad * embeddings).sum(-1)[0].detach().tolist()
            out[risk] = _top_phrases(text, offsets, scores)
    return out


def _top_phrases(text: str, offsets: list[list[int]], scores: list[float]) -> list[EvidenceSpan]:
    """Greedy: take the highest-scoring token, widen it to a phrase, repeat without overlap."""
    real = [i for i, (start, end) in enumerate(offsets) if end > start]
    taken: set[int] = set()
    spans: list[EvidenceSpan] = []
    for i in sorted(real, key=lambda k: scores[k], reverse=True):
        if len(spans) == MAX_PHRASES or scores[i] <= 0:
            break
        if i in taken:
            continue
        window = [k for k in real if abs(k - i) <= WINDOW and k not in taken]
        taken.update(window)
        start = min(offsets[k][0] for k in window)
        end = max(offsets[k][1] for k in window)
        while start < end and text[start].isspace():
            start += 1
        weight = sum(max(scores[k], 0.0) for k in window)
        spans.append(EvidenceSpan(start=start, end=end, kind="phrase", weight=round(weight, 4)))
    return spans
