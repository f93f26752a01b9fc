from pathlib import Path

import numpy as np
import pytest

from commsrisk.errors import ConfigurationError
from commsrisk.schema import RISKS
from commsrisk.settings import ThresholdSettings
from commsrisk.thresholds import ThresholdPolicy, decide, dump_policy, load_policy, parse_policy
from commsrisk.thresholds.store import PolicyHistory, PolicyWatcher, apply_policy, diff_policies, rollback_policy
from commsrisk.thresholds.tuning import Target, choose_threshold, precision_recall_at, tune_policy

GOOD = """defaults:
  leakage: 0.5
  misconduct: 0.6
  off_channel: 0.4
business_units:
  equities-trading:
    misconduct: 0.3
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("0.6", "1.6"), "line 3: defaults.misconduct: Input should be less than or equal to 1"),
        (GOOD.replace("misconduct: 0.3", "spoofing: 0.3"), "line 7: business_units.equities-trading.spoofing"),
        (GOOD + "colour: blue\n", "line 8: colour: Extra inputs are not permitted"),
        (GOOD.replace("  off_channel: 0.4\n", ""), "line 2: defaults: missing risk(s) ['off_channel']"),
        (GOOD.replace("0.5", "-0.1"), "line 2: defaults.leakage: Input should be greater than or equal to 0"),
        ("defaults: [0.5", "not valid YAML at line 1"),
        ("- 1\n- 2\n", "line 1: a policy is a mapping"),
    ],
)
def test_bad_policies_are_rejected_with_line_and_reason(text: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_policy(text, "policy.yaml")
    assert expected in str(info.value)


def test_unit_overrides_and_unknown_units_use_defaults() -> None:
    policy = parse_policy(GOOD)
    decision = decide(policy, "equities-trading", {"leakage": 0.55, "misconduct": 0.35, "off_channel": 0.1})
    assert decision.flags == {"leakage": True, "misconduct": True, "off_channel": False}
    assert decision.unit_has_overrides
    unknown = decide(policy, "no-such-desk", {"leakage": 0.55, "misconduct": 0.35, "off_channel": 0.1})
    assert unknown.flags["misconduct"] is False and not unknown.unit_has_overrides
    assert unknown.thresholds == policy.defaults


def _settings(tmp_path: Path) -> ThresholdSettings:
    return ThresholdSettings(policy_file=tmp_path / "thresholds.yaml", history_db=tmp_path / "history.sqlite")


def test_apply_history_diff_and_rollback(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = apply_policy(parse_policy(GOOD), settings, author="alice", reason="initial policy")
    assert load_policy(settings.policy_file).version == first.version
    assert first.parent == "builtin-0.5" and "defaults.misconduct: 0.5 -> 0.6" in first.diff

    stricter = parse_policy(GOOD.replace("misconduct: 0.3", "misconduct: 0.25"))
    second = apply_policy(stricter, settings, author="bob", reason="desk review 2026-Q4")
    assert second.parent == first.version
    assert second.diff == ["business_units.equities-trading.misconduct: 0.3 -> 0.25"]

    with pytest.raises(ConfigurationError, match="nothing to apply"):
        apply_policy(stricter, settings, author="bob", reason="again")
    with pytest.raises(ConfigurationError, match="a reason is required"):
        apply_policy(parse_policy(GOOD), settings, author="bob", reason="  ")

    back = rollback_policy(first.version, settings, author="carol", reason="regulator query")
    assert back.diff == ["business_units.equities-trading.misconduct: 0.25 -> 0.3"]
    assert back.reason.startswith(f"rollback to {first.version}")
    history = PolicyHistory(settings.history_db).changes()
    assert [c.author for c in history] == ["(found in force)", "alice", "bob", "carol"]
    assert len({c.version for c in history}) == 4
    with pytest.raises(ConfigurationError, match="no thresholds version 'v9999'"):
        rollback_policy("v9999", settings, author="x", reason="y")
    # The policy in force before the first change is a version too: rollback can restore it.
    original = rollback_policy("builtin-0.5", settings, author="dave", reason="start over")
    assert load_policy(settings.policy_file).defaults == dict.fromkeys(RISKS, 0.5) and original.parent == back.version


def test_a_policy_keeps_its_authors_name_and_the_model_it_was_tuned_for(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    named = parse_policy("version: desk-review-q4\ntuned_for: run-abc\n" + GOOD)
    change = apply_policy(named, settings, author="alice", reason="q4 review")
    applied = load_policy(settings.policy_file)
    assert (applied.version, applied.name, applied.tuned_for) == (change.version, "desk-review-q4", "run-abc")
    assert "tuned_for: none -> run-abc" in change.diff


def _scores(n: int, units: list[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(RISKS))) < 0.3).astype(int)
    return np.clip(labels * 0.5 + rng.normal(0.25, 0.2, (n, len(RISKS))), 0, 1), labels


def test_tuning_reports_evidence_and_keeps_the_default_without_enough_of_it() -> None:
    from commsrisk.thresholds.tuning import TuningTargets, UnitTarget

    units = ["desk-a"] * 500 + ["desk-b"] * 30 + ["desk-c"] * 200
    scores, labels = _scores(len(units), units)
    labels[530:, 1] = 0  # desk-c never has misconduct: nothing to tune on
    targets = TuningTargets(
        default=UnitTarget(target="precision=0.8"),
        min_positives=15,
        min_flags=5,
        business_units={"desk-a": UnitTarget(target="recall=0.9", max_alerts_per_1000=400), "desk-b": None,
                        "desk-c": None},
    )  # fmt: skip
    base = ThresholdPolicy(defaults=dict.fromkeys(RISKS, 0.5))
    policy, rows = tune_policy(scores, labels, units, targets, base)
    by = {(r.business_unit, r.risk): r for r in rows}
    a = by[("desk-a", "leakage")]
    assert a.status == "tuned" and a.recall >= 0.9 and a.alerts_per_1000 <= 400 and a.target.startswith("recall")
    assert a.precision_ci is not None and a.precision_ci[0] <= a.precision <= a.precision_ci[1]  # type: ignore[operator]
    assert a.recall_ci is not None and a.recall_ci[0] <= a.recall <= a.recall_ci[1]
    b = by[("desk-b", "leakage")]
    assert (
        b.status.startswith("default kept:")
        and "positives <" in b.status
        and b.threshold == by[("(all units)", "leakage")].threshold
    )
    assert "desk-b" not in policy.business_units
    c = by[("desk-c", "misconduct")]
    assert c.positives == 0 and c.status == "default kept: 0 positives < 15"

    # Nothing flagged: precision is n/a, not perfect.
    nothing, _ = (
        tune_policy(
            scores * 0, labels, units, Target("precision", 0.8), ThresholdPolicy(defaults=dict.fromkeys(RISKS, 0.9))
        )[1][0],
        None,
    )
    assert nothing.flagged == 0 and nothing.precision is None and "no threshold reaches" in nothing.status

    # Units the targets file does not declare, or near-misspellings without one, are refused.
    with pytest.raises(ConfigurationError, match=r"not declared in the targets file: desk-d"):
        tune_policy(scores, labels, [*units[:-1], "desk-d"], targets, base)
    with pytest.raises(
        ConfigurationError, match=r"'equities-tradng' looks like a misspelling of \['equities-trading'\]"
    ):
        tune_policy(scores, labels, ["equities-trading"] * 700 + ["equities-tradng"] * 30, Target("f1", 0.1), base)


def test_the_report_carries_intervals_alert_volume_and_provenance(tmp_path: Path) -> None:
    import pandas as pd

    from commsrisk.thresholds.tuning import write_report

    units = ["desk-a"] * 300 + ["desk-b"] * 300
    scores, labels = _scores(600, units, seed=2)
    base = ThresholdPolicy(defaults=dict.fromkeys(RISKS, 0.5))
    policy, rows = tune_policy(scores, labels, units, Target("precision", 0.7, max_alerts_per_1000=300), base)
    scored = pd.DataFrame({"message_id": range(600), "business_unit": units})
    for j, risk in enumerate(RISKS):
        scored[f"score_{risk}"], scored[risk] = scores[:, j], labels[:, j]
    report = write_report(
        scored, rows, policy, Target("precision", 0.7, 300), tmp_path, {"model_version": "run-x", "data_digest": "abc"}
    )
    text = report.read_text()
    assert "- model_version: `run-x`" in text and "- data_digest: `abc`" in text
    assert "alerts / 1000" in text and "precision >= 0.7, <= 300 alerts/1000" in text
    assert all(r.alerts_per_1000 <= 300 for r in rows if r.status == "tuned")
    assert "[" in text.split("| desk-a | leakage |")[1].split("\n")[0]  # an interval beside the figure
    table = pd.read_csv(tmp_path / "thresholds.csv")
    assert {"precision_ci", "recall_ci", "alerts_per_1000"} <= set(table.columns)


def test_history_is_append_only(tmp_path: Path) -> None:
    import sqlite3

    settings = _settings(tmp_path)
    apply_policy(parse_policy(GOOD), settings, author="alice", reason="initial")
    with sqlite3.connect(settings.history_db) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE policy_versions SET author = 'mallory'")


def test_watcher_reloads_and_keeps_the_old_policy_on_a_bad_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    apply_policy(parse_policy(GOOD), settings, author="a", reason="r")
    watcher = PolicyWatcher(settings, check_interval_s=0)
    v1 = watcher.current().version
    second = apply_policy(parse_policy(GOOD.replace("0.4", "0.45")), settings, author="a", reason="r2")
    assert watcher.current().version == second.version != v1
    settings.policy_file.write_text("defaults: {leakage: 7}\n", encoding="utf-8")
    assert watcher.current().version == second.version


def test_tuning_meets_the_target_and_matches_a_recomputation() -> None:
    rng = np.random.default_rng(0)
    n = 600
    units = np.array(["desk-a"] * 300 + ["desk-b"] * 300)
    labels = (rng.random((n, len(RISKS))) < 0.3).astype(int)
    noise = np.where(units == "desk-a", 0.15, 0.35)[:, None]
    scores = np.clip(labels * 0.55 + rng.normal(0.25, noise, (n, len(RISKS))), 0, 1)
    base = ThresholdPolicy(defaults=dict.fromkeys(RISKS, 0.5))
    policy, rows = tune_policy(scores, labels, list(units), Target("precision", 0.8), base, min_positives=20)
    tuned = {(r.business_unit, r.risk): r for r in rows}
    assert tuned[("desk-a", "leakage")].threshold != tuned[("desk-b", "leakage")].threshold
    for row in rows:
        mask = np.ones(n, bool) if row.business_unit == "(all units)" else units == row.business_unit
        j = RISKS.index(row.risk)
        precision, recall, _ = precision_recall_at(labels[mask, j], scores[mask, j], row.threshold)
        assert (precision, recall) == (row.precision, row.recall)
        if row.status == "tuned":
            assert precision >= 0.8
    assert dump_policy(policy) == dump_policy(parse_policy(dump_policy(policy)))


def test_choose_threshold_prefers_recall_then_falls_back() -> None:
    labels = np.array([0, 0, 1, 1, 1, 0, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.75, 0.9])
    assert choose_threshold(labels, scores, Target("precision", 0.75)) == 0.3
    assert choose_threshold(labels, scores, Target("recall", 1.0)) == 0.3
    assert choose_threshold(np.zeros(4, int), np.ones(4), Target("precision", 0.9)) is None
    few = tune_policy(
        scores[:, None].repeat(3, 1),
        labels[:, None].repeat(3, 1),
        ["u"] * 7,
        Target("precision", 0.8),
        ThresholdPolicy(defaults=dict.fromkeys(RISKS, 0.5)),
        min_positives=10,
    )[1]
    assert all(r.status.endswith("default kept: 4 positives < 10") for r in few)


def test_target_parsing() -> None:
    assert Target.parse("recall=0.9") == Target("recall", 0.9)
    assert Target.parse("f1=0.5") == Target("f1", 0.5)
    with pytest.raises(ConfigurationError, match="use precision=P, recall=R or f1=F"):
        Target.parse("accuracy=0.5")


def test_f1_target_picks_the_best_f1_threshold() -> None:
    labels = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    # flag >= 0.5: 4 of 5 flagged are positive, all 4 positives found: F1 0.889, the best
    assert choose_threshold(labels, scores, Target("f1", 0.5)) == 0.5
    assert choose_threshold(labels, scores, Target("f1", 0.95)) is None


def test_diff_lists_added_and_removed_units() -> None:
    a = parse_policy(GOOD)
    b = parse_policy(GOOD.replace("equities-trading", "retail-banking"))
    assert diff_policies(a, b) == [
        "business_units.equities-trading: removed (was {'misconduct': 0.3})",
        "business_units.retail-banking: added {'misconduct': 0.3}",
    ]
