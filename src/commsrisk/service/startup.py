"""A service that cannot start says why once and stops, instead of being restarted every few seconds.

BentoML's arbiter respawns a worker whose `__init__` raises, forever, outside a container (and
inside one it keeps an arbiter with no worker). A bad model or policy never heals by itself, so
the worker logs the error (which names the file) and asks its arbiter to shut the server down.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from commsrisk.errors import CommsriskError

logger = logging.getLogger("commsrisk.service")

STARTUP_FAILED = 78
"""Exit status of a worker that cannot start, and of `commsrisk serve` then (EX_CONFIG)."""
FAILURE_FILE_ENV = "COMMSRISK_STARTUP_FAILURE_FILE"
"""Where to write why the service cannot start, when `commsrisk serve` started it."""


def _is_bentoml_worker() -> bool:
    from bentoml._internal.context import server_context

    return server_context.worker_index is not None


def refuse_to_start(error: CommsriskError) -> NoReturn:
    """Log why the service cannot start and stop the whole server, not only this worker.

    Outside a BentoML worker (the class built in-process, as tests and scripts do) the error is
    raised as it is.
    """
    logger.critical("cannot start: %s", error, extra={"error_type": type(error).__name__})
    if not _is_bentoml_worker():
        raise error
    sys.stderr.write(f"commsrisk: cannot start: {error}\n")
    sys.stderr.flush()
    report = os.environ.get(FAILURE_FILE_ENV)
    if report:  # `commsrisk serve` reports it and exits with STARTUP_FAILED
        Path(report).write_text(str(error), encoding="utf-8")
    os.kill(os.getppid(), signal.SIGTERM)  # the arbiter: it stops every worker and exits
    os._exit(STARTUP_FAILED)


M_ARENA_MAX = -8
"""glibc's mallopt parameter for the number of malloc arenas."""


def limit_malloc_arenas(count: int) -> bool:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX does) before the request threads start.

    glibc gives threads that allocate at once their own arenas, up to 8 per core, and memory freed
    in one is rarely returned: under a pool of request threads the worker's RSS creeps up for as
    long as it runs. Returns whether the cap was set (False off glibc, e.g. macOS or musl).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False
