"""Classifier runtimes side by side: PyTorch fp32 and bf16, ONNX Runtime fp32 and two int8 recipes.

    .venv/bin/python benchmarks/runtime.py            # the whole out-of-distribution dev set
    .venv/bin/python benchmarks/runtime.py --n 300    # a quicker look
    .venv/bin/python benchmarks/runtime.py --model DIR   # and another model (a student, the previous default)

Each runtime scores the dev set (data/eval/ood_dev/dev.jsonl) through the whole Scorer (signals
only, what `commsrisk score` and `/score` run by default), in one process, one after the other,
after a warm-up. Reported per runtime: msg/s of the Scorer and of the classifier's forward pass
alone, the share of (message, risk) decisions that differ from PyTorch fp32, and macro-F1 on the
dev set. A runtime is adoptable (issue 14) when it changes <= 0.5% of decisions and moves
macro-F1 by <= 0.005. "torch bf16" is the default (model.runtime: torch-bf16: PyTorch under
bfloat16 autocast, for CPUs with bf16 kernels). "onnx-int8" is the product's int8 recipe
(model.runtime: onnx-int8, dynamic int8 weights per channel on every weight MatMul but the
feed-forward outputs); "int8, every MatMul" is
the plain recipe (quantize_dynamic on every MatMul, per channel), shown for the comparison.
`--model DIR` adds another model (a student from `commsrisk train --encoder-layers N`, or the
previous default) on torch fp32, torch bf16 and onnx-int8, measured the same way: its decisions
against the default model's on torch, under the same thresholds policy in force (a different model: a
reference, not a runtime's test) and against its own on torch (the runtime's test).
Writes benchmarks/results/runtime.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_CHANGED = 0.005
MAX_F1_MOVE = 0.005


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="dev messages (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for every runtime")
    parser.add_argument(
        "--model", type=Path, action="append", default=[], help="another model folder to measure too (repeatable)"
    )
    args = parser.parse_args()

    import numpy as np
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from run import cpu_description

    from commsrisk.classifier.onnx_runtime import ONNX_FILE, OnnxLogits
    from commsrisk.nlp.text_analyzer import build_text_analyzer
    from commsrisk.schema import RISKS
    from commsrisk.scoring import build_scorer
    from commsrisk.settings import Settings
    from commsrisk.training.data import read_labeled_file
    from commsrisk.training.pipeline import frame_messages
    from commsrisk.training.scored_evaluation import evaluate_results, score_frame

    torch.set_num_threads(args.threads)
    cache = Path(tempfile.mkdtemp(prefix="commsrisk-onnx-"))
    base = Settings.load()
    settings = {
        name: base.model_copy(
            update={
                "model": base.model.model_copy(
                    update={"runtime": runtime, "onnx_cache_dir": cache, "torch_threads": args.threads}
                )
            }
        )
        for name, runtime in (
            ("torch fp32", "torch"),
            ("torch bf16", "torch-bf16"),
            ("onnx fp32", "onnx"),
            ("onnx-int8", "onnx-int8"),
        )
    }
    labeled = read_labeled_file(base.tracking.dev_set, limits=base.limits)
    frame = labeled.frame if args.n is None else labeled.frame.sample(n=args.n, random_state=0)
    frame = frame.reset_index(drop=True)
    messages = frame_messages(frame)
    texts = list(frame["text"])
    analyzer = build_text_analyzer(base.nlp)
    analyzer.load_all()
    location = str(base.model.default_dir)
    scorers = {name: build_scorer(s, classifier_location=location, analyzer=analyzer) for name, s in settings.items()}
    (export,) = list(cache.rglob(ONNX_FILE))
    plain = export.with_name("model.int8-every-matmul.onnx")
    quantize_dynamic(
        str(export), str(plain), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
    )
    scorers["int8, every MatMul"] = build_scorer(settings["onnx fp32"], classifier_location=location, analyzer=analyzer)
    scorers["int8, every MatMul"].classifier.runtime = OnnxLogits(plain, args.threads)  # type: ignore[attr-defined]
    model_of = dict.fromkeys(scorers, "default")
    for other in args.model:
        layers = json.loads((other / "commsrisk_model.json").read_text(encoding="utf-8")).get("encoder_layers")
        for runtime in ("torch fp32", "torch bf16", "onnx-int8"):
            name = f"{other.name} ({layers or 'all'} layers), {runtime}"
            scorers[name] = build_scorer(settings[runtime], classifier_location=str(other), analyzer=analyzer)
            model_of[name] = other.name

    rows: list[dict[str, object]] = []
    references: dict[str, tuple[np.ndarray, float]] = {}  # each model's torch fp32 decisions and macro-F1
    cpu = cpu_description()
    print(f"{len(frame)} dev messages, {args.threads} threads, CPU {cpu}", file=sys.stderr)
    for name, scorer in scorers.items():
        scorer.explain = "signals"
        scorer.score_batch(messages[:32])  # warm-up
        started = time.perf_counter()
        results = score_frame(scorer, messages, progress=False)
        scorer_rate = len(messages) / (time.perf_counter() - started)
        started = time.perf_counter()
        scorer.classifier.predict_proba(texts)  # type: ignore[attr-defined]
        forward_rate = len(texts) / (time.perf_counter() - started)
        flags = np.array([[r.risks[risk].flagged for risk in RISKS] for r in results])
        macro_f1 = evaluate_results(frame, results).evaluation.macro_f1
        own, own_f1 = references.setdefault(model_of[name], (flags, macro_f1))
        changed = float((flags != own).mean())
        row = {
            "runtime": name,
            "scored on": scorer.classifier.runtime_name,  # torch-bf16 is torch on a CPU without bf16 kernels
            "Scorer msg/s": round(scorer_rate, 1),
            "classifier msg/s": round(forward_rate, 1),
            "decisions changed vs torch fp32": round(changed, 4),
            "decisions changed vs default model on torch": round(float((flags != references["default"][0]).mean()), 4),
            "dev macro-F1": round(macro_f1, 4),
            "adoptable": changed <= MAX_CHANGED and abs(macro_f1 - own_f1) <= MAX_F1_MOVE,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    torch_rate = float(rows[0]["Scorer msg/s"])  # type: ignore[arg-type]
    for row in rows:
        row["Scorer vs torch"] = round(float(row["Scorer msg/s"]) / torch_rate, 2)  # type: ignore[arg-type]
    export_mb = round(export.stat().st_size / 1e6)
    report = {"messages": len(frame), "threads": args.threads, "cpu": cpu, "export_mb": export_mb, "rows": rows}
    out = REPO / "benchmarks" / "results" / "runtime.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written {out.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
