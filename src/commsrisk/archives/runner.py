"""Score a whole archive into Parquet, chunk by chunk, so that a killed run continues where it stopped.

The inputs are read in their fixed order (`archives.inputs`) and cut into chunks of
`archive.chunk_size` records. Each chunk is scored, its results written under `results/`
(partitioned by sent date or business unit) and its rejected records under `rejected/`, and
then the checkpoint (`archives.checkpoint`) records it. A rerun skips the chunks on record and
scores the rest, so every message's result is written once, the same as in a run never stopped.

Identical messages (equal in `scoring.SCORED_FIELDS`: journaling copies, "ok", forwarded
blasts) within `archive.cache_chunks` chunks are scored once and share the scored columns. What
a chunk may reuse depends only on the chunks before it, and a rerun reloads those from disk,
so reuse never makes a resumed run differ from an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from commsrisk.archives.checkpoint import (
    REJECTED_DIR,
    RESULTS_DIR,
    ChunkDone,
    Manifest,
    save,
    start_or_resume,
    write_atomically,
)
from commsrisk.archives.inputs import InputItem, InputOptions, input_files, read_inputs
from commsrisk.archives.rows import SCORED_COLUMNS, content_key, message_columns, rows_table, scored_columns
from commsrisk.schema import RISKS, Explain
from commsrisk.scoring import Scorer
from commsrisk.settings import ArchiveSettings

logger = logging.getLogger(__name__)

SUMMARY = "summary.json"
NO_UNIT = "(none)"
"""How a message without a business unit is counted in the summary."""


@dataclass(frozen=True)
class ArchiveJob:
    """What to score, where to, and how."""

    inputs: Sequence[Path]
    out: Path
    reading: InputOptions = field(default_factory=InputOptions)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    explain: Explain = "signals"
    include_text: bool = False


@dataclass
class ArchiveSummary:
    """The counts of a whole run (all its chunks, from every rerun), as the summary file has them."""

    messages: int = 0
    scored: int = 0
    rejected: int = 0
    chunks: int = 0
    resumed_after: int = 0
    """Input records already done when this run started (0 for a run from the start)."""
    flags: dict[str, dict[str, int]] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


def score_archive(
    scorer: Scorer,
    job: ArchiveJob,
    *,
    restart: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ArchiveSummary:
    """Score `job.inputs` into `job.out`, or continue the run already there (see the module doc).

    `progress` is called with the number of input records done, first with those a rerun skips.

    Raises:
        InvalidInputError: an input is missing or unreadable, or `job.out` holds another run.
    """
    files = input_files(job.inputs)
    manifest = start_or_resume(job.out, files, _run_identity(scorer, job), restart=restart)
    resumed_after = manifest.consumed
    tick = progress or (lambda _: None)
    if manifest.finished:
        tick(resumed_after)
        return _summary(manifest, resumed_after, job.out)
    cache = _ScoredCache(job.archive.cache_chunks)
    cache.reload(job.out, manifest.chunks)
    items = read_inputs(files, job.reading)
    _skip(items, resumed_after)
    tick(resumed_after)
    logger.info("archive run: %d inputs, %d records already done", len(files), resumed_after)
    consumed = resumed_after
    while chunk := list(islice(items, job.archive.chunk_size)):
        consumed += len(chunk)
        done, scored = _score_chunk(scorer, chunk, len(manifest.chunks) + 1, consumed, cache, job)
        manifest.chunks.append(done)
        save(job.out, manifest)
        cache.push(scored)
        logger.info(
            "chunk %d: %d messages (%d scored), %d rejected", done.seq, done.messages, done.scored, done.rejected
        )
        tick(len(chunk))
    manifest.finished = True
    save(job.out, manifest)
    return _summary(manifest, resumed_after, job.out)


def _run_identity(scorer: Scorer, job: ArchiveJob) -> dict[str, Any]:
    """Everything a rerun must share with the run it continues."""
    reading = job.reading
    return {
        "chunk_size": job.archive.chunk_size,
        "cache_chunks": job.archive.cache_chunks,
        "partition_by": job.archive.partition_by,
        "explain": job.explain,
        "include_text": job.include_text,
        "column_map": dict(reading.column_map.columns),
        "business_unit": reading.business_unit,
        "limits": reading.limits.model_dump(),
        "day_first": reading.read.day_first,
        "assume_tz": str(reading.read.assume_tz),
        "model_version": scorer.model_version,
        "thresholds_version": scorer.policy().version,
    }


def _skip(items: Iterator[InputItem], count: int) -> None:
    for _ in islice(items, count):
        pass


def _score_chunk(
    scorer: Scorer,
    chunk: list[InputItem],
    seq: int,
    consumed: int,
    cache: _ScoredCache,
    job: ArchiveJob,
) -> tuple[ChunkDone, dict[str, dict[str, Any]]]:
    """Score one chunk, write its files, and say what it holds; nothing is on record until the caller saves."""
    messages = [item for item in chunk if item.message is not None]
    keys = [content_key(item.message) for item in messages if item.message is not None]
    new: dict[str, Any] = {}
    for item, key in zip(messages, keys, strict=True):
        if cache.get(key) is None and key not in new:
            new[key] = item.message
    results = scorer.score_batch(list(new.values()), explain=job.explain) if new else []
    scored = {key: scored_columns(result, key) for key, result in zip(new, results, strict=True)}
    chunk_scored: dict[str, dict[str, Any]] = {}
    rows = []
    for item, key in zip(messages, keys, strict=True):
        shared = scored.get(key) or cache.get(key)
        assert shared is not None and item.message is not None
        chunk_scored[key] = shared
        row = {**message_columns(item.message, item.source, item.position), **shared}
        if job.include_text:
            row["text"] = item.message.text
        rows.append(row)
    files = _write_results(job, seq, rows)
    rejected = [item for item in chunk if item.message is None]
    rejected_files = _write_rejected(job.out, seq, rejected)
    flags: dict[str, Counter[str]] = {}
    for row in rows:
        unit = row["business_unit"] or NO_UNIT
        counter = flags.setdefault(unit, Counter({risk: 0 for risk in RISKS}))
        counter.update(risk for risk in RISKS if row[f"flag_{risk}"])
    done = ChunkDone(
        seq=seq,
        consumed=consumed,
        files=[*files, *rejected_files],
        result_files=files,
        messages=len(rows),
        scored=len(new),
        rejected=len(rejected),
        flags={unit: dict(counter) for unit, counter in flags.items()},
        units=dict(Counter(row["business_unit"] or NO_UNIT for row in rows)),
        reasons=dict(Counter(item.reason or "unreadable record" for item in rejected)),
    )
    return done, chunk_scored


def _write_results(job: ArchiveJob, seq: int, rows: list[dict[str, Any]]) -> list[str]:
    """The chunk's rows in one Parquet file per partition; their names relative to the output folder."""
    partitions: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        partitions.setdefault(_partition(row, job.archive.partition_by), []).append(row)
    names = []
    for folder, part in sorted(partitions.items()):
        name = f"{RESULTS_DIR}/{folder}part-{seq:06d}.parquet"
        _write_table(job.out / name, rows_table(part, job.include_text))
        names.append(name)
    return names


