"""Explanations a reviewer can read: which phrases pushed a risk score up.

Gradient x input attributions of the classifier's logit for a risk, per token, grouped into
short phrases of the original text (character spans). Computed only for flagged risks, since
it costs a backward pass per risk. Messages are explained in padded batches: one forward pass
for the batch and one backward pass per risk flagged anywhere in it, since each message's logits
depend only on its own tokens (the attention mask keeps padding out), the gradient of the
batch's summed logit is every message's own gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from commsrisk.classifier.model import RiskClassifier
from commsrisk.schema import RISKS, EvidenceSpan

EXPLAIN_BATCH = 16
"""Messages per explanation pass: larger batches pad more and hold more activations for the backward pass."""
MAX_PHRASES = 3
WINDOW = 2
"""Tokens taken on each side of a top token to make a readable phrase."""


def phrase_attributions(classifier: RiskClassifier, text: str, risks: Sequence[str]) -> dict[str, list[EvidenceSpan]]:
    """The top phrases (character spans) behind each named risk's logit for one text."""
    return batch_phrase_attributions(classifier, [(text, risks)])[0]


def batch_phrase_attributions(
    classifier: RiskClassifier, asks: Sequence[tuple[str, Sequence[str]]]
) -> list[dict[str, list[EvidenceSpan]]]:
    """`phrase_attributions` of many (text, risks) asks, in input order, in padded batches."""
    out: list[dict[str, list[EvidenceSpan]]] = [{} for _ in asks]
    wanted = [i for i, (_, risks) in enumerate(asks) if risks]
    wanted.sort(key=lambda i: len(asks[i][0]))
    for start in range(0, len(wanted), EXPLAIN_BATCH):
        chunk = wanted[start : start + EXPLAIN_BATCH]
        for i, phrases in zip(chunk, _explain_batch(classifier, [asks[i] for i in chunk]), strict=True):
            out[i] = phrases
    return out


def _explain_batch(
    classifier: RiskClassifier, asks: Sequence[tuple[str, Sequence[str]]]
) -> list[dict[str, list[EvidenceSpan]]]:
    model = classifier.pytorch()
    encoded = classifier.encode([text for text, _ in asks], offsets=True)
    offsets = [[list(span) for span in row] for row in encoded.pop("offset_mapping")]
    embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach().requires_grad_(True)
    risks = [risk for risk in RISKS if any(risk in asked for _, asked in asks)]
    model.eval()
    out: list[dict[str, list[EvidenceSpan]]] = [{} for _ in asks]
    with torch.enable_grad():
        logits = model(inputs_embeds=embeddings, attention_mask=encoded["attention_mask"]).logits
        for n, risk in enumerate(risks):
            total = logits[:, RISKS.index(risk)].sum()
            (grad,) = torch.autograd.grad(total, embeddings, retain_graph=n < len(risks) - 1)
            scores = (grad * embeddings).sum(-1).detach()
            for b, (text, asked) in enumerate(asks):
                if risk in asked:
                    out[b][risk] = _top_phrases(text, offsets[b], scores[b].tolist())
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
