"""A student classifier on the base encoder's first layers: trained, saved and loaded with its layer count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from commsrisk.classifier.mean_pooling import MeanPoolingClassifier
from commsrisk.classifier.model import RiskClassifier, base_model_identity, load_classifier
from commsrisk.schema import RISKS
from commsrisk.training.finetune import FineTuneConfig, build_trainable, save_delta

TEXTS = ["Let's take this to my personal WhatsApp", "请把客户名单发到我的私人邮箱", "ok", "Lunch at noon?"]


def _student(base_model_dir: Path, out: Path, layers: int) -> MeanPoolingClassifier:
    config = FineTuneConfig(base_model=str(base_model_dir), method="frozen", encoder_layers=layers)
    model, _ = build_trainable(config)
    assert isinstance(model, MeanPoolingClassifier)
    torch.manual_seed(0)
    torch.nn.init.normal_(model.head.weight, std=2.0)
    metadata = {
        "base_model": str(base_model_dir),
        "base_model_identity": base_model_identity(str(base_model_dir)),
        "method": "frozen",
        "encoder_layers": layers,
        "version": "student-test",
    }
    save_delta(model, out, metadata)
    return model


def test_a_student_keeps_its_first_layers_and_loads_as_it_was_trained(tmp_path: Path, base_model_dir: Path) -> None:
    student = _student(base_model_dir, tmp_path / "student", layers=2)
    full = _base_layers(base_model_dir)
    assert len(student.encoder.encoder.layer) == 2 < len(full)
    loaded = load_classifier(str(tmp_path / "student"))
    assert isinstance(loaded.model, MeanPoolingClassifier)
    assert loaded.model.encoder.config.num_hidden_layers == 2 and len(loaded.model.encoder.encoder.layer) == 2
    in_memory = RiskClassifier(student.eval(), loaded.tokenizer, "in-memory", max_length=loaded.max_length)
    np.testing.assert_allclose(loaded.predict_logits(TEXTS), in_memory.predict_logits(TEXTS), atol=1e-5)
    # its layers are the base's own first layers, weight for weight
    assert torch.equal(loaded.model.encoder.encoder.layer[1].output.dense.weight, full[1].output.dense.weight)


@pytest.mark.slow
def test_a_student_on_onnx_runtime_loads_pytorch_only_for_explanations(tmp_path: Path, base_model_dir: Path) -> None:
    from commsrisk.explain import phrase_attributions

    _student(base_model_dir, tmp_path / "student", layers=2)
    on_torch = load_classifier(str(tmp_path / "student"))
    cache = tmp_path / "onnx"
    load_classifier(str(tmp_path / "student"), runtime="onnx", onnx_cache_dir=cache)  # exports once
    on_onnx = load_classifier(str(tmp_path / "student"), runtime="onnx", onnx_cache_dir=cache)
    assert on_onnx.model is None, "a cached export needs no PyTorch model to score"
    np.testing.assert_allclose(on_onnx.predict_logits(TEXTS), on_torch.predict_logits(TEXTS), atol=1e-4)
    assert on_onnx.model is None
    risk = RISKS[int(np.argmax(on_torch.predict_logits(TEXTS[:1])[0]))]
    spans = phrase_attributions(on_onnx, TEXTS[0], [risk])[risk]
    assert on_onnx.model is not None and len(on_onnx.model.encoder.encoder.layer) == 2  # type: ignore[union-attr]
    assert spans == phrase_attributions(on_torch, TEXTS[0], [risk])[risk]


def _base_layers(base_model_dir: Path) -> torch.nn.ModuleList:
    from commsrisk.classifier.model import load_encoder

    encoder, _ = load_encoder(str(base_model_dir))
    return encoder.encoder.layer
