"""`commsrisk score-archive`: a real run over a real archive, killed at a random point and rerun.

The runs are the command itself in a subprocess (real models, real Parquet), so that the kill is
a real SIGKILL: no cleanup code runs, and whatever the run left on disk is what the rerun finds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from commsrisk.archives.checkpoint import MANIFEST
from commsrisk.archives.inputs import InputOptions
from commsrisk.archives.rows import SCHEMA
from commsrisk.archives.runner import ArchiveJob, score_archive
from commsrisk.errors import InvalidInputError
from commsrisk.ingest.columns import ColumnMap
from commsrisk.settings import ArchiveSettings, Settings
from tests.ingest.test_archive_readers import email, files
from tests.utils.archives import write_parquet_archive

REPO = Path(__file__).resolve().parents[2]
COMMAND = [str(Path(sys.executable).parent / "commsrisk"), "score-archive"]


def _env() -> dict[str, str]:
    return {**os.environ, "COMMSRISK_MODEL__CLASSIFIER": "models/default", "COMMSRISK_MODEL__TORCH_THREADS": "2"}


def _run(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*COMMAND, *map(str, args)], cwd=REPO, env=_env(), capture_output=True, timeout=900)


def _results(out: Path) -> pd.DataFrame:
    """Every result row of a run, sorted by message id, with the partition folder as a column."""
    frame = pd.read_parquet(out / "results")
    frame["sent_date"] = frame["sent_date"].astype(str)
    return frame.sort_values("message_id").reset_index(drop=True)


def _rejected(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "rejected").sort_values("position").reset_index(drop=True)


CHUNK = ["--chunk-size", "2000"]


@dataclass(frozen=True)
class ArchiveRun:
    """An archive of 50,000 messages (300 distinct texts, some bad records) and its uninterrupted run."""

    archive: Path
    bad: int
    out: Path


@pytest.fixture(scope="module")
def archive_run(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> ArchiveRun:
    root = tmp_path_factory.mktemp("archive")
    archive = root / "archive.parquet"
    bad = write_parquet_archive(archive, n=50_000, distinct=300)
    whole = _run(archive, "--out", root / "whole", *CHUNK)
    assert whole.returncode == 1, whole.stderr.decode()[-3000:]  # 1: some records rejected, the rest scored
    return ArchiveRun(archive, bad, root / "whole")


@pytest.mark.slow
def test_a_killed_run_rerun_scores_every_message_once_as_an_uninterrupted_run(
    tmp_path: Path, archive_run: ArchiveRun
) -> None:
    archive, bad, chunk = archive_run.archive, archive_run.bad, CHUNK
    out = tmp_path / "killed"
    process = subprocess.Popen([*COMMAND, str(archive), "--out", str(out), *chunk], cwd=REPO, env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    rng = random.Random()
    stop_after = rng.randint(2, 21)  # chunks on record before the kill; 25 in all
    seen: list[float] = []  # when each new count of chunks on record was first seen
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        manifest = out / MANIFEST
        done = len(json.loads(manifest.read_bytes())["chunks"]) if manifest.is_file() else 0
        if done > len(seen):
            seen.extend([time.monotonic()] * (done - len(seen)))
        if done >= stop_after:
            # Anywhere inside the next chunk, writing files included: the delay is bounded by the pace
            # of the run itself (chunks of repeated texts are cache hits and take a fraction of a second).
            pace = seen[-1] - seen[-2] if len(seen) >= 2 and seen[-1] > seen[-2] else 0.05
            time.sleep(rng.uniform(0, 0.5 * pace))
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = len(json.loads((out / MANIFEST).read_bytes())["chunks"])
    assert 0 < killed_at < 25

    rerun = _run(archive, "--out", out, *chunk)
    assert rerun.returncode == 1, rerun.stderr.decode()[-3000:]
    assert f"continuing after {killed_at * 2000:,} records already done" in rerun.stderr.decode()

    expected, got = _results(archive_run.out), _results(out)
    assert len(got) == 50_000 - bad
    assert got["message_id"].is_unique
    pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_frame_equal(_rejected(out), _rejected(archive_run.out))
    assert len(_rejected(out)) == bad
    summary = json.loads((out / "summary.json").read_text())
    assert summary["messages"] == 50_000 - bad and summary["rejected"] == bad
    assert summary == {
        **json.loads((archive_run.out / "summary.json").read_text()),
        "resumed_after": killed_at * 2000,
    }
    assert set(SCHEMA.names) <= set(got.columns) and "text" not in got.columns


def test_a_rerun_with_other_options_or_changed_inputs_is_refused(tmp_path: Path, scorer) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / "archive.jsonl"
    archive.write_text(
        "\n".join(json.dumps({"message_id": f"m{i}", "text": t}) for i, t in enumerate(["ok", "call my cell", "ok"]))
        + "\n"
    )
    out = tmp_path / "out"
    first = score_archive(scorer, ArchiveJob(inputs=[archive], out=out, include_text=True))
    assert (first.messages, first.scored, first.rejected) == (3, 2, 0)  # "ok" twice, scored once
    with pytest.raises(InvalidInputError, match=r"another include_text \(True, now False\)"):
        score_archive(scorer, ArchiveJob(inputs=[archive], out=out))
    assert score_archive(scorer, ArchiveJob(inputs=[archive], out=out, include_text=True)).resumed_after == 3
    archive.write_text(archive.read_text() + json.dumps({"text": "new"}) + "\n")
    with pytest.raises(InvalidInputError, match="changed since"):
        score_archive(scorer, ArchiveJob(inputs=[archive], out=out, include_text=True))
    again = score_archive(scorer, ArchiveJob(inputs=[archive], out=out), restart=True)
    assert (again.messages, again.resumed_after) == (4, 0)
    rows = pq.read_table(out / "results").to_pandas()
    assert len(rows) == 4 and "text" not in rows.columns
    assert rows["message_id"].str.startswith("sha256:").sum() == 1  # the record without an id gets a stable hash
    with pytest.raises(InvalidInputError, match="not empty and holds no manifest"):
        score_archive(scorer, ArchiveJob(inputs=[archive], out=tmp_path))


def test_a_folder_of_exports_is_scored_and_every_bad_record_reported(tmp_path: Path, scorer) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / "archive"
    files(archive)  # one mbox, .eml, .msg, WhatsApp, Slack and Teams file
    (archive / "cut.mbox").write_bytes(email("Send me the client list on my gmail", "d@example.com").as_bytes()[:-40]
                                      + b"\nFrom - Mon Jan  1\nSubject: half a mes")  # fmt: skip
    (archive / "notes.bin").write_bytes(b"\x00\x01 binary")
    (archive / "chat2.txt").write_bytes(
        "01/02/2024, 09:00 - Ana: hola\n\xff\xfe garbage line\n".encode("latin-1", "replace")
    )
    (archive / "table.csv").write_text("id,body\nr1,Borra este chat\nr2,\n", encoding="utf-8")
    job = ArchiveJob(
        inputs=[archive],
        out=tmp_path / "out",
        reading=InputOptions(column_map=ColumnMap.parse(["message_id=id", "text=body"]), business_unit="wealth"),
        archive=ArchiveSettings(partition_by="business_unit", chunk_size=4),
    )
    summary = score_archive(scorer, job)
    rows = pd.read_parquet(tmp_path / "out" / "results")
    rejected = pd.read_parquet(tmp_path / "out" / "rejected")
    assert summary.messages == len(rows) and summary.rejected == len(rejected)
    assert set(rows["unit"].astype(str)) == {"wealth"} and set(rows["business_unit"]) == {"wealth"}
    assert {"email", "whatsapp", "slack", "teams"} <= set(rows["channel"])
    assert "r1" in set(rows["message_id"])
    reasons = dict(zip(rejected["source"].map(lambda s: Path(s).name), rejected["reason"], strict=False))
    assert reasons["notes.bin"].startswith("not a known archive format")
    assert "text is empty" in reasons["table.csv"]
    assert {"cut.mbox", "notes.bin", "table.csv"} <= set(reasons)
    assert "text" not in rows.columns and not any("Borra" in str(v) for v in rows.to_numpy().ravel())


@pytest.mark.slow
def test_spark_local_scores_the_archive_as_score_archive_does(
    tmp_path: Path, archive_run: ArchiveRun, settings: Settings
) -> None:
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    from commsrisk.archives.spark import read_archive_parquet, score_dataframe, write_results

    os.environ.update(
        PYSPARK_PYTHON=sys.executable,
        COMMSRISK_MODEL__BASE_MODEL=str(settings.model.base_model),
        COMMSRISK_THRESHOLDS__POLICY_FILE=str(REPO / "config/thresholds.yaml"),
        COMMSRISK_THRESHOLDS__HISTORY_DB=str(REPO / ".commsrisk/thresholds_history.sqlite"),
    )
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("commsrisk-test")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "5000")
        .getOrCreate()
    )
    try:
        frame = read_archive_parquet(spark, [str(archive_run.archive)], partitions=2)
        scored = score_dataframe(frame, classifier_location=str(REPO / "models/default"))
        write_results(scored, str(tmp_path / "spark"))
    finally:
        spark.stop()
    local, on_spark = _results(archive_run.out), _results(tmp_path / "spark")
    assert len(on_spark) == len(local) == 50_000 - archive_run.bad
    scores = [c for c in local.columns if c.startswith("score_")]
    exact = [c for c in local.columns if c not in scores and c != "evidence"]
    pd.testing.assert_frame_equal(on_spark[exact], local[exact], check_dtype=False, check_categorical=False)
    # the same decisions; scores within 1e-3: bfloat16 kernels (model.runtime torch-bf16) split the work
    # differently with one thread per Spark worker than with two, and rounding follows
    pd.testing.assert_frame_equal(on_spark[scores], local[scores], atol=1e-3, rtol=0)
    pd.testing.assert_frame_equal(_rejected(tmp_path / "spark"), _rejected(archive_run.out), check_dtype=False)
