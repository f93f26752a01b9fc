"""Thresholds versions: apply with a change record, keep a tamper-evident history, roll back, hot-reload.

Every change of the policy file goes on record. `apply_policy` records its change before it
replaces the file. A change made any other way (a hand edit, a deletion) is seen by the running
service's `PolicyWatcher`, or by the next `apply_policy`, and recorded as an unattributed change,
or refused when `ThresholdSettings.hand_edits` is "refuse". Each history record carries the hash
of the record before it, so a record changed or removed after it was written breaks the chain;
`PolicyHistory.verify()` (`commsrisk thresholds verify`) finds the first broken record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
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
UNATTRIBUTED_EDIT = "(unattributed: file edited outside commsrisk)"
"""Author of a record for a policy file changed by hand (not by `apply_policy`)."""
UNATTRIBUTED_DELETION = "(unattributed: file deleted outside commsrisk)"
"""Author of a record for a policy file deleted by hand."""
DELETED_YAML = ""
"""The `policy_yaml` of a record of a deletion: no file, so a restart or an apply starts from the built-in."""

CHECK_INTERVAL_S = 1.0
GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first record of every history."""
CHAIN_SCHEME = "commsrisk.policy_history.v1"
"""Named in every record's hash: a change to the serialisation gets a new name, old chains still verify."""
CHAINED_FIELDS = ("version", "parent", "author", "created_at", "reason", "diff", "policy_yaml")
"""Columns a record's hash covers, with its seq and the previous record's hash (`diff` as stored, JSON text)."""


def text_digest(text: str) -> str:
    """sha256 of policy text as the file holds it (UTF-8); a file and its record compare by this."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


DELETED_DIGEST = text_digest(DELETED_YAML)


def chain_hash(seq: int, fields: dict[str, object], prev_hash: str) -> str:
    """The hash of one history record: sha256 over canonical JSON of its fields, seq and the previous hash."""
    payload = {"scheme": CHAIN_SCHEME, "seq": seq, "prev_hash": prev_hash, **fields}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PolicyChange:
    """One applied policy version and its change record (seq and hashes once it is in the history)."""

    version: str
    parent: str | None
    author: str
    created_at: str
    reason: str
    diff: list[str]
    policy_yaml: str
    seq: int | None = None
    prev_hash: str | None = None
    record_hash: str | None = None


@dataclass(frozen=True)
class HistoryVerifyResult:
    """What `PolicyHistory.verify` found: whether the hash chain holds, and where it breaks first."""

    ok: bool
    checked: int
    """Records that passed (all of them when ok)."""
    head_hash: str | None = None
    bad_seq: int | None = None
    bad_version: str | None = None
    problem: str | None = None
    legacy: int = 0
    """Records written before the chain existed, hashed as found when the database was migrated."""
    warnings: tuple[str, ...] = ()


def diff_policies(old: ThresholdPolicy, new: ThresholdPolicy) -> list[str]:
    """Readable changes from `old` to `new`, one line per changed threshold.

    Also the model tuned for, and the rule for units the policy does not list (`unknown_business_units`,
    set or as it follows from whether any unit is listed): it decides whether such a message is scored.
    """
    lines = [
        f"defaults.{risk}: {old.defaults[risk]:.4g} -> {new.defaults[risk]:.4g}"
        for risk in RISKS
        if old.defaults[risk] != new.defaults[risk]
    ]
    if old.tuned_for != new.tuned_for:
        lines.append(f"tuned_for: {old.tuned_for or 'none'} -> {new.tuned_for or 'none'}")
    if _unknown_units_rule(old) != _unknown_units_rule(new):  # whether a message of an unlisted unit is scored
        lines.append(f"unknown_business_units: {_unknown_units_rule(old)} -> {_unknown_units_rule(new)}")
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


def _unknown_units_rule(policy: ThresholdPolicy) -> str:
    """The policy's `unknown_business_units` as set, or unset with the rule `accepts_unit` then applies."""
    if policy.unknown_business_units is not None:
        return policy.unknown_business_units
    return "unset (reject: units are listed)" if policy.business_units else "unset (defaults: no unit listed)"


