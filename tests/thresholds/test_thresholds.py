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


def test_diff_reports_the_rule_for_unlisted_units() -> None:
    listed = parse_policy(GOOD)
    assert diff_policies(listed, parse_policy(GOOD + "unknown_business_units: defaults\n")) == [
        "unknown_business_units: unset (reject: units are listed) -> defaults"
    ]
    assert diff_policies(parse_policy(GOOD + "unknown_business_units: defaults\n"), listed) == [
        "unknown_business_units: defaults -> unset (reject: units are listed)"
    ]
    # Adding the first unit turns an unset rule from 'defaults' into 'reject': that is a change too.
    bare = parse_policy(GOOD.split("business_units:")[0])
    assert "unknown_business_units: unset (defaults: no unit listed) -> unset (reject: units are listed)" in (
        diff_policies(bare, listed)
    )
    explicit = ThresholdPolicy(defaults=listed.defaults, unknown_business_units="reject")
    assert diff_policies(explicit, explicit) == []


# --- the hash-chained history, hand edits and who is recorded --------------------------------------

STORE_LOGGER = "commsrisk.thresholds.store"


@pytest.fixture()
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ThresholdSettings:
    """Settings for `commsrisk thresholds ...` run in-process: the policy and history in tmp_path."""
    settings = _settings(tmp_path)
    monkeypatch.setenv("COMMSRISK_THRESHOLDS__POLICY_FILE", str(settings.policy_file))
    monkeypatch.setenv("COMMSRISK_THRESHOLDS__HISTORY_DB", str(settings.history_db))
    monkeypatch.delenv("COMMSRISK_THRESHOLDS__HAND_EDITS", raising=False)
    monkeypatch.setenv("COMMSRISK_CONFIG", str(tmp_path / "no-config.yaml"))
    return settings


def _cli(*args: str):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from commsrisk.cli.app import app

    return CliRunner().invoke(app, list(args))


def _words(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


def _history_of_three(settings: ThresholdSettings) -> list:  # type: ignore[type-arg]
    first = apply_policy(parse_policy(GOOD), settings, author="alice", reason="initial")
    apply_policy(parse_policy(GOOD.replace("misconduct: 0.3", "misconduct: 0.25")), settings, author="bob", reason="r")
    rollback_policy(first.version, settings, author="carol", reason="back")
    return PolicyHistory(settings.history_db).changes()


def _sql(settings: ThresholdSettings, script: str) -> None:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(settings.history_db)) as db:
        db.executescript(script)


def test_the_chain_verifies_and_an_edit_around_the_trigger_breaks_it_at_that_record(
    cli_settings: ThresholdSettings,
) -> None:
    changes = _history_of_three(cli_settings)
    assert [c.seq for c in changes] == [1, 2, 3, 4] and changes[0].prev_hash == "0" * 64
    assert all(later.prev_hash == earlier.record_hash for earlier, later in zip(changes, changes[1:], strict=False))
    result = PolicyHistory(cli_settings.history_db).verify()
    assert result.ok and result.checked == 4 and result.head_hash == changes[-1].record_hash
    assert PolicyHistory(cli_settings.history_db).verify(changes[1].record_hash).ok  # an older anchor is fine too
    intact = _cli("thresholds", "verify")
    assert intact.exit_code == 0, intact.output
    assert "4 records checked" in _words(intact.stdout) and changes[-1].record_hash in intact.stdout

    _sql(cli_settings, "DROP TRIGGER policy_versions_no_update; UPDATE policy_versions SET author='x' WHERE seq=2;")
    broken = PolicyHistory(cli_settings.history_db).verify()
    assert not broken.ok and broken.bad_seq == 2 and broken.bad_version == changes[1].version
    assert broken.checked == 1 and "does not match its hash" in (broken.problem or "")
    run = _cli("thresholds", "verify")
    assert run.exit_code == 3, run.output
    assert f"history broken at seq 2 (version {changes[1].version})" in _words(run.stderr)
    # The trigger is back, so the next edit needs dropping it again.
    import sqlite3

    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        _sql(cli_settings, "UPDATE policy_versions SET author='y' WHERE seq=3;")


def test_a_removed_last_record_fails_verify_against_the_old_head_as_anchor(cli_settings: ThresholdSettings) -> None:
    changes = _history_of_three(cli_settings)
    old_head = changes[-1].record_hash
    assert old_head is not None
    _sql(cli_settings, "DROP TRIGGER policy_versions_no_delete; DELETE FROM policy_versions WHERE seq=4;")

    # What is left still chains: without the anchor the history looks whole ...
    assert PolicyHistory(cli_settings.history_db).verify().ok
    # ... the anchor noted before shows the truncation.
    result = PolicyHistory(cli_settings.history_db).verify(old_head)
    assert not result.ok and result.checked == 3 and result.bad_seq is None
    assert "rewritten or truncated" in (result.problem or "") and old_head in (result.problem or "")
    run = _cli("thresholds", "verify", "--anchor", old_head)
    assert run.exit_code == 3, run.output
    assert f"no record has the anchor hash {old_head}" in _words(run.stderr)
    # Without it, verify passes but warns: the file is the removed record's, not the last one's.
    plain = _cli("thresholds", "verify")
    assert plain.exit_code == 0, plain.output
    assert f"does not match the last record ({changes[2].version})" in _words(plain.stderr)


