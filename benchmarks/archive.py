"""Archive runs: throughput of `score-archive` and of the Spark job, and peak memory on 200,000 messages.

    .venv/bin/python benchmarks/archive.py                      # everything (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/archive.py --parts memory       # only the memory comparison
    .venv/bin/python benchmarks/archive.py --parts throughput spark --messages 5000

The issue's targets: "memory stays flat (peak RSS within 300 MB of a 1,000-message run) on a
200,000-message input", and the Spark job's throughput on `local[2]`.

Inputs are made by tests/utils/archives.py from the seed corpus (never the dev set): `n`
messages drawn from `distinct` texts, each with its own id, sender, time and conversation, a bad
record every 997. Archives repeat themselves, and `score-archive` scores identical messages once,
so throughput is shown two ways: messages drawn from as many texts as messages (about 63%
distinct, near the models' own speed; the summary's `scored_by_models` says how many went through
the models), and drawn from 1,000 texts (what a lookback run sees when copies are common).

Every run is the real command in its own process (`commsrisk score-archive`), its peak RSS from
`wait4`; the Spark run is `local[2]` in this process's child. Writes benchmarks/results/archive.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.utils.archives import write_parquet_archive  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "archive.json"
COMMAND = [str(Path(sys.executable).parent / "commsrisk"), "score-archive"]
MEMORY_BUDGET_MB = 300.0


def run_archive(archive: Path, out: Path, *extra: str) -> dict[str, Any]:
    """One `score-archive` run in its own process: wall time, peak RSS, and its summary."""
    env = {**os.environ, "COMMSRISK_MODEL__CLASSIFIER": "models/default"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [*COMMAND, str(archive), "--out", str(out), *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"score-archive failed ({code}): {stderr.decode()[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "messages": summary["messages"],
        "scored_by_models": summary["scored"],
        "rejected": summary["rejected"],
        "msg_per_s": round(summary["messages"] / seconds, 1),
    }


def throughput(work: Path, messages: int) -> dict[str, Any]:
    """`score-archive` on `messages` records drawn from as many texts (mostly distinct), then from 1,000."""
    figures = {}
    for name, distinct in (("drawn from as many texts", messages), ("drawn from 1,000 texts", 1_000)):
        archive = work / f"throughput-{distinct}.parquet"
        write_parquet_archive(archive, n=messages, distinct=distinct)
        figures[name] = run_archive(archive, work / f"out-{distinct}")
        print(f"score-archive, {messages:,} messages, {name}: {figures[name]}", flush=True)
    return figures


def memory(work: Path, large: int) -> dict[str, Any]:
    """Peak RSS of a 1,000-message run against a `large`-message run (same generator, 2,000 texts)."""
    figures = {}
    for n in (1_000, large):
        archive = work / f"memory-{n}.parquet"
        write_parquet_archive(archive, n=n, distinct=2_000)
        figures[f"{n:,} messages"] = run_archive(archive, work / f"memory-out-{n}")
        print(f"score-archive, {n:,} messages: {figures[f'{n:,} messages']}", flush=True)
    small, big = figures["1,000 messages"]["peak_rss_mb"], figures[f"{large:,} messages"]["peak_rss_mb"]
    figures["growth_mb"] = round(big - small, 1)
    figures["verdict"] = "PASS" if big - small <= MEMORY_BUDGET_MB else "FAIL"
    print(
        f"peak RSS {small} MB -> {big} MB (+{big - small:.1f} MB, budget {MEMORY_BUDGET_MB:.0f}): {figures['verdict']}"
    )
    return figures


def spark(work: Path, messages: int) -> dict[str, Any]:
    """The Spark job on local[2] over `messages` records drawn from 1,000 texts, then from as many."""
    from pyspark.sql import SparkSession

    from commsrisk.archives.spark import read_archive_parquet, score_dataframe, write_results

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("commsrisk-benchmark")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    figures = {}
    try:
        for name, distinct in (("drawn from 1,000 texts", 1_000), ("drawn from as many texts", messages)):
            archive = work / f"spark-{distinct}.parquet"
            write_parquet_archive(archive, n=messages, distinct=distinct)
            started = time.perf_counter()
            frame = read_archive_parquet(session, [str(archive)], partitions=2)
            write_results(score_dataframe(frame, classifier_location=str(REPO / "models/default")), str(work / name))
            seconds = time.perf_counter() - started
            figures[name] = {"seconds": round(seconds, 1), "msg_per_s": round(messages / seconds, 1)}
            print(f"spark local[2], {messages:,} messages, {name}: {figures[name]}", flush=True)
    finally:
        session.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["throughput", "spark", "memory"],
                        choices=["throughput", "spark", "memory"])  # fmt: skip
    parser.add_argument("--messages", type=int, default=5_000, help="Messages of the throughput and Spark runs.")
    parser.add_argument("--large", type=int, default=200_000, help="Messages of the memory run.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report: dict[str, Any] = {"command": " ".join(["benchmarks/archive.py", *sys.argv[1:]]), "cores": os.cpu_count()}
    if args.out.is_file():
        report = {**json.loads(args.out.read_text()), **report}
    with tempfile.TemporaryDirectory(prefix="commsrisk-archive-bench-") as folder:
        work = Path(folder)
        if "throughput" in args.parts:
            report["throughput"] = throughput(work, args.messages)
        if "spark" in args.parts:
            report["spark"] = spark(work, args.messages)
        if "memory" in args.parts:
            report["memory"] = memory(work, args.large)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