def _partition(row: dict[str, Any], partition_by: str) -> str:
    """The row's partition folder (Hive style, so Spark, pandas and DuckDB read it as a column), or ''."""
    if partition_by == "date":
        sent_at = row["sent_at"]
        return f"sent_date={sent_at.astimezone(UTC).date().isoformat() if sent_at else 'unknown'}/"
    if partition_by == "business_unit":
        return f"unit={quote(row['business_unit'] or NO_UNIT, safe='')}/"
    return ""


REJECTED_SCHEMA = pa.schema([("source", pa.string()), ("position", pa.int64()), ("reason", pa.string())])


def _write_rejected(out: Path, seq: int, rejected: list[InputItem]) -> list[str]:
    if not rejected:
        return []
    name = f"{REJECTED_DIR}/part-{seq:06d}.parquet"
    rows = [{"source": item.source, "position": item.position, "reason": item.reason} for item in rejected]
    _write_table(out / name, pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA))
    return [name]


def _write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_atomically(path, sink.getvalue().to_pybytes())


class _ScoredCache:
    """The scored columns of the last `window` chunks by content key (see the module doc)."""

    def __init__(self, window: int) -> None:
        self._chunks: deque[dict[str, dict[str, Any]]] = deque(maxlen=window or None)
        self._window = window

    def get(self, key: str) -> dict[str, Any] | None:
        for chunk in reversed(self._chunks):
            found = chunk.get(key)
            if found is not None:
                return found
        return None

    def push(self, scored: dict[str, dict[str, Any]]) -> None:
        if self._window:
            self._chunks.append(scored)

    def reload(self, out: Path, chunks: Iterable[ChunkDone]) -> None:
        """What the last `window` finished chunks held, read back from their result files."""
        recent = list(chunks)[-self._window :] if self._window else []
        for chunk in recent:
            scored: dict[str, dict[str, Any]] = {}
            for name in chunk.result_files:
                for row in pq.read_table(out / name, columns=list(SCORED_COLUMNS)).to_pylist():
                    scored[row["content_key"]] = row
            self.push(scored)


def _summary(manifest: Manifest, resumed_after: int, out: Path) -> ArchiveSummary:
    """The run's totals over all its chunks, also written to `summary.json` in the output folder."""
    summary = ArchiveSummary(chunks=len(manifest.chunks), resumed_after=resumed_after)
    reasons: Counter[str] = Counter()
    units: Counter[str] = Counter()
    for chunk in manifest.chunks:
        summary.messages += chunk.messages
        summary.scored += chunk.scored
        summary.rejected += chunk.rejected
        reasons.update(chunk.reasons)
        units.update(chunk.units)
        for unit, flags in chunk.flags.items():
            merged = summary.flags.setdefault(unit, {risk: 0 for risk in RISKS})
            for risk, count in flags.items():
                merged[risk] += count
    summary.units = dict(sorted(units.items()))
    summary.reasons = dict(reasons.most_common())
    summary.flags = dict(sorted(summary.flags.items()))
    write_atomically(out / SUMMARY, json.dumps(asdict(summary), indent=1).encode("utf-8"))
    return summary
