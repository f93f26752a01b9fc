"""The classifier's forward pass on ONNX Runtime: the same logits as PyTorch, faster on a CPU.

The model (encoder with its delta merged, mean pooling, head) is exported once with
`torch.onnx.export` into a cache folder keyed by what the model is (its files and its base
encoder), and loaded from there on later starts. Only the forward pass moves: tokenizing and token
windows stay as they are, and explanations (token shares or gradients) load the PyTorch model when
first asked for (`RiskClassifier.pytorch`).

`int8=True` adds dynamic int8 weights (onnxruntime.quantization) on every weight MatMul but the
feed-forward output projections, per channel: quantizing those too moved 0.8% of the dev set's
decisions, over the 0.5% a runtime may move; without them 0.26% (`benchmarks/runtime.py`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from commsrisk.errors import ModelNotAvailableError

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
OPSET = 17


class _Logits(torch.nn.Module):
    """input_ids, attention_mask -> logits: the signature the exported graph has."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def model_digest(model_dir: Path | None, identity: str) -> str:
    """What a classifier is, for the cache: every file of its folder, and `identity` (its base encoder, or its id)."""
    hasher = hashlib.sha256(identity.encode())
    files = sorted(p for p in model_dir.rglob("*") if p.is_file()) if model_dir is not None else []
    for path in files:
        hasher.update(str(path.relative_to(model_dir)).encode())  # type: ignore[arg-type]
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
    return hasher.hexdigest()[:20]


def export_onnx(model: torch.nn.Module, tokenizer: Any, path: Path) -> None:
    """Export `model` (a sequence classifier over RISKS) to `path`, atomically, with dynamic batch and length."""
    sample = tokenizer(["a short message", "a somewhat longer message to trace"], padding=True, return_tensors="pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        staged = Path(scratch) / ONNX_FILE
        # The tracer warns about branches on shapes (padding, causal masks) that it fixes as traced:
        # both are constant for an encoder with an attention mask, and the tests compare the scores.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
            _export(model, sample, staged)
        os.replace(staged, path)


def _export(model: torch.nn.Module, sample: Any, staged: Path) -> None:
    torch.onnx.export(
        _Logits(model).eval(),
        (sample["input_ids"], sample["attention_mask"]),
        str(staged),
        dynamo=False,
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"}},
        opset_version=OPSET,
    )


def feed_forward_outputs(path: Path) -> list[str]:
    """The MatMuls of the feed-forward output projections (`layer.N/output/dense`, not attention's)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    matmuls = [n.name for n in graph.node if n.op_type == "MatMul"]
    return [name for name in matmuls if "/output/dense/" in name and "attention" not in name]


def quantize_int8(fp32: Path, path: Path) -> None:
    """Dynamic int8 weights, per channel, on every weight MatMul but the feed-forward outputs (atomically)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        staged = Path(scratch) / path.name
        quantize_dynamic(
            str(fp32),
            str(staged),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=feed_forward_outputs(fp32),
        )
        os.replace(staged, path)


class OnnxLogits:
    """An ONNX Runtime session that gives a padded batch's logits (a numpy array, shape batch x RISKS)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail / InvalidProtobuf types
            raise ModelNotAvailableError(
                f"{path}: cannot load the ONNX export ({err.__class__.__name__}); delete it and it is exported again"
            ) from err
        self.path = path

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        """Logits of one padded batch."""
        feeds = {"input_ids": input_ids.numpy().astype(np.int64), "attention_mask": attention_mask.numpy()}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)


def onnx_runtime(
    load_model: Callable[[], torch.nn.Module],
    tokenizer: Any,
    model_dir: Path | None,
    identity: str,
    cache_dir: Path,
    threads: int | None = None,
    *,
    int8: bool = False,
) -> OnnxLogits:
    """The ONNX session of this classifier, exported into `cache_dir` the first time.

    `load_model` gives the PyTorch model; it is called only when there is no export yet, and the
    model is not kept (the session holds its own weights). For e5-small the export takes ~10 s and
    470 MB; its int8 copy another ~10 s and 430 MB (the embedding table, most of the weights, stays
    fp32: only MatMul weights are quantized).
    """
    path = Path(cache_dir) / model_digest(model_dir, identity) / ONNX_FILE
    if not path.is_file():
        logger.info("exporting the classifier to ONNX once", extra={"path": str(path)})
        export_onnx(load_model(), tokenizer, path)
    if int8:
        quantized = path.with_name(INT8_FILE)
        if not quantized.is_file():
            logger.info("quantizing the ONNX export to int8 once", extra={"path": str(quantized)})
            quantize_int8(path, quantized)
        path = quantized
    return OnnxLogits(path, threads)
