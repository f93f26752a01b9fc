"""The real service: `bentoml serve` in a subprocess on a free loopback port, exercised over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from commsrisk.classifier.model import cpu_has_bf16
from commsrisk.settings import ThresholdSettings
from commsrisk.thresholds import parse_policy
from commsrisk.thresholds.store import apply_policy
from tests.utils.pii import cn_resident_id
from tests.utils.server import bentoml_server

pytestmark = pytest.mark.slow

API_KEY = "test-key-7f3a"
REPO = Path(__file__).resolve().parents[2]
POLICY = """defaults:
  leakage: 0.5
  misconduct: 0.5
  off_channel: 0.5
business_units:
  equities-trading:
    off_channel: 0.3
"""


@pytest.fixture(scope="module")
def thresholds_settings(tmp_path_factory: pytest.TempPathFactory) -> ThresholdSettings:
    root = tmp_path_factory.mktemp("thresholds")
    settings = ThresholdSettings(policy_file=root / "thresholds.yaml", history_db=root / "history.sqlite")
    apply_policy(parse_policy(POLICY), settings, author="test", reason="service test policy")
    return settings


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, thresholds_settings: ThresholdSettings, base_model_dir: Path
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service")
    env = {
        **os.environ,
        "COMMSRISK_API_KEY": API_KEY,
        "COMMSRISK_SERVICE__OPEN_METRICS": "true",
        "COMMSRISK_THRESHOLDS__POLICY_FILE": str(thresholds_settings.policy_file),
        "COMMSRISK_THRESHOLDS__HISTORY_DB": str(thresholds_settings.history_db),
        "COMMSRISK_MODEL__CLASSIFIER": str(REPO / "models" / "default"),
        "COMMSRISK_MODEL__BASE_MODEL": str(base_model_dir),
        "COMMSRISK_LIMITS__MAX_BATCH_SIZE": "8",
        "COMMSRISK_LIMITS__MAX_BODY_BYTES": "200000",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "BENTOML_HOME": str(root / "bentoml"),
        "COMMSRISK_REVIEWS__URL": f"sqlite:///{root / 'reviews.sqlite'}",
    }
    with bentoml_server("commsrisk.service.app:CommsriskService", cwd=REPO, env=env, log=root / "serve.log") as base:
        yield base
    serve_log = (root / "serve.log").read_text()
    assert "Traceback" not in serve_log, serve_log[-3000:]
    for secret in ("13812345678", "wang.xm@qq.com", "yyyyyyyyyy", "typo", "Kill the order"):
        assert secret not in serve_log, f"message text or PII in the service log: {secret}"


def _post(base: str, path: str, body: object, key: str | None = API_KEY, raw: bytes | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(f"{base}{path}", content=content, headers=headers, timeout=60)


def test_score_english_and_chinese(server: str) -> None:
    english = _post(
        server,
        "/score",
        {
            "message": {
                "text": "Let's move this to my personal WhatsApp, the desk line is recorded.",
                "business_unit": "equities-trading",
                "message_id": "m-1",
            }
        },
    )
    assert english.status_code == 200, english.text
    body = english.json()
    assert set(body["risks"]) == {"leakage", "misconduct", "off_channel"}
    assert body["message_id"] == "m-1" and body["language"] == "en"
    assert body["risks"]["off_channel"]["threshold"] == 0.3 and body["thresholds_source"] == "business_unit"
    assert body["model_version"] and body["thresholds_version"].startswith("v0001-")
    assert body["risks"]["off_channel"]["flagged"]
    kinds = {s["kind"] for s in body["risks"]["off_channel"]["explanation"]["spans"]}
    assert "phrase" not in kinds  # signals only unless asked (service.explain defaults to 'signals')
    explained = _post(
        server, "/score", {"message": {"text": "Move this to my personal WhatsApp"}, "explain": "phrases"}
    )
    assert explained.status_code == 200, explained.text
    flagged = [r for r in explained.json()["risks"].values() if r["flagged"]]
    assert flagged and all(any(s["kind"] == "phrase" for s in r["explanation"]["spans"]) for r in flagged)

    cn_id = cn_resident_id()
    chinese = _post(
        server, "/score", {"message": {"text": f"客户身份证号{cn_id}，手机13812345678，发我私人邮箱wang.xm@qq.com"}}
    )
    assert chinese.status_code == 200, chinese.text
    found = {(p["entity_type"], p["start"], p["end"]) for p in chinese.json()["pii"]}
    assert ("CN_RESIDENT_ID", 6, 24) in found
    assert all(p["value"] != cn_id for p in chinese.json()["pii"])  # masked by default
    assert chinese.json()["thresholds_source"] == "default"


def test_batch_with_one_bad_message_scores_the_rest(server: str) -> None:
    response = _post(
        server,
        "/score_batch",
        {
            "messages": [
                {"text": "Kill the order in ACME"},
                {"text": ""},
                {"text": "加我微信小号聊", "lang": "zh"},
                {"txt": "typo"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    items = response.json()
    assert [item["index"] for item in items] == [0, 1, 2, 3]
    assert items[0]["result"] and items[2]["result"]["language"] == "zh"
    assert "field 'text'" in items[1]["error"] and "empty" in items[1]["error"]
    assert "txt" in items[3]["error"]


def test_thresholds_model_and_metrics(server: str) -> None:
    headers = {"authorization": f"Bearer {API_KEY}"}
    thresholds = httpx.get(f"{server}/thresholds", headers=headers, timeout=30)
    assert (
        thresholds.status_code == 200 and thresholds.json()["business_units"]["equities-trading"]["off_channel"] == 0.3
    )
    model = httpx.get(f"{server}/model", headers=headers, timeout=30)
    assert model.status_code == 200 and model.json()["risks"] == ["leakage", "misconduct", "off_channel"]
    assert model.json()["runtime"] == ("torch-bf16" if cpu_has_bf16() else "torch")  # the default, as it runs here
    scored = httpx.post(f"{server}/score", json={"message": {"text": "ok"}}, headers=headers, timeout=60)
    assert scored.status_code == 200  # the counter shows once a message was scored, whatever ran before
    metrics = httpx.get(f"{server}/metrics", timeout=30).text
    assert 'commsrisk_messages_total{outcome="scored"}' in metrics


def _pass_histogram(base: str) -> tuple[float, float]:
    """(passes, messages) of batched /score so far, from /metrics."""
    lines = httpx.get(f"{base}/metrics", timeout=30).text.splitlines()
    value = {line.split()[0]: float(line.split()[1]) for line in lines if line.startswith("commsrisk_score_pass_")}
    return value.get("commsrisk_score_pass_messages_count", 0.0), value.get("commsrisk_score_pass_messages_sum", 0.0)


def test_concurrent_scores_share_passes_and_answer_as_score_batch_does(server: str) -> None:
    """Eight clients at once: fewer Scorer passes than requests, each answer the one /score_batch gives."""
    texts = [
        "Let's move this to my personal WhatsApp, the desk line is recorded.",
        "Send the client file to my gmail tonight.",
        "收到,明天上午十点开会。",
        "Delete this chat after reading, compliance reads everything.",
        "¿Me pasas la lista de clientes a mi correo personal?",
        "Thanks, see you at lunch.",
        "Kill the order in ACME before the close, keep it quiet.",
        "Der Kunde will morgen anrufen, bitte Rückruf über WhatsApp.",
    ]
    unit = "equities-trading"
    messages = [{"text": text, "message_id": f"c{i}", "business_unit": unit} for i, text in enumerate(texts)]
    for message in messages:  # the dispatcher learns a pass's cost from its first requests
        assert _post(server, "/score", {"message": message}).status_code == 200
    passes_before, messages_before = _pass_histogram(server)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda m: _post(server, "/score", {"message": m}), messages * 3))
    passes, scored = (a - b for a, b in zip(_pass_histogram(server), (passes_before, messages_before), strict=True))
    assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers if a.status_code != 200]
    assert scored == len(answers) and passes < len(answers), f"{passes:.0f} passes for {len(answers)} requests"
    batch = _post(server, "/score_batch", {"messages": messages}).json()
    expected = {item["result"]["message_id"]: item["result"]["risks"] for item in batch}
    for answer in answers:
        got = answer.json()
        for risk, decision in expected[got["message_id"]].items():
            assert got["risks"][risk]["score"] == pytest.approx(decision["score"], abs=1e-4)
            assert got["risks"][risk]["flagged"] == decision["flagged"]


@pytest.mark.parametrize(
    ("body", "raw", "status", "needle"),
    [
        (None, b"{not json", 400, "json"),
        ({"message": {"text": 42}}, None, 400, "text"),
        ({"message": {"text": "   "}}, None, 400, "empty"),
        ({"message": {"text": "x" * 20001}}, None, 400, "20000"),
        ({"message": {}}, None, 400, "text"),
        ({"message": {"text": "hi"}, "explain": "everything"}, None, 400, "explain"),
        ({"messages": [{"text": f"m{i}"} for i in range(9)]}, None, 400, "8"),
        ({"message": {"text": "y" * 250000}}, None, 413, "200000"),
    ],
)
def test_bad_requests_get_clear_4xx(server: str, body: object, raw: bytes | None, status: int, needle: str) -> None:
    path = "/score_batch" if isinstance(body, dict) and "messages" in body else "/score"
    response = _post(server, path, body, raw=raw)
    assert response.status_code == status, response.text
    assert needle.lower() in response.text.lower()
    assert "x" * 50 not in response.text  # the text is never echoed back
    ok = _post(server, "/score", {"message": {"text": "still serving?"}})
    assert ok.status_code == 200


def test_api_key_is_required(server: str) -> None:
    assert _post(server, "/score", {"message": {"text": "hi"}}, key=None).status_code == 401
    wrong = _post(server, "/score", {"message": {"text": "hi"}}, key="nope")
    assert wrong.status_code == 401 and "unknown API key" in wrong.text
    assert httpx.get(f"{server}/readyz", timeout=10).status_code == 200


def test_applied_policy_is_used_without_restart_and_a_bad_one_is_ignored(
    server: str, thresholds_settings: ThresholdSettings
) -> None:
    change = apply_policy(
        parse_policy(POLICY.replace("off_channel: 0.3", "off_channel: 0.2")),
        thresholds_settings,
        author="test",
        reason="tighter",
    )
    deadline = time.monotonic() + 10
    version = None
    while time.monotonic() < deadline:
        result = _post(server, "/score", {"message": {"text": "ok", "business_unit": "equities-trading"}}).json()
        version = result["thresholds_version"]
        if version == change.version:
            break
        time.sleep(0.5)
    assert version == change.version and result["risks"]["off_channel"]["threshold"] == 0.2
    thresholds_settings.policy_file.write_text("defaults: {leakage: 2}\n", encoding="utf-8")
    time.sleep(1.5)
    headers = {"authorization": f"Bearer {API_KEY}"}
    assert httpx.get(f"{server}/thresholds", headers=headers, timeout=30).json()["version"] == change.version
    assert httpx.get(f"{server}/thresholds", timeout=30).status_code == 401


def test_schemathesis_finds_no_server_error(server: str) -> None:
    st = str(Path(sys.executable).with_name("st"))
    run = subprocess.run(
        [
            st,
            "run",
            f"{server}/docs.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "25",
            "--request-timeout",
            "60",
            "-H",
            f"Authorization: Bearer {API_KEY}",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
