"""The labeled-review store: reviewers' decisions, append-only, behind SQLAlchemy 2.

`ReviewStore.open(settings.reviews)` connects (a SQLite file by default, PostgreSQL by URL) and
migrates the schema to the latest Alembic revision shipped in `commsrisk/reviews/migrations`, so
nobody runs Alembic by hand. Then:

- `append(decisions, source=...)` stores a batch in one transaction, committed before it returns:
  all of the batch or none of it. A decision whose id the store already holds is skipped and
  counted, so a retried request or a re-run import stores each decision once.
- `snapshot(since=None, business_units=None)` reads the latest decision per message as a
  labeled frame, with a report of the messages on which reviewers disagree.

There is no update or delete: the store's API has none and triggers in the database refuse both.
SQLite runs in WAL mode with `synchronous=FULL`, so a committed batch survives a crash of the
process and of the machine. Message text is stored (it is the firm's labeled data) and never
logged; errors name ids, counts and the store's URL without its password.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from commsrisk.errors import CommsriskError, ConfigurationError, ReviewStoreError
from commsrisk.reviews.tables import review_decisions
from commsrisk.schema import RISKS, ReviewDecision, ReviewLabels
from commsrisk.settings import ReviewSettings

logger = logging.getLogger(__name__)

MIGRATIONS = "commsrisk.reviews:migrations"
"""Alembic's script location, inside the installed package."""
DECISION_ID_SCHEME = "commsrisk.review_decision.v1"
"""Named in every derived decision id: a change to what the id covers gets a new name."""
SNAPSHOT_COLUMNS: tuple[str, ...] = (
    "message_id",
    "text",
    *RISKS,
    "business_unit",
    "lang",
    "channel",
    "reviewer",
    "decided_at",
    "decision_id",
    "decisions",
)
"""Columns of `ReviewSnapshot.frame`: one row per message, each risk 1, 0 or None (never reviewed)."""
ID_CHUNK = 500
"""Decision ids looked up per query (well under SQLite's limit on bound parameters)."""
SQLITE_BUSY_TIMEOUT_S = 30
PG_MIGRATION_LOCK = 0x636F6D6D737269
"""Advisory lock key that serialises schema upgrades of two processes opening one PostgreSQL store."""


@dataclass(frozen=True)
class AppendResult:
    """What `append` did: the decision ids stored, and those skipped because the store already had them."""

    decision_ids: list[str]
    """The id of each decision given, in the order given."""
    accepted_ids: list[str]
    duplicate_ids: list[str]

    @property
    def accepted(self) -> int:
        """How many decisions were stored."""
        return len(self.accepted_ids)

    @property
    def duplicates(self) -> int:
        """How many decisions were already stored (skipped)."""
        return len(self.duplicate_ids)


@dataclass(frozen=True)
class StoredDecision:
    """One stored decision without its text (for listings and audits)."""

    seq: int
    decision_id: str
    message_id: str
    labels: dict[str, int | None]
    reviewer: str
    reason: str | None
    decided_at: datetime
    recorded_at: datetime
    source: str
    business_unit: str | None
    lang: str | None
    channel: str | None
    seen_model_version: str | None
    seen_thresholds_version: str | None
    seen_scores: dict[str, float]


@dataclass(frozen=True)
class ReviewConflict:
    """Reviewers who disagree on one risk of one message (each reviewer's latest decision counts)."""

    message_id: str
    risk: str
    votes: dict[str, int]
    """reviewer -> their latest 1 or 0."""
    resolved: int
    """The value in the snapshot: the latest decision's."""


@dataclass
class ReviewSnapshot:
    """The latest decision per message, and where reviewers disagree."""

    frame: pd.DataFrame
    """One row per message, columns `SNAPSHOT_COLUMNS`. Per risk the latest decision that reviewed it
    (1 or 0), None when no decision did; text, language, unit and channel from the latest decision."""
    conflicts: list[ReviewConflict] = field(default_factory=list)
    decisions: int = 0
    """Decisions read (after the `since` and unit filters)."""


