"""A multi-label head on the mean of the encoder's token vectors, as e5 encoders are trained.

The e5 encoders were trained to be read by mean pooling; BERT's [CLS] pooler ships untrained with
them (its weights are not in the checkpoint), so a head on mean-pooled, L2-normalised vectors
starts from what the encoder already knows. The same module serves a frozen encoder with a
logistic-regression head, LoRA adapters and full fine-tuning; it quacks like a Hugging Face
sequence classifier (``get_input_embeddings()``, ``model(...).logits``) so prediction and
explanations need no special case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from commsrisk.schema import RISKS

MEAN_POOLING_KIND = "mean-pooling-head"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
"""Subfolder holding a fully fine-tuned encoder (absent when the encoder is the base, or LoRA)."""


def layer_override(layers: int | None) -> dict[str, int]:
    """The config override that keeps an encoder's first `layers` transformer layers (none: all of them).

    `from_pretrained` builds the shorter model and loads the weights it has; the later layers'
    weights are left unread. Any architecture whose config maps `num_hidden_layers` takes it.
    """
    return {"num_hidden_layers": int(layers)} if layers else {}


def _masked(hidden: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token vectors with padding zeroed, and each row's count of real tokens (at least 1), shape (batch, 1)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return hidden * mask, mask.sum(dim=1).clamp(min=1.0)


class MeanPoolingClassifier(torch.nn.Module):
    """Encoder -> masked mean of token vectors -> L2 normalise -> linear layer over RISKS."""

    def __init__(self, encoder: PreTrainedModel, head: torch.nn.Linear | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        self.head = head if head is not None else torch.nn.Linear(hidden, len(RISKS))
        self.config = encoder.config

    def get_input_embeddings(self) -> torch.nn.Module:
        """The token embedding table (gradient x input explanations start at its output)."""
        return self.encoder.get_input_embeddings()

    def pooled(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean-pooled, L2-normalised sentence vectors."""
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds
        ).last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=hidden.dtype)
        tokens, count = _masked(hidden, attention_mask)
        return torch.nn.functional.normalize(tokens.sum(dim=1) / count, dim=-1)

    def token_shares(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Each token's exact share of each risk's logit, shape (batch, tokens, len(RISKS)).

        The logit is w . mean(h) / |mean(h)| + b, a sum over tokens of w . h_t / (n |mean(h)|):
        one forward pass splits it without a backward pass, and a message's shares add up to its
        logit minus the bias. Padding tokens get 0.
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        tokens, count = _masked(hidden, attention_mask)
        norm = (tokens.sum(dim=1) / count).norm(dim=-1, keepdim=True).clamp(min=1e-12)  # as F.normalize
        return tokens @ self.head.weight.T / (count * norm).unsqueeze(-1)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **_: Any,
    ) -> SequenceClassifierOutput:
        """Logits over RISKS; extra tokenizer outputs (token_type_ids) are ignored."""
        return SequenceClassifierOutput(logits=self.head(self.pooled(input_ids, attention_mask, inputs_embeds)))


def save_mean_pooling(model: MeanPoolingClassifier, out_dir: Path, *, full_encoder: bool) -> None:
    """Write the head (and the encoder when it was fully fine-tuned) to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    head = {"weight": model.head.weight.detach().contiguous(), "bias": model.head.bias.detach().contiguous()}
    save_file(head, str(out_dir / HEAD_FILE))
    if full_encoder:
        model.encoder.save_pretrained(str(out_dir / ENCODER_DIR))


def load_mean_pooling(model_dir: Path, base_model: str, *, layers: int | None = None) -> MeanPoolingClassifier:
    """Rebuild a saved mean-pooling classifier on its encoder (base, base + LoRA, or its own).

    `layers`: the model was trained on the base's first this many transformer layers (a student).
    """
    encoder_dir = model_dir / ENCODER_DIR
    if encoder_dir.is_dir():  # a fully fine-tuned encoder was saved as it was trained, layers and all
        encoder = AutoModel.from_pretrained(str(encoder_dir), add_pooling_layer=False)
    else:
        encoder = AutoModel.from_pretrained(base_model, add_pooling_layer=False, **layer_override(layers))
    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        encoder = PeftModel.from_pretrained(encoder, str(model_dir)).merge_and_unload()
    weights = load_file(str(model_dir / HEAD_FILE))
    head = torch.nn.Linear(weights["weight"].shape[1], weights["weight"].shape[0])
    head.load_state_dict(weights)
    model = MeanPoolingClassifier(encoder, head)
    model.eval()
    return model


def is_mean_pooling(model_dir: Path) -> bool:
    """Whether a model folder holds a mean-pooling classifier."""
    meta = model_dir / "commsrisk_model.json"
    return meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("kind") == MEAN_POOLING_KIND
