"""Training data from the review store: a snapshot's complete decisions, mixed with the seed corpus.

`build_reviews_mix(snapshot, seed, dev, ...)` applies these rules, in this order, and counts each:

1. **Complete rows only.** A message is used when its snapshot row (the latest decision per risk)
   has all three risks reviewed. A row with a risk not reviewed is skipped, the risks named: the
   model learns and is judged on the three risks together, and an unreviewed risk is unknown, not 0.
2. **Never the dev set.** A message whose text is in the dev set, exactly or nearly (training's
   dev-isolation check, `overlap.find_overlaps`), is refused: skipped, counted, listed by id. Row
   by row rather than failing the run: the store is append-only, so a failed run could not be fixed.
3. **One row per text.** The same text under two message ids keeps the later decision.
4. **Held-out slice.** `holdout_share` (default 20%) of the messages, chosen by a hash of the
   message id: the same message is held out in every run on this store as it grows, so a model
   trained from these reviews never saw a later run's held-out messages. A held-out message with
   a copy or near-copy in the seed corpus or among the other reviews goes to training instead (it
   could not be unseen). The slice is evaluated beside the dev set, which stays the yardstick, and
   is what `commsrisk promote --holdout` scores beside it.
5. **Mix.** Reviews make up at most `ratio` of the training mix (default 0.3): with more, the most
   recent ratio / (1 - ratio) x (seed rows) of them; with fewer, all of them. The seed corpus is
   kept whole except rows superseded by a review used (same message id or same wording): the
   reviewer's decision wins over the seed's label.

Message text stays out of MLflow: the snapshot is logged as a dataset of ids, units, labels and
what became of each message; the held-out slice as ids, fingerprints and labels. The slice with its
texts goes to a local file only (`write_holdout`), for the gate.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from commsrisk.errors import InvalidInputError
from commsrisk.reviews.report import PolicyVersions, ReviewReport, build_report, log_report, write_report
from commsrisk.reviews.store import ReviewConflict, ReviewSnapshot, ReviewStore
from commsrisk.schema import RISKS
from commsrisk.thresholds.store import PolicyHistory
from commsrisk.training.data import OPTIONAL_COLUMNS, LabeledData, RejectedRow, dataset_digest, near_copy_group
from commsrisk.training.overlap import MIN_CHARS, find_overlaps, normalise_text, text_fingerprint

DEFAULT_REVIEW_RATIO = 0.3
DEFAULT_HOLDOUT_SHARE = 0.2
HOLDOUT_SCHEME = "commsrisk.reviews_holdout.v1"
"""Salt of the held-out hash: a change to the rule gets a new name (and a new slice)."""
SNAPSHOT_DATASET = "reviews-snapshot"
TRAIN, HELD_OUT, NOT_USED = "train", "held_out", "not used (ratio)"


@dataclass
class ReviewsMix:
    """The training mix, the reviews' held-out slice, and what became of every reviewed message."""

    training: LabeledData
    """Seed rows (those not superseded) and the review rows used; `origin` says which."""
    holdout: LabeledData | None
    """The held-out review messages (None when none is left)."""
    table: pd.DataFrame
    """One row per snapshot message, no text: ids, unit, labels and `use` (train, held_out, not used, skipped)."""
    counts: dict[str, int]
    skipped: list[RejectedRow]
    conflicts: list[ReviewConflict]
    digest: str
    """Of the snapshot read: message ids, the deciding decision ids and labels."""
    ratio: float
    holdout_share: float
    store_url: str
    filters: dict[str, str] = field(default_factory=dict)
    report: ReviewReport | None = None
    """The weekly monitoring report of the same decisions, logged with the run."""

    @property
    def review_share(self) -> float:
        """The share of review rows in the training mix."""
        return self.counts["used_for_training"] / max(len(self.training.frame), 1)

    def describe(self) -> str:
        """One paragraph for people: what became of the snapshot's messages."""
        c = self.counts
        return (
            f"review store {self.store_url}, snapshot {self.digest}: {c['snapshot_messages']} messages "
            f"({c['snapshot_decisions']} decisions, {c['conflicts']} conflicts): {c['used_for_training']} in training "
            f"({self.review_share:.0%} of the {c['training_rows']} training rows, ratio {self.ratio}), "
            f"{c['held_out']} held out ({c['moved_to_training']} moved to training: copies of training texts), "
            f"{c['not_used_ratio']} not used (ratio), {c['skipped_partial']} partly reviewed, {c['refused_dev']} "
            f"refused (in the dev set), {c['duplicate_text']} duplicate texts; {c['seed_superseded']} seed rows "
            "superseded by reviews"
        )

    def skipped_rows(self) -> list[dict[str, Any]]:
        """Skipped messages by reason: how many, and the first ids."""
        by_reason: dict[str, list[str]] = {}
        for row in self.skipped:
            by_reason.setdefault(row.reason, []).append(str(row.message_id))
        return [{"skipped": r, "messages": len(ids), "e.g.": ", ".join(ids[:3])} for r, ids in by_reason.items()]

    def conflict_rows(self, limit: int = 20) -> list[dict[str, Any]]:
        """Conflicts between reviewers: message, risk, how many said 1 and 0, the value kept (no names)."""
        return [
            {
                "message_id": c.message_id,
                "risk": c.risk,
                "reviewers_1": sum(v == 1 for v in c.votes.values()),
                "reviewers_0": sum(v == 0 for v in c.votes.values()),
                "resolved": c.resolved,
            }
            for c in self.conflicts[:limit]
        ]

    def summary(self) -> dict[str, Any]:
        """Counts and provenance for the model's metadata and the terminal (no text, no reviewer)."""
        return {
            "snapshot_digest": self.digest,
            "holdout_digest": self.holdout.digest if self.holdout is not None else None,
            "ratio": self.ratio,
            "review_share": round(self.review_share, 4),
            "holdout_share": self.holdout_share,
            **self.filters,
            **self.counts,
        }


