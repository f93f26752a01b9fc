"""Monitoring from reviewers' decisions: alert volume, confirmed precision and the threshold in force, weekly.

For every message and risk a reviewer decided, the latest decision that reviewed the risk gives
the label (as in `ReviewStore.snapshot`) and the latest decision carrying a score for it gives
what the reviewer saw: the score and the thresholds version behind the result. The threshold in
force is that version's threshold for the message's business unit, read from the thresholds
history (`PolicyHistory`). An alert is a seen score at or over that threshold (the service flags
`score >= threshold`); confirmed, an alert the reviewer labeled 1; precision, confirmed / alerts.
Rows are per ISO week (starting Monday, UTC, by the time of the deciding decision), business
unit and risk. A decision without a seen score, or whose thresholds version is not in the
history, cannot say whether it was an alert: it is left out and counted by reason.

A unit whose precision for a risk in its latest week with alerts is under its target (on at least
the targets' `min_flags` alerts) gets a call-out with the threshold that `thresholds tune`'s rules
(`thresholds.tuning.propose_threshold`) choose on the unit's reviews of the recent weeks, from the
scores the reviewers saw. Nothing here reads or writes message text: the decisions come without it.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from commsrisk.errors import ConfigurationError  # noqa: E402
from commsrisk.reviews.store import StoredDecision  # noqa: E402
from commsrisk.schema import RISKS  # noqa: E402
from commsrisk.thresholds.policy import BUILTIN_POLICY, ThresholdPolicy, parse_policy  # noqa: E402
from commsrisk.thresholds.store import PolicyHistory  # noqa: E402
from commsrisk.thresholds.tuning import Target, TuningTargets, propose_threshold  # noqa: E402

NO_UNIT = "(no unit)"
"""The business unit of decisions that name none."""
DEFAULT_PRECISION_TARGET = 0.5
RECENT_WEEKS = 4
"""A call-out's suggested threshold is tuned on the unit's reviews of this many weeks, up to its latest."""
REPORT_PNG = "reviews_report.png"
WEEKLY_CSV = "weekly.csv"
CALLOUTS_CSV = "callouts.csv"
WEEKLY_COLUMNS = (
    "week", "business_unit", "risk", "reviewed", "alerts", "confirmed", "rejected", "missed", "precision",
    "threshold", "thresholds_version",
)  # fmt: skip
"""Columns of weekly.csv (ids and counts only)."""


class PolicyVersions:
    """Thresholds policies by version id, each read once from the thresholds history."""

    def __init__(self, history: PolicyHistory | None) -> None:
        self.history = history
        self._policies: dict[str, ThresholdPolicy | None] = {BUILTIN_POLICY.version: BUILTIN_POLICY}

    def get(self, version: str) -> ThresholdPolicy | None:
        """The policy of one version, or None when the history does not hold it."""
        if version not in self._policies:
            policy = None
            if self.history is not None:
                try:
                    change = self.history.get(version)
                    if change.policy_yaml:
                        policy = parse_policy(change.policy_yaml, f"thresholds history {version}")
                except ConfigurationError:
                    policy = None
            self._policies[version] = policy
        return self._policies[version]


@dataclass(frozen=True)
class Judgement:
    """One message's risk as a reviewer decided it, with what they saw and the threshold then in force."""

    message_id: str
    business_unit: str
    risk: str
    decided_at: datetime
    label: int
    score: float
    threshold: float
    thresholds_version: str

    @property
    def week(self) -> date:
        """The Monday (UTC) of the decision's week."""
        day = self.decided_at.astimezone(UTC).date()
        return day - timedelta(days=day.weekday())

    @property
    def alert(self) -> bool:
        """Whether the result the reviewer saw flagged the risk (score >= threshold, as the service decides)."""
        return self.score >= self.threshold


@dataclass(frozen=True)
class WeeklyRow:
    """One week of one business unit and risk."""

    week: date
    business_unit: str
    risk: str
    reviewed: int
    """Messages whose risk was decided this week (alerts or not)."""
    alerts: int
    confirmed: int
    missed: int
    """Reviewed messages under the threshold that the reviewer labeled 1."""
    threshold: float
    """The threshold in force at the week's latest decision."""
    thresholds_version: str

    @property
    def rejected(self) -> int:
        """Alerts the reviewer labeled 0 (false alarms)."""
        return self.alerts - self.confirmed

    @property
    def precision(self) -> float | None:
        """Confirmed / alerts; None when there was no alert (undefined, not perfect)."""
        return self.confirmed / self.alerts if self.alerts else None

    def record(self) -> dict[str, Any]:
        """The row as a flat record (ids and counts only) for the CSV and the table."""
        values = asdict(self)
        values["week"] = self.week.isoformat()
        values["rejected"] = self.rejected
        values["precision"] = None if self.precision is None else round(self.precision, 4)
        values["threshold"] = round(self.threshold, 4)
        return {key: values[key] for key in WEEKLY_COLUMNS}


