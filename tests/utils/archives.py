"""Archives of many messages made here, for the archive-run tests and benchmarks.

Real archives repeat themselves (journaling copies, "ok", forwarded blasts); these do too: `n`
messages drawn from `distinct` texts of the seed corpus, each with its own id, sender, time and
conversation, and a bad record now and then (an empty text, a text over the limit) that must be
reported, never dropped.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "data/seed/commsrisk_seed.jsonl"
UNITS = ("equities", "fixed_income", "wealth", "operations")
CHANNELS = ("email", "teams", "whatsapp", "wechat", "sms")
BAD_EVERY = 997
"""Every this many records is a bad one (alternately empty and over the text limit)."""


def seed_texts(count: int, seed: int = 7) -> list[str]:
    """`count` distinct texts of the seed corpus (multilingual), in a fixed order."""
    texts = sorted({json.loads(line)["text"] for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()})
    random.Random(seed).shuffle(texts)
    if len(texts) < count:
        raise ValueError(f"the seed corpus has {len(texts)} distinct texts, fewer than {count}")
    return texts[:count]


def archive_rows(n: int, distinct: int, seed: int = 11) -> list[dict[str, object]]:
    """`n` message records over `distinct` texts; each text keeps its unit and channel (so it repeats exactly)."""
    rng = random.Random(seed)
    texts = seed_texts(distinct)
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    rows: list[dict[str, object]] = []
    for i in range(n):
        k = rng.randrange(distinct)
        text = texts[k]
        if i % BAD_EVERY == BAD_EVERY - 1:
            text = "" if (i // BAD_EVERY) % 2 == 0 else "x" * 20_001
        rows.append(
            {
                "message_id": f"msg-{i:07d}",
                "text": text,
                "business_unit": UNITS[k % len(UNITS)],
                "channel": CHANNELS[k % len(CHANNELS)],
                "sender": f"trader{rng.randrange(500):03d}@bank.example",
                "sent_at": start + timedelta(minutes=3 * i + rng.randrange(3)),
                "conversation_id": f"conv-{rng.randrange(2000):04d}",
            }
        )
    return rows


def write_parquet_archive(path: Path, n: int, distinct: int, row_group: int = 5000) -> int:
    """The records of `archive_rows` as a Parquet file; how many are bad (to be rejected)."""
    rows = archive_rows(n, distinct)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group)
    return sum(1 for i in range(n) if i % BAD_EVERY == BAD_EVERY - 1)
