"""Thresholds versions: apply with a change record, keep the history, roll back, hot-reload in the service."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from commsrisk.errors import ConfigurationError
from commsrisk.schema import RISKS
from commsrisk.settings import ThresholdSettings
from commsrisk.thresholds.policy import BUILTIN_POLICY, ThresholdPolicy, dump_policy, load_policy, parse_policy

logger = logging.getLogger(__name__)
FOUND_IN_FORCE = "(found in force)"
"""Author of the record that keeps the policy in force before the first applied change."""

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


@dataclass(frozen=True)
class PolicyChange:
    """One applied policy version and its change record."""

    version: str
    parent: str | None
    author: str
    created_at: str
    reason: str
    diff: list[str]
    policy_yaml: str


def diff_policies(old: ThresholdPolicy, new: ThresholdPolicy) -> list[str]:
    """Readable changes from `old` to `new`, one line per changed threshold (and the model tuned for)."""
    lines = [
        f"defaults.{risk}: {old.defaults[risk]:.4g} -> {new.defaults[risk]:.4g}"
        for risk in RISKS
        if old.defaults[risk] != new.defaults[risk]
    ]
    if old.tuned_for != new.tuned_for:
        lines.append(f"tuned_for: {old.tuned_for or 'none'} -> {new.tuned_for or 'none'}")
    for unit in sorted(set(old.business_units) | set(new.business_units)):
        before, after = old.business_units.get(unit), new.business_units.get(unit)
        if before is None and after is not None:
            lines.append(f"business_units.{unit}: added {dict(after)}")
        elif after is None and before is not None:
            lines.append(f"business_units.{unit}: removed (was {dict(before)})")
        elif before is not None and after is not None:
            for risk in RISKS:
                if before.get(risk) != after.get(risk):
                    lines.append(
                        f"business_units.{unit}.{risk}: {before.get(risk, 'default')} -> {after.get(risk, 'default')}"
                    )
    return lines


class PolicyHistory:
    """Append-only change log of applied policies, in SQLite next to the MLflow store."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS policy_versions (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    version TEXT UNIQUE NOT NULL,
                    parent TEXT,
                    author TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    diff TEXT NOT NULL,
                    policy_yaml TEXT NOT NULL
                );
                CREATE TRIGGER IF NOT EXISTS policy_versions_no_update BEFORE UPDATE ON policy_versions
                BEGIN SELECT RAISE(ABORT, 'policy history is append-only'); END;
                CREATE TRIGGER IF NOT EXISTS policy_versions_no_delete BEFORE DELETE ON policy_versions
                BEGIN SELECT RAISE(ABORT, 'policy history is append-only'); END;
                """
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path)

    def next_number(self) -> int:
        """The sequence number the next version will get (the policy found in force is not counted)."""
        with self._connect() as db:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM policy_versions WHERE author != ?", (FOUND_IN_FORCE,)
            ).fetchone()
        return int(count) + 1

    def record(self, change: PolicyChange) -> None:
        """Append one change."""
        with self._connect() as db:
            db.execute(
                "INSERT INTO policy_versions (version, parent, author, created_at, reason, diff, policy_yaml) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    change.version,
                    change.parent,
                    change.author,
                    change.created_at,
                    change.reason,
                    json.dumps(change.diff),
                    change.policy_yaml,
                ),
            )

    def changes(self) -> list[PolicyChange]:
        """Every applied version, oldest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT version, parent, author, created_at, reason, diff, policy_yaml "
                "FROM policy_versions ORDER BY seq"
            ).fetchall()
        return [PolicyChange(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    def get(self, version: str) -> PolicyChange:
        """One version by id.

        Raises:
            ConfigurationError: no such version (the known ones are listed).
        """
        for change in self.changes():
            if change.version == version:
                return change
        known = [c.version for c in self.changes()][-10:]
        raise ConfigurationError(f"no thresholds version '{version}'; recent versions: {known or 'none yet'}")


def policy_in_force(settings: ThresholdSettings) -> ThresholdPolicy:
    """The policy file's content, or the built-in defaults when there is no file."""
    path = Path(settings.policy_file)
    return load_policy(path) if path.is_file() else BUILTIN_POLICY


def resolve_policy(ref: str, settings: ThresholdSettings) -> ThresholdPolicy:
    """A policy named by a file path or by a version id from the history."""
    if Path(ref).is_file():
        return load_policy(Path(ref))
    return parse_policy(PolicyHistory(settings.history_db).get(ref).policy_yaml, ref)


UNNAMED_VERSIONS = frozenset({"unversioned", "proposed", "pending"})
OUR_VERSION = re.compile(r"v\d{4}-[0-9a-f]{8}")
"""Version ids that apply_policy gives; anything else in a file's `version:` is the author's name."""


def apply_policy(candidate: ThresholdPolicy, settings: ThresholdSettings, *, author: str, reason: str) -> PolicyChange:
    """Make `candidate` the policy in force, with a new version id and a change record.

    The file is replaced atomically after the record is written, so a running service picks up
    either the old policy or the new one, never half a file.

    Raises:
        ConfigurationError: no reason given, or nothing would change.
    """
    if not reason.strip():
        raise ConfigurationError("a reason is required for every thresholds change (--reason)")
    current = policy_in_force(settings)
    changes = diff_policies(current, candidate)
    if not changes:
        raise ConfigurationError(f"nothing to apply: the policy equals version {current.version} in force")
    history = PolicyHistory(settings.history_db)
    if current.version not in {c.version for c in history.changes()}:
        history.record(  # the policy found in force becomes a version, so rollback can restore it
            PolicyChange(
                version=current.version,
                parent=None,
                author=FOUND_IN_FORCE,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                reason="in force before the first recorded change",
                diff=[],
                policy_yaml=dump_policy(current),
            )
        )
    if (
        candidate.name is None
        and candidate.version not in UNNAMED_VERSIONS
        and not OUR_VERSION.fullmatch(candidate.version)
    ):
        candidate = candidate.model_copy(update={"name": candidate.version})  # the author's name is kept
    body = dump_policy(candidate.model_copy(update={"version": "pending"}))
    version = f"v{history.next_number():04d}-{hashlib.sha256(body.encode()).hexdigest()[:8]}"
    applied = candidate.model_copy(update={"version": version})
    text = dump_policy(applied)
    change = PolicyChange(
        version=version,
        parent=current.version,
        author=author,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        reason=reason.strip(),
        diff=changes,
        policy_yaml=text,
    )
    path = Path(settings.policy_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    history.record(change)
    os.replace(tmp, path)
    logger.info("thresholds %s applied by %s (%d changes)", version, author, len(changes))
    return change


def rollback_policy(version: str, settings: ThresholdSettings, *, author: str, reason: str) -> PolicyChange:
    """Apply an earlier version's content again, as a new version that records the rollback."""
    old = PolicyHistory(settings.history_db).get(version)
    policy = parse_policy(old.policy_yaml, f"history {version}")
    return apply_policy(policy, settings, author=author, reason=f"rollback to {version}: {reason}")
