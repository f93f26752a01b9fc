"""The checkpoint of an archive run: what is done, kept in the output folder as `manifest.json`.

A chunk is done when its result and rejection files are on disk (each written to a temporary
name, flushed and renamed) and the manifest that lists them has been replaced the same way.
A kill at any moment therefore leaves either the chunk in the manifest with all its files, or
not in it at all, with perhaps some files nobody lists; a rerun deletes those and scores that
chunk again. Each input record belongs to one chunk by its place in the inputs' fixed order, so
every message's result is written exactly once.

A rerun continues only a run of the same inputs (path, size, modification time) and the same
options, models and thresholds; anything else is refused with what differs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from commsrisk.errors import InvalidInputError

MANIFEST = "manifest.json"
RESULTS_DIR = "results"
REJECTED_DIR = "rejected"


class InputFile(BaseModel):
    """An input as the checkpoint knows it: a changed file is a different run."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> InputFile:
        """The fingerprint of a file, or of a folder read as one export (its files' sizes and times)."""
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            stats = [p.stat() for p in files]
            return cls(
                path=str(path.resolve()),
                size=sum(s.st_size for s in stats),
                mtime_ns=max((s.st_mtime_ns for s in stats), default=0),
            )
        stat = path.stat()
        return cls(path=str(path.resolve()), size=stat.st_size, mtime_ns=stat.st_mtime_ns)


class ChunkDone(BaseModel):
    """One finished chunk: where it ends in the inputs, its files and its counts."""

    seq: int
    consumed: int = Field(..., description="Input records read through the end of this chunk, all chunks so far.")
    files: list[str] = Field(..., description="Result and rejection files, relative to the output folder.")
    result_files: list[str]
    messages: int
    scored: int = Field(..., description="Messages run through the models (the others reused an identical one's).")
    rejected: int
    flags: dict[str, dict[str, int]] = Field(default_factory=dict, description="Business unit -> risk -> flags.")
    units: dict[str, int] = Field(default_factory=dict, description="Business unit -> messages.")
    reasons: dict[str, int] = Field(default_factory=dict, description="Rejection reason -> records.")


class Manifest(BaseModel):
    """The run's identity (inputs, options, versions) and its finished chunks, in order."""

    inputs: list[InputFile]
    run: dict[str, Any] = Field(..., description="Options, model and thresholds versions: a rerun must match.")
    chunks: list[ChunkDone] = Field(default_factory=list)
    finished: bool = False

    @property
    def consumed(self) -> int:
        """Input records already done."""
        return self.chunks[-1].consumed if self.chunks else 0


def start_or_resume(out: Path, inputs: Sequence[Path], run: dict[str, Any], *, restart: bool) -> Manifest:
    """The manifest to go on from: the folder's own when it is this run's, else a new one.

    Files under the output folder that no finished chunk lists (a chunk cut short by a kill)
    are deleted. With `restart`, an earlier run's results are deleted and the run starts over.

    Raises:
        InvalidInputError: the folder holds a run of other inputs or options (naming what
            differs), or something that is not a run's output.
    """
    fingerprint = [InputFile.of(path) for path in inputs]
    fresh = Manifest(inputs=fingerprint, run=run)
    path = out / MANIFEST
    if restart:
        _clear(out, keep=set())
    elif path.is_file():
        found = Manifest.model_validate_json(path.read_bytes())
        difference = _difference(found, fresh)
        if difference:
            raise InvalidInputError(
                f"{out} holds a run with {difference}; give a new --out, or --restart to score again from the start"
            )
        _clear(out, keep={name for chunk in found.chunks for name in chunk.files})
        return found
    elif out.exists() and any(out.iterdir()):
        raise InvalidInputError(f"{out} is not empty and holds no {MANIFEST}; give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    save(out, fresh)
    return fresh


def _difference(found: Manifest, wanted: Manifest) -> str | None:
    if [f.path for f in found.inputs] != [f.path for f in wanted.inputs]:
        return "other inputs"
    for old, new in zip(found.inputs, wanted.inputs, strict=True):
        if old != new:
            return f"input {new.path} changed since (size or modification time)"
    for name in sorted(set(found.run) | set(wanted.run)):
        if found.run.get(name) != wanted.run.get(name):
            return f"another {name} ({found.run.get(name)!r}, now {wanted.run.get(name)!r})"
    return None


def _clear(out: Path, keep: set[str]) -> None:
    """Delete result and rejection files not in `keep` (relative names), and leftover temporary files."""
    for folder in (out / RESULTS_DIR, out / REJECTED_DIR):
        if not folder.is_dir():
            continue
        for file in sorted(folder.rglob("*"), reverse=True):
            relative = file.relative_to(out).as_posix()
            if file.is_file() and relative not in keep:
                file.unlink()
            elif file.is_dir() and not any(file.iterdir()):
                file.rmdir()
    for name in (MANIFEST + ".tmp", "summary.json"):
        (out / name).unlink(missing_ok=True)


def save(out: Path, manifest: Manifest) -> None:
    """Replace the manifest on disk in one step (written, flushed, renamed, folder flushed)."""
    write_atomically(out / MANIFEST, manifest.model_dump_json(indent=1).encode("utf-8"))


def write_atomically(path: Path, data: bytes) -> None:
    """`data` at `path`, all or nothing: readers and a rerun after a kill never see half a file."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
