"""PII detection per type and per language on the multilingual PII set, commsrisk beside bare Presidio.

    .venv/bin/python benchmarks/pii_eval.py            # data/eval/pii/pii_eval.jsonl, every sentence
    .venv/bin/python benchmarks/pii_eval.py --limit 50 # 50 sentences per language, a smoke test

A labeled span counts as found when a detection of the same type overlaps it; a detection counts
as correct when it overlaps a labeled span of its type (detections of types the set does not
label, such as DATE_TIME, are left out). Bare Presidio is what a user would pick: English spaCy
small model, default recognizers, every text analysed as English. Prints tables and writes
benchmarks/results/pii_eval.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import bare_presidio, table  # noqa: E402

from commsrisk.training.pii_eval import PII_TYPES  # noqa: E402

SET = REPO / "data" / "eval" / "pii" / "pii_eval.jsonl"
RESULTS = REPO / "benchmarks" / "results" / "pii_eval.json"
TYPES = sorted(set(PII_TYPES.values()))
SAME_TYPE = {"US_PASSPORT": "PASSPORT", "US_BANK_NUMBER": "BANK_ACCOUNT", "UK_NHS": "UK_NHS"}
"""Presidio's country-specific names for the types the set labels."""


def _spans(found: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    return [(SAME_TYPE.get(t, t), s, e) for t, s, e in found if SAME_TYPE.get(t, t) in TYPES]


def score(rows: list[dict], found: list[list[tuple[str, int, int]]]) -> pd.DataFrame:
    """Recall, precision and F2 per language and type (and 'all' languages)."""
    records = []
    for row, detections in zip(rows, found, strict=True):
        gold = [(s["type"], s["start"], s["end"]) for s in row["spans"]]
        for t, s, e in gold:
            hit = any(d[0] == t and d[1] < e and s < d[2] for d in detections)
            records.append({"lang": row["lang"], "type": t, "kind": "gold", "ok": hit})
        for t, s, e in detections:
            correct = any(g[0] == t and g[1] < e and s < g[2] for g in gold)
            records.append({"lang": row["lang"], "type": t, "kind": "found", "ok": correct})
    frame = pd.DataFrame(records)
    out = []
    for lang in [*sorted(frame["lang"].unique()), "all"]:
        part = frame if lang == "all" else frame[frame["lang"] == lang]
        for t in TYPES:
            gold = part[(part["type"] == t) & (part["kind"] == "gold")]
            found = part[(part["type"] == t) & (part["kind"] == "found")]
            if not len(gold) and not len(found):
                continue
            recall = gold["ok"].mean() if len(gold) else float("nan")
            precision = found["ok"].mean() if len(found) else float("nan")
            f2 = 5 * precision * recall / (4 * precision + recall) if precision + recall > 0 else 0.0
            out.append(
                {"lang": lang, "type": t, "labeled": len(gold), "found": len(found), "recall": recall,
                 "precision": precision, "F2": f2}
            )  # fmt: skip
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="sentences per language (default: all)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.limit:
        rows = pd.DataFrame(rows).groupby("lang").head(args.limit).to_dict(orient="records")
    texts = [r["text"] for r in rows]

    from commsrisk.nlp.text_analyzer import build_text_analyzer
    from commsrisk.settings import Settings

    ours_engine = build_text_analyzer(Settings.load().nlp)
    analyzer, _ = bare_presidio()
    start = time.perf_counter()
    ours = [
        _spans([(p.entity_type, p.start, p.end) for p in a.pii])
        for a in ours_engine.analyze_batch(texts, [None] * len(texts))
    ]
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    bare = [_spans([(r.entity_type, r.start, r.end) for r in analyzer.analyze(t, "en")]) for t in texts]
    bare_s = time.perf_counter() - start
    results = {"commsrisk": score(rows, ours), "presidio": score(rows, bare)}
    merged = results["commsrisk"].merge(
        results["presidio"], on=["lang", "type", "labeled"], how="outer", suffixes=("", " presidio")
    )
    view = merged[
        ["lang", "type", "labeled", "recall", "recall presidio", "precision", "precision presidio", "F2", "F2 presidio"]
    ]
    table(
        f"PII on {len(rows)} sentences ({SET.name}): commsrisk vs bare Presidio",
        view.round(3).to_dict(orient="records"),
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "command": "python benchmarks/pii_eval.py" + (f" --limit {args.limit}" if args.limit else ""),
                "sentences": len(rows),
                "seconds": {"commsrisk": round(ours_s, 1), "presidio": round(bare_s, 1)},
                "rows": view.round(4).to_dict(orient="records"),
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