@dataclass(frozen=True)
class PrecisionCallout:
    """A unit whose confirmed precision for a risk fell under its target in its latest week with alerts."""

    business_unit: str
    risk: str
    week: date
    precision: float
    confirmed: int
    alerts: int
    target: float
    threshold: float
    suggested: float | None
    """The threshold `thresholds tune`'s rules choose on the unit's recent reviews (None: evidence too short)."""
    status: str
    recent_reviews: int
    recent_weeks: int

    def sentence(self) -> str:
        """The call-out as one line for people."""
        basis = f"thresholds tune on its {self.recent_reviews} reviews of the last {self.recent_weeks} weeks"
        advice = (
            f"suggested threshold {self.suggested:.3f} ({basis})"
            if self.suggested is not None
            else f"no suggested threshold ({basis}: {self.status})"
        )
        return (
            f"{self.business_unit} / {self.risk}: precision {self.precision:.2f} in the week of {self.week} "
            f"({self.confirmed} of {self.alerts} alerts confirmed) is under its target {self.target:.2f} at "
            f"threshold {self.threshold:.3f}; {advice}"
        )

    def record(self) -> dict[str, Any]:
        """The call-out as a flat record."""
        values = asdict(self)
        values["week"] = self.week.isoformat()
        return values


@dataclass
class ReviewReport:
    """Weekly rows, call-outs, and what was left out and why."""

    rows: list[WeeklyRow]
    callouts: list[PrecisionCallout]
    decisions: int
    judgements: int
    left_out: dict[str, int] = field(default_factory=dict)
    """Reason -> decided risks that could not be judged as alert or not."""

    def records(self) -> list[dict[str, Any]]:
        """Every weekly row as a record."""
        return [row.record() for row in self.rows]


def judge(decisions: Sequence[StoredDecision], versions: PolicyVersions) -> tuple[list[Judgement], dict[str, int]]:
    """Each decided message risk with its seen score and threshold; the ones left out counted by reason.

    `decisions` in the order they count (`ReviewStore.decisions`).
    """
    deciding: dict[tuple[str, str], StoredDecision] = {}
    seen: dict[tuple[str, str], tuple[float, str | None]] = {}
    for decision in decisions:
        for risk in RISKS:
            if decision.labels[risk] is not None:
                deciding[(decision.message_id, risk)] = decision
            if risk in decision.seen_scores:
                seen[(decision.message_id, risk)] = (decision.seen_scores[risk], decision.seen_thresholds_version)
    left_out: Counter[str] = Counter()
    judged: list[Judgement] = []
    for (message_id, risk), decision in deciding.items():
        if (message_id, risk) not in seen:
            left_out["no score seen"] += 1
            continue
        score, version = seen[(message_id, risk)]
        if version is None:
            left_out["no thresholds version seen"] += 1
            continue
        policy = versions.get(version)
        if policy is None:
            left_out[f"thresholds version {version} not in the history"] += 1
            continue
        thresholds, _ = policy.for_unit(decision.business_unit)
        label = decision.labels[risk]
        judged.append(
            Judgement(
                message_id,
                decision.business_unit or NO_UNIT,
                risk,
                decision.decided_at,
                int(label),  # type: ignore[arg-type]
                score,
                float(thresholds[risk]),
                version,
            )
        )
    return judged, dict(left_out)


def weekly_rows(judged: Sequence[Judgement]) -> list[WeeklyRow]:
    """Per week, business unit and risk: reviewed, alerts, confirmed, missed and the threshold in force."""
    groups: dict[tuple[date, str, str], list[Judgement]] = {}
    for item in sorted(judged, key=lambda j: j.decided_at):
        groups.setdefault((item.week, item.business_unit, item.risk), []).append(item)
    rows = []
    for (week, unit, risk), items in sorted(groups.items(), key=lambda kv: (kv[0][1], RISKS.index(kv[0][2]), kv[0][0])):
        last = items[-1]
        rows.append(
            WeeklyRow(
                week,
                unit,
                risk,
                reviewed=len(items),
                alerts=sum(j.alert for j in items),
                confirmed=sum(j.alert and j.label == 1 for j in items),
                missed=sum(not j.alert and j.label == 1 for j in items),
                threshold=last.threshold,
                thresholds_version=last.thresholds_version,
            )
        )
    return rows


