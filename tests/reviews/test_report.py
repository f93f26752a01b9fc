"""`reviews report`: weekly alerts, confirmed precision and the threshold in force, and the call-out on a drop.

Four weeks of synthetic decisions with what the reviewers saw. In the fourth week the threshold
for equities-trading misconduct was lowered (a new thresholds version) and most of the extra
alerts are false: precision falls under the unit's target, and the report says so with the
threshold `thresholds tune`'s rules choose on the unit's recent reviews.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from commsrisk.reviews.report import PolicyVersions, build_report, log_report_run, write_report
from commsrisk.reviews.store import ReviewStore
from commsrisk.schema import RISKS, ReviewDecision
from commsrisk.settings import ReviewSettings, ThresholdSettings
from commsrisk.thresholds import parse_policy
from commsrisk.thresholds.store import PolicyHistory, apply_policy
from commsrisk.thresholds.tuning import TuningTargets, precision_recall_at

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("commsrisk"))
SECRET = "route the fee through the cousin's account"
"""In every message text: it must appear in no file the report writes."""
UNITS = ("equities-trading", "wealth-management")
WEEK_1 = date(2026, 11, 2)  # a Monday, in the past
TARGETS = """default: {target: precision=0.5}
min_positives: 5
min_flags: 3
business_units:
  equities-trading: {target: precision=0.6}
  wealth-management:
