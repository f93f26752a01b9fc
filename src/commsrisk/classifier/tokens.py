"""Tokens in, within the classifier's length: how a long message reaches the classifier.

Cutting at `max_length` keeps only the start of a long e-mail, and the risky ask is often at its
end ("... and delete this thread after"). Two ways are here. `encode` keeps the head and the tail
(`tail_tokens`), dropping the middle: training and phrase explanations use it. `token_windows`
cuts a long message into overlapping windows the classifier scores one by one, the message
taking each risk's highest window: scoring uses it (`ModelSettings.window_tokens`), because on
the dev set it kept the ask wherever it was, where head + tail did not
(`benchmarks/long_messages.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import BatchEncoding, PreTrainedTokenizerBase

from commsrisk.settings import DEFAULT_TAIL_TOKENS

__all__ = ["DEFAULT_TAIL_TOKENS", "cut_tokens", "encode", "keep_head_and_tail", "token_windows"]


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


def token_windows(
    ids: list[Any], *, max_length: int, window: int, max_windows: int, framed: bool = True
) -> list[list[Any]]:
    """`ids` (one text, special tokens included) as the token lists the classifier scores.

    A text within `max_length` is one item, as it is. A longer one becomes windows of `window`
    tokens (with `framed`, its first and last special token around each), half a window apart,
    the last one ending at the text's end; with more than `max_windows`, that many spread evenly
    from the first to the last, so the start and the end of the text are always scored.
    """
    if len(ids) <= max_length:
        return [ids]
    head, body, tail = (ids[:1], ids[1:-1], ids[-1:]) if framed else ([], ids, [])
    size = max(window - len(head) - len(tail), 1)
    stride = max(size // 2, 1)
    starts = list(range(0, max(len(body) - size, 0) + 1, stride))
    if starts[-1] + size < len(body):
        starts.append(len(body) - size)
    if len(starts) > max_windows:
        step = (len(starts) - 1) / max(max_windows - 1, 1)
        starts = sorted({starts[round(k * step)] for k in range(max_windows)})
    return [[*head, *body[start : start + size], *tail] for start in starts]