_TABLE = """CREATE TABLE IF NOT EXISTS policy_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    version TEXT UNIQUE NOT NULL,
    parent TEXT,
    author TEXT NOT NULL,
    created_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    diff TEXT NOT NULL,
    policy_yaml TEXT NOT NULL,
    prev_hash TEXT,
    record_hash TEXT
)"""
_META = "CREATE TABLE IF NOT EXISTS policy_history_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_ABORT = "BEGIN SELECT RAISE(ABORT, 'policy history is append-only'); END"
TRIGGERS = {
    "policy_versions_no_update": f"CREATE TRIGGER policy_versions_no_update BEFORE UPDATE ON policy_versions {_ABORT}",
    "policy_versions_no_delete": f"CREATE TRIGGER policy_versions_no_delete BEFORE DELETE ON policy_versions {_ABORT}",
    "policy_history_meta_no_update": f"CREATE TRIGGER policy_history_meta_no_update BEFORE UPDATE ON "
    f"policy_history_meta {_ABORT}",
    "policy_history_meta_no_delete": f"CREATE TRIGGER policy_history_meta_no_delete BEFORE DELETE ON "
    f"policy_history_meta {_ABORT}",
}
"""The append-only guards. They stop mistakes; the hash chain is what shows a change made around them."""
_COLUMNS = "seq, version, parent, author, created_at, reason, diff, policy_yaml, prev_hash, record_hash"


def _change_of(row: tuple) -> PolicyChange:  # type: ignore[type-arg]
    seq, version, parent, author, created_at, reason, diff, policy_yaml, prev_hash, record_hash = row
    return PolicyChange(
        version, parent, author, created_at, reason, json.loads(diff), policy_yaml, seq, prev_hash, record_hash
    )


