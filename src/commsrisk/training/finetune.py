"""Parameter-efficient fine-tuning of the multilingual encoder for multi-label risk classification.

LoRA adapters (peft) on the attention projections plus a trained pooler and head: the saved delta
is a few MB and goes on top of the unchanged base encoder. A plain torch loop (no Trainer) keeps
the run deterministic on CPU and lets the caller log each epoch to MLflow.
"""

from __future__ import annotations

import json
import logging
import math
import random
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from commsrisk.classifier.mean_pooling import MEAN_POOLING_KIND, MeanPoolingClassifier, save_mean_pooling
from commsrisk.classifier.model import METADATA_FILE, RiskClassifier, load_encoder, load_encoder_for_classification
from commsrisk.classifier.tokens import cut_tokens
from commsrisk.schema import RISKS
from commsrisk.settings import DEFAULT_TAIL_TOKENS

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]
Method = Literal["lora", "lora-mean", "full", "frozen"]
METHODS: tuple[str, ...] = get_args(Method)
DEFAULT_LEARNING_RATES: dict[str, float] = {"lora": 8e-4, "lora-mean": 5e-4, "full": 3e-5, "frozen": 0.1}
"""Learning rate per method (frozen ignores it: its head is a logistic regression)."""


class FineTuneConfig(BaseModel):
    """Every knob of a fine-tuning run; logged with the run so it can be reproduced."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(..., description="Local folder or Hugging Face id of the encoder.")
    method: Method = Field(
        "lora",
        description=(
            "lora: LoRA adapters + [CLS] pooler and head (the first wave's model); lora-mean: LoRA adapters + "
            "head on mean-pooled vectors; full: every weight but the word-embedding table, head on mean-pooled "
            "vectors; frozen: frozen encoder, logistic-regression head on mean-pooled vectors."
        ),
    )
    seed: int = Field(13, description="Seeds python, numpy and torch; same seed + data = same model.")
    epochs: int = Field(6, ge=1, le=100)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimiser steps (quick runs).")
    batch_size: int = Field(16, ge=1, le=512)
    learning_rate: float = Field(8e-4, gt=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    max_length: int = Field(128, ge=8, le=512)
    tail_tokens: int = Field(DEFAULT_TAIL_TOKENS, ge=0, le=256, description="Tokens kept from a long text's end.")
    lora_r: int = Field(16, ge=1, le=256)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    lora_target_modules: tuple[str, ...] = ("query", "key", "value")
    torch_threads: int | None = Field(None, ge=1)
    eval_every: int | None = Field(
        None, ge=1, description="Score the selection (dev) set every this many steps; default once per epoch."
    )
    stack_ngram: bool = Field(
        False, description="Stack a character n-gram classifier: its log-odds become a combiner signal."
    )
    patience: int | None = Field(
        None, ge=1, description="Stop after this many selection scores without improvement (early stopping)."
    )
    encoder_layers: int | None = Field(
        None,
        ge=1,
        le=48,
        description="Keep only the encoder's first N transformer layers: a smaller, faster student of the base "
        "(None: every layer). Recorded with the model, so it loads the same way.",
    )

    @classmethod
    def for_method(cls, method: str, *, learning_rate: float | None = None, **fields: Any) -> FineTuneConfig:
        """A config for `method`, with that method's default learning rate unless one is given."""
        return cls(method=method, learning_rate=learning_rate or DEFAULT_LEARNING_RATES[method], **fields)


warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def seed_everything(seed: int) -> None:
    """Make a run repeatable on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled mini-batches of similar length (length bucketing keeps padding, and time, down)."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 32
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort([lengths[i] for i in part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def _pos_weight(labels: np.ndarray) -> torch.Tensor:
    """sqrt(neg/pos) per risk: leans towards recall on rare risks without overshooting."""
    positives = labels.sum(axis=0).clip(min=1)
    negatives = (len(labels) - labels.sum(axis=0)).clip(min=1)
    return torch.tensor(np.sqrt(negatives / positives), dtype=torch.float32)


def build_trainable(config: FineTuneConfig) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """The model a method trains: its encoder, adapters and head, with the right weights unfrozen."""
    if config.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        base, tokenizer = load_encoder_for_classification(config.base_model, layers=config.encoder_layers)
        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_target_modules),
            modules_to_save=["classifier", "pooler"],
        )
        return get_peft_model(base, lora), tokenizer
    encoder, tokenizer = load_encoder(config.base_model, layers=config.encoder_layers)
    if config.method == "lora-mean":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_target_modules),
        )
        encoder = get_peft_model(encoder, lora)
    elif config.method == "frozen":
        encoder.requires_grad_(False)
    else:
        # "full": every weight but the 250k-row word-embedding table, whose AdamW update costs more
        # than the rest of a step on CPU and which a few thousand messages cannot move usefully.
        encoder.get_input_embeddings().requires_grad_(False)
    return MeanPoolingClassifier(encoder), tokenizer


def fine_tune(
    texts: Sequence[str],
    labels: np.ndarray,
    config: FineTuneConfig,
    *,
    eval_texts: Sequence[str] | None = None,
    eval_labels: np.ndarray | None = None,
    select_texts: Sequence[str] | None = None,
    select_labels: np.ndarray | None = None,
    on_epoch_end: EpochCallback | None = None,
    on_step: Callable[[int, float], None] | None = None,
    progress: bool = True,
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """Fine-tune the model of `config.method` on (texts, labels); returns the model and tokenizer.

    `on_epoch_end(step, metrics)` gets the mean training loss since the last call and, at each
    epoch's end when eval data is given, the eval loss; with a selection set (the out-of-distribution dev set) also its
    macro PR-AUC, and the weights with the best selection score are the ones returned (early
    stopping after `config.patience` scores without improvement).
    """
    seed_everything(config.seed)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    if config.method == "frozen":
        raise ValueError("the frozen method has no fine-tuning: use training.frozen_encoder.fit_frozen_head")
    model, tokenizer = build_trainable(config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("fine-tuning (%s): %d texts, %d trainable parameters", config.method, len(texts), trainable)

    input_ids: list[list[int]] = cut_tokens(
        tokenizer, texts, max_length=config.max_length, tail_tokens=config.tail_tokens
    )["input_ids"]
    lengths = [len(ids) for ids in input_ids]
    targets = torch.tensor(labels, dtype=torch.float32)
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = math.ceil(len(texts) / config.batch_size)
    total_steps = min(config.max_steps or 10**12, steps_per_epoch * config.epochs)
    epochs = math.ceil(total_steps / steps_per_epoch)
    eval_every = config.eval_every or steps_per_epoch
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=_pos_weight(labels))
    selection = _Selection(model, tokenizer, config, select_texts, select_labels)
    step = 0
    losses: list[float] = []
    bar = tqdm(total=total_steps, desc=f"fine-tuning ({config.method})", unit="step", disable=not progress)
    for epoch in range(1, epochs + 1):
        for batch_idx in _batches(lengths, config.batch_size, rng):
            model.train()
            batch = tokenizer.pad({"input_ids": [input_ids[i] for i in batch_idx]}, return_tensors="pt")
            logits = model(**batch).logits
            loss = loss_fn(logits, targets[batch_idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            step += 1
            if on_step is not None:
                on_step(step, losses[-1])
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses[-20:]):.3f}")
            if step % eval_every == 0 or step >= total_steps:
                metrics = {"train_loss": float(np.mean(losses)), "epoch": float(epoch)}
                losses = []
                epoch_end = step % steps_per_epoch == 0 or step >= total_steps
                if epoch_end and eval_texts is not None and eval_labels is not None and len(eval_texts):
                    metrics["eval_loss"] = _eval_loss(model, tokenizer, eval_texts, eval_labels, config, loss_fn)
                metrics.update(selection.score(step))
                logger.info("step %d: %s", step, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
                if on_epoch_end is not None:
                    on_epoch_end(step, metrics)
                if selection.exhausted:
                    logger.info("early stopping at step %d (best step %d)", step, selection.best_step)
                    break
            if step >= total_steps:
                break
        if step >= total_steps or selection.exhausted:
            break
    bar.close()
    selection.restore_best()
    model.eval()
    return model, tokenizer


class _Selection:
    """Scores the selection set, remembers the best weights, says when patience is exhausted."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        config: FineTuneConfig,
        texts: Sequence[str] | None,
        labels: np.ndarray | None,
    ) -> None:
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.texts = list(texts) if texts is not None and labels is not None and len(texts) else None
        self.labels = labels
        self.best = -1.0
        self.best_step = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stale = 0

    @property
    def exhausted(self) -> bool:
        """Whether early stopping should end the run now."""
        return self.config.patience is not None and self.stale >= self.config.patience

    def score(self, step: int) -> dict[str, float]:
        """Macro PR-AUC on the selection set; keeps a copy of the trainable weights when it improves."""
        if self.texts is None or self.labels is None:
            return {}
        from sklearn.metrics import average_precision_score

        classifier = RiskClassifier(
            self.model,
            self.tokenizer,
            "in-training",
            self.config.max_length,
            batch_size=64,
            tail_tokens=self.config.tail_tokens,
        )
        proba = classifier.predict_proba(self.texts)
        value = float(
            np.mean([average_precision_score(self.labels[:, j], proba[:, j]) for j in range(self.labels.shape[1])])
        )
        if value > self.best:
            self.best, self.best_step, self.stale = value, step, 0
            self.best_state = {name: p.detach().clone() for name, p in self.model.named_parameters() if p.requires_grad}
        else:
            self.stale += 1
        return {"select_macro_pr_auc": value, "select_best_macro_pr_auc": self.best}

    def restore_best(self) -> None:
        """Put the best-scoring weights back (no-op without a selection set)."""
        if self.best_state is None:
            return
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in self.best_state.items():
                params[name].copy_(value)
        logger.info("kept the weights of step %d (selection macro PR-AUC %.4f)", self.best_step, self.best)


def _eval_loss(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    labels: np.ndarray,
    config: FineTuneConfig,
    loss_fn: torch.nn.Module,
) -> float:
    classifier = RiskClassifier(
        model,
        tokenizer,
        version="in-training",
        max_length=config.max_length,
        batch_size=64,
        tail_tokens=config.tail_tokens,
    )
    logits = torch.tensor(classifier.predict_logits(texts))
    return float(loss_fn(logits, torch.tensor(labels, dtype=torch.float32)))


def save_delta(model: torch.nn.Module, out_dir: Path, metadata: dict[str, Any]) -> Path:
    """Write what the method trained (LoRA delta, head, or encoder) and the commsrisk metadata."""
    out_dir.mkdir(parents=True, exist_ok=True)
    method = metadata.get("method", "lora")
    if isinstance(model, MeanPoolingClassifier):
        if method == "lora-mean":
            model.encoder.save_pretrained(str(out_dir))  # the adapters only
        save_mean_pooling(model, out_dir, full_encoder=method == "full")
        metadata = {**metadata, "kind": MEAN_POOLING_KIND}
    else:
        model.save_pretrained(str(out_dir))
    (out_dir / "README.md").unlink(missing_ok=True)  # peft's empty template; MODEL_CARD.md is ours
    full = {
        "risks": list(RISKS),
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **metadata,
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out_dir