def test_a_hand_edit_seen_by_the_watcher_is_recorded_unattributed_and_logged_without_contents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import hashlib
    import logging

    from commsrisk.thresholds.store import UNATTRIBUTED_EDIT

    settings = _settings(tmp_path)
    applied = apply_policy(parse_policy(GOOD), settings, author="alice", reason="initial")
    watcher = PolicyWatcher(settings, check_interval_s=0)
    assert watcher.current().version == applied.version
    edited = GOOD.replace("misconduct: 0.3", "misconduct: 0.2") + "  # asked by jane.doe@example.com\n"
    settings.policy_file.write_bytes(edited.encode("utf-8"))
    digest = hashlib.sha256(edited.encode("utf-8")).hexdigest()

    caplog.set_level(logging.INFO, logger=STORE_LOGGER)
    in_force = watcher.current()
    head = PolicyHistory(settings.history_db).changes()[-1]
    assert (head.author, head.parent, head.policy_yaml) == (UNATTRIBUTED_EDIT, applied.version, edited)
    assert digest in head.reason and head.version.endswith(digest[:8])
    assert head.diff == ["business_units.equities-trading.misconduct: 0.3 -> 0.2"]
    assert in_force.version == head.version and in_force.business_units["equities-trading"]["misconduct"] == 0.2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == STORE_LOGGER]
    assert len(warnings) == 1 and digest in warnings[0].getMessage() and head.version in warnings[0].getMessage()
    assert "jane.doe" not in caplog.text and "misconduct" not in caplog.text  # the file's contents are never logged
    assert PolicyHistory(settings.history_db).verify().ok
    watcher.current()
    assert len(PolicyHistory(settings.history_db).changes()) == 3  # recorded once, not on every check

    # An edit no watcher saw is put on record by the next apply, before its own change.
    settings.policy_file.write_text(GOOD.replace("0.4", "0.45"), encoding="utf-8")
    nxt = apply_policy(parse_policy(GOOD.replace("0.6", "0.65")), settings, author="bob", reason="r")
    authors = [c.author for c in PolicyHistory(settings.history_db).changes()]
    assert authors == ["(found in force)", "alice", UNATTRIBUTED_EDIT, UNATTRIBUTED_EDIT, "bob"]
    assert nxt.parent == PolicyHistory(settings.history_db).changes()[3].version


def test_a_deleted_policy_file_is_recorded_and_the_service_keeps_its_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from commsrisk.thresholds.store import UNATTRIBUTED_DELETION

    settings = _settings(tmp_path)
    applied = apply_policy(parse_policy(GOOD), settings, author="alice", reason="initial")
    watcher = PolicyWatcher(settings, check_interval_s=0)
    watcher.current()
    settings.policy_file.unlink()
    caplog.set_level(logging.INFO, logger=STORE_LOGGER)
    assert watcher.current().version == applied.version
    head = PolicyHistory(settings.history_db).changes()[-1]
    assert (head.author, head.parent, head.policy_yaml) == (UNATTRIBUTED_DELETION, applied.version, "")
    assert head.diff[0] == "policy file deleted" and "deleted" in head.reason
    assert any(r.levelno == logging.WARNING and "deleted outside commsrisk" in r.getMessage() for r in caplog.records)
    watcher.current()
    assert len(PolicyHistory(settings.history_db).changes()) == 3  # once
    assert PolicyHistory(settings.history_db).verify().ok
    with pytest.raises(ConfigurationError, match="records the deletion"):
        rollback_policy(head.version, settings, author="x", reason="y")


def test_with_hand_edits_refused_the_watcher_keeps_the_recorded_policy_and_logs_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import hashlib
    import logging

    from commsrisk.thresholds.store import policy_in_force

    settings = _settings(tmp_path).model_copy(update={"hand_edits": "refuse"})
    applied = apply_policy(parse_policy(GOOD), settings, author="alice", reason="initial")
    watcher = PolicyWatcher(settings, check_interval_s=0)
    assert watcher.current().version == applied.version
    edited = GOOD.replace("misconduct: 0.3", "misconduct: 0.01")
    settings.policy_file.write_text(edited, encoding="utf-8")
    caplog.set_level(logging.INFO, logger=STORE_LOGGER)
    kept = watcher.current()
    assert kept.version == applied.version and kept.business_units["equities-trading"]["misconduct"] == 0.3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == STORE_LOGGER]
    assert len(errors) == 1 and "refuse" in errors[0].getMessage()
    assert hashlib.sha256(edited.encode()).hexdigest() in errors[0].getMessage() and "misconduct" not in caplog.text
    assert [c.version for c in PolicyHistory(settings.history_db).changes()][-1] == applied.version  # not recorded
    assert policy_in_force(settings).version == applied.version  # the CLI sees what the service serves
    # Putting the recorded text back is taken again, silently.
    settings.policy_file.write_text(applied.policy_yaml, encoding="utf-8")
    assert watcher.current().version == applied.version


def test_the_author_recorded_is_the_os_user_with_author_as_an_annotation(
    cli_settings: ThresholdSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    pwd = pytest.importorskip("pwd")
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        pytest.skip("no password database entry for this uid")
    monkeypatch.setenv("USER", "mallory")  # the environment does not decide who is recorded
    monkeypatch.setenv("LOGNAME", "mallory")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(GOOD, encoding="utf-8")

    run = _cli("thresholds", "apply", str(candidate), "--reason", "initial", "--author", "for bob, CHG-1\n[x]")
    assert run.exit_code == 0, run.output
    head = PolicyHistory(cli_settings.history_db).changes()[-1]
    assert head.author == f"{user} (annotation: for bob, CHG-1 [x])"
    assert "mallory" not in head.author and f"record hash {head.record_hash}" in _words(run.stdout)
    plain = tmp_path / "plain.yaml"
    plain.write_text(GOOD.replace("0.4", "0.45"), encoding="utf-8")
    run = _cli("thresholds", "apply", str(plain), "--reason", "second")
    assert run.exit_code == 0, run.output
    assert PolicyHistory(cli_settings.history_db).changes()[-1].author == user