def derive_decision_id(message_id: str, reviewer: str, decided_at: datetime | None, labels: ReviewLabels) -> str:
    """A decision's id when the client gave none: sha256 of message id, reviewer, time and labels.

    The same decision sent twice gets the same id, so the store keeps it once. `decided_at` None
    (an export without times) leaves the time out: the same reviewer giving the same labels to
    the same message is then one decision.
    """
    payload = {
        "scheme": DECISION_ID_SCHEME,
        "message_id": message_id,
        "reviewer": reviewer,
        "decided_at": decided_at.astimezone(UTC).isoformat() if decided_at else None,
        "labels": labels.model_dump(),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unparseable URL)"


class ReviewStore:
    """Append-only reviewer decisions in a SQL database; open it with `ReviewStore.open`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = safe_url(engine.url)

    @classmethod
    def open(cls, settings: ReviewSettings) -> ReviewStore:
        """Connect to the store at `settings.url` and migrate it to the latest schema.

        Raises:
            ConfigurationError: the URL is not a SQLite or PostgreSQL URL.
            ReviewStoreError: the database cannot be reached or migrated.
        """
        store = cls(_engine_for(settings.url))
        try:
            store._upgrade()
        except CommsriskError:
            store.close()
            raise
        except Exception as error:  # Alembic and drivers raise their own types; the URL names which store
            store.close()
            raise ReviewStoreError(
                f"reviews.url {store.url}: cannot open the review store ({_first_line(error)})"
            ) from None
        logger.info("review store open", extra={"backend": store.engine.dialect.name})
        return store

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, decisions: Sequence[ReviewDecision], *, source: str, now: datetime | None = None) -> AppendResult:
        """Store `decisions` in one transaction, committed before this returns; skip ids already stored.

        A decision without `decided_at` is dated `now` (default: the current time, UTC); one
        without `decision_id` gets `derive_decision_id`. `source` says where the batch came from
        (`api:<key name>`, `import:<file name>`).

        Raises:
            ReviewStoreError: the database refused or failed; nothing of the batch is stored.
        """
        received = (now or datetime.now(UTC)).astimezone(UTC)
        rows: dict[str, dict[str, Any]] = {}
        repeated: list[str] = []
        given: list[str] = []
        for decision in decisions:
            row = _row(decision, source, received)
            given.append(row["decision_id"])
            if row["decision_id"] in rows:
                repeated.append(row["decision_id"])
            else:
                rows[row["decision_id"]] = row
        try:
            stored = self._insert_new(rows)
        except SQLAlchemyError as error:
            raise ReviewStoreError(
                f"review store {self.url}: the batch of {len(rows)} decisions was not stored "
                f"({_error_kind(error)}); nothing of it was written, retry it"
            ) from None
        result = AppendResult(
            decision_ids=given,
            accepted_ids=[decision_id for decision_id in rows if decision_id not in stored],
            duplicate_ids=[*(decision_id for decision_id in rows if decision_id in stored), *repeated],
        )
        logger.debug(
            "review decisions stored",
            extra={"source": source, "accepted": result.accepted, "duplicates": result.duplicates},
        )
        return result

    def count(self) -> int:
        """How many decisions the store holds."""
        with self._read() as connection:
            return int(connection.execute(select(func.count()).select_from(review_decisions)).scalar_one())

    def recent(self, limit: int = 20) -> list[StoredDecision]:
        """The last `limit` decisions stored, newest first (without their text)."""
        query = select(*_listed_columns()).order_by(review_decisions.c.seq.desc()).limit(limit)
        with self._read() as connection:
            return [_stored(row._mapping) for row in connection.execute(query)]

    def history(self, message_id: str) -> list[StoredDecision]:
        """Every decision on one message, in the order they count (decided_at, then arrival)."""
        query = (
            select(*_listed_columns())
            .where(review_decisions.c.message_id == message_id)
            .order_by(review_decisions.c.decided_at, review_decisions.c.seq)
        )
        with self._read() as connection:
            return [_stored(row._mapping) for row in connection.execute(query)]

    def decisions(
        self, since: datetime | None = None, business_units: Iterable[str] | None = None
    ) -> list[StoredDecision]:
        """Every decision (without its text) in the order they count, filtered as `snapshot` filters.

        Raises:
            ReviewStoreError: the database cannot be read.
        """
        table = review_decisions.c
        query = select(*_listed_columns()).order_by(table.decided_at, table.seq)
        if since is not None:
            query = query.where(table.decided_at >= (since if since.tzinfo else since.replace(tzinfo=UTC)))
        if business_units is not None:
            query = query.where(table.business_unit.in_(sorted(set(business_units))))
        with self._read() as connection:
            return [_stored(row._mapping) for row in connection.execute(query)]

    def snapshot(self, since: datetime | None = None, business_units: Iterable[str] | None = None) -> ReviewSnapshot:
        """The latest decision per message as a labeled frame, and the conflicts between reviewers.

        Decisions count in the order they were made (`decided_at`, then arrival). Per risk the
        latest decision that reviewed it wins, so a later decision on one risk keeps the earlier
        decisions on the others. A conflict is a risk of a message on which reviewers' latest
        decisions differ. `since` keeps decisions made at or after it; `business_units` those of
        these units.

        Raises:
            ReviewStoreError: the database cannot be read.
        """
        table = review_decisions.c
        query = select(
            table.message_id,
            table.text,
            *(table[risk] for risk in RISKS),
            table.business_unit,
            table.lang,
            table.channel,
            table.reviewer,
            table.decided_at,
            table.decision_id,
        ).order_by(table.decided_at, table.seq)
        if since is not None:
            query = query.where(table.decided_at >= (since if since.tzinfo else since.replace(tzinfo=UTC)))
        if business_units is not None:
            query = query.where(table.business_unit.in_(sorted(set(business_units))))
        latest: dict[str, dict[str, Any]] = {}
        votes: dict[tuple[str, str], dict[str, int]] = {}
        read = 0
        with self._read() as connection:
            for row in connection.execute(query):
                read += 1
                values = row._mapping
                message = latest.setdefault(values["message_id"], {**dict.fromkeys(RISKS), "decisions": 0})
                message["decisions"] += 1
                for column in ("message_id", "text", "business_unit", "lang", "channel", "reviewer", "decided_at"):
                    message[column] = values[column]
                message["decision_id"] = values["decision_id"]
                for risk in RISKS:
                    if values[risk] is not None:
                        message[risk] = int(values[risk])
                        votes.setdefault((values["message_id"], risk), {})[values["reviewer"]] = int(values[risk])
        conflicts = [
            ReviewConflict(message_id, risk, dict(sorted(by_reviewer.items())), latest[message_id][risk])
            for (message_id, risk), by_reviewer in votes.items()
            if len(set(by_reviewer.values())) > 1
        ]
        frame = pd.DataFrame([[m[c] for c in SNAPSHOT_COLUMNS] for m in latest.values()], columns=SNAPSHOT_COLUMNS)
        for risk in RISKS:  # 1, 0 or None as objects: a float NaN would pass for a label
            frame[risk] = pd.Series([m[risk] for m in latest.values()], dtype=object, index=frame.index)
        logger.info("review snapshot", extra={"decisions": read, "messages": len(frame), "conflicts": len(conflicts)})
        return ReviewSnapshot(frame=frame, conflicts=conflicts, decisions=read)

    def _upgrade(self) -> None:
        """Run the shipped Alembic revisions up to head, in one transaction."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        with self._write() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def _insert_new(self, rows: dict[str, dict[str, Any]]) -> set[str]:
        """Insert, in one transaction, the rows whose decision ids are not stored yet; return those that were."""
        try:
            return self._insert_new_once(rows)
        except IntegrityError as error:
            if not _is_duplicate_id(error):
                raise
            logger.debug("another writer stored some of these decision ids meanwhile; looking again")
        return self._insert_new_once(rows)  # another writer stored one of these ids meanwhile: look again, once

    def _insert_new_once(self, rows: dict[str, dict[str, Any]]) -> set[str]:
        with self._write() as connection:
            stored = self._existing_ids(connection, list(rows))
            new = [row for decision_id, row in rows.items() if decision_id not in stored]
            if new:
                connection.execute(review_decisions.insert(), new)
        return stored

    def _existing_ids(self, connection: Connection, ids: list[str]) -> set[str]:
        found: set[str] = set()
        column = review_decisions.c.decision_id
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            found.update(connection.execute(select(column).where(column.in_(chunk))).scalars())
        return found

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction that holds the write lock from its start on SQLite (BEGIN IMMEDIATE)."""
        with self.engine.connect() as connection:
            connection = connection.execution_options(commsrisk_write=True)
            with connection.begin():
                yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection, connection.begin():
                yield connection
        except SQLAlchemyError as error:
            raise ReviewStoreError(f"review store {self.url}: cannot read ({_error_kind(error)})") from None


def _engine_for(url_text: str) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, set up for durable, serialised writes.

    Raises:
        ConfigurationError: the URL does not parse or names another database.
    """
    try:
        url = make_url(url_text)
    except ArgumentError as error:
        raise ConfigurationError(
            "reviews.url: not a database URL; use sqlite:///path/reviews.sqlite or postgresql+psycopg://user@host/db"
        ) from error
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ConfigurationError(
                f"reviews.url {safe_url(url)}: the review store needs a SQLite file, e.g. sqlite:///.commsrisk/reviews.sqlite"
            )
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, hide_parameters=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if url.drivername == "postgresql":  # psycopg 3 is the driver we ship, not SQLAlchemy's psycopg2 default
            url = url.set(drivername="postgresql+psycopg")
        return create_engine(url, hide_parameters=True, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    raise ConfigurationError(
        f"reviews.url {safe_url(url)}: the review store runs on SQLite or PostgreSQL, not {backend}; "
        "use sqlite:///path/reviews.sqlite or postgresql+psycopg://user@host/db"
    )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """WAL and synchronous=FULL (a commit is on disk when it returns); transactions begun by us, not the driver."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("commsrisk_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _row(decision: ReviewDecision, source: str, received: datetime) -> dict[str, Any]:
    decided_at = decision.decided_at or received
    decision_id = decision.decision_id or derive_decision_id(
        decision.message_id, decision.reviewer, decided_at, decision.labels
    )
    seen = decision.seen
    return {
        "decision_id": decision_id,
        "message_id": decision.message_id,
        "text": decision.text,
        "lang": decision.lang,
        "business_unit": decision.business_unit,
        "channel": decision.channel,
        **decision.labels.model_dump(),
        "reviewer": decision.reviewer,
        "reason": decision.reason,
        "decided_at": decided_at,
        "recorded_at": received,
        "source": source[:256],
        "seen_model_version": seen.model_version if seen else None,
        "seen_thresholds_version": seen.thresholds_version if seen else None,
        **{f"seen_{risk}_score": seen.scores.get(risk) if seen else None for risk in RISKS},  # type: ignore[call-overload]
    }


def _listed_columns() -> list[Any]:
    return [column for column in review_decisions.c if column.name != "text"]


def _stored(values: Any) -> StoredDecision:
    return StoredDecision(
        seq=int(values["seq"]),
        decision_id=values["decision_id"],
        message_id=values["message_id"],
        labels={risk: values[risk] for risk in RISKS},
        reviewer=values["reviewer"],
        reason=values["reason"],
        decided_at=values["decided_at"],
        recorded_at=values["recorded_at"],
        source=values["source"],
        business_unit=values["business_unit"],
        lang=values["lang"],
        channel=values["channel"],
        seen_model_version=values["seen_model_version"],
        seen_thresholds_version=values["seen_thresholds_version"],
        seen_scores={
            risk: float(values[f"seen_{risk}_score"]) for risk in RISKS if values[f"seen_{risk}_score"] is not None
        },
    )


def _is_duplicate_id(error: IntegrityError) -> bool:
    """Whether the database refused a decision id it already holds (not another constraint)."""
    original = error.orig
    return getattr(original, "sqlstate", None) == "23505" or (
        getattr(original, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_UNIQUE"
    )


def _error_kind(error: SQLAlchemyError) -> str:
    """The driver's error class and SQLSTATE: never its message, which may quote a row (the text)."""
    original = getattr(error, "orig", None) or error
    state = getattr(original, "sqlstate", None)
    return type(original).__name__ + (f", SQLSTATE {state}" if state else "")


def _first_line(error: BaseException) -> str:
    """Class and first line of an error raised while connecting or migrating (no row data at that point)."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0][:300]}" if lines else type(original).__name__
