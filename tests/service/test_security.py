"""A security review's findings, replayed over HTTP against a real `bentoml serve` on 127.0.0.1.

One server with scoped keys from a key file written by `commsrisk keys add`, a policy that lists
its business units, a short request deadline and a small in-flight limit, so that abandoned and
overlong work, scopes, metrics, pages and oversized chunked bodies are all exercised for real.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from commsrisk.cli.app import app
from commsrisk.settings import ThresholdSettings
from commsrisk.thresholds import parse_policy
from commsrisk.thresholds.store import apply_policy
from tests.utils.server import bentoml_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
POLICY = """defaults: {leakage: 0.5, misconduct: 0.5, off_channel: 0.5}
business_units:
  equities-trading: {off_channel: 0.3}
  wealth-management: {leakage: 0.4}
"""
KEYS = {
    "scorer": ["score"],
    "revealer": ["score", "pii:reveal"],
    "desk": ["score", "thresholds:read"],
    "ops": ["admin"],
    "reviewer": ["feedback"],
}
DEADLINE_S = 4
HEAVY = [
    {"text": ("Quarterly notes for the desk, call Maria Garcia on +1 212 555 0101 about the offsite. " * 230)[:19_500]}
    for _ in range(50)
]
"""50 messages of 19,500 characters: under every limit, and many seconds of work on 2 cores."""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("keys") / "api_keys.yaml"
    runner = CliRunner()
    issued = {}
    for name, scopes in KEYS.items():
        args = ["keys", "add", name, "--file", str(path), *[x for s in scopes for x in ("--scope", s)]]
        if name == "desk":
            args += ["--business-unit", "equities-trading"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        issued[name] = result.stdout.strip().splitlines()[-1]
    stored = path.read_text(encoding="utf-8")
    assert all(key not in stored for key in issued.values()), "keys are stored as hashes only"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    listed = runner.invoke(app, ["keys", "list", "--file", str(path)])
    assert "desk" in listed.stdout and "equities-trading" in listed.stdout
    return path, issued


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, dict[str, str]], base_model_dir: Path):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("secure")
    thresholds = ThresholdSettings(policy_file=root / "thresholds.yaml", history_db=root / "history.sqlite")
    apply_policy(parse_policy(POLICY), thresholds, author="test", reason="security test policy")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMSRISK_")}
    env |= {
        "COMMSRISK_SERVICE__API_KEYS_FILE": str(keys[0]),
        "COMMSRISK_SERVICE__REQUEST_DEADLINE_S": str(DEADLINE_S),
        "COMMSRISK_SERVICE__MAX_IN_FLIGHT": "2",
        "COMMSRISK_SERVICE__QUEUE_WAIT_S": "0.5",
        "COMMSRISK_THRESHOLDS__POLICY_FILE": str(thresholds.policy_file),
        "COMMSRISK_THRESHOLDS__HISTORY_DB": str(thresholds.history_db),
        "COMMSRISK_MODEL__CLASSIFIER": str(REPO / "models" / "default"),
        "COMMSRISK_MODEL__BASE_MODEL": str(base_model_dir),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "BENTOML_HOME": str(root / "bentoml"),
        "COMMSRISK_REVIEWS__URL": f"sqlite:///{root / 'reviews.sqlite'}",
    }
    log = root / "serve.log"
    with bentoml_server("commsrisk.service.app:CommsriskService", cwd=REPO, env=env, log=log) as base:
        yield base, keys[1], log, thresholds
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "Maria Garcia" not in text and "555 0101" not in text, "message text or PII in the server log"


@pytest.fixture(scope="module")
def base(served) -> str:  # type: ignore[no-untyped-def]
    return served[0]


@pytest.fixture(scope="module")
def key(served) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return served[1]


def _auth(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


def _score(base: str, key: str | None, message: dict, timeout: float = 60, **params: object) -> httpx.Response:
    return httpx.post(f"{base}/score", json={"message": message, **params}, headers=_auth(key), timeout=timeout)


def test_every_route_needs_a_key_with_its_scope(base: str, key: dict[str, str]) -> None:
    routes = [
        ("POST", "/score"),
        ("POST", "/score_batch"),
        ("GET", "/thresholds"),
        ("GET", "/model"),
        ("GET", "/metrics"),
    ]
    for method, path in routes:
        body = {"messages": [{"text": "hi"}]} if path == "/score_batch" else {"message": {"text": "hi"}}
        kwargs = {"json": body} if method == "POST" else {}
        assert httpx.request(method, f"{base}{path}", timeout=30, **kwargs).status_code == 401, path
        assert (
            httpx.request(method, f"{base}{path}", headers=_auth("cr_forged"), timeout=30, **kwargs).status_code == 401
        )
        refused = httpx.request(method, f"{base}{path}", headers=_auth(key["reviewer"]), timeout=30, **kwargs)
        assert refused.status_code == 403 and "reviewer" in refused.text, (path, refused.text)
    assert _score(base, key["scorer"], {"text": "hi"}).status_code == 200
    assert httpx.get(f"{base}/metrics", headers=_auth(key["scorer"]), timeout=30).status_code == 403
    assert httpx.get(f"{base}/metrics", headers=_auth(key["ops"]), timeout=30).status_code == 200
    assert httpx.get(f"{base}/thresholds", headers=_auth(key["scorer"]), timeout=30).status_code == 403
    assert httpx.get(f"{base}/readyz", timeout=30).status_code == 200, "probes stay open"


def test_raw_pii_values_need_the_reveal_scope(base: str, key: dict[str, str]) -> None:
    message = {"text": "Send it to maria.garcia@example.com please"}
    refused = _score(base, key["scorer"], message, show_pii_values=True)
    assert refused.status_code == 403 and "pii:reveal" in refused.text
    batch = httpx.post(
        f"{base}/score_batch",
        json={"messages": [message], "show_pii_values": True},
        headers=_auth(key["scorer"]),
        timeout=60,
    )
    assert batch.status_code == 403 and "pii:reveal" in batch.text
    masked = _score(base, key["scorer"], message).json()
    assert masked["pii"] and all("maria.garcia" not in (finding.get("value") or "") for finding in masked["pii"])
    revealed = _score(base, key["revealer"], message, show_pii_values=True)
    assert revealed.status_code == 200
    assert any(finding.get("value") == "maria.garcia@example.com" for finding in revealed.json()["pii"])


def test_business_units_are_the_keys_and_the_policys(base: str, key: dict[str, str]) -> None:
    own = _score(base, key["desk"], {"text": "ok", "business_unit": "equities-trading"})
    assert own.status_code == 200 and own.json()["risks"]["off_channel"]["threshold"] == 0.3
    other = _score(base, key["desk"], {"text": "ok", "business_unit": "wealth-management"})
    assert other.status_code == 403 and "wealth-management" in other.text
    typo = _score(base, key["scorer"], {"text": "ok", "business_unit": "equity-trading"})
    assert typo.status_code == 400 and "business_unit" in typo.text, "an unknown unit never gets the defaults"
    batch = httpx.post(
        f"{base}/score_batch",
        json={"messages": [{"text": "a", "business_unit": "equities-trading"}, {"text": "b", "business_unit": "nope"}]},
        headers=_auth(key["scorer"]),
        timeout=60,
    ).json()
    assert "result" in batch[0] and "business_unit" in batch[1]["error"]
    units = httpx.get(f"{base}/thresholds", headers=_auth(key["desk"]), timeout=30).json()["business_units"]
    assert list(units) == ["equities-trading"], "a restricted key sees its own units only"
    everything = httpx.get(f"{base}/thresholds", headers=_auth(key["ops"]), timeout=30).json()["business_units"]
    assert set(everything) == {"equities-trading", "wealth-management"}


def test_random_404s_add_no_metric_series(base: str, key: dict[str, str]) -> None:
    def series() -> set[str]:
        text = httpx.get(f"{base}/metrics", headers=_auth(key["ops"]), timeout=30).text
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}

    for i in range(5):
        httpx.get(f"{base}/warmup-{i}", headers=_auth(key["ops"]), timeout=10)
    before = series()
    for i in range(200):
        assert (
            httpx.get(f"{base}/random-{i}-{os.urandom(4).hex()}", headers=_auth(key["ops"]), timeout=10).status_code
            == 404
        )
    after = series()
    assert after == before, sorted(after - before)[:10]
    assert not any("random-" in line for line in after)
    assert any('route="other"' in line for line in after) and any('route="/score"' in line for line in after)


def test_an_oversized_chunked_body_gets_413(base: str, key: dict[str, str]) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"messages": [{"text": "'
        for _ in range(160):  # 10 MB, no Content-Length
            yield b"x" * 65_536
        yield b'"}]}'

    response = httpx.post(
        f"{base}/score_batch",
        content=chunks(),
        headers={"content-type": "application/json", **_auth(key["scorer"])},
        timeout=60,
    )
    assert response.status_code == 413 and "max_body_bytes" in response.text
    too_many_chars = httpx.post(
        f"{base}/score_batch", json={"messages": HEAVY * 2}, headers=_auth(key["scorer"]), timeout=60
    )
    assert too_many_chars.status_code == 413 and "max_batch_chars" in too_many_chars.text


def test_pages_load_nothing_from_elsewhere(base: str) -> None:
    for path in ("/", "/docs"):
        page = httpx.get(f"{base}{path}", timeout=30)
        assert page.status_code == 200 and "swagger-ui" in page.text
        assert not re.search(r"(src|href)=\"(https?:)?//", page.text), "an external script or style"
        assert "googletagmanager" not in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert httpx.get(f"{base}/docs.json", timeout=30).json()["paths"]["/score"]


def test_overlong_work_stops_at_the_deadline_and_readiness_reports_overload(base: str, key: dict[str, str]) -> None:
    answers: list[httpx.Response] = []

    def heavy() -> None:
        answers.append(
            httpx.post(f"{base}/score_batch", json={"messages": HEAVY}, headers=_auth(key["scorer"]), timeout=120)
        )

    workers = [threading.Thread(target=heavy) for _ in range(2)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    ready, busy = [], []
    while any(worker.is_alive() for worker in workers):
        ready.append(httpx.get(f"{base}/readyz", timeout=10).status_code)
        if ready[-1] == 503 and not busy:  # both heavy requests are scoring: a third waits 0.5 s, then a 429
            asked = time.monotonic()
            busy.append(_score(base, key["scorer"], {"text": "hi"}))
            busy.append(time.monotonic() - asked)
        time.sleep(0.3)
    elapsed = time.monotonic() - started
    assert 503 in ready, "two heavy requests at max_in_flight=2: /readyz says overloaded"
    refused, took = busy
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1", refused.text[:200]
    assert "service.max_in_flight" in refused.json()["error"] and took < 2
    assert [a.status_code for a in answers] == [503, 503], [a.text[:200] for a in answers]
    assert all("request_deadline_s" in a.json()["error"] for a in answers)
    assert elapsed < DEADLINE_S + 20, f"work went on for {elapsed:.0f} s after a {DEADLINE_S} s deadline"
    assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200


def test_abandoned_heavy_batches_do_not_slow_a_one_word_score(served) -> None:  # type: ignore[no-untyped-def]
    base, key, log, _ = served

    outcomes: list[str] = []

    def abandon() -> None:
        try:
            answer = httpx.post(
                f"{base}/score_batch", json={"messages": HEAVY}, headers=_auth(key["scorer"]), timeout=1.5
            )
            outcomes.append(f"answered {answer.status_code}")
        except httpx.TimeoutException:
            outcomes.append("abandoned")

    workers = [threading.Thread(target=abandon) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    abandoned = outcomes.count("abandoned")
    assert sorted(outcomes) == ["abandoned"] * abandoned + ["answered 429"] * (3 - abandoned), outcomes
    assert abandoned >= 2, "max_in_flight=2: two are taken and abandoned, a third may be refused (429) at once"
    time.sleep(1.0)
    started = time.monotonic()
    quick = _score(base, key["scorer"], {"text": "thanks"}, timeout=30)
    took = time.monotonic() - started
    assert quick.status_code == 200 and took < 2.0, f"one-word /score took {took:.2f} s after abandoned batches"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    stopped = [line for line in lines if line.get("message") == "client disconnected, scoring stopped"]
    assert len(stopped) >= abandoned, "each abandoned request is stopped and logged"
    scored = [line for line in lines if line.get("message") == "scored"]
    assert scored and {"request_id", "caller", "latency_ms", "messages", "model_version"} <= set(scored[-1])


def test_a_hand_edit_of_the_policy_goes_on_record(served) -> None:  # type: ignore[no-untyped-def]
    """Edited by hand while the server runs: taken, logged with the file digest, in the history unattributed."""
    from commsrisk.thresholds.store import UNATTRIBUTED_EDIT, PolicyHistory, text_digest

    base, key, log, thresholds = served
    before = httpx.get(f"{base}/thresholds", headers=_auth(key["ops"]), timeout=30).json()["version"]
    edited = POLICY.replace("{off_channel: 0.3}", "{off_channel: 0.25}") + "# lowered on the desk's request\n"
    thresholds.policy_file.write_text(edited, encoding="utf-8")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = httpx.get(f"{base}/thresholds", headers=_auth(key["ops"]), timeout=30).json()
        if now["version"] != before:
            break
        time.sleep(0.5)
    assert now["version"] != before, "the hand edit was not taken"
    record = PolicyHistory(thresholds.history_db).changes()[-1]
    assert record.author == UNATTRIBUTED_EDIT and record.version == now["version"]
    assert record.policy_yaml == edited and PolicyHistory(thresholds.history_db).verify().ok
    digest = text_digest(edited)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(digest in json.dumps(line) and line["level"] == "WARNING" for line in lines), "logged with the digest"
    assert "desk's request" not in log.read_text(), "the file's content stays out of the log"
