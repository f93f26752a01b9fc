"""Demo of `commsrisk reviews report`: five weeks of synthetic reviewer decisions, the report's plot and table.

Usage: .venv/bin/python scripts/reviews_demo.py [--work DIR] [--docs docs]

Builds, in a work folder (a new temp folder by default), a thresholds history and a SQLite review
store with five weeks of decisions on messages of the seed corpus (data/seed, never the dev
set): the reviewers' labels are the corpus labels, the scores they saw are synthetic (drawn per
label, seeded). In week four the retail-banking off_channel threshold is lowered from 0.5 to
0.35 (a new thresholds version) while that unit's harmless traffic starts to score higher: its
confirmed precision falls under its target. Then it runs `commsrisk reviews report` on that store
and writes docs/reviews_report.png and docs/reviews.md (the table and the call-out), both made
from this run. Deterministic: the same files every run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from commsrisk.reviews.store import ReviewStore
from commsrisk.schema import RISKS, ReviewDecision
from commsrisk.settings import ReviewSettings, ThresholdSettings
from commsrisk.thresholds import parse_policy
from commsrisk.thresholds.store import apply_policy

REPO = Path(__file__).resolve().parents[1]
UNITS = ("equities-trading", "retail-banking", "wealth-management")
WEEKS = 5
FIRST_MONDAY = datetime(2026, 10, 26, 8, tzinfo=UTC)
PER_UNIT_WEEK = 40
TARGETS = """# per-unit targets, in the format of `commsrisk thresholds tune --targets`
default: {target: precision=0.5}
min_positives: 8
min_flags: 4
business_units:
  equities-trading: {target: precision=0.6}
  retail-banking: {target: precision=0.6}
  wealth-management:
"""
POLICY = """defaults: {{leakage: 0.5, misconduct: 0.5, off_channel: 0.5}}
business_units:
  equities-trading: {{misconduct: 0.45}}
  retail-banking: {{off_channel: {off_channel}}}
  wealth-management: {{leakage: 0.45}}
"""


def seen_score(rng: np.random.Generator, label: int, drifted: bool) -> float:
    """A synthetic calibrated score: high for a risk that is there, low for one that is not (higher when drifted)."""
    if label:
        return float(rng.beta(6, 2))
    return float(rng.beta(3, 4) if drifted else rng.beta(1.5, 5))


def decisions(seed: pd.DataFrame, versions: list[str], rng: np.random.Generator) -> list[ReviewDecision]:
    """Each week, per unit, PER_UNIT_WEEK seed messages of the unit reviewed on every risk."""
    made = []
    for unit in UNITS:
        pool = seed[seed["business_unit"] == unit].sample(n=WEEKS * PER_UNIT_WEEK, random_state=len(unit))
        for week in range(WEEKS):
            monday = FIRST_MONDAY + timedelta(weeks=week)
            version = versions[0] if week < 3 else versions[1]
            for i, row in enumerate(pool.iloc[week * PER_UNIT_WEEK : (week + 1) * PER_UNIT_WEEK].itertuples()):
                drifted = unit == "retail-banking" and week >= 3
                scores = {
                    risk: seen_score(rng, int(getattr(row, risk)), drifted and risk == "off_channel") for risk in RISKS
                }
                made.append(
                    ReviewDecision(
                        message_id=row.message_id,
                        text=row.text,
                        labels={risk: int(getattr(row, risk)) for risk in RISKS},
                        reviewer=f"reviewer-{i % 3 + 1}",
                        decided_at=monday + timedelta(hours=2 * i),
                        lang=row.lang,
                        business_unit=unit,
                        channel=row.channel,
                        seen={"model_version": "demo", "thresholds_version": version, "scores": scores},
                    )
                )
    return made


def main() -> None:
    """Build the demo store, run the report, write the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Folder for the demo store and history (new).")
    parser.add_argument("--docs", type=Path, default=REPO / "docs", help="Where reviews_report.png and reviews.md go.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="commsrisk-reviews-demo-"))
    if work.exists() and any(work.iterdir()):
        sys.exit(f"{work} is not empty; give a new --work folder")
    work.mkdir(parents=True, exist_ok=True)
    thresholds = ThresholdSettings(policy_file=work / "thresholds.yaml", history_db=work / "history.sqlite")
    first = apply_policy(parse_policy(POLICY.format(off_channel=0.5)), thresholds, author="demo", reason="start")
    second = apply_policy(
        parse_policy(POLICY.format(off_channel=0.35)), thresholds, author="demo", reason="catch more off-channel"
    )
    seed = pd.read_json(REPO / "data" / "seed" / "commsrisk_seed.jsonl", lines=True)
    seed = seed[seed["origin"] == "written"]
    url = f"sqlite:///{work / 'reviews.sqlite'}"
    with ReviewStore.open(ReviewSettings(url=url)) as store:
        result = store.append(
            decisions(seed, [first.version, second.version], np.random.default_rng(16)), source="demo"
        )
    (work / "targets.yaml").write_text(TARGETS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMSRISK_")} | {
        "COMMSRISK_REVIEWS__URL": url,
        "COMMSRISK_THRESHOLDS__POLICY_FILE": str(thresholds.policy_file),
        "COMMSRISK_THRESHOLDS__HISTORY_DB": str(thresholds.history_db),
        "COLUMNS": "160",
    }
    command = ["reviews", "report", "--targets", "targets.yaml", "--out", "report"]
    cli = str(Path(sys.executable).with_name("commsrisk"))
    done = subprocess.run([cli, *command], cwd=work, env=env, capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        sys.exit(done.returncode)
    args.docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "report" / "reviews_report.png", args.docs / "reviews_report.png")
    report = (work / "report" / "report.md").read_text(encoding="utf-8").split("\n", 3)[3]  # without title and image
    page = [
        "# Reviewer decisions: the weekly monitoring report (demo)",
        "",
        "Made by `.venv/bin/python scripts/reviews_demo.py`: "
        f"{result.accepted} synthetic decisions over {WEEKS} weeks on messages of the seed corpus (never the dev "
        "set), three business units, the scores the reviewers saw drawn per label (seeded). In the fourth week "
        "retail-banking's off_channel threshold is lowered from 0.5 to 0.35 while that unit's harmless traffic "
        "starts to score higher. The report is `commsrisk reviews report --targets targets.yaml --out report` on "
        "that store:",
        "",
        "```",
        TARGETS.strip(),
        "```",
        "",
        "An alert is a decision whose seen score was at or over the threshold of the seen thresholds version (from "
        "the thresholds history) for the message's unit; confirmed, an alert the reviewer labeled 1; precision, "
        "confirmed / alerts, per ISO week (from Monday, UTC). A unit under its precision target in its latest week "
        "is called out with the threshold `thresholds tune`'s rules choose on its reviews of the last four weeks.",
        "",
        "![weekly monitoring](reviews_report.png)",
        "",
        report.strip(),
        "",
    ]
    (args.docs / "reviews.md").write_text("\n".join(page), encoding="utf-8")
    sys.stdout.write(f"wrote {args.docs / 'reviews_report.png'} and {args.docs / 'reviews.md'} (store in {work})\n")


if __name__ == "__main__":
    main()
