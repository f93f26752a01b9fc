"""The thresholds policy in force, reloaded when its file changes (no restart needed)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from commsrisk.errors import ConfigurationError
from commsrisk.settings import ThresholdSettings
from commsrisk.thresholds import BUILTIN_POLICY, ThresholdPolicy, load_policy

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0


class PolicyWatcher:
    """Serves the policy file's current content; a file that fails validation is not taken."""

    def __init__(self, settings: ThresholdSettings, check_interval_s: float = CHECK_INTERVAL_S) -> None:
        self.path = Path(settings.policy_file)
        self.check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._policy = BUILTIN_POLICY
        self._reload(initial=True)

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _reload(self, initial: bool = False) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        if stamp is None:
            self._stamp = None
            return
        try:
            policy = load_policy(self.path)
        except ConfigurationError as error:
            if initial:
                raise
            logger.error("thresholds file changed but is invalid; keeping version %s: %s", self._policy.version, error)
            self._stamp = stamp
            return
        if not initial:
            logger.info("thresholds reloaded: version %s -> %s", self._policy.version, policy.version)
        self._policy = policy
        self._stamp = stamp

    def current(self) -> ThresholdPolicy:
        """The policy in force, re-read if the file changed since the last check."""
        now = time.monotonic()
        if now - self._checked >= self.check_interval_s:
            with self._lock:
                self._checked = now
                self._reload()
        return self._policy
