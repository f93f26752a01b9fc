"""Long messages reach the classifier whole: windows for scoring, head + tail for training (real tokenizer and the
committed classifier)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from commsrisk.classifier.model import quiet_transformers
from commsrisk.classifier.tokens import encode, keep_head_and_tail, token_windows
from commsrisk.schema import RISKS

FILLER = "The offsite agenda is in the shared drive, please add your topics by Wednesday. " * 20
ASK = "Delete this thread and text me on my personal WhatsApp instead."


@pytest.fixture(scope="module")
def tokenizer(base_model_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    quiet_transformers()
    return AutoTokenizer.from_pretrained(str(base_model_dir))


def test_short_ids_are_kept_whole() -> None:
    assert keep_head_and_tail(list(range(5)), 8, 3) == [0, 1, 2, 3, 4]


def test_long_ids_keep_head_and_tail() -> None:
    assert keep_head_and_tail(list(range(20)), 8, 3) == [0, 1, 2, 3, 4, 17, 18, 19]
    assert keep_head_and_tail(list(range(20)), 8, 0) == list(range(8))
    assert keep_head_and_tail(list(range(20)), 8, 50) == [0, *range(13, 20)], "the first token always stays"


def test_encode_keeps_the_ask_at_the_end_of_a_long_email(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = FILLER + ASK
    batch = encode(tokenizer, [text, "ok"], max_length=128, tail_tokens=32)
    ids = batch["input_ids"][0].tolist()
    assert len(ids) == 128 and batch["attention_mask"][0].sum().item() == 128
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert "WhatsApp" in tokenizer.decode(ids[-33:]), "the tail holds the last words"
    head_only = encode(tokenizer, [text], max_length=128, tail_tokens=0)["input_ids"][0].tolist()
    assert head_only == tokenizer(text, truncation=True, max_length=128)["input_ids"], "tail 0: plain truncation"
    short = batch["attention_mask"][1].sum().item()
    assert batch["input_ids"][1][:short].tolist() == tokenizer("ok")["input_ids"], "short messages are untouched"


def test_offsets_point_at_the_kept_characters(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = FILLER + ASK
    batch = encode(tokenizer, [text], max_length=128, tail_tokens=32, offsets=True)
    spans = [span for span in batch["offset_mapping"][0] if span[1] > span[0]]
    assert len(batch["offset_mapping"][0]) == 128
    assert spans[-1][1] == len(text), "the last kept token ends the text"
    assert text[spans[-1][0] : spans[-1][1]] in ASK


def test_windows_cover_a_long_text_from_its_start_to_its_end() -> None:
    ids = [0, *range(100, 140), 2]  # <s>, 40 tokens, </s>
    assert token_windows(ids, max_length=64, window=10, max_windows=99) == [ids], "within max_length: as it is"
    windows = token_windows(ids, max_length=16, window=10, max_windows=99)
    assert all(w[0] == 0 and w[-1] == 2 and len(w) == 10 for w in windows), "each window is framed, window long"
    assert windows[0][1:-1] == list(range(100, 108)) and windows[-1][1:-1] == list(range(132, 140))
    assert windows[1][1] == 104, "half a window apart"
    covered = {token for w in windows for token in w[1:-1]}
    assert covered == set(range(100, 140)), "no token is left out"
    capped = token_windows(ids, max_length=16, window=10, max_windows=3)
    assert len(capped) == 3 and capped[0] == windows[0] and capped[-1] == windows[-1], "the ends always stay"
    bare = token_windows(list(range(40)), max_length=16, window=10, max_windows=99, framed=False)
    assert bare[0] == list(range(10)) and bare[-1] == list(range(30, 40))


def test_the_classifier_sees_a_risk_at_the_end_of_a_long_email(scorer) -> None:  # type: ignore[no-untyped-def]
    """Scored in windows, an off-channel ask after 20 lines of office logistics still raises the score."""
    classifier = scorer.classifier
    kept = classifier.window_tokens
    assert kept > 0, "the default scores long messages in windows"
    try:
        with torch.inference_mode():
            windowed = classifier.predict_logits([FILLER + ASK, FILLER, ASK])
            classifier.window_tokens = 0
            head_only = classifier.predict_logits([FILLER + ASK, FILLER, ASK])
    finally:
        classifier.window_tokens = kept
    off_channel = RISKS.index("off_channel")
    assert windowed[0, off_channel] > windowed[1, off_channel] + 1.0
    assert abs(head_only[0, off_channel] - head_only[1, off_channel]) < 1e-3, "head only, the ask is never seen"
    assert abs(windowed[2] - head_only[2]).max() < 1e-4, "a short message is scored as before"
