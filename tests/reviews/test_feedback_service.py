"""POST /feedback and /feedback_batch over HTTP against a real `bentoml serve` on 127.0.0.1, SQLite store.

One server for the module (it loads the real model). The last test SIGKILLs it right after a 200
and starts another on the same store: every acknowledged decision is there, and a client's
retry of that batch is recognised as already stored.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from commsrisk.reviews.store import ReviewStore
from commsrisk.service.startup import STARTUP_FAILED
from commsrisk.settings import ReviewSettings
from tests.reviews.conftest import REPO, SERVICE
from tests.utils.server import bentoml_server, free_port

pytestmark = pytest.mark.slow

SECRET_TEXT = "wire the kickback to my cousin's account"
"""Message text that must never show up in a response to a bad request or in the server log."""


def decision(message_id: str, reviewer: str = "ann", **fields: Any) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "text": f"{SECRET_TEXT} ({message_id})",
        "labels": {"misconduct": 1, "leakage": 0},
        "reviewer": reviewer,
        "decided_at": "2026-05-04T09:30:00Z",
        **fields,
    }


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, service_env: tuple[dict[str, str], dict[str, str]]
) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    root = tmp_path_factory.mktemp("feedback-sqlite")
    env = service_env[0] | {"COMMSRISK_REVIEWS__URL": f"sqlite:///{root / 'reviews.sqlite'}"}
    log = root / "serve.log"
    with bentoml_server(SERVICE, cwd=REPO, env=env, log=log) as base:
        yield base, env, service_env[1]
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert SECRET_TEXT not in text, "message text in the server log"


def store_of(env: dict[str, str]) -> ReviewStore:
    return ReviewStore.open(ReviewSettings(url=env["COMMSRISK_REVIEWS__URL"]))


def post(base: str, path: str, body: object, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{base}{path}", content=json.dumps(body), headers=headers | {"content-type": "application/json"})


def test_single_and_batch_feedback_are_stored_with_what_the_reviewer_saw(served: Any) -> None:
    base, env, keys = served
    seen = {"model_version": "7", "thresholds_version": "v0001-abc", "scores": {"misconduct": 0.93}}
    one = post(base, "/feedback", {"decision": decision("http-1", seen=seen, reason="kickback")}, keys["reviewer"])
    assert one.status_code == 200, one.text
    receipt = one.json()
    assert receipt["accepted"] == 1 and receipt["duplicates"] == 0 and receipt["decision_ids"][0].startswith("sha256:")
    retry = post(base, "/feedback", {"decision": decision("http-1", seen=seen, reason="kickback")}, keys["reviewer"])
    assert retry.json() == {"accepted": 0, "duplicates": 1, "decision_ids": receipt["decision_ids"]}

    batch = [
        decision("http-1", "bob", labels={"misconduct": 0}, decided_at="2026-05-04T10:00:00Z"),
        decision("http-2", labels={"off_channel": 1}, decision_id="tool-7", business_unit="wealth-management"),
        decision("http-3", labels={"leakage": 0, "misconduct": 0, "off_channel": 0}, decided_at=None),
    ]
    stored = post(base, "/feedback_batch", {"decisions": batch}, keys["reviewer"])
    assert stored.status_code == 200, stored.text
    assert stored.json()["accepted"] == 3 and stored.json()["decision_ids"][1] == "tool-7"
    with store_of(env) as store:
        first = store.history("http-1")[0]
        assert first.seen_model_version == "7" and first.seen_scores == {"misconduct": 0.93}
        assert first.source == "api:reviewer" and first.reason == "kickback"
        snapshot = store.snapshot()
        rows = snapshot.frame.set_index("message_id")
        assert rows.loc["http-1", "misconduct"] == 0 and rows.loc["http-1", "decisions"] == 2  # bob decided later
        assert rows.loc["http-2", "business_unit"] == "wealth-management" and rows.loc["http-2", "leakage"] is None
        assert [(c.message_id, c.risk) for c in snapshot.conflicts] == [("http-1", "misconduct")]


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/feedback", {"decision": decision("has space")}, 400, "decision.message_id"),
        ("/feedback", {"decision": decision("x" * 129)}, 400, "decision.message_id"),
        ("/feedback", {"decision": decision("b-1", labels={"leakage": True})}, 400, "decision.labels.leakage"),
        ("/feedback", {"decision": decision("b-1", labels={"leakage": "yes"})}, 400, "decision.labels.leakage"),
        ("/feedback", {"decision": decision("b-1", labels={"leakage": 2})}, 400, "decision.labels.leakage"),
        ("/feedback", {"decision": decision("b-1", labels={"fraud": 1})}, 400, "decision.labels.fraud"),
        ("/feedback", {"decision": decision("b-1", labels={"leakage": None})}, 400, "decision.labels"),
        ("/feedback", {"decision": decision("b-1", reviewer=" ")}, 400, "decision.reviewer"),
        (
            "/feedback",
            {"decision": {k: v for k, v in decision("b-1").items() if k != "reviewer"}},
            400,
            "decision.reviewer",
        ),
        ("/feedback", {"decision": decision("b-1", text="x" * 20_001)}, 400, "decision.text"),
        ("/feedback", {"decision": decision("b-1", reason="r" * 2_001)}, 400, "decision.reason"),
        ("/feedback", {"decision": decision("b-1", decided_at="2999-01-01T00:00:00Z")}, 400, "decision.decided_at"),
        (
            "/feedback",
            {"decision": decision("b-1", seen={"model_version": "7", "scores": {"leakage": 1.5}})},
            400,
            "decision.seen.scores.leakage",
        ),
        ("/feedback_batch", {"decisions": [decision(f"b-{i}") for i in range(9)]}, 400, "decisions"),
        (
            "/feedback_batch",
            {"decisions": [decision("b-1"), decision("b-2"), decision("b-3", labels={"leakage": "maybe"})]},
            400,
            "decisions.2.labels.leakage",
        ),
        ("/feedback_batch", {"decisions": [decision(f"b-{i}", text="y" * 19_000) for i in range(11)]}, 413, "200000"),
    ],
)
def test_bad_feedback_gets_a_4xx_naming_the_field_and_nothing_is_written(
    served: Any, path: str, body: dict[str, Any], status: int, field: str
) -> None:
    base, env, keys = served
    with store_of(env) as store:
        before = store.count()
    response = post(base, path, body, keys["reviewer"])
    assert response.status_code == status, response.text
    assert field in response.text
    assert SECRET_TEXT not in response.text and "x" * 50 not in response.text  # the text is never echoed
    if field == "decisions":
        assert "batch limit of 8" in response.text
    with store_of(env) as store:
        assert store.count() == before, "a rejected request wrote decisions"


def test_feedback_needs_a_key_with_the_feedback_scope_and_the_unit(served: Any) -> None:
    base, env, keys = served
    with store_of(env) as store:
        before = store.count()
    body = {"decision": decision("auth-1")}
    assert post(base, "/feedback", body, None).status_code == 401
    assert post(base, "/feedback", body, "cr_forged").status_code == 401
    refused = post(base, "/feedback_batch", {"decisions": [decision("auth-1")]}, keys["scorer"])
    assert refused.status_code == 403 and "'feedback' scope" in refused.text
    assert post(base, "/score", {"message": {"text": "hi"}}, keys["reviewer"]).status_code == 403
    mixed = [
        decision("auth-1", business_unit="equities-trading"),
        decision("auth-2", business_unit="wealth-management"),
    ]
    other_unit = post(base, "/feedback_batch", {"decisions": mixed}, keys["desk-reviewer"])
    assert other_unit.status_code == 403 and "decisions.1.business_unit" in other_unit.text
    with store_of(env) as store:
        assert store.count() == before
    own_unit = post(base, "/feedback_batch", {"decisions": mixed[:1]}, keys["desk-reviewer"])
    assert own_unit.status_code == 200 and own_unit.json()["accepted"] == 1


def test_a_store_that_cannot_be_opened_stops_the_server_at_start(
    service_env: tuple[dict[str, str], dict[str, str]],
) -> None:
    env = service_env[0] | {"COMMSRISK_REVIEWS__URL": "postgresql+psycopg://u:secret@127.0.0.1:1/reviews"}
    commsrisk = str(Path(sys.executable).with_name("commsrisk"))
    result = subprocess.run(
        [commsrisk, "serve", "--port", str(free_port())], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == STARTUP_FAILED, result.stderr[-2000:]
    assert "reviews.url postgresql+psycopg://u:***@127.0.0.1:1/reviews: cannot open the review store" in result.stderr
    assert "secret" not in result.stderr


def kill_server(base: str) -> None:
    """SIGKILL the `bentoml serve` on this port and every process under it: a crash, no shutdown."""
    port = base.rsplit(":", 1)[1]
    for child in psutil.Process().children():
        try:
            command = child.cmdline()
        except psutil.Error:
            continue
        if "serve" in command and port in command:
            tree = [child, *child.children(recursive=True)]
            for process in tree:
                process.send_signal(signal.SIGKILL)
            psutil.wait_procs(tree, timeout=10)
            return
    pytest.fail(f"no bentoml serve process on port {port}")


def test_a_killed_service_keeps_every_acknowledged_decision(served: Any) -> None:
    """Runs last in the module: it kills the module's server."""
    base, env, keys = served
    with store_of(env) as store:
        before = store.count()
    batch = [decision(f"crash-{i}", labels={"leakage": i % 2}) for i in range(8)]
    acknowledged = post(base, "/feedback_batch", {"decisions": batch}, keys["reviewer"])
    assert acknowledged.status_code == 200 and acknowledged.json()["accepted"] == 8
    kill_server(base)
    with store_of(env) as store:
        assert store.count() == before + 8
        assert {d.message_id for d in store.recent(8)} == {f"crash-{i}" for i in range(8)}
    root = Path(env["COMMSRISK_REVIEWS__URL"].removeprefix("sqlite:///")).parent
    with bentoml_server(SERVICE, cwd=REPO, env=env, log=root / "restart.log") as restarted:
        retried = post(restarted, "/feedback_batch", {"decisions": batch}, keys["reviewer"])
        assert retried.status_code == 200 and retried.json()["duplicates"] == 8, retried.text
        assert retried.json()["decision_ids"] == acknowledged.json()["decision_ids"]
        after = post(restarted, "/feedback", {"decision": decision("after-restart")}, keys["reviewer"])
        assert after.status_code == 200 and after.json()["accepted"] == 1
    with store_of(env) as store:
        assert store.count() == before + 9
