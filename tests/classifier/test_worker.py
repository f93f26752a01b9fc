"""The forward pass in a worker process: the same scores, one thread fewer beside the NLP step, clear errors."""

from __future__ import annotations

import operator
import os
import shutil
import signal
import time
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import pytest

from commsrisk.classifier.model import load_classifier
from commsrisk.classifier.worker import WorkerRuntime
from commsrisk.errors import CommsriskError, ModelNotAvailableError
from commsrisk.schema import Message
from commsrisk.scoring import build_scorer
from commsrisk.settings import ModelSettings
from commsrisk.thresholds import BUILTIN_POLICY

from .test_onnx_runtime import TEXTS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pair(base_model_dir: Path):  # type: ignore[no-untyped-def]
    """The default model scored here and in a worker process, on the default runtime."""
    common = {"base_model": str(base_model_dir), "window_tokens": 64, "runtime": ModelSettings().runtime}
    here = load_classifier(str(REPO / "models/default"), **common)
    there = load_classifier(str(REPO / "models/default"), **common, worker_process=True)
    yield here, there
    there.close()


def test_the_worker_is_the_default() -> None:
    assert ModelSettings().worker_process is True


def test_a_worker_gives_the_same_scores_and_loads_no_weights_here(pair) -> None:  # type: ignore[no-untyped-def]
    here, there = pair
    assert there.model is None  # the weights live in the child until an explanation asks for them
    assert there.runtime.pid != os.getpid()
    np.testing.assert_array_equal(there.predict_logits(TEXTS), here.predict_logits(TEXTS))


def test_a_worker_gives_up_a_core_while_the_caller_works_beside_it(pair) -> None:  # type: ignore[no-untyped-def]
    _, there = pair
    worker = there.runtime
    with there.sharing_cores():
        there.predict_proba(TEXTS[:2])
        beside = worker.last_threads
    there.predict_proba(TEXTS[:2])
    assert beside == max(worker.threads - 1, 1)
    assert worker.last_threads == worker.threads


def test_a_scorer_on_a_worker_explains_with_the_model_loaded_here(scorer) -> None:  # type: ignore[no-untyped-def]
    assert scorer.classifier.runtime.__class__ is WorkerRuntime  # the session Scorer has the default settings
    message = Message(text="delete this chat after reading and call me on my private phone", message_id="w-1")
    result = scorer.score(message, explain="phrases")
    assert result.risks["off_channel"].flagged
    assert any(span.kind == "phrase" for span in result.risks["off_channel"].explanation.spans)
    assert scorer.classifier.model is not None  # loaded for the phrases, in this process


def test_a_model_the_worker_cannot_load_is_an_error_when_waited_for_and_at_each_batch() -> None:
    worker = WorkerRuntime(partial(operator.truediv, 1, 0))  # returns at once: the child loads in the background
    for attempt in (worker.ready, lambda: worker(np.zeros((1, 4), dtype=np.int64), np.ones((1, 4), dtype=np.int64))):
        with pytest.raises(ModelNotAvailableError, match=r"could not load the model \(ZeroDivisionError"):
            attempt()
    assert worker.close.alive is False  # the child was ended with the first error


def test_a_scorer_whose_worker_cannot_load_fails_at_start(settings, text_analyzer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "model"
    shutil.copytree(REPO / "models/default", broken)
    weights = next(broken.glob("*.safetensors"))
    weights.write_bytes(b"not weights")  # the parent checks what it can without the weights; the child loads them
    with pytest.raises(ModelNotAvailableError, match="classifier worker process could not load the model"):
        build_scorer(settings, classifier_location=str(broken), analyzer=text_analyzer, policy=lambda: BUILTIN_POLICY)


def test_a_closed_worker_ends_its_process() -> None:
    worker = WorkerRuntime(partial(operator.attrgetter, "shape"))  # a stand-in forward pass: nothing to load
    pid = worker.pid
    worker.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_dead_worker_is_an_error_that_says_so_not_a_hang(pair) -> None:  # type: ignore[no-untyped-def]
    _, there = pair  # the module's last test: its worker does not come back
    os.kill(there.runtime.pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(
        ModelNotAvailableError,
        match=r"worker process \(pid \d+\) exited with code -9; .* model.worker_process to false",
    ):
        there.predict_proba(TEXTS[:1])
    assert time.monotonic() - started < 10


def test_a_scorer_that_fails_to_build_ends_the_worker_it_started(settings, text_analyzer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "thresholds.yaml"
    policy.write_text("defaults: {leakage: 1.7}\n", encoding="utf-8")  # refused after the worker has started
    thresholds = settings.thresholds.model_copy(update={"policy_file": policy, "history_db": tmp_path / "h.db"})
    before = {child.pid for child in psutil.Process().children()}
    try:
        build_scorer(settings.model_copy(update={"thresholds": thresholds}), analyzer=text_analyzer)
    except CommsriskError as error:
        assert "thresholds.yaml" in str(error)
        # checked while the error holds the build's frames: the build ended the worker, not the collector
        left = [c.pid for c in psutil.Process().children() if c.pid not in before and c.is_running()]
    else:
        pytest.fail("an invalid policy was accepted")
    assert left == []
