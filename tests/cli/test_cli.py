"""The command line as a user runs it: real models, files with good and bad lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("commsrisk"))


def _run(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [CLI, *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        timeout=600,
        env={**os.environ, "COMMSRISK_MODEL__CLASSIFIER": "models/default", **(env or {})},
    )


def test_score_examples_file(base_model_dir: Path) -> None:
    run = _run("score", "data/examples.jsonl", "--format", "json")
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    results = [json.loads(line) for line in run.stdout.decode().splitlines()]
    assert len(results) == 30 and all(set(r["risks"]) == {"leakage", "misconduct", "off_channel"} for r in results)
    stderr = run.stderr.decode()
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr[-2000:]


def test_bad_lines_are_reported_and_the_rest_scored(tmp_path: Path, base_model_dir: Path) -> None:
    path = tmp_path / "messages.jsonl"
    lines = [
        b'{"text": "Kill the order in ACME", "message_id": "a"}',
        b'{"text": "", "message_id": "b"}',
        b'{"text": "caf\xe9 with my personal phone"}',
        b'{"text": 12}',
        json.dumps({"text": "z" * 20001}).encode(),
        json.dumps({"text": "加我微信小号聊", "message_id": "f"}, ensure_ascii=False).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    run = _run("score", str(path), "--format", "json")
    assert run.returncode == 1
    ids = [json.loads(line)["message_id"] for line in run.stdout.decode().splitlines()]
    assert ids == ["a", "f"]
    stderr = run.stderr.decode()
    assert "line 2 rejected: field 'text': text is empty" in stderr
    assert "line 3 rejected: invalid UTF-8" in stderr
    assert "line 4 rejected: field 'text'" in stderr
    assert "line 5 rejected: field 'text': text has 20001 characters, over the limit of 20000" in stderr


def test_a_lone_surrogate_line_is_rejected_alone_and_the_exit_code_says_so(
    tmp_path: Path, base_model_dir: Path
) -> None:
    """Line 150 of 200 is valid JSON holding "\\ud800": it alone is rejected, the 199 others are scored."""
    texts = [f"Status update {i}: the quarterly report for desk {i % 7} is on track." for i in range(1, 201)]
    lines = [json.dumps({"text": text, "message_id": f"m{i}"}) for i, text in enumerate(texts, start=1)]
    lines[149] = '{"text": "Secret plan \\ud800 for the client list", "message_id": "m150"}'
    assert json.loads(lines[149])["text"] == "Secret plan \ud800 for the client list"  # valid JSON, invalid Unicode
    path = tmp_path / "messages.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    run = _run("score", str(path), "--format", "json")
    stderr = run.stderr.decode()
    assert run.returncode == 1, stderr[-3000:]  # 1: some lines rejected, the rest scored
    ids = [json.loads(line)["message_id"] for line in run.stdout.decode().splitlines()]
    assert len(ids) == 199 and "m150" not in ids and ids == [f"m{i}" for i in range(1, 201) if i != 150]
    assert "line 150 rejected: field 'text' holds invalid Unicode (lone surrogate U+D800 at character 12)" in stderr
    assert "Secret plan" not in stderr and "client list" not in stderr  # the reason, never the text
    assert "scored 199 messages, rejected 1 lines" in " ".join(stderr.split())
    assert "Traceback" not in stderr

    # a clean file exits 0: test_score_examples_file
    usage = " ".join(_run("score", "--help", env={"COLUMNS": "120"}).stdout.decode().split())
    assert "Exit codes: 0 every message scored 1 some lines rejected (each reported), the rest scored 2 failed" in usage


def test_text_argument_and_stdin(base_model_dir: Path) -> None:
    one = _run("score", "Let's take this to the other app", "--format", "json", "--business-unit", "equities-trading")
    assert one.returncode == 0 and json.loads(one.stdout)["business_unit"] == "equities-trading"
    piped = _run("score", "-", "--format", "json", stdin="hello there\n请把客户名单发我\n".encode())
    assert piped.returncode == 0 and len(piped.stdout.decode().splitlines()) == 2


def test_train_reports_bad_rows_and_fails_on_an_all_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,leakage,misconduct,off_channel\n,0,0,0\nhello,2,0,0\nhi,0,,0\n", encoding="utf-8")
    run = _run(
        "train", "--data", str(bad), "--no-register", env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    )
    assert run.returncode != 0
    stderr = run.stderr.decode()
    assert "none of the 3 rows is usable" in stderr and "Traceback" not in stderr
    assert "empty text" in stderr and "label 'leakage' is '2'" in stderr and "missing label 'misconduct'" in stderr
    missing = tmp_path / "missing.csv"
    missing.write_text("text,leakage,misconduct\nhello,0,0\n", encoding="utf-8")
    run = _run("train", "--data", str(missing), "--no-register")
    assert run.returncode != 0 and "missing required column(s) ['off_channel']" in run.stderr.decode()


def test_thresholds_tune_on_the_seed_corpus(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    from commsrisk.thresholds.tuning import precision_recall_at

    run = _run(
        "thresholds",
        "tune",
        "--data",
        "data/seed/commsrisk_seed.jsonl",
        "--target",
        "precision=0.8",
        "--sample",
        "1200",  # of the ~3,000 held-out messages: the test's time
        "--output",
        str(tmp_path / "proposed.yaml"),
        "--report-dir",
        str(tmp_path / "report"),
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"},
    )
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    assert "a sample of 1200 of" in (said := " ".join(run.stdout.decode().split()))
    assert "messages the model did not train on" in said
    rows = pd.read_csv(tmp_path / "report" / "thresholds.csv")
    scores = pd.read_csv(tmp_path / "report" / "scores.csv")
    tuned = rows[rows["status"] == "tuned"]
    by_unit = tuned[tuned["business_unit"] != "(all units)"].pivot(
        index="business_unit", columns="risk", values="threshold"
    )
    assert any(by_unit[risk].dropna().nunique() > 1 for risk in by_unit.columns)  # units really differ
    for row in rows.itertuples():
        part = scores if row.business_unit == "(all units)" else scores[scores["business_unit"] == row.business_unit]
        precision, recall, _ = precision_recall_at(
            part[row.risk].to_numpy(), part[f"score_{row.risk}"].to_numpy(), row.threshold
        )
        assert np.isclose(precision, row.precision, equal_nan=True) and np.isclose(recall, row.recall)
        if row.status == "tuned":
            assert row.precision >= 0.8
    assert (tmp_path / "report" / "pr_all-units.png").stat().st_size > 10_000
    report = (tmp_path / "report" / "report.md").read_text()
    version = json.loads((REPO / "models/default/commsrisk_model.json").read_text())["version"]
    assert f"- model_version: `{version}`" in report and "- data_digest: `" in report
    assert "commsrisk thresholds tune --data data/seed/commsrisk_seed.jsonl" in report
    assert f"tuned_for: {version}" in (tmp_path / "proposed.yaml").read_text()


def test_evaluate_reports_slices_and_confusions_and_logs_them(tmp_path: Path, base_model_dir: Path) -> None:
    import mlflow
    import pandas as pd

    dev = pd.read_json(REPO / "data/eval/ood_dev/dev.jsonl", lines=True)
    plain = dev[dev["mixed_with"].fillna("") == ""]
    sample = pd.concat([plain.groupby("lang").head(10), dev[dev["mixed_with"].fillna("") != ""].head(10)])
    sample.to_json(tmp_path / "sample.jsonl", orient="records", lines=True, force_ascii=False)
    store = f"sqlite:///{tmp_path / 'm.db'}"
    run = _run("evaluate", "--data", str(tmp_path / "sample.jsonl"), env={"MLFLOW_TRACKING_URI": store})
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    text = run.stdout.decode()
    for needle in ("macro-F1 by slice", "hard cases", "missed", "false alarms", "zh", "ja", "MLflow run"):
        assert needle in text, needle
    mlflow.set_tracking_uri(store)
    (logged,) = mlflow.search_runs(experiment_names=["commsrisk"], output_format="list")
    assert {"macro_f1", "hard_macro_f1", "leakage_f1", "lang_de_macro_f1"} <= set(logged.data.metrics)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(logged.info.run_id, "evaluation")}
    assert {"evaluation/confusions.png", "evaluation/missed_as.csv", "evaluation/scores.csv"} <= artifacts
    scores = pd.read_csv(
        mlflow.artifacts.download_artifacts(run_id=logged.info.run_id, artifact_path="evaluation/scores.csv")
    )
    assert "text" not in scores.columns and len(scores) == len(sample)  # ids and scores, never message text


def _record_lines(path: Path) -> list[int]:
    """The line each CSV record after the header starts on."""
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        starts, previous = [], 0
        for _record in reader:
            starts.append(previous + 1)
            previous = reader.line_num
    return starts[1:]


def test_a_review_export_goes_through_data_check_and_train(tmp_path: Path, base_model_dir: Path) -> None:
    """A review tool's export as it comes: its own column names, yes/no and reviewer words, conflicts."""
    import pandas as pd

    seed = pd.read_json(REPO / "data" / "seed" / "commsrisk_seed.jsonl", lines=True)
    sample = seed[seed["origin"] == "written"].sample(n=300, random_state=5).reset_index(drop=True)
    words = {1: ["Yes", "escalated", "Y", "TRUE"], 0: ["No", "false positive", "n", "No action"]}
    export = pd.DataFrame(
        {
            "Message ID": [f"rev-{i}" for i in range(len(sample))],
            "Message Text": sample["text"],
            "Leakage Flag": [words[v][i % 4] for i, v in enumerate(sample["leakage"])],
            "Misconduct Flag": [words[v][(i + 1) % 4] for i, v in enumerate(sample["misconduct"])],
            "Off-Channel Flag": [words[v][(i + 2) % 4] for i, v in enumerate(sample["off_channel"])],
            "Desk": sample["business_unit"],
        }
    )
    conflict = export.iloc[[0]].assign(
        **{"Message ID": "rev-dup", "Leakage Flag": "yes" if sample["leakage"][0] == 0 else "no"}
    )
    bad = export.iloc[[1]].assign(
        **{"Message ID": "rev-bad", "Message Text": "different text", "Misconduct Flag": "maybe"}
    )
    export = pd.concat([export, conflict, bad], ignore_index=True)
    path = tmp_path / "review_export.csv"
    export.to_csv(path, index=False)
    mapping = [
        "--map", 'text="Message Text"', "--map", "leakage=Leakage Flag", "--map", "misconduct=Misconduct Flag",
        "--map", "off_channel=Off-Channel Flag", "--map", "message_id=Message ID", "--map", "business_unit=Desk",
    ]  # fmt: skip
    check = _run("data", "check", str(path), *mapping)
    assert check.returncode == 0, check.stderr.decode()[-3000:]
    stderr = " ".join(check.stderr.decode().split())
    assert "299 of 302 rows accepted" in check.stdout.decode()
    lines = _record_lines(path)  # a quoted line break in a text moves the lines records start on
    assert "conflicting labels for the same text" in stderr and f"{lines[-2]}" in stderr and "rev-dup" in stderr
    assert "label 'misconduct' is 'maybe'" in stderr and f"{lines[-1]}" in stderr
    unmapped = _run("data", "check", str(path))
    assert unmapped.returncode == 2 and "map other names with --map field=Column" in unmapped.stderr.decode()

    train = _run(
        "train", "--data", str(path), *mapping, "--method", "frozen", "--no-dev", "--no-register",
        "--output", str(tmp_path / "model"), env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"},
    )  # fmt: skip
    assert train.returncode == 0, train.stderr.decode()[-3000:]
    stderr = " ".join(train.stderr.decode().split())
    assert "rev-dup" in stderr and "conflicting labels" in stderr and "'maybe'" in stderr
    assert (tmp_path / "model" / "training_fingerprints.txt").is_file()
    assert "Traceback" not in stderr
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'm.db'}")
    (run,) = mlflow.search_runs(experiment_names=["commsrisk"], output_format="list")
    languages = {k for k in run.data.metrics if k.startswith("test_lang_")}
    assert languages and not any("unknown" in k for k in languages)  # detected: the export has no lang column
    assert any(k.startswith("test_unit_") for k in run.data.metrics)
    assert run.data.tags["commsrisk.data_path"] == str(path.resolve()) and run.data.tags["commsrisk.git_commit"]