"""


def policy(misconduct: float) -> str:
    return (
        "defaults: {leakage: 0.5, misconduct: 0.5, off_channel: 0.5}\n"
        f"business_units:\n  equities-trading: {{misconduct: {misconduct}}}\n  wealth-management: {{}}\n"
    )


def week_decisions(week: int, version: str, rng: np.random.Generator) -> list[ReviewDecision]:
    """One week: per unit 12 reviewed messages flagged for misconduct or not, with their seen scores."""
    decisions = []
    monday = datetime(2026, 11, 2, 9, tzinfo=UTC) + timedelta(weeks=week)
    for unit in UNITS:
        scores = np.r_[np.linspace(0.55, 0.95, 8), [0.42, 0.45, 0.2, 0.1]]
        labels = [1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0]  # 7 of 8 over 0.5 confirmed; 0.42 and 0.45 were no risk
        if unit == "equities-trading" and week == 3:  # threshold 0.35 from this week: more alerts, mostly false
            scores = np.r_[np.linspace(0.55, 0.95, 4), [0.36, 0.37, 0.38, 0.4, 0.42, 0.45, 0.47, 0.2]]
            labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0]
        for i, (score, label) in enumerate(zip(scores, labels, strict=True)):
            seen_scores = {"misconduct": float(score), "leakage": float(rng.uniform(0.0, 0.3)), "off_channel": 0.05}
            decisions.append(
                ReviewDecision(
                    message_id=f"{unit[:3]}-w{week}-{i}",
                    text=f"{SECRET} ({unit} week {week} message {i})",
                    labels={"misconduct": label, "leakage": 0, "off_channel": 0},
                    reviewer="ann",
                    decided_at=monday + timedelta(hours=3 * i),
                    business_unit=unit,
                    seen={"model_version": "7", "thresholds_version": version, "scores": seen_scores},
                )
            )
    return decisions


@pytest.fixture(scope="module")
def reviewed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, ThresholdSettings, Path, tuple[str, str]]]:
    """A SQLite store with four weeks of decisions, the thresholds history behind them, a targets file."""
    root = tmp_path_factory.mktemp("reviews-report")
    thresholds = ThresholdSettings(policy_file=root / "thresholds.yaml", history_db=root / "history.sqlite")
    first = apply_policy(parse_policy(policy(0.4)), thresholds, author="test", reason="start")
    second = apply_policy(parse_policy(policy(0.35)), thresholds, author="test", reason="catch more misconduct")
    rng = np.random.default_rng(0)
    decisions = [d for week in range(3) for d in week_decisions(week, first.version, rng)]
    decisions += week_decisions(3, second.version, rng)
    decisions += [
        ReviewDecision(message_id="no-seen", text=SECRET, labels={"leakage": 1}, reviewer="bob"),
        ReviewDecision(
            message_id="old-version",
            text=SECRET + " again",
            labels={"leakage": 0, "misconduct": 0},
            reviewer="bob",
            business_unit="wealth-management",
            seen={"model_version": "6", "thresholds_version": "v0099-0000beef", "scores": {"leakage": 0.9}},
        ),
    ]
    url = f"sqlite:///{root / 'reviews.sqlite'}"
    with ReviewStore.open(ReviewSettings(url=url)) as store:
        store.append(decisions, source="test")
    (root / "targets.yaml").write_text(TARGETS, encoding="utf-8")
    yield url, thresholds, root / "targets.yaml", (first.version, second.version)


def test_a_precision_drop_is_called_out_with_a_suggested_threshold(
    reviewed: tuple[str, ThresholdSettings, Path, tuple[str, str]], tmp_path: Path
) -> None:
    url, thresholds, targets, (first, second) = reviewed
    with ReviewStore.open(ReviewSettings(url=url)) as store:
        decisions = store.decisions()
    history = PolicyHistory(thresholds.history_db)
    report = build_report(decisions, PolicyVersions(history), TuningTargets.load(targets))
    rows = pd.DataFrame(report.records())
    assert len(rows) == 4 * len(UNITS) * len(RISKS)
    trading = rows[(rows["business_unit"] == "equities-trading") & (rows["risk"] == "misconduct")]
    assert trading["week"].tolist() == [(WEEK_1 + timedelta(weeks=w)).isoformat() for w in range(4)]
    assert trading["threshold"].tolist() == [0.4, 0.4, 0.4, 0.35]
    assert trading["thresholds_version"].tolist() == [first] * 3 + [second]
    assert trading["alerts"].tolist() == [10, 10, 10, 11] and trading["confirmed"].tolist() == [7, 7, 7, 5]
    assert trading["precision"].iloc[-1] == round(5 / 11, 4) and trading["missed"].sum() == 0
    assert rows[rows["risk"] == "leakage"]["alerts"].sum() == 0  # scores under 0.5: reviewed, no alert
    assert report.left_out == {"no score seen": 2, "thresholds version v0099-0000beef not in the history": 1}

    (callout,) = report.callouts
    assert (callout.business_unit, callout.risk, callout.week) == (
        "equities-trading",
        "misconduct",
        WEEK_1 + timedelta(weeks=3),
    )
    assert callout.target == 0.6 and callout.threshold == 0.35 and callout.status == "tuned"
    assert callout.recent_reviews == 4 * 12 and callout.suggested == pytest.approx(0.47)  # the last true alert
    recent = [d for d in decisions if d.business_unit == "equities-trading" and "misconduct" in d.seen_scores]
    labels = np.array([d.labels["misconduct"] for d in recent])
    scores = np.array([d.seen_scores["misconduct"] for d in recent])
    precision, _, _ = precision_recall_at(labels, scores, callout.suggested)
    assert precision >= 0.6  # the suggestion meets the target on the reviews it was tuned on
    assert "suggested threshold" in callout.sentence() and "under its target 0.60" in callout.sentence()

    out = write_report(report, tmp_path / "report")
    assert (tmp_path / "report" / "reviews_report.png").stat().st_size > 10_000
    weekly = pd.read_csv(tmp_path / "report" / "weekly.csv")
    assert "text" not in weekly.columns and len(weekly) == len(rows)
    for path in (tmp_path / "report").iterdir():  # ids and counts only
        assert SECRET not in path.read_bytes().decode("utf-8", errors="ignore"), path
    assert "Precision under target:" in out.read_text() and "equities-trading / misconduct" in out.read_text()

    run_id = log_report_run(f"sqlite:///{tmp_path / 'm.db'}", "commsrisk", report, tmp_path / "report", {"since": ""})
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    steps = client.get_metric_history(run_id, "reviews.equities-trading.misconduct.precision")
    assert [m.step for m in steps] == [0, 1, 2, 3] and steps[-1].value == pytest.approx(5 / 11)
    assert {a.path for a in client.list_artifacts(run_id, "reviews_report")} >= {
        "reviews_report/weekly.csv",
        "reviews_report/reviews_report.png",
    }


def test_reviews_report_command_prints_the_table_and_the_callout(
    reviewed: tuple[str, ThresholdSettings, Path, tuple[str, str]], tmp_path: Path
) -> None:
    url, thresholds, targets, _ = reviewed
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMSRISK_")} | {
        "COMMSRISK_REVIEWS__URL": url,
        "COMMSRISK_THRESHOLDS__POLICY_FILE": str(thresholds.policy_file),
        "COMMSRISK_THRESHOLDS__HISTORY_DB": str(thresholds.history_db),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}",
        "COLUMNS": "200",
    }
    args = ["reviews", "report", "--targets", str(targets), "--out", str(tmp_path / "out"), "--mlflow"]
    run = subprocess.run([CLI, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    said = " ".join(run.stdout.split())
    assert "precision under target: equities-trading / misconduct: precision 0.45" in said
    assert "suggested threshold" in said and "logged to MLflow run" in said and "weekly.csv" in said
    assert "thresholds version v0099-0000beef not in the history: 1" in run.stderr
    assert SECRET not in run.stdout + run.stderr
    with ReviewStore.open(ReviewSettings(url=url)) as store:  # --since and --business-unit filter as the snapshot does
        narrow = store.decisions(since=datetime(2026, 11, 23), business_units=["wealth-management"])
    weekly = pd.DataFrame(build_report(narrow, PolicyVersions(PolicyHistory(thresholds.history_db))).records())
    assert set(weekly["week"]) == {"2026-11-23"} and set(weekly["business_unit"]) == {"wealth-management"}
