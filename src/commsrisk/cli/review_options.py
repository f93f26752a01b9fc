"""The review store's side of `train --from-reviews`, `thresholds tune --from-reviews` and `reviews report`.

Their shared options, and the one library call each makes on the store, so the commands stay thin.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from commsrisk.cli.console import err, fail, table_of
from commsrisk.errors import CommsriskError
from commsrisk.settings import Settings

if TYPE_CHECKING:
    from commsrisk.reviews.report import PolicyVersions
    from commsrisk.reviews.store import ReviewStore
    from commsrisk.training.data import LabeledData
    from commsrisk.training.from_reviews import ReviewsMix

Since = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="Only decisions made at or after this time (UTC)."),
]
BusinessUnits = Annotated[
    list[str] | None, typer.Option("--business-unit", help="Only decisions of this business unit (repeatable).")
]
FromReviews = Annotated[
    bool,
    typer.Option(
        "--from-reviews",
        help="Train on the review store's snapshot mixed into --data (the seed corpus); see the README.",
    ),
]
ReviewRatio = Annotated[
    float, typer.Option(help="With --from-reviews: the largest share of reviews in the training mix, in (0, 1).")
]
HoldoutOut = Annotated[
    Path,
    typer.Option(
        help="With --from-reviews: where the reviews' held-out slice (with its texts) is written for promote."
    ),
]
DEFAULT_HOLDOUT_FILE = Path(".commsrisk/reviews_holdout.jsonl")
"""Beside the default review store: the slice holds the firm's texts, like the store (git ignores .commsrisk/)."""


def open_store_or_fail(settings: Settings) -> ReviewStore:
    """The review store of the settings, or exit 2 with the reason."""
    from commsrisk.reviews.store import ReviewStore

    try:
        return ReviewStore.open(settings.reviews)
    except CommsriskError as error:
        raise fail(error) from error


def policy_versions(settings: Settings) -> PolicyVersions:
    """Thresholds policies by version from the settings' history (none when there is no history yet)."""
    from commsrisk.reviews.report import PolicyVersions
    from commsrisk.thresholds.store import PolicyHistory

    history_db = settings.thresholds.history_db
    return PolicyVersions(PolicyHistory(history_db) if history_db.is_file() else None)


def reviews_labeled_or_fail(settings: Settings, since: datetime | None) -> LabeledData:
    """The store's snapshot as labeled data (messages with every risk reviewed), for `thresholds tune`."""
    from commsrisk.training.from_reviews import snapshot_labeled

    with open_store_or_fail(settings) as store:
        try:
            labeled, skipped = snapshot_labeled(store.snapshot(since), f"review store {store.url}")
        except CommsriskError as error:
            raise fail(error) from error
    err.print(
        f"{len(labeled.frame)} reviewed messages with every risk reviewed; {len(skipped)} partly reviewed: skipped"
    )
    return labeled


def mix_or_none(
    from_reviews: bool,
    settings: Settings,
    seed: LabeledData,
    dev: LabeledData | None,
    since: datetime | None,
    business_units: list[str] | None,
    ratio: float,
    holdout_path: Path,
) -> ReviewsMix | None:
    """The training mix from the store (`training.from_reviews`) with `from_reviews`, else None.

    What became of each review is printed; the held-out slice is written to `holdout_path`, for
    `commsrisk promote --holdout`.
    """
    from commsrisk.training.from_reviews import mix_from_store, write_holdout

    if not from_reviews:
        return None

    history = policy_versions(settings).history
    with open_store_or_fail(settings) as store:
        try:
            mix = mix_from_store(
                store, seed, dev, since=since, business_units=business_units, ratio=ratio, history=history
            )
        except CommsriskError as error:
            raise fail(error) from error
    err.print(mix.describe())
    if mix.skipped:
        err.print(table_of(f"{len(mix.skipped)} reviewed messages not used", mix.skipped_rows()))
    if mix.conflicts:
        err.print(
            table_of(f"{len(mix.conflicts)} conflicts between reviewers (latest decision kept)", mix.conflict_rows())
        )
    if mix.holdout is not None:
        write_holdout(mix.holdout, holdout_path)
        err.print(f"held-out slice: {len(mix.holdout.frame)} messages in {holdout_path} (digest {mix.holdout.digest})")
        err.print(f"gate it beside the dev set: commsrisk promote --holdout {holdout_path}")
    return mix
