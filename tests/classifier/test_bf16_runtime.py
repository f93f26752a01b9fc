"""The default runtime, PyTorch with bfloat16 matrix products: close to fp32, explanations still fp32 (real model)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from commsrisk.classifier.model import load_classifier
from commsrisk.explain import phrase_attributions
from commsrisk.schema import Message
from commsrisk.settings import ModelSettings, Settings

REPO = Path(__file__).resolve().parents[2]
TEXTS = [
    "Let's take this to my personal WhatsApp, delete the thread after",
    "请把客户名单发到我的私人邮箱",
    "Kannst du mir die Kundenliste privat schicken?",
    "ok",
    "The offsite agenda is in the shared drive, please add your topics. " * 30 + "Text me on Signal instead.",
]

needs_bf16 = pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no bfloat16 kernels"
)


def test_bf16_is_the_default_runtime() -> None:
    assert ModelSettings().runtime == "torch-bf16"


@needs_bf16
def test_bf16_scores_are_close_to_fp32_and_explanations_are_fp32(base_model_dir: Path) -> None:
    common = {"base_model": str(base_model_dir), "window_tokens": 64}
    fp32 = load_classifier(str(REPO / "models/default"), **common, runtime="torch")
    bf16 = load_classifier(str(REPO / "models/default"), **common, runtime="torch-bf16")
    assert fp32.runtime is None and bf16.runtime is not None and bf16.model is not None
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
    assert clf.runtime is None  # the plain PyTorch forward pass
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