def unit_precision_target(targets: TuningTargets, unit: str, fallback: float) -> Target:
    """The unit's precision target from the targets file; `fallback` when its target is another metric."""
    goal = targets.for_unit(unit)
    return goal if goal.metric == "precision" else Target("precision", fallback, goal.max_alerts_per_1000)


def precision_callouts(
    rows: Sequence[WeeklyRow],
    judged: Sequence[Judgement],
    targets: TuningTargets,
    *,
    precision_target: float = DEFAULT_PRECISION_TARGET,
    recent_weeks: int = RECENT_WEEKS,
) -> list[PrecisionCallout]:
    """A call-out per unit and risk whose latest week with alerts is under the unit's precision target.

    A week with fewer alerts than the targets' `min_flags` says too little about precision: no call-out.
    """
    latest: dict[tuple[str, str], WeeklyRow] = {}
    for row in rows:
        key = (row.business_unit, row.risk)
        if row.alerts and (key not in latest or row.week > latest[key].week):
            latest[key] = row
    callouts = []
    for (unit, risk), row in latest.items():
        goal = unit_precision_target(targets, unit, precision_target)
        if row.precision is None or row.precision >= goal.value or row.alerts < targets.min_flags:
            continue
        start = row.week - timedelta(weeks=recent_weeks - 1)
        recent = [j for j in judged if j.business_unit == unit and j.risk == risk and start <= j.week <= row.week]
        labels = np.array([j.label for j in recent], dtype=int)
        scores = np.array([j.score for j in recent], dtype=float)
        suggested, status = propose_threshold(labels, scores, goal, row.threshold, targets)
        callouts.append(
            PrecisionCallout(
                unit,
                risk,
                row.week,
                row.precision,
                row.confirmed,
                row.alerts,
                goal.value,
                row.threshold,
                suggested if status == "tuned" else None,
                status,
                len(recent),
                recent_weeks,
            )
        )
    return callouts


def build_report(
    decisions: Sequence[StoredDecision],
    versions: PolicyVersions,
    targets: TuningTargets | None = None,
    *,
    precision_target: float = DEFAULT_PRECISION_TARGET,
    recent_weeks: int = RECENT_WEEKS,
) -> ReviewReport:
    """The weekly report of a set of decisions (in the order they count), with its call-outs.

    Without `targets` every unit's target is `precision_target`, with `thresholds tune`'s default
    evidence rules for the suggestion.
    """
    plan = targets or TuningTargets.single(Target("precision", precision_target))
    judged, left_out = judge(decisions, versions)
    rows = weekly_rows(judged)
    callouts = precision_callouts(rows, judged, plan, precision_target=precision_target, recent_weeks=recent_weeks)
    return ReviewReport(rows, callouts, len(decisions), len(judged), left_out)


