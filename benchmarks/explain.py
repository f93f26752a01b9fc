"""Phrase explanations: what they cost the Scorer, and how well each method finds what the model reads.

    .venv/bin/python benchmarks/explain.py            # the whole out-of-distribution dev set
    .venv/bin/python benchmarks/explain.py --n 300    # a quicker look

In one process, on the dev set (data/eval/ood_dev/dev.jsonl) with the default model:
- the Scorer with signals only, and with phrases for flagged risks (msg/s; issue 14 asks for
  phrases at >= 0.5x of signals only);
- the explain step alone on the flagged (message, risk) asks, by each method: token shares (the
  product's, for a mean-pooling model: one forward pass per batch, `commsrisk.explain.explain_batch`)
  and gradient x input (one forward and one backward pass per risk, one message at a time, the
  method before it and the one any other model gets), with their agreement (the share of flagged
  risks with the same phrase spans);
- faithfulness (the deletion test of the ERASER benchmark, "comprehensiveness"): how far a flagged
  risk's logit falls when the tokens of the top phrase (or top 3) a method found are left out of
  the message, against a random 5-token phrase. The larger the fall, the more the phrase shown to
  a reviewer is what the model actually read.
Writes benchmarks/results/explain.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def random_phrase(classifier: Any, text: str, rng: random.Random) -> list[Any]:
    """A phrase of 5 consecutive tokens at a random place: the floor a method must beat."""
    from commsrisk.schema import EvidenceSpan

    real = [span for span in classifier.encode([text], offsets=True)["offset_mapping"][0] if span[1] > span[0]]
    if not real:
        return []
    i = rng.randrange(len(real))
    window = real[max(0, i - 2) : i + 3]
    return [EvidenceSpan(start=window[0][0], end=window[-1][1], kind="phrase", weight=0.0)]


def mean_drop(classifier: Any, asks: Sequence[Any], found: Sequence[dict[str, Any]], top: int) -> float:
    from commsrisk.explain import logit_drop

    drops = [
        logit_drop(classifier, text, risk, f[risk][:top])
        for f, (text, risks) in zip(found, asks, strict=True)
        for risk in risks
    ]
    return sum(drops) / max(len(drops), 1)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def agreement(reference: list[dict[str, Any]], other: list[dict[str, Any]], asks: Sequence[Any]) -> tuple[float, float]:
    """Share of flagged risks with the same spans, and share whose top phrases overlap."""
    pairs = [(a[risk], b[risk]) for a, b, (_, risks) in zip(reference, other, asks, strict=True) for risk in risks]
    same = sum([(s.start, s.end) for s in a] == [(s.start, s.end) for s in b] for a, b in pairs)
    overlap = sum(bool(a and b and a[0].start < b[0].end and b[0].start < a[0].end) for a, b in pairs)
    return same / max(len(pairs), 1), overlap / max(len(pairs), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="dev messages (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()

    import torch

    from commsrisk.explain import explain_batch, gradient_phrases
    from commsrisk.scoring import build_scorer
    from commsrisk.settings import Settings
    from commsrisk.training.data import read_labeled_file
    from commsrisk.training.pipeline import frame_messages

    torch.set_num_threads(args.threads)
    settings = Settings.load()
    frame = read_labeled_file(settings.tracking.dev_set, limits=settings.limits).frame
    frame = (frame if args.n is None else frame.sample(n=args.n, random_state=0)).reset_index(drop=True)
    messages = frame_messages(frame)
    scorer = build_scorer(settings)
    scorer.analyzer.load_all()  # type: ignore[attr-defined]
    scorer.score_batch(messages[:32], explain="phrases")  # warm-up: every pipeline and kernel loaded
    scorer.score_batch(messages, explain="signals")  # and oneDNN's kernels for every padded length

    t_signals, results = timed(lambda: scorer.score_batch(messages, explain="signals"))
    t_phrases, _ = timed(lambda: scorer.score_batch(messages, explain="phrases"))
    flagged = [
        (m.text, [risk for risk, d in r.risks.items() if d.flagged]) for m, r in zip(messages, results, strict=True)
    ]
    asks = [ask for ask in flagged if ask[1]]
    classifier = scorer.classifier
    t_shares, shares = timed(lambda: explain_batch(classifier, asks))  # type: ignore[arg-type]
    t_gradient, gradient = timed(lambda: [gradient_phrases(classifier, text, risks) for text, risks in asks])  # type: ignore[arg-type]
    n = len(messages)
    same, overlap = agreement(shares, gradient, asks)
    rng = random.Random(0)
    randomly = [{risk: random_phrase(classifier, text, rng) for risk in risks} for text, risks in asks]
    report: dict[str, Any] = {
        "messages": n,
        "flagged_messages": len(asks),
        "flagged_risks": sum(len(risks) for _, risks in asks),
        "threads": args.threads,
        "scorer_signals_msg_s": round(n / t_signals, 1),
        "scorer_phrases_msg_s": round(n / t_phrases, 1),
        "phrases_vs_signals": round(t_signals / t_phrases, 3),
        "methods": {
            "token shares": {"flagged_msg_s": round(len(asks) / t_shares, 1)},
            "gradient x input": {"flagged_msg_s": round(len(asks) / t_gradient, 1)},
        },
        "same_spans_share": round(same, 4),
        "top_phrases_overlap_share": round(overlap, 4),
        "random 5-token phrase": {"logit_drop_top1": round(mean_drop(classifier, asks, randomly, 1), 3)},
    }
    for name, found in (("token shares", shares), ("gradient x input", gradient)):
        for top in (1, 3):
            report["methods"][name][f"logit_drop_top{top}"] = round(mean_drop(classifier, asks, found, top), 3)
    print(f"{n} dev messages, {len(asks)} flagged ({report['flagged_risks']} flagged risks), {args.threads} threads")
    print(f"Scorer, signals only:        {report['scorer_signals_msg_s']:>7} msg/s")
    print(
        f"Scorer, phrases for flags:   {report['scorer_phrases_msg_s']:>7} msg/s "
        f"({report['phrases_vs_signals']}x of signals only; target >= 0.5x)"
    )
    for name, row in report["methods"].items():
        print(
            f"explain by {name:<17} {row['flagged_msg_s']:>7} flagged messages/s; deleting its top phrase lowers "
            f"the logit by {row['logit_drop_top1']}, its top 3 by {row['logit_drop_top3']}"
        )
    print(f"deleting a random 5-token phrase lowers it by {report['random 5-token phrase']['logit_drop_top1']}")
    print(
        f"the two methods give the same spans for {same:.2%} of flagged risks; "
        f"their top phrases overlap for {overlap:.2%}"
    )
    out = REPO / "benchmarks" / "results" / "explain.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