class PolicyHistory:
    """Append-only, hash-chained change log of the policy, in SQLite next to the MLflow store.

    A database written before the chain existed (no `record_hash` column) is migrated on first
    open: its rows are hashed in seq order, as found, and `policy_history_meta` keeps how many
    and when. This is the defensible choice among bad ones: leaving them unhashed would leave them
    open to silent edits forever, and refusing the old database would lose the history. What it
    cannot show is an edit made *before* the migration; `verify()` reports those rows as legacy.
    """

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.restored_triggers: tuple[str, ...] = ()
        with self._read() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(policy_versions)")}
            triggers = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        if "record_hash" in columns and set(TRIGGERS) <= triggers:
            return
        with self._transaction() as db:  # the state is read again inside: another process may have done it
            columns = {row[1] for row in db.execute("PRAGMA table_info(policy_versions)")}
            triggers = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
            db.execute(_TABLE)
            db.execute(_META)
            if not columns:
                db.execute("INSERT OR IGNORE INTO policy_history_meta VALUES ('chain_scheme', ?)", (CHAIN_SCHEME,))
            elif "record_hash" not in columns:
                self._migrate(db)
            present = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
            for name, sql in TRIGGERS.items():
                if name not in present:
                    db.execute(sql)
            if columns:
                self.restored_triggers = tuple(
                    name for name in TRIGGERS if name not in triggers and name.startswith("policy_versions")
                )
        if self.restored_triggers:
            logger.warning(
                "thresholds history %s: append-only trigger(s) %s were missing and are restored; "
                "run 'commsrisk thresholds verify'",
                self.db_path,
                ", ".join(self.restored_triggers),
            )

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Add the chain to a database written before it: hash the rows in seq order, as found."""
        rows = db.execute(
            "SELECT seq, version, parent, author, created_at, reason, diff, policy_yaml FROM policy_versions "
            "ORDER BY seq"
        ).fetchall()
        db.execute("DROP TRIGGER IF EXISTS policy_versions_no_update")  # restored before the commit
        db.execute("ALTER TABLE policy_versions ADD COLUMN prev_hash TEXT")
        db.execute("ALTER TABLE policy_versions ADD COLUMN record_hash TEXT")
        prev = GENESIS_HASH
        for seq, *values in rows:
            digest = chain_hash(seq, dict(zip(CHAINED_FIELDS, values, strict=True)), prev)
            db.execute("UPDATE policy_versions SET prev_hash = ?, record_hash = ? WHERE seq = ?", (prev, digest, seq))
            prev = digest
        now = datetime.now(UTC).isoformat(timespec="seconds")
        db.executemany(
            "INSERT OR IGNORE INTO policy_history_meta VALUES (?, ?)",
            [("chain_scheme", CHAIN_SCHEME), ("legacy_records", str(len(rows))), ("legacy_chained_at", now)],
        )
        logger.warning(
            "thresholds history %s: %d records written before the hash chain are chained as found",
            self.db_path,
            len(rows),
        )

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.db_path, isolation_level=None)) as db:
            yield db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so two writers cannot fork the chain."""
        with self._read() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def next_number(self) -> int:
        """The sequence number the next version will get (the policy found in force is not counted)."""
        with self._read() as db:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM policy_versions WHERE author != ?", (FOUND_IN_FORCE,)
            ).fetchone()
        return int(count) + 1

    def _insert(self, db: sqlite3.Connection, change: PolicyChange) -> PolicyChange:
        last = db.execute("SELECT seq, record_hash FROM policy_versions ORDER BY seq DESC LIMIT 1").fetchone()
        seq = last[0] + 1 if last else 1
        prev = (last[1] or "") if last else GENESIS_HASH  # an unhashed row breaks the chain; verify says where
        values = (
            change.version,
            change.parent,
            change.author,
            change.created_at,
            change.reason,
            json.dumps(change.diff),
            change.policy_yaml,
        )
        digest = chain_hash(seq, dict(zip(CHAINED_FIELDS, values, strict=True)), prev)
        db.execute(
            f"INSERT INTO policy_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, *values, prev, digest),
        )
        logger.info("thresholds history: %s recorded as seq %d, record hash %s", change.version, seq, digest)
        return dataclasses.replace(change, seq=seq, prev_hash=prev, record_hash=digest)

    def record(self, change: PolicyChange) -> PolicyChange:
        """Append one change, chained to the record before it; returns it with its seq and hashes."""
        with self._transaction() as db:
            return self._insert(db, change)

    def record_unless_head(self, change: PolicyChange, digest: str) -> PolicyChange | None:
        """Append `change` unless the last record's policy already has this digest (None then).

        Several watchers (service workers) see the same hand edit; the first records it, in one
        transaction with this check, and the others find it recorded.
        """
        with self._transaction() as db:
            last = db.execute("SELECT policy_yaml FROM policy_versions ORDER BY seq DESC LIMIT 1").fetchone()
            if last is not None and text_digest(last[0]) == digest:
                return None
            return self._insert(db, change)

    def head(self) -> PolicyChange | None:
        """The last record, or None for an empty history."""
        with self._read() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM policy_versions ORDER BY seq DESC LIMIT 1").fetchone()
        return _change_of(row) if row else None

    def changes(self) -> list[PolicyChange]:
        """Every applied version, oldest first."""
        with self._read() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM policy_versions ORDER BY seq").fetchall()
        return [_change_of(r) for r in rows]

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

    def verify(self, anchor: str | None = None) -> HistoryVerifyResult:
        """Recompute the hash chain and report the first record that breaks it.

        An unkeyed chain shows edits made around the triggers, not a rewrite of every hash after
        the edit. `anchor`, a record hash noted elsewhere (each record's hash is logged when it is
        written), closes that gap: the check fails when no record carries it (rewritten or truncated).
        """
        with self._read() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM policy_versions ORDER BY seq").fetchall()
            meta = dict(db.execute("SELECT key, value FROM policy_history_meta").fetchall())
        legacy = int(meta.get("legacy_records", 0))
        warnings = [
            f"append-only trigger(s) were missing and are restored: {', '.join(self.restored_triggers)}"
        ] * bool(self.restored_triggers)
        if legacy:
            warnings.append(
                f"the first {legacy} records predate the hash chain; they were chained as found on "
                f"{meta.get('legacy_chained_at', '?')}, so an edit before then cannot be shown"
            )
        prev = GENESIS_HASH
        hashes = set()
        for checked, (seq, *values, prev_hash, record_hash) in enumerate(rows):
            version = values[0]  # values: the CHAINED_FIELDS, in order (version first)
            problem = None
            if record_hash is None or prev_hash is None:
                problem = "no hash: the record was written around commsrisk, without the chain"
            elif prev_hash != prev:
                problem = (
                    "its prev_hash is not the hash of the record before it: that record was changed and re-hashed, "
                    "or records were removed, inserted or reordered"
                )
            elif chain_hash(seq, dict(zip(CHAINED_FIELDS, values, strict=True)), prev_hash) != record_hash:
                problem = "its content does not match its hash: the record was changed after it was written"
            if problem is not None:
                return HistoryVerifyResult(False, checked, prev, seq, version, problem, legacy, tuple(warnings))
            prev = record_hash
            hashes.add(record_hash)
        head = prev if rows else None
        if anchor is not None and anchor.strip().lower() not in hashes:
            return HistoryVerifyResult(
                False,
                len(rows),
                head,
                problem=f"no record has the anchor hash {anchor}: the history was rewritten or truncated since",
                legacy=legacy,
                warnings=tuple(warnings),
            )
        return HistoryVerifyResult(True, len(rows), head, legacy=legacy, warnings=tuple(warnings))


