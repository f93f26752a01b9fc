"""What the multilingual NER costs: scoring speed with it and with blank pipelines, in one run.

    .venv/bin/python benchmarks/pii_speed.py            # 600 messages of the seed corpus, 3 rounds
    .venv/bin/python benchmarks/pii_speed.py --n 200    # a smoke test

"before" is the nlp step as it was before issue 13: the English spaCy model, blank pipelines
with our tokenizers for the other languages, jieba's tags for Chinese names, and only the
recognizers that existed then (recognizers.yaml of 62f2e13: e-mail, IBAN, card, SWIFT, ISIN,
CUSIP, account, phone, Chinese id/phone/name, US SSN, English names; in today's versions, with
today's context words and context enhancer). "after" is the default now: the French spaCy
model (fr_core_news_md), our NER for German, Spanish, Chinese and Japanese, and
every recognizer (addresses, passports, IPs, phone shapes, Presidio's country ids, My Number). The same messages
go through `Scorer.score_batch` (classifier included, what `commsrisk score` runs) and the nlp
step alone, alternating rounds so that machine noise hits both. Writes
benchmarks/results/pii_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import corpus, table  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "pii_speed.json"
BEFORE_RECOGNIZERS = {
    "BoundaryFreeEmailRecognizer", "BoundaryFreeIbanRecognizer", "BoundaryFreeCreditCardRecognizer",
    "SwiftBicRecognizer", "IsinRecognizer", "CusipRecognizer", "BankAccountRecognizer", "RegionalPhoneRecognizer",
    "CnPhoneRecognizer", "CnResidentIdRecognizer", "CnPersonRecognizer", "UsSsnRecognizer", "NerRecognizer",
}  # fmt: skip
"""The recognizers of 62f2e13 (its SpacyPersonRecognizer is today's NerRecognizer, English only then)."""


def before_recognizers(folder: Path) -> Path:
    """The shipped recognizers YAML cut down to the recognizers that ran before issue 13."""
    import yaml

    from commsrisk.nlp.recognizers.registry import load_recognizers_config

    config = load_recognizers_config()
    entries = [e.model_dump() for e in config.recognizers if e.name in BEFORE_RECOGNIZERS]
    for entry in entries:
        if entry["name"] == "NerRecognizer":
            entry["languages"] = {"en": []}
    path = folder / "recognizers_before.yaml"
    path.write_text(yaml.safe_dump({"recognizers": entries}, allow_unicode=True), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="messages (drawn from the seed corpus)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per system (median reported)")
    args = parser.parse_args()

    from commsrisk.nlp.text_analyzer import build_text_analyzer
    from commsrisk.scoring import build_scorer
    from commsrisk.settings import Settings
    from commsrisk.training.pipeline import frame_messages

    frame = corpus(args.n, seed=3)
    messages = frame_messages(frame.assign(lang=None))
    base = {"base_model": str(REPO / "models/base/multilingual-e5-small"), "default_dir": REPO / "models/default"}
    after = Settings.load(model=base)
    folder = Path(tempfile.mkdtemp())
    before = Settings.load(
        model=base,
        nlp={"spacy_models": {"en": after.nlp.spacy_models["en"]}, "ner_models": {},
             "recognizers": before_recognizers(folder)},
    )  # fmt: skip
    systems = {}
    for name, settings in (("before", before), ("after", after)):
        analyzer = build_text_analyzer(settings.nlp)
        analyzer.load_all()  # no timed round pays for loading a language's pipeline
        scorer = build_scorer(settings, classifier_location=str(REPO / "models/default"), analyzer=analyzer)
        scorer.score_batch(messages[:32])  # warm up
        systems[name] = (analyzer, scorer)
    texts = [m.text for m in messages]
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, (analyzer, scorer) in systems.items():
            start = time.perf_counter()
            analyzer.analyze_batch(texts, [None] * len(texts))
            times.setdefault((name, "nlp step"), []).append(time.perf_counter() - start)
            start = time.perf_counter()
            scorer.score_batch(messages)
            times.setdefault((name, "Scorer.score_batch"), []).append(time.perf_counter() - start)
    rows = []
    for stage in ("nlp step", "Scorer.score_batch"):
        rate = {name: len(messages) / statistics.median(times[(name, stage)]) for name in systems}
        rows.append(
            {"stage": stage, "msg/s before": round(rate["before"], 1), "msg/s after": round(rate["after"], 1),
             "after / before": round(rate["after"] / rate["before"], 3)}
        )  # fmt: skip
    languages = frame["lang"].value_counts().to_dict()
    table(f"{len(messages)} seed messages {languages}, median of {args.rounds} rounds", rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "command": f"python benchmarks/pii_speed.py --n {args.n} --rounds {args.rounds}",
                "messages": len(messages),
                "languages": languages,
                "rows": rows,
            },
            indent=1,
        )  # fmt: skip
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
