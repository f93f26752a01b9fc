"""A killed `commsrisk reviews import` stores all of its file or none of it, and a rerun stores it once.

Real subprocesses on a real SQLite store: a 10,000-row export is imported once in full (timed),
then three more times into fresh stores with a SIGKILL at a random moment, one anywhere in the
run and two while the transaction is being written. The seed is in every assertion message.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from commsrisk.reviews.store import ReviewStore
from commsrisk.settings import ReviewSettings

pytestmark = pytest.mark.slow

ROWS = 10_000
COMMSRISK = str(Path(sys.executable).with_name("commsrisk"))
STORING = "storing"
"""What the import prints on stderr just before it opens its transaction."""


class ImportRun:
    """`commsrisk reviews import` in a subprocess, noting when it starts storing."""

    def __init__(self, export: Path, url: str) -> None:
        self.started = time.monotonic()
        self.storing = threading.Event()
        self.storing_at = 0.0
        self.stderr: list[str] = []
        self.proc = subprocess.Popen(
            [COMMSRISK, "reviews", "import", str(export)],
            env={**os.environ, "COMMSRISK_REVIEWS__URL": url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if STORING in line and not self.storing.is_set():
                self.storing_at = time.monotonic()
                self.storing.set()

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        # stdout only: stderr is the reader thread's alone (communicate() would read it too and
        # could take the "storing" line first, leaving storing_at at 0)
        self.proc.wait(timeout=timeout)
        assert self.proc.stdout is not None
        stdout = self.proc.stdout.read()
        self._reader.join(timeout=5)
        return self.proc.returncode, stdout


def count(url: str) -> int:
    with ReviewStore.open(ReviewSettings(url=url)) as store:  # opening after a crash recovers the WAL
        return store.count()


def test_a_killed_import_stores_all_or_nothing_and_a_rerun_stores_the_file_once(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    with export.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["message_id", "text", "leakage", "misconduct", "off_channel", "reviewer", "decided_at"])
        writer.writerows(
            [f"k-{i}", f"short message {i}", i % 2, 0, "", "ann", "2026-05-04T09:00:00Z"] for i in range(ROWS)
        )
    full = ImportRun(export, f"sqlite:///{tmp_path / 'full.sqlite'}")
    code, stdout = full.finish()
    ended = time.monotonic()
    assert code == 0, "".join(full.stderr)[-2000:]
    assert json.loads(stdout)["accepted"] == ROWS
    assert full.storing.is_set(), "the import never said it was storing"
    run_s, write_s = ended - full.started, ended - full.storing_at

    seed = int(time.time())
    rng = random.Random(seed)
    outcomes = []
    for attempt, while_storing in enumerate((False, True, True)):
        url = f"sqlite:///{tmp_path / f'killed-{attempt}.sqlite'}"
        run = ImportRun(export, url)
        if while_storing:  # somewhere between opening the transaction and the process' end
            assert run.storing.wait(timeout=60), "".join(run.stderr)[-2000:]
            delay = rng.uniform(0, write_s)
            time.sleep(delay)
        else:  # anywhere from the start
            delay = rng.uniform(0, run_s)
            time.sleep(max(0.0, run.started + delay - time.monotonic()))
        run.proc.send_signal(signal.SIGKILL)
        run.finish()
        stored = count(url)
        outcomes.append((round(delay, 3), while_storing, stored))
        context = f"seed {seed}, runs (delay s, while storing, rows stored): {outcomes}"
        assert stored in (0, ROWS), context

        rerun = ImportRun(export, url)
        code, stdout = rerun.finish()
        assert code == 0, context + "".join(rerun.stderr)[-2000:]
        summary = json.loads(stdout)
        assert (summary["accepted"], summary["duplicates"]) == (ROWS - stored, stored), context
        assert count(url) == ROWS, context
