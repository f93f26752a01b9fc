"""/feedback end to end over HTTP with the review store in a real PostgreSQL server (tests/reviews/conftest.py)."""

from __future__ import annotations

import pytest

from commsrisk.reviews.store import ReviewStore
from commsrisk.settings import ReviewSettings
from tests.reviews.conftest import REPO, SERVICE
from tests.reviews.test_feedback_service import SECRET_TEXT, decision, post
from tests.utils.server import bentoml_server

pytestmark = pytest.mark.slow


def test_feedback_is_stored_in_postgresql_and_a_rejected_batch_writes_nothing(
    tmp_path_factory: pytest.TempPathFactory, service_env: tuple[dict[str, str], dict[str, str]], postgres_url: str
) -> None:
    env, keys = service_env
    env = env | {"COMMSRISK_REVIEWS__URL": postgres_url}
    log = tmp_path_factory.mktemp("feedback-postgres") / "serve.log"
    with bentoml_server(SERVICE, cwd=REPO, env=env, log=log) as base:
        one = post(base, "/feedback", {"decision": decision("pg-1", labels={"leakage": 1})}, keys["reviewer"])
        assert one.status_code == 200 and one.json()["accepted"] == 1, one.text
        batch = [decision("pg-1", "bob", labels={"leakage": 0}, decided_at="2026-05-04T11:00:00Z")] + [
            decision(f"pg-{i}", labels={"off_channel": i % 2}) for i in range(2, 8)
        ]
        stored = post(base, "/feedback_batch", {"decisions": batch}, keys["reviewer"])
        assert stored.status_code == 200 and stored.json()["accepted"] == 7, stored.text
        rejected = post(
            base,
            "/feedback_batch",
            {"decisions": [decision("pg-8"), decision("pg-9", reviewer="")]},
            keys["reviewer"],
        )
        assert rejected.status_code == 400 and "decisions.1.reviewer" in rejected.text
        again = post(base, "/feedback_batch", {"decisions": batch}, keys["reviewer"])
        assert again.json() == {"accepted": 0, "duplicates": 7, "decision_ids": stored.json()["decision_ids"]}
    text = log.read_text()
    assert "Traceback" not in text and SECRET_TEXT not in text, text[-3000:]
    with ReviewStore.open(ReviewSettings(url=postgres_url)) as store:
        assert store.count() == 8 and store.history("pg-8") == []
        snapshot = store.snapshot()
        assert len(snapshot.frame) == 7
        assert [(c.message_id, c.risk, c.votes, c.resolved) for c in snapshot.conflicts] == [
            ("pg-1", "leakage", {"ann": 1, "bob": 0}, 0)
        ]
        assert all(d.source == "api:reviewer" for d in store.recent(8))
