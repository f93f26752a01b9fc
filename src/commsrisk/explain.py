"""Explanations a reviewer can read: which phrases pushed a risk score up.

Per-token attributions of the classifier's logit for a risk, grouped into short phrases of the
original text (character spans), for flagged risks only. Two methods:
- token shares, for a mean-pooling classifier (the default model): the logit is a sum over
  tokens, so one forward pass with no gradients gives each token's exact share, for every risk
  at once and for a whole batch of messages. On the dev set, deleting the top phrase it finds
  lowers the logit 3x as much as deleting gradient x input's, which does no better than a random
  phrase (benchmarks/explain.py measures all three);
- gradient x input, for any other model (a Hugging Face sequence classifier): one forward and one
  backward pass per flagged risk, one message at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from commsrisk.classifier.model import RiskClassifier, length_batches
from commsrisk.schema import RISKS, EvidenceSpan

MAX_PHRASES = 3
WINDOW = 2
"""Tokens taken on each side of a top token to make a readable phrase."""

Ask = tuple[str, Sequence[str]]
"""A message's text and the risks to explain in it."""
Phrases = dict[str, list[EvidenceSpan]]


def explain_batch(classifier: RiskClassifier, asks: Sequence[Ask]) -> list[Phrases]:
    """The top phrases behind each ask's named risks, in input order (token shares where the model has them)."""
    model = classifier.pytorch()
    if hasattr(model, "token_shares"):
        return token_share_phrases(classifier, asks)
    return [gradient_phrases(classifier, text, risks) for text, risks in asks]


def phrase_attributions(classifier: RiskClassifier, text: str, risks: Sequence[str]) -> Phrases:
    """The top phrases (character spans) behind each named risk's logit for one text."""
    return explain_batch(classifier, [(text, risks)])[0] if risks else {}


def token_share_phrases(classifier: RiskClassifier, asks: Sequence[Ask]) -> list[Phrases]:
    """Phrases from each token's share of the logit (a mean-pooling model), in batches of one padded length.

    Batches follow `length_batches`, as scoring does, so a message gets the same phrases whatever
    it is explained with.
    """
    out: list[Phrases] = [{} for _ in asks]
    todo = [i for i, (_, risks) in enumerate(asks) if risks]
    if not todo:
        return out
    model = classifier.pytorch()
    encoded = classifier.encode([asks[i][0] for i in todo], offsets=True)
    lengths = encoded["attention_mask"].sum(dim=1).tolist()
    ids = [row[:n] for row, n in zip(encoded["input_ids"].tolist(), lengths, strict=True)]
    offsets = [[list(span) for span in row[:n]] for row, n in zip(encoded.pop("offset_mapping"), lengths, strict=True)]
    with torch.inference_mode():
        for idx in length_batches(lengths, classifier.batch_size):
            batch = classifier.pad([ids[i] for i in idx])  # as scoring pads it
            shares = model.token_shares(batch["input_ids"], batch["attention_mask"]).float()  # type: ignore[operator]
            for b, k in enumerate(idx):
                text, risks = asks[todo[k]]
                out[todo[k]] = {
                    risk: _top_phrases(text, offsets[k], shares[b, : len(offsets[k]), RISKS.index(risk)].tolist())
                    for risk in risks
                }
    return out


def gradient_phrases(classifier: RiskClassifier, text: str, risks: Sequence[str]) -> Phrases:
    """Gradient x input phrases of one text: one backward pass per risk (any differentiable model)."""
    if not risks:
        return {}
    model = classifier.pytorch()
    encoded = classifier.encode([text], offsets=True)
    offsets = [list(span) for span in encoded.pop("offset_mapping")[0]]
    embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach().requires_grad_(True)
    model.eval()
    with torch.enable_grad():
        logits = model(inputs_embeds=embeddings, attention_mask=encoded["attention_mask"]).logits[0]
        out: Phrases = {}
        for i, risk in enumerate(risks):
            (grad,) = torch.autograd.grad(logits[RISKS.index(risk)], embeddings, retain_graph=i < len(risks) - 1)
            scores = (grad * embeddings).sum(-1)[0].detach().tolist()
            out[risk] = _top_phrases(text, offsets, scores)
    return out


def logit_drop(classifier: RiskClassifier, text: str, risk: str, spans: Sequence[EvidenceSpan]) -> float:
    """How far `risk`'s logit falls when the tokens inside `spans` are left out of `text`.

    The deletion test ("comprehensiveness", ERASER): a phrase that explains a score should be one
    the score needs. benchmarks/explain.py measures each method with it.
    """
    encoded = classifier.encode([text], offsets=True)
    offsets = encoded.pop("offset_mapping")[0]
    keep = [i for i, (s, e) in enumerate(offsets) if e <= s or not any(s < p.end and p.start < e for p in spans)]
    cut = encoded["input_ids"][:, keep]
    model = classifier.pytorch()
    with torch.inference_mode():
        full = model(**encoded).logits[0, RISKS.index(risk)]
        rest = model(input_ids=cut, attention_mask=torch.ones_like(cut)).logits[0, RISKS.index(risk)]
    return float(full - rest)


def _top_phrases(text: str, offsets: list[list[int]], scores: list[float]) -> list[EvidenceSpan]:
    """Greedy: take the highest-scoring token, widen it to a phrase, repeat without overlap.

    The phrases come back heaviest first, the order a reviewer reads them in.
    """
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
    return sorted(spans, key=lambda span: span.weight, reverse=True)
