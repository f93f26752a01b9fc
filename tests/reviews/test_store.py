"""The review store on both backends: a SQLite file and a real PostgreSQL server (tests/reviews/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from commsrisk.errors import ConfigurationError, ReviewStoreError
from commsrisk.reviews.store import SNAPSHOT_COLUMNS, ReviewStore, derive_decision_id
from commsrisk.reviews.tables import VERSION_TABLE
from commsrisk.schema import ReviewDecision, ReviewLabels
from commsrisk.settings import ReviewSettings

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def decision(message_id: str, reviewer: str, minutes: int, **labels: int | None) -> ReviewDecision:
    fields: dict[str, Any] = {
        "message_id": message_id,
        "text": f"text of {message_id}",
        "labels": labels,
        "reviewer": reviewer,
        "decided_at": T0 + timedelta(minutes=minutes),
        "business_unit": "equities-trading" if message_id.startswith("eq") else "wealth",
        "lang": "EN",
        "channel": "teams",
    }
    return ReviewDecision.model_validate(fields)


@pytest.fixture()
def store(store_url: str) -> ReviewStore:
    with ReviewStore.open(ReviewSettings(url=store_url)) as opened:
        yield opened


def test_append_stores_every_field_and_a_second_open_keeps_them(store: ReviewStore, store_url: str) -> None:
    sent = ReviewDecision.model_validate(
        decision("eq-1", "ann", 0, leakage=1, misconduct=0).model_dump()
        | {"reason": "client order to a competitor", "seen": {"model_version": "7", "scores": {"leakage": 0.9}}}
    )
    result = store.append([sent], source="api:reviewer")
    assert result.accepted == 1 and result.duplicates == 0
    assert result.decision_ids == [derive_decision_id("eq-1", "ann", sent.decided_at, sent.labels)]
    store.close()
    with ReviewStore.open(ReviewSettings(url=store_url)) as reopened:  # migrations already at head: a no-op
        (stored,) = reopened.history("eq-1")
        with reopened.engine.connect() as connection:
            assert connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one() == "0001"
    assert stored.labels == {"leakage": 1, "misconduct": 0, "off_channel": None}
    assert (stored.reviewer, stored.reason, stored.source) == ("ann", "client order to a competitor", "api:reviewer")
    assert stored.decided_at == T0 and stored.decided_at.tzinfo is not None
    assert (stored.lang, stored.channel, stored.business_unit) == ("en", "teams", "equities-trading")
    assert stored.seen_model_version == "7" and stored.seen_scores == {"leakage": 0.9}


def test_a_decision_sent_twice_is_stored_once(store: ReviewStore) -> None:
    first = decision("eq-1", "ann", 0, leakage=1)
    again = store.append([first, first], source="api")
    assert (again.accepted, again.duplicates) == (1, 1)
    retry = store.append([first, decision("eq-2", "ann", 1, leakage=0)], source="api")
    assert (retry.accepted, retry.duplicates) == (1, 1) and store.count() == 2
    given_id = first.model_copy(update={"decision_id": "tool-42", "decided_at": T0 + timedelta(hours=1)})
    assert store.append([given_id], source="api").decision_ids == ["tool-42"]
    assert store.append([given_id.model_copy(update={"reviewer": "bob"})], source="api").duplicates == 1


def test_a_later_decision_supersedes_and_both_are_kept(store: ReviewStore) -> None:
    store.append([decision("eq-1", "ann", 10, leakage=0, misconduct=0)], source="api")
    store.append([decision("eq-1", "ann", 20, leakage=1)], source="api")
    store.append([decision("eq-1", "ann", 5, leakage=0, off_channel=1)], source="import:old.csv")  # arrived last
    history = store.history("eq-1")
    assert [d.decided_at for d in history] == [T0 + timedelta(minutes=m) for m in (5, 10, 20)]
    snapshot = store.snapshot()
    (row,) = snapshot.frame.to_dict(orient="records")
    # per risk the latest decision that reviewed it: leakage from minute 20 (not the older one that
    # arrived last), misconduct from minute 10, off_channel from minute 5 (reviewed only then)
    assert (row["leakage"], row["misconduct"], row["off_channel"]) == (1, 0, 1)
    assert row["decisions"] == 3 and row["reviewer"] == "ann" and snapshot.conflicts == []


def test_snapshot_is_the_latest_per_message_with_unreviewed_risks_as_none(store: ReviewStore) -> None:
    store.append(
        [decision("eq-1", "ann", 0, leakage=1), decision("wm-1", "bob", 1, misconduct=0, off_channel=1)],
        source="api",
    )
    snapshot = store.snapshot()
    assert list(snapshot.frame.columns) == list(SNAPSHOT_COLUMNS) and snapshot.decisions == 2
    rows = {row["message_id"]: row for row in snapshot.frame.to_dict(orient="records")}
    assert rows["eq-1"]["text"] == "text of eq-1" and rows["eq-1"]["lang"] == "en"
    assert rows["eq-1"]["leakage"] == 1 and rows["eq-1"]["misconduct"] is None and rows["eq-1"]["off_channel"] is None
    assert rows["wm-1"]["leakage"] is None and rows["wm-1"]["off_channel"] == 1
    assert snapshot.frame["leakage"].dtype == object  # None, never NaN
    only_equities = store.snapshot(business_units=["equities-trading"])
    assert list(only_equities.frame["message_id"]) == ["eq-1"]
    assert list(store.snapshot(since=T0 + timedelta(seconds=30)).frame["message_id"]) == ["wm-1"]
    empty = store.snapshot(business_units=[])
    assert empty.frame.empty and list(empty.frame.columns) == list(SNAPSHOT_COLUMNS)


def test_reviewers_who_disagree_are_reported_as_conflicts(store: ReviewStore) -> None:
    store.append(
        [
            decision("eq-1", "ann", 0, leakage=1, misconduct=0),
            decision("eq-1", "bob", 5, leakage=0, misconduct=0),
            decision("eq-2", "ann", 0, off_channel=1),
            decision("eq-2", "ann", 3, off_channel=0),  # ann changing her mind is no conflict
            decision("eq-2", "bob", 4, off_channel=0),
        ],
        source="api",
    )
    snapshot = store.snapshot()
    assert [(c.message_id, c.risk, c.votes, c.resolved) for c in snapshot.conflicts] == [
        ("eq-1", "leakage", {"ann": 1, "bob": 0}, 0)
    ]
    assert snapshot.frame.set_index("message_id").loc["eq-1", "leakage"] == 0


def test_the_database_refuses_update_and_delete(store: ReviewStore) -> None:
    store.append([decision("eq-1", "ann", 0, leakage=1)], source="api")
    statements = ["UPDATE review_decisions SET leakage = 0", "DELETE FROM review_decisions"]
    if store.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE review_decisions")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as connection:
            connection.execute(text(statement))
    (kept,) = store.history("eq-1")
    assert kept.labels["leakage"] == 1


def test_a_failing_batch_writes_nothing(store: ReviewStore) -> None:
    good = decision("eq-1", "ann", 0, leakage=1)
    too_long_id = decision("eq-2", "ann", 0, leakage=1).model_copy(update={"reviewer": "r" * 300})  # past the column
    if store.engine.dialect.name == "sqlite":  # SQLite does not enforce VARCHAR lengths: make it fail another way
        too_long_id = good.model_copy(update={"labels": ReviewLabels.model_construct(leakage=2)})
    with pytest.raises(ReviewStoreError, match="nothing of it was written") as raised:
        store.append([good, too_long_id], source="api")
    assert "text of" not in str(raised.value) and store.count() == 0


def test_sqlite_commits_are_durable_wal_and_synchronous_full(tmp_path: Any) -> None:
    with ReviewStore.open(ReviewSettings(url=f"sqlite:///{tmp_path / 'deep' / 'r.sqlite'}")) as store:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL


@pytest.mark.parametrize(
    ("url", "error", "needle"),
    [
        ("mysql+pymysql://u:secret@h/db", ConfigurationError, "SQLite or PostgreSQL, not mysql"),
        ("not a url", ConfigurationError, "not a database URL"),
        ("sqlite://", ConfigurationError, "needs a SQLite file"),
        ("postgresql://u:secret@127.0.0.1:1/db", ReviewStoreError, "cannot open the review store"),
    ],
)
def test_a_store_that_cannot_be_opened_is_named_without_its_password(url: str, error: type, needle: str) -> None:
    with pytest.raises(error, match=needle) as raised:
        ReviewStore.open(ReviewSettings(url=url))
    assert "secret" not in str(raised.value)


def test_writers_racing_with_the_same_decisions_store_each_once(store: ReviewStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    batch = [decision(f"eq-{i}", "ann", i, leakage=i % 2) for i in range(50)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: store.append(batch, source="api"), range(6)))
    assert sum(r.accepted for r in results) == 50 and sum(r.duplicates for r in results) == 250
    assert store.count() == 50