def holdout_rank(message_id: str) -> float:
    """A message id's place in [0, 1): stable across runs and stores (sha256 of the id and the scheme)."""
    digest = hashlib.sha256(f"{HOLDOUT_SCHEME}:{message_id}".encode()).hexdigest()
    return int(digest[:12], 16) / 16**12


def snapshot_digest(frame: pd.DataFrame) -> str:
    """What a snapshot read: each message's id, deciding decision id and labels (order-independent)."""
    hasher = hashlib.sha256()
    for row in sorted(frame[["message_id", "decision_id", *RISKS]].itertuples(index=False, name=None)):
        hasher.update(json.dumps(row, default=str).encode("utf-8"))
    return hasher.hexdigest()[:16]


def complete_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RejectedRow]]:
    """Snapshot rows with every risk reviewed, and the others as skipped rows naming the risks not reviewed."""
    missing = [[risk for risk in RISKS if row[risk] is None] for _, row in frame[list(RISKS)].iterrows()]
    skipped = [
        RejectedRow(0, message_id, f"not reviewed: {', '.join(risks)} (a row is used only with every risk reviewed)")
        for message_id, risks in zip(frame["message_id"], missing, strict=True)
        if risks
    ]
    keep = np.array([not risks for risks in missing], dtype=bool)
    return frame.loc[keep].reset_index(drop=True), skipped


