"""Phrase explanations on the shipped model: exact token shares, batch-independent, faithful; gradients elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from commsrisk.classifier.model import RiskClassifier, load_classifier, load_encoder_for_classification
from commsrisk.explain import explain_batch, gradient_phrases, logit_drop, phrase_attributions
from commsrisk.schema import RISKS

REPO = Path(__file__).resolve().parents[1]
ASKS = [
    ("please delete this chat after reading, call my private phone", ["off_channel"]),
    ("send the client list to my gmail before the audit, nobody will know", ["leakage", "misconduct"]),
    ("请把客户名单发到我的私人邮箱，别走公司系统", ["leakage", "off_channel"]),
    ("Lass uns das auf WhatsApp besprechen, nicht über die Firmenleitung.", ["off_channel"]),
    ("ok", []),
]


@pytest.fixture(scope="module")
def classifier(base_model_dir: Path) -> RiskClassifier:
    return load_classifier(str(REPO / "models/default"), base_model=str(base_model_dir), runtime="torch")


def test_token_shares_add_up_to_each_logit(classifier: RiskClassifier) -> None:
    model = classifier.pytorch()
    encoded = classifier.encode([text for text, _ in ASKS])
    with torch.inference_mode():
        shares = model.token_shares(encoded["input_ids"], encoded["attention_mask"])  # type: ignore[operator]
        logits = model(**encoded).logits
    assert shares.shape == (len(ASKS), encoded["input_ids"].shape[1], len(RISKS))
    assert torch.all(shares[encoded["attention_mask"] == 0] == 0)  # padding has no share
    torch.testing.assert_close(shares.sum(dim=1) + model.head.bias, logits, atol=1e-4, rtol=1e-4)


def test_a_message_gets_the_same_phrases_alone_and_in_any_batch(classifier: RiskClassifier) -> None:
    together = explain_batch(classifier, ASKS)
    alone = [phrase_attributions(classifier, text, risks) for text, risks in ASKS]
    assert together == alone
    assert [sorted(p) for p in together] == [sorted(risks) for _, risks in ASKS]  # every asked risk, no other
    assert all(spans for p in together for spans in p.values())
    for (text, _), p in zip(ASKS, together, strict=True):
        for spans in p.values():
            assert all(0 <= s.start < s.end <= len(text) and s.weight > 0 and s.kind == "phrase" for s in spans)
            assert [s.weight for s in spans] == sorted((s.weight for s in spans), reverse=True)  # heaviest first


def test_deleting_the_top_phrase_lowers_the_logit_more_than_gradient_x_inputs(classifier: RiskClassifier) -> None:
    """The faithfulness check of benchmarks/explain.py on a few messages: the phrase found matters to the model."""
    shares, gradients = [], []
    for text, risks in ASKS[:4]:
        by_shares = phrase_attributions(classifier, text, risks)
        by_gradient = gradient_phrases(classifier, text, risks)
        for risk in risks:
            shares.append(logit_drop(classifier, text, risk, by_shares[risk][:1]))
            gradients.append(logit_drop(classifier, text, risk, by_gradient[risk][:1]))
    assert min(shares) > 0
    assert sum(shares) > sum(gradients)


def test_a_model_without_token_shares_is_explained_by_its_gradients(base_model_dir: Path) -> None:
    model, tokenizer = load_encoder_for_classification(str(base_model_dir), layers=2)
    classifier = RiskClassifier(model=model.eval(), tokenizer=tokenizer, version="hf-head")
    assert not hasattr(model, "token_shares")
    text, risks = ASKS[1]
    assert explain_batch(classifier, [(text, risks)]) == [gradient_phrases(classifier, text, risks)]