def _read_policy_file(path: Path) -> tuple[str, str] | None:
    """The file's text and sha256, or None when there is no file.

    Raises:
        ConfigurationError: the file exists but cannot be read as UTF-8.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ConfigurationError(f"{path}: cannot read the thresholds policy ({err.__class__.__name__})") from err
    try:
        return data.decode("utf-8"), hashlib.sha256(data).hexdigest()
    except UnicodeDecodeError as err:
        raise ConfigurationError(f"{path}: the thresholds policy is not UTF-8") from err


def _history_head(settings: ThresholdSettings) -> PolicyChange | None:
    """The last history record; None without a history (the database is not created to find out)."""
    return PolicyHistory(settings.history_db).head() if Path(settings.history_db).is_file() else None


def _recorded_policy(change: PolicyChange | None) -> ThresholdPolicy:
    """The policy a history record put in force: the built-in one for a deletion or no record."""
    if change is None or change.policy_yaml == DELETED_YAML:
        return BUILTIN_POLICY
    return parse_policy(change.policy_yaml, f"history {change.version}").model_copy(update={"version": change.version})


def _tmp_path(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".tmp")


def _apply_in_flight(path: Path, head_digest: str) -> bool:
    """True between apply_policy's record and its os.replace: the next file is waiting beside the old one."""
    waiting = _read_policy_file(_tmp_path(path)) if _tmp_path(path).is_file() else None
    return waiting is not None and waiting[1] == head_digest


