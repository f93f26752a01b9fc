"""The default runtime, PyTorch with bfloat16 matrix products: close to fp32, explanations still fp32 (real model)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from commsrisk.classifier.model import cpu_has_bf16, load_classifier
from commsrisk.explain import phrase_attributions
from commsrisk.schema import Message
from commsrisk.settings import ModelSettings, Settings

from .test_onnx_runtime import TEXTS  # short and long, four languages: the same texts as the ONNX runtime

REPO = Path(__file__).resolve().parents[2]

needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bfloat16 kernels")


def test_bf16_is_the_default_runtime() -> None:
    assert ModelSettings().runtime == "torch-bf16"


@needs_bf16
def test_bf16_scores_are_close_to_fp32_and_explanations_are_fp32(base_model_dir: Path) -> None:
    common = {"base_model": str(base_model_dir), "window_tokens": 64}
    fp32 = load_classifier(str(REPO / "models/default"), **common, runtime="torch")
    bf16 = load_classifier(str(REPO / "models/default"), **common, runtime="torch-bf16")
    assert fp32.runtime is None and bf16.runtime is not None and bf16.model is not None
    assert (fp32.runtime_name, bf16.runtime_name) == ("torch", "torch-bf16")
    exact, approx = fp32.predict_proba(TEXTS), bf16.predict_proba(TEXTS)
    assert approx.shape == exact.shape
    assert not np.array_equal(approx, exact)  # the products did run in bf16
    np.testing.assert_allclose(approx, exact, atol=0.03)  # dev set: 0.15% of decisions moved (runtime.py)
    # explanations take the fp32 model's gradients whatever the runtime
    risks = ["off_channel", "misconduct"]
    assert phrase_attributions(bf16, TEXTS[0], risks) == phrase_attributions(fp32, TEXTS[0], risks)


def test_bf16_falls_back_to_fp32_on_a_cpu_without_bf16_kernels(
    base_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)  # the CPU probe only
    with caplog.at_level(logging.WARNING, logger="commsrisk.classifier.model"):
        clf = load_classifier(str(REPO / "models/default"), base_model=str(base_model_dir), runtime="torch-bf16")
    assert clf.runtime is None and clf.runtime_name == "torch"  # the plain PyTorch forward pass, and says so
    assert any("no bfloat16 kernels" in r.message for r in caplog.records)


@needs_bf16
def test_the_scorer_on_bf16_flags_as_on_fp32(settings: Settings, text_analyzer) -> None:  # type: ignore[no-untyped-def]
    from commsrisk.scoring import build_scorer

    def on(runtime: str) -> Settings:
        return settings.model_copy(update={"model": settings.model.model_copy(update={"runtime": runtime})})

    messages = [Message(text=t) for t in TEXTS]
    by_fp32, by_bf16 = (
        build_scorer(on(r), analyzer=text_analyzer).score_batch(messages, explain="signals")
        for r in ("torch", "torch-bf16")
    )
    assert [r.flags for r in by_bf16] == [r.flags for r in by_fp32]
    assert any(by_bf16[0].flags.values())
    for a, b in zip(by_fp32, by_bf16, strict=True):
        assert all(abs(a.risks[r].score - b.risks[r].score) < 0.03 for r in a.risks)


def test_batches_share_one_padded_length_and_cover_every_item() -> None:
    from commsrisk.classifier.model import PAD_TO_MULTIPLE, length_batches

    lengths = [3, 17, 9, 16, 8, 40, 1, 24, 23, 9, 10, 128, 5] * 5
    batches = [list(b) for b in length_batches(lengths, batch_size=4)]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= 4
        assert len({-(-lengths[i] // PAD_TO_MULTIPLE) for i in batch}) == 1


@needs_bf16
def test_a_message_gets_the_same_score_alone_and_in_any_batch(base_model_dir: Path) -> None:
    """In bf16 the padding batch neighbours forced moved a score by up to 0.01; now each message pads alike."""
    bf16 = load_classifier(str(REPO / "models/default"), base_model=str(base_model_dir), runtime="torch-bf16")
    texts = [
        "send me the client list on WhatsApp",
        "wire the fee to my cousin's account",
        "lunch at noon?",
        "delete this chat after reading",
        "call me on my personal cell, not the desk line",
        "the earnings number is not public yet, buy before Thursday",
        "Kannst du mir die Kundenliste privat schicken? " * 6,
        "请把客户名单发到我的私人邮箱，不要用公司邮箱",
    ] * 3
    together = bf16.predict_proba(texts)
    alone = np.vstack([bf16.predict_proba([t]) for t in texts])
    in_threes = np.vstack([bf16.predict_proba(texts[i : i + 3]) for i in range(0, len(texts), 3)])
    np.testing.assert_allclose(together, alone, atol=1e-3, rtol=0)
    np.testing.assert_allclose(in_threes, alone, atol=1e-3, rtol=0)
