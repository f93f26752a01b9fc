"""Tokens in, within the classifier's length: a long message keeps its first and its last tokens.

Cutting at `max_length` keeps only the start of a long e-mail, and the risky ask is often at its
end ("... and delete this thread after"). `encode` keeps the head and the tail, dropping the
middle, so both ends reach the classifier. Training, scoring and explanations share it, so the
model always sees messages cut the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import BatchEncoding, PreTrainedTokenizerBase

from commsrisk.settings import DEFAULT_TAIL_TOKENS

__all__ = ["DEFAULT_TAIL_TOKENS", "cut_tokens", "encode", "keep_head_and_tail"]


def keep_head_and_tail(ids: list[Any], max_length: int, tail: int) -> list[Any]:
    """`ids` cut to `max_length`: its first `max_length - tail` and its last `tail` items."""
    if len(ids) <= max_length:
        return ids
    tail = min(max(tail, 0), max_length - 1)
    return ids[: max_length - tail] + (ids[len(ids) - tail :] if tail else [])


def cut_tokens(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int,
    tail_tokens: int,
    offsets: bool = False,
) -> dict[str, list[list[Any]]]:
    """`texts` tokenized, unpadded, each cut to `max_length` tokens keeping its head and tail.

    The special tokens stay in place: the head starts with the tokenizer's first token ([CLS] /
    <s>) and the closing one (</s>, [SEP]) ends every text, on top of the `tail_tokens` before
    it; with `tail_tokens=0` this is the tokenizer's own truncation.
    """
    closing = 1 if tokenizer.num_special_tokens_to_add() >= 2 else 0
    encoded = tokenizer(list(texts), truncation=False, return_offsets_mapping=offsets, verbose=False)
    return {
        key: [keep_head_and_tail(list(row), max_length, tail_tokens + closing) for row in encoded[key]]
        for key in encoded.keys()  # noqa: SIM118 (BatchEncoding is not a plain dict)
    }


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int,
    tail_tokens: int,
    offsets: bool = False,
) -> BatchEncoding:
    """Padded tensors ('pt') of `texts`, cut as `cut_tokens` does.

    With `offsets`, `offset_mapping` (character spans of the kept tokens, a list per text) comes
    back beside the tensors.
    """
    kept = cut_tokens(tokenizer, texts, max_length=max_length, tail_tokens=tail_tokens, offsets=offsets)
    spans = kept.pop("offset_mapping", None)
    batch = tokenizer.pad(kept, return_tensors="pt")
    if spans is not None:
        batch["offset_mapping"] = spans
    return batch