def _keep_found_in_force(history: PolicyHistory, current: ThresholdPolicy) -> None:
    """Record the policy found in force as a version (once), so rollback can restore it."""
    if current.version not in {c.version for c in history.changes()}:
        history.record(
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


def record_outside_change(
    settings: ThresholdSettings, *, previous: ThresholdPolicy | None = None, baseline: str | None = None
) -> PolicyChange | None:
    """Put a change of the policy file made outside commsrisk (hand edit, deletion) on record.

    The file is compared with the last record's `policy_yaml` by sha256 (`baseline`, the digest
    last taken, when the history is empty), so `apply_policy`'s own writes never count. The
    record of an edit keeps the file's text as it is, so the file matches it afterwards; a
    deletion is recorded with empty `policy_yaml`.

    Args:
        settings: where the file and the history are.
        previous: the policy in force before the change (default: the last record's).
        baseline: the digest the file had when last taken, used only when there is no history.

    Returns:
        The record, or None when the file matches the last record (or an apply is in flight).

    Raises:
        ConfigurationError: the changed file is not a valid policy (nothing is recorded).
    """
    path = Path(settings.policy_file)
    head = _history_head(settings)
    expected = text_digest(head.policy_yaml) if head is not None else baseline
    if expected is None:
        return None
    state = _read_policy_file(path)
    digest = state[1] if state is not None else DELETED_DIGEST
    if (state is None) == (expected == DELETED_DIGEST) and (state is None or digest == expected):
        return None
    if state is not None and _apply_in_flight(path, expected):
        return None
    previous = previous if previous is not None else _recorded_policy(head)
    edited = parse_policy(state[0], str(path)) if state is not None else BUILTIN_POLICY
    history = PolicyHistory(settings.history_db)
    _keep_found_in_force(history, previous)
    number = history.next_number()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if state is None:
        change = PolicyChange(
            version=f"v{number:04d}-{DELETED_DIGEST[:8]}",
            parent=previous.version,
            author=UNATTRIBUTED_DELETION,
            created_at=now,
            reason=f"{path} deleted outside commsrisk; without it a restart or the next apply starts from the "
            f"built-in {BUILTIN_POLICY.version}",
            diff=["policy file deleted", *diff_policies(previous, BUILTIN_POLICY)],
            policy_yaml=DELETED_YAML,
        )
    else:
        change = PolicyChange(
            version=f"v{number:04d}-{digest[:8]}",
            parent=previous.version,
            author=UNATTRIBUTED_EDIT,
            created_at=now,
            reason=f"{path} changed outside commsrisk: file sha256 {digest}",
            diff=diff_policies(previous, edited) or ["no threshold changed (the file's text only)"],
            policy_yaml=state[0],
        )
    return history.record_unless_head(change, digest) or history.head()


class PolicyWatcher:
    """Serves the policy file's current content; every change is taken on record, or refused.

    A file that fails validation is not taken. A change not written by `apply_policy` is logged
    (WARNING: path, sha256, versions) and recorded as an unattributed change; with
    `hand_edits="refuse"` the last recorded policy stays in force and an ERROR is logged. A
    deleted file is recorded too; the running service keeps the policy it has until the file
    returns, and a restart without a file takes the built-in defaults.
    """

    def __init__(self, settings: ThresholdSettings, check_interval_s: float = CHECK_INTERVAL_S) -> None:
        self.settings = settings
        self.path = Path(settings.policy_file)
        self.check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._policy = BUILTIN_POLICY
        self._taken: str | None = None  # digest of the file last taken (DELETED_DIGEST: no file), for no history
        self._reload(initial=True)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _reload(self, initial: bool = False) -> None:
        stamp = self._file_stamp()
        if not initial and stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._take(initial)
        except ConfigurationError as error:
            if initial:
                raise
            logger.error(
                "thresholds file %s changed but is invalid; keeping version %s: %s",
                self.path,
                self._policy.version,
                error,
            )
        except (sqlite3.Error, OSError) as error:
            if initial:
                raise ConfigurationError(
                    f"{self.path}: the thresholds history {self.settings.history_db} cannot be used ({error})"
                ) from error
            logger.error(
                "thresholds file %s changed but the change cannot be put on record (%s); keeping version %s",
                self.path,
                error.__class__.__name__,
                self._policy.version,
            )

    def _take(self, initial: bool) -> None:
        head = _history_head(self.settings)
        if self.settings.hand_edits == "refuse" and self._refused(head, initial):
            return
        change = None
        if self.settings.hand_edits == "record":
            change = record_outside_change(
                self.settings, previous=None if initial else self._policy, baseline=self._taken
            )
        state = _read_policy_file(self.path)
        if state is None:
            kept = BUILTIN_POLICY if initial else self._policy
            if change is not None or not initial:
                logger.warning(
                    "thresholds file %s deleted outside commsrisk%s; the service keeps version %s in force (%s)",
                    self.path,
                    f", recorded as {change.version}" if change is not None else "",
                    kept.version,
                    "no file at start: the built-in defaults"
                    if initial
                    else f"until the file returns; a restart takes the built-in {BUILTIN_POLICY.version}",
                )
            self._policy, self._taken = kept, DELETED_DIGEST
            return
        text, digest = state
        policy = parse_policy(text, str(self.path))
        head = _history_head(self.settings)
        if head is not None and text_digest(head.policy_yaml) == digest:
            policy = policy.model_copy(update={"version": head.version})
        if change is not None:
            logger.warning(
                "thresholds file %s changed outside commsrisk (sha256 %s): recorded as unattributed version %s "
                "(was %s, %d lines of diff)",
                self.path,
                digest,
                change.version,
                change.parent,
                len(change.diff),
            )
        elif not initial and policy.version != self._policy.version:
            logger.info("thresholds reloaded: version %s -> %s", self._policy.version, policy.version)
        self._policy, self._taken = policy, digest

    def _refused(self, head: PolicyChange | None, initial: bool) -> bool:
        """In refuse mode: True (and an ERROR logged) when the file is not what the history last recorded."""
        expected = text_digest(head.policy_yaml) if head is not None else self._taken
        if expected is None:
            return False
        state = _read_policy_file(self.path)
        digest = state[1] if state is not None else DELETED_DIGEST
        if (state is None) == (expected == DELETED_DIGEST) and (state is None or digest == expected):
            return False
        if state is not None and _apply_in_flight(self.path, expected):
            return False
        kept = _recorded_policy(head) if initial else self._policy
        logger.error(
            "thresholds file %s %s outside commsrisk (sha256 %s); hand_edits=refuse: version %s stays in force",
            self.path,
            "deleted" if state is None else "changed",
            digest if state is not None else "-",
            kept.version,
        )
        self._policy = kept
        return True

    def current(self) -> ThresholdPolicy:
        """The policy in force, re-read if the file changed since the last check."""
        now = time.monotonic()
        if now - self._checked >= self.check_interval_s:
            with self._lock:
                self._checked = now
                self._reload()
        return self._policy


def policy_in_force(settings: ThresholdSettings) -> ThresholdPolicy:
    """The policy file's content (named by its record's version), or the built-in defaults without a file.

    With `hand_edits="refuse"`, a file that differs from the last record does not count: the
    last recorded policy is in force, as in the service.
    """
    path = Path(settings.policy_file)
    head = _history_head(settings)
    state = _read_policy_file(path)
    if head is not None and state is not None and text_digest(head.policy_yaml) == state[1]:
        return parse_policy(state[0], str(path)).model_copy(update={"version": head.version})
    if (
        head is not None
        and settings.hand_edits == "refuse"
        and not _apply_in_flight(path, text_digest(head.policy_yaml))
    ):
        return _recorded_policy(head)
    return parse_policy(state[0], str(path)) if state is not None else BUILTIN_POLICY


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
    either the old policy or the new one, never half a file. A hand edit or deletion of the file
    since the last record is put on record first (unless hand edits are refused), so the history
    shows what this change replaced.

    Raises:
        ConfigurationError: no reason given, or nothing would change.
    """
    if not reason.strip():
        raise ConfigurationError("a reason is required for every thresholds change (--reason)")
    if settings.hand_edits == "record":
        outside = record_outside_change(settings)
        if outside is not None:
            logger.warning(
                "thresholds file %s was changed outside commsrisk: recorded as unattributed version %s before applying",
                settings.policy_file,
                outside.version,
            )
    current = policy_in_force(settings)
    changes = diff_policies(current, candidate)
    if not changes:
        raise ConfigurationError(f"nothing to apply: the policy equals version {current.version} in force")
    history = PolicyHistory(settings.history_db)
    _keep_found_in_force(history, current)
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
    tmp = _tmp_path(path)
    tmp.write_bytes(text.encode("utf-8"))  # bytes: the file's digest is the record's, on every platform
    recorded = history.record(change)
    os.replace(tmp, path)
    logger.info(
        "thresholds %s applied by %s (%d changes, record hash %s)", version, author, len(changes), recorded.record_hash
    )
    return recorded


def rollback_policy(version: str, settings: ThresholdSettings, *, author: str, reason: str) -> PolicyChange:
    """Apply an earlier version's content again, as a new version that records the rollback.

    Raises:
        ConfigurationError: no such version, or it records a deletion (there is no policy to restore).
    """
    old = PolicyHistory(settings.history_db).get(version)
    if old.policy_yaml == DELETED_YAML:
        raise ConfigurationError(
            f"version {version} records the deletion of the policy file; roll back to its parent {old.parent} instead"
        )
    policy = parse_policy(old.policy_yaml, f"history {version}")
    return apply_policy(policy, settings, author=author, reason=f"rollback to {version}: {reason}")
