"""Phrase explanations: what they cost the Scorer, and whether padded batches would make them cheaper.

    .venv/bin/python benchmarks/explain.py            # the whole out-of-distribution dev set
    .venv/bin/python benchmarks/explain.py --n 300    # a quicker look

In one process, on the dev set (data/eval/ood_dev/dev.jsonl) with the default model:
- the Scorer with signals only, and with phrases for flagged risks (msg/s; issue 14 asks for
  phrases at >= 0.5x of signals only);
- the explain step alone on the flagged (message, risk) asks: the product's method (gradient x
  input, one message per forward and backward pass, `commsrisk.explain.phrase_attributions`)
  against the same method on padded batches of 2 to 16 messages (one forward pass per batch, one
  backward pass per risk flagged in it; written here, since it is only an alternative), with their
  agreement: the share of flagged risks with the same phrase spans, the largest weight difference;
- the same method under bfloat16 autocast (the products of the forward and backward passes in
  bf16, as `model.runtime: torch-bf16` scores), against fp32, for the same agreement.
Writes benchmarks/results/explain.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BATCH_SIZES = (2, 4, 8, 16)


def batched_phrases(classifier: Any, asks: Sequence[tuple[str, Sequence[str]]], size: int) -> list[dict[str, Any]]:
    """Gradient x input phrases of many (text, risks) asks in padded batches of `size`, in input order.

    A message's logits depend only on its own tokens (the attention mask keeps padding out), so
    the gradient of a batch's summed logit for a risk is every message's own gradient.
    """
    import torch

    from commsrisk.explain import _top_phrases
    from commsrisk.schema import RISKS

    model = classifier.pytorch()
    out: list[dict[str, Any]] = [{} for _ in asks]
    order = sorted(range(len(asks)), key=lambda i: len(asks[i][0]))
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        encoded = classifier.encode([asks[i][0] for i in chunk], offsets=True)
        offsets = [[list(span) for span in row] for row in encoded.pop("offset_mapping")]
        embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach().requires_grad_(True)
        risks = [risk for risk in RISKS if any(risk in asks[i][1] for i in chunk)]
        with torch.enable_grad():
            logits = model(inputs_embeds=embeddings, attention_mask=encoded["attention_mask"]).logits
            for n, risk in enumerate(risks):
                total = logits[:, RISKS.index(risk)].sum()
                (grad,) = torch.autograd.grad(total, embeddings, retain_graph=n < len(risks) - 1)
                scores = (grad * embeddings).sum(-1).detach()
                for b, i in enumerate(chunk):
                    if risk in asks[i][1]:
                        out[i][risk] = _top_phrases(asks[i][0], offsets[b], scores[b].tolist())
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def agreement(reference: list[dict[str, Any]], other: list[dict[str, Any]], asks: Sequence[Any]) -> tuple[float, float]:
    """Share of flagged risks with the same spans, and the largest weight difference of a phrase."""
    pairs = [(a[risk], b[risk]) for a, b, (_, risks) in zip(reference, other, asks, strict=True) for risk in risks]
    same = sum([(s.start, s.end) for s in a] == [(s.start, s.end) for s in b] for a, b in pairs)
    diff = max((abs(x.weight - y.weight) for a, b in pairs for x, y in zip(a, b, strict=False)), default=0.0)
    return same / max(len(pairs), 1), diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="dev messages (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()

    import torch

    from commsrisk.explain import phrase_attributions
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

    t_signals, results = timed(lambda: scorer.score_batch(messages, explain="signals"))
    t_phrases, _ = timed(lambda: scorer.score_batch(messages, explain="phrases"))
    flagged = [
        (m.text, [risk for risk, d in r.risks.items() if d.flagged]) for m, r in zip(messages, results, strict=True)
    ]
    asks = [ask for ask in flagged if ask[1]]
    classifier = scorer.classifier
    t_single, single = timed(lambda: [phrase_attributions(classifier, text, risks) for text, risks in asks])  # type: ignore[arg-type]
    n = len(messages)
    report: dict[str, Any] = {
        "messages": n,
        "flagged_messages": len(asks),
        "flagged_risks": sum(len(risks) for _, risks in asks),
        "threads": args.threads,
        "scorer_signals_msg_s": round(n / t_signals, 1),
        "scorer_phrases_msg_s": round(n / t_phrases, 1),
        "phrases_vs_signals": round(t_signals / t_phrases, 3),
        "explain_one_message_per_pass_msg_s": round(len(asks) / t_single, 1),
        "batched": [],
    }
    print(f"{n} dev messages, {len(asks)} flagged ({report['flagged_risks']} flagged risks), {args.threads} threads")
    print(f"Scorer, signals only:        {report['scorer_signals_msg_s']:>7} msg/s")
    print(
        f"Scorer, phrases for flags:   {report['scorer_phrases_msg_s']:>7} msg/s "
        f"({report['phrases_vs_signals']}x of signals only; target >= 0.5x)"
    )
    print(f"explain, one message a pass: {report['explain_one_message_per_pass_msg_s']:>7} flagged messages/s")
    for size in BATCH_SIZES:
        t_batched, batched = timed(lambda size=size: batched_phrases(classifier, asks, size))
        same, diff = agreement(single, batched, asks)
        row = {
            "batch": size,
            "msg_s": round(len(asks) / t_batched, 1),
            "vs_one_per_pass": round(t_single / t_batched, 2),
            "same_spans_share": round(same, 4),
            "max_weight_difference": round(diff, 4),
        }
        report["batched"].append(row)
        print(
            f"explain, batches of {size:>2}:     {row['msg_s']:>7} flagged messages/s ({row['vs_one_per_pass']}x); "
            f"same spans for {same:.2%} of flagged risks, largest weight difference {row['max_weight_difference']}"
        )

    def in_bf16() -> list[dict[str, Any]]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return [phrase_attributions(classifier, text, risks) for text, risks in asks]  # type: ignore[arg-type]

    in_bf16()  # warm-up: bf16 kernels
    t_bf16, bf16 = timed(in_bf16)
    same, diff = agreement(single, bf16, asks)
    report["bf16_autocast"] = {
        "msg_s": round(len(asks) / t_bf16, 1),
        "vs_fp32": round(t_single / t_bf16, 2),
        "same_spans_share": round(same, 4),
        "max_weight_difference": round(diff, 4),
    }
    print(
        f"explain under bf16 autocast:  {report['bf16_autocast']['msg_s']:>7} flagged messages/s "
        f"({report['bf16_autocast']['vs_fp32']}x); same spans for {same:.2%} of flagged risks"
    )
    out = REPO / "benchmarks" / "results" / "explain.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