def labeled_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Complete snapshot rows in the columns of a labeled file (`training.data.read_labeled_file`)."""
    rows = pd.DataFrame({"line": 0, "text": frame["text"]})
    for risk in RISKS:
        rows[risk] = frame[risk].astype("int64")
    for column in OPTIONAL_COLUMNS:
        rows[column] = None
    for column in ("message_id", "business_unit", "lang", "channel", "reviewer"):
        rows[column] = frame[column].where(frame[column].notna(), None)
    rows["reviewed_at"] = frame["decided_at"].map(lambda t: t.isoformat() if t is not None else None)
    rows["conversation_id"] = [near_copy_group(t) or m for t, m in zip(frame["text"], frame["message_id"], strict=True)]
    rows["origin"] = "review"
    return rows.reset_index(drop=True)


def snapshot_labeled(snapshot: ReviewSnapshot, source: str) -> tuple[LabeledData, list[RejectedRow]]:
    """The snapshot's complete rows as labeled data (e.g. for `thresholds tune`), and the rows skipped.

    Raises:
        InvalidInputError: no message has every risk reviewed.
    """
    complete, skipped = complete_rows(snapshot.frame)
    if complete.empty:
        raise InvalidInputError(
            f"{source}: none of the {len(snapshot.frame)} reviewed messages has every risk reviewed "
            f"({list(RISKS)}); review all three, or narrow --since / --business-unit"
        )
    frame = labeled_rows(complete)
    labeled = LabeledData(frame=frame, rejected=[], source=source, rows_read=len(snapshot.frame))
    labeled.digest = dataset_digest(frame)
    return labeled, skipped


def _wording(text: str) -> str:
    """The key two texts share when one supersedes or copies the other: the wording, or the text if too short."""
    folded = normalise_text(text)
    return folded if len(folded) >= MIN_CHARS else "\0" + text


def build_reviews_mix(
    snapshot: ReviewSnapshot,
    seed: LabeledData,
    dev: LabeledData | None,
    *,
    store_url: str,
    ratio: float = DEFAULT_REVIEW_RATIO,
    holdout_share: float = DEFAULT_HOLDOUT_SHARE,
    filters: dict[str, str] | None = None,
) -> ReviewsMix:
    """Apply the module's rules to a snapshot: the training mix, the held-out slice and every count.

    Raises:
        InvalidInputError: `ratio` or `holdout_share` out of range, or no review is usable.
    """
    if not 0 < ratio < 1:
        raise InvalidInputError(f"--review-ratio {ratio}: the share of reviews in the training mix is in (0, 1)")
    if not 0 <= holdout_share < 1:
        raise InvalidInputError(f"holdout share {holdout_share}: use a share in [0, 1)")
    frame = snapshot.frame
    use = pd.Series("", index=frame["message_id"], dtype=object)
    complete, skipped = complete_rows(frame)
    for row in skipped:
        use[row.message_id] = "skipped: partly reviewed"
    counts = {"snapshot_messages": len(frame), "snapshot_decisions": snapshot.decisions}
    counts |= {"conflicts": len(snapshot.conflicts), "skipped_partial": len(skipped)}
    if dev is not None and len(complete):
        in_dev = {o.dev_index for o in find_overlaps(dev.frame["text"].tolist(), complete["text"].tolist())}
        for i in sorted(in_dev):
            message_id = complete["message_id"].iloc[i]
            skipped.append(RejectedRow(0, message_id, "in the dev set, exactly or nearly: never trained on"))
            use[message_id] = "refused: in the dev set"
        counts["refused_dev"] = len(in_dev)
        complete = complete.drop(index=sorted(in_dev)).reset_index(drop=True)
    else:
        counts["refused_dev"] = 0
    ordered = complete.sort_values("decided_at", kind="stable")
    later = ordered.drop_duplicates("text", keep="last")
    for message_id in ordered.loc[ordered.index.difference(later.index), "message_id"]:
        skipped.append(RejectedRow(0, message_id, "same text as a later-decided message: the later decision kept"))
        use[message_id] = "skipped: duplicate text"
    counts["duplicate_text"] = len(ordered) - len(later)
    reviews = labeled_rows(later)
    reviews["decided_at"] = later["decided_at"].to_numpy()
    held = reviews["message_id"].map(holdout_rank).to_numpy() < holdout_share
    pool, holdout = reviews[~held].reset_index(drop=True), reviews[held].reset_index(drop=True)
    if len(holdout):
        others = seed.frame["text"].tolist() + pool["text"].tolist()
        copied = sorted({o.dev_index for o in find_overlaps(others, holdout["text"].tolist())})
        pool = pd.concat([pool, holdout.iloc[copied]], ignore_index=True)
        holdout = holdout.drop(index=copied).reset_index(drop=True)
        counts["moved_to_training"] = len(copied)
    else:
        counts["moved_to_training"] = 0
    cap = math.floor(ratio / (1 - ratio) * len(seed.frame))
    pool = pool.sort_values("decided_at", ascending=False, kind="stable")
    used, unused = pool.iloc[:cap], pool.iloc[cap:]
    superseded_ids = set(used["message_id"])
    wordings = {_wording(t) for t in used["text"]}
    superseded = seed.frame["message_id"].isin(superseded_ids) | seed.frame["text"].map(_wording).isin(wordings)
    kept_seed = seed.frame[~superseded.to_numpy()].assign(origin="seed")
    training_frame = pd.concat([kept_seed, used.drop(columns=["decided_at"])], ignore_index=True)
    counts |= {
        "held_out": len(holdout),
        "used_for_training": len(used),
        "not_used_ratio": len(unused),
        "seed_rows": len(seed.frame),
        "seed_superseded": int(superseded.sum()),
        "training_rows": len(training_frame),
    }
    if not len(used) and not len(holdout):
        raise InvalidInputError(
            f"review store {store_url}: no reviewed message is usable for training "
            f"({len(frame)} messages; {counts['skipped_partial']} partly reviewed, {counts['refused_dev']} in the dev "
            "set); review all three risks of each message, or narrow --since / --business-unit"
        )
    for message_id in used["message_id"]:
        use[message_id] = TRAIN
    for message_id in unused["message_id"]:
        use[message_id] = NOT_USED
    for message_id in holdout["message_id"]:
        use[message_id] = HELD_OUT
    training = LabeledData(training_frame, seed.rejected, seed.source, seed.rows_read + len(used))
    training.digest = dataset_digest(training_frame)
    held_data = None
    if len(holdout):
        held_frame = holdout.drop(columns=["decided_at"])
        held_data = LabeledData(held_frame, [], f"review store {store_url} (held-out slice)", len(held_frame))
        held_data.digest = dataset_digest(held_frame)
    table = frame[["message_id", "business_unit", "lang", "channel", "decisions"]].copy()
    for risk in RISKS:
        table[risk] = frame[risk].astype("float64")
    table["decided_at"] = frame["decided_at"].map(lambda t: t.isoformat())
    table["use"] = use.reindex(frame["message_id"]).to_numpy()
    return ReviewsMix(
        training=training,
        holdout=held_data,
        table=table,
        counts=counts,
        skipped=skipped,
        conflicts=list(snapshot.conflicts),
        digest=snapshot_digest(frame),
        ratio=ratio,
        holdout_share=holdout_share,
        store_url=store_url,
        filters=dict(filters or {}),
    )


def write_holdout(holdout: LabeledData, path: Path) -> Path:
    """The held-out slice with its texts as a labeled JSON Lines file for `commsrisk promote --holdout`.

    The firm's labeled data, like the store: keep it where the store is kept (not in MLflow, not in git).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["message_id", "text", *RISKS, "lang", "business_unit", "channel", "conversation_id"]
    holdout.frame[columns].to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def log_reviews(mlflow: Any, mix: ReviewsMix, workdir: Path) -> None:
    """Log the reviews' side of a training run into the active MLflow run.

    The snapshot as a dataset (digest, no text), the counts, skipped rows, conflicts (counts of
    votes, no reviewer names), the held-out slice's ids and fingerprints, and the weekly report.
    """
    mlflow.log_params(
        {f"reviews_{key}": value for key, value in mix.summary().items()} | {"reviews_store": mix.store_url}
    )
    mlflow.set_tag("commsrisk.reviews_snapshot_digest", mix.digest)
    dataset = mlflow.data.from_pandas(mix.table, source="review-store", name=SNAPSHOT_DATASET, digest=mix.digest)
    mlflow.log_input(dataset, context="training", tags={"store": mix.store_url})
    folder = workdir / "reviews"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([r.__dict__ for r in mix.skipped], columns=["line", "message_id", "reason"]).drop(
        columns=["line"]
    ).to_csv(folder / "skipped.csv", index=False)
    conflicts = mix.conflict_rows(limit=len(mix.conflicts))
    pd.DataFrame(conflicts, columns=["message_id", "risk", "reviewers_1", "reviewers_0", "resolved"]).to_csv(
        folder / "conflicts.csv", index=False
    )
    if mix.holdout is not None:
        ids = mix.holdout.frame[["message_id", "business_unit", *RISKS]].assign(
            text_fingerprint=mix.holdout.frame["text"].map(text_fingerprint)
        )
        ids.to_parquet(folder / "holdout_ids.parquet", index=False)
    mlflow.log_artifacts(str(folder), "reviews")
    if mix.report is not None:
        write_report(mix.report, workdir / "reviews_report")
        log_report(mix.report, workdir / "reviews_report")


def mix_from_store(
    store: ReviewStore,
    seed: LabeledData,
    dev: LabeledData | None,
    *,
    since: datetime | None = None,
    business_units: Sequence[str] | None = None,
    ratio: float = DEFAULT_REVIEW_RATIO,
    history: PolicyHistory | None = None,
) -> ReviewsMix:
    """The store's snapshot as a training mix (`build_reviews_mix`), with the weekly report of the same decisions.

    Raises:
        ReviewStoreError: the store cannot be read.
        InvalidInputError: as `build_reviews_mix`.
    """
    snapshot = store.snapshot(since, business_units)
    filters = {
        "since": since.isoformat() if since else "",
        "business_units": ",".join(sorted(business_units)) if business_units else "",
    }
    mix = build_reviews_mix(snapshot, seed, dev, store_url=store.url, ratio=ratio, filters=filters)
    mix.report = build_report(store.decisions(since, business_units), PolicyVersions(history))
    return mix
