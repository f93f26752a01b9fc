"""The classifier's forward pass in a process of its own, so it does not wait on the GIL.

The Scorer runs the forward pass in a thread beside the NLP step. The pass gives up the GIL in
each kernel but must take it back between kernels, and the NLP step (spaCy, Presidio) holds it
most of the time: measured on 2 cores, the two barely overlapped, and the classifier beside a
pure-Python loop ran at 15% of its speed alone. In a child process it has an interpreter of its
own, and the parent keeps tokenizing, windows, padding and explanations.

The two still share the cores. While the caller's own work runs beside a pass (`beside`: the
Scorer's NLP step), the child runs on one thread fewer, and on all of them once that work is
done: torch's threads wait on each other at every kernel, so one that shares its core with the
NLP step holds up the rest (on 2 cores, two torch threads beside the NLP step scored slower than
the GIL-bound thread it replaces).

One child per `WorkerRuntime`: a fresh interpreter (`python -m commsrisk.classifier.worker`; forking
a process whose torch and tokenizer threads run is not safe, and multiprocessing's "spawn" would
re-run the caller's main script). It loads the model itself, so the parent holds the weights only
when an explanation asks for them, and it loads in the background: its start-up (mostly importing
torch and transformers) overlaps the caller's own until `ready`. Parent and child talk over a
socket pair wrapped in `multiprocessing.connection.Connection` (pickled messages): padded token
ids in, logits out.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from commsrisk.errors import ModelNotAvailableError

logger = logging.getLogger(__name__)

Forward = Callable[[Any, Any], np.ndarray]
"""(input_ids, attention_mask) as torch tensors -> logits, shape (batch, len(RISKS))."""
START_TIMEOUT_S = 600.0
"""How long the child may take to load its model (a cold disk and an ONNX export included)."""


def _serve(conn: Connection) -> None:
    """The child: load the forward pass it is sent, say how many threads it has, then answer each batch.

    It ends when the parent closes its end of the socket, or exits (also while it still loads).
    """
    import torch

    load, threads = conn.recv()
    if threads:
        torch.set_num_threads(threads)
    try:
        forward = load()
    except Exception as err:  # the parent raises it where the model was asked for
        _answer(conn, ("error", f"{err.__class__.__name__}: {err}"))
        return
    if not _answer(conn, ("ready", torch.get_num_threads())):
        return
    while True:
        try:
            input_ids, attention_mask, wanted = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if wanted != torch.get_num_threads():
                torch.set_num_threads(wanted)
            logits = forward(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
            answer = ("ok", (np.ascontiguousarray(logits, dtype=np.float32), torch.get_num_threads()))
        except Exception as err:
            answer = ("error", f"{err.__class__.__name__}: {err}")
        if not _answer(conn, answer):
            return


def _answer(conn: Connection, message: tuple[str, Any]) -> bool:
    """Send `message` to the parent; False when the parent has gone (nobody to answer, so the child ends)."""
    try:
        conn.send(message)
    except OSError:
        return False
    return True


def _close(conn: Connection, process: subprocess.Popen[bytes], loaded: threading.Event) -> None:
    """Close the child's socket (it exits on EOF), then make sure it is gone.

    A child still loading reads no EOF until it has loaded, so it is ended at once.
    """
    conn.close()
    if not loaded.is_set():
        process.kill()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class WorkerRuntime:
    """A `RiskClassifier.runtime` whose forward pass runs in a child process.

    Raises ModelNotAvailableError (from `ready` or the first batch) when the child cannot load its
    model, when it has exited, and with the child's error when a batch fails. The child ends with
    this object, on `close`, or with this process.
    """

    def __init__(self, load: Callable[[], Forward], *, threads: int | None = None) -> None:
        """Start the child and send it `load`; it loads in the background (`ready` waits for it)."""
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the modules this process sees
        self._started = time.perf_counter()
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno())], pass_fds=[theirs.fileno()], env=env
        )
        theirs.close()  # only the child holds its end, so its exit reads as EOF here
        self._conn = Connection(ours.detach())
        self._loaded = threading.Event()
        self.close = weakref.finalize(self, _close, self._conn, self._process, self._loaded)
        self._lock = threading.Lock()
        """One exchange with the child at a time: each batch sent is followed by its answer."""
        self._state = threading.Lock()
        self._beside = 0
        self._threads: int | None = None
        self._failed: str | None = None
        self.last_threads: int | None = None
        """The torch threads the child says it ran the last batch on."""
        self._conn.send((load, threads))

    def ready(self) -> None:
        """Wait until the child has loaded its model.

        The child loads while the caller loads the rest (the Scorer its NLP pipelines), so the two
        start-ups overlap; the first batch waits here too.

        Raises:
            ModelNotAvailableError: the child could not load its model, or has exited.
        """
        with self._lock:
            self._await_ready()

    @property
    def threads(self) -> int:
        """The child's torch threads when nothing runs beside it (waits for the child to be ready)."""
        self.ready()
        assert self._threads is not None
        return self._threads

    def _await_ready(self) -> None:
        if self._failed is not None:
            raise ModelNotAvailableError(self._failed)
        if self._loaded.is_set():  # the one "loaded" flag: set with _threads, read by _close
            return
        try:
            kind, detail = self._receive(START_TIMEOUT_S)
        except ModelNotAvailableError as err:
            self._failed = str(err)
            self.close()
            raise
        if kind != "ready":
            self._failed = f"the classifier worker process could not load the model ({detail})"
            self.close()
            raise ModelNotAvailableError(self._failed)
        self._threads = detail
        self._loaded.set()
        logger.info(
            "classifier worker started: pid=%s threads=%d in %.1f s",
            self._process.pid,
            detail,
            time.perf_counter() - self._started,
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    @contextmanager
    def beside(self) -> Iterator[None]:
        """While inside, batches run on one thread fewer: the caller's own work takes a core."""
        with self._state:
            self._beside += 1
        try:
            yield
        finally:
            with self._state:
                self._beside -= 1

    def __call__(self, input_ids: Any, attention_mask: Any) -> np.ndarray:
        """Logits of one padded batch, computed in the child."""
        with self._lock:
            self._await_ready()
            assert self._threads is not None
            threads = max(self._threads - 1, 1) if self._beside else self._threads
            if self._process.poll() is not None:
                raise ModelNotAvailableError(self._exited())
            try:
                self._conn.send((input_ids.numpy(), attention_mask.numpy(), threads))
            except OSError as err:  # a broken pipe: the child is gone
                raise ModelNotAvailableError(self._exited()) from err
            kind, detail = self._receive(None)
        if kind != "ok":
            raise ModelNotAvailableError(f"the classifier worker process failed on a batch ({detail})")
        logits, self.last_threads = detail
        return logits  # type: ignore[no-any-return]

    def _receive(self, timeout_s: float | None) -> tuple[str, Any]:
        """The child's next answer, or ModelNotAvailableError once it has exited without one."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._conn.poll(0.5):
            if self._process.poll() is not None and not self._conn.poll(0):
                raise ModelNotAvailableError(self._exited())
            if deadline is not None and time.monotonic() > deadline:
                raise ModelNotAvailableError(f"the classifier worker did not load the model within {timeout_s:.0f} s")
        try:
            return self._conn.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError) as err:
            raise ModelNotAvailableError(self._exited()) from err

    def _exited(self) -> str:
        return (
            f"the classifier worker process (pid {self._process.pid}) exited with code {self._process.poll()}; "
            "restart the service, or set model.worker_process to false to score in this process"
        )


if __name__ == "__main__":  # the child: its end of the socket pair is the one argument
    _serve(Connection(int(sys.argv[1])))