def markdown(report: ReviewReport) -> str:
    """The report as Markdown: the weekly table, the call-outs and what was left out."""
    lines = [
        "| week | business unit | risk | reviewed | alerts | confirmed | precision | threshold in force |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report.rows:
        precision = "n/a" if row.precision is None else f"{row.precision:.2f}"
        lines.append(
            f"| {row.week} | {row.business_unit} | {row.risk} | {row.reviewed} | {row.alerts} | {row.confirmed} | "
            f"{precision} | {row.threshold:.3f} ({row.thresholds_version}) |"
        )
    lines += ["", f"{report.decisions} decisions, {report.judgements} decided message risks judged."]
    lines += [f"- left out, {reason}: {count}" for reason, count in sorted(report.left_out.items())]
    lines += ["", "Precision under target:" if report.callouts else "No unit is under its precision target.", ""]
    lines += [f"- {callout.sentence()}" for callout in report.callouts]
    return "\n".join(lines) + "\n"


def plot_report(report: ReviewReport, path: Path) -> Path:
    """The monitoring plot: one column per risk, precision above and alert volume below.

    Precision per week and unit, with the threshold in force on a second axis (dashed, crosses),
    the call-outs circled in red with the unit's target dotted; below it, alerts per week and unit.
    """
    units = sorted({row.business_unit for row in report.rows})
    colors = {unit: plt.get_cmap("tab10")(i % 10) for i, unit in enumerate(units)}
    fig, axes = plt.subplots(
        2, len(RISKS), figsize=(5.2 * len(RISKS), 6.4), sharex=True, constrained_layout=True, squeeze=False
    )
    called = {(c.business_unit, c.risk, c.week): c for c in report.callouts}
    for j, risk in enumerate(RISKS):
        top, bottom = axes[0][j], axes[1][j]
        second = top.twinx()
        for unit in units:
            rows = [row for row in report.rows if row.business_unit == unit and row.risk == risk]
            if not rows:
                continue
            weeks = [datetime.combine(row.week, time()) for row in rows]
            precision = [np.nan if row.precision is None else row.precision for row in rows]
            top.plot(weeks, precision, marker="o", color=colors[unit], label=unit)
            second.plot(weeks, [row.threshold for row in rows], ls="--", marker="x", color=colors[unit], alpha=0.7)
            bottom.plot(weeks, [row.alerts for row in rows], marker=".", color=colors[unit], label=unit)
            for week, value, row in zip(weeks, precision, rows, strict=True):
                if (unit, risk, row.week) in called:
                    top.scatter([week], [value], s=160, facecolors="none", edgecolors="red", linewidths=2, zorder=4)
                    top.axhline(called[(unit, risk, row.week)].target, color=colors[unit], ls=":", lw=1)
        top.set_title(risk)
        top.set_ylim(0, 1.05)
        top.set_ylabel("confirmed precision")
        second.set_ylim(0, 1.05)
        second.set_ylabel("threshold in force (dashed)")
        bottom.set_ylabel("alerts per week")
        bottom.set_ylim(0, max([row.alerts for row in report.rows if row.risk == risk] + [1]) * 1.1)
        bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
        bottom.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=mdates.MO))
        bottom.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        bottom.tick_params(axis="x", rotation=30)
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
    if units:
        axes[0][0].legend(loc="lower left", fontsize=8)
    fig.suptitle(
        "Reviewer-confirmed precision (solid), threshold in force (dashed) and alerts per week; red: under target"
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(report: ReviewReport, out_dir: Path) -> Path:
    """weekly.csv, callouts.csv, reviews_report.png and report.md (ids and counts only); returns report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(out_dir / WEEKLY_CSV, report.records(), WEEKLY_COLUMNS)
    _write_csv(out_dir / CALLOUTS_CSV, [c.record() for c in report.callouts], PrecisionCallout.__dataclass_fields__)
    plot_report(report, out_dir / REPORT_PNG)
    text = f"# Reviewer decisions: weekly monitoring\n\n![weekly monitoring]({REPORT_PNG})\n\n" + markdown(report)
    (out_dir / "report.md").write_text(text, encoding="utf-8")
    return out_dir / "report.md"


def _write_csv(path: Path, records: list[dict[str, Any]], fields: Any) -> None:
    columns = list(records[0]) if records else list(fields)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)


def _metric_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def log_report(report: ReviewReport, out_dir: Path, artifact_path: str = "reviews_report") -> None:
    """Log the report into the active MLflow run.

    Each weekly figure becomes a metric stepped by week (timestamped at the week's start), plus the
    call-out count, and the report's files become artifacts.
    """
    import mlflow
    from mlflow.entities import Metric

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_report needs an active MLflow run")
    first = min((row.week for row in report.rows), default=None)
    metrics: list[Metric] = []
    for row in report.rows:
        key = _metric_key(f"reviews.{row.business_unit}.{row.risk}")
        stamp = int(datetime.combine(row.week, time(), UTC).timestamp() * 1000)
        step = (row.week - first).days // 7 if first else 0
        values = {"alerts": row.alerts, "confirmed": row.confirmed, "threshold": row.threshold}
        if row.precision is not None:
            values["precision"] = row.precision
        metrics += [Metric(f"{key}.{name}", float(value), stamp, step) for name, value in values.items()]
    client = mlflow.MlflowClient()
    for start in range(0, len(metrics), 900):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run.info.run_id, metrics=metrics[start : start + 900])
    mlflow.log_metrics({"reviews_precision_callouts": float(len(report.callouts))})
    mlflow.log_artifacts(str(out_dir), artifact_path)


def log_report_run(
    tracking_uri: str, experiment: str, report: ReviewReport, out_dir: Path, params: dict[str, str]
) -> str:
    """Log the report as its own MLflow run in `<experiment>-reviews`; returns the run id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"{experiment}-reviews")
    with mlflow.start_run(run_name="reviews report") as run:
        mlflow.set_tags({"commsrisk.kind": "reviews-report"})
        mlflow.log_params({key: value[:500] for key, value in params.items()})
        log_report(report, out_dir)
        return str(run.info.run_id)
