"""Which training method transfers best? Every method x seed as an MLflow run, judged on the dev set.

    .venv/bin/python benchmarks/training_comparison.py                   # the model card's table
    .venv/bin/python benchmarks/training_comparison.py --methods frozen --seeds 13 --limit 800   # smoke

Each run is `run_training` on the seed corpus with the out-of-distribution dev set as the
selection set (early stopping, the frozen head's regularisation). The ensemble of the two best
methods averages their final probabilities per seed; its thresholds come from the calibration
split like every other model's. Writes benchmarks/results/training_comparison.json and prints the
markdown table (mean +- sd over seeds) that models/default/MODEL_CARD.md carries.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # a script beside the package, like benchmarks/run.py

from commsrisk.nlp.text_analyzer import build_text_analyzer  # noqa: E402
from commsrisk.schema import RISKS  # noqa: E402
from commsrisk.settings import Settings  # noqa: E402
from commsrisk.training.data import read_labeled_file  # noqa: E402
from commsrisk.training.evaluate import ModelEvaluation, best_f1_thresholds, evaluate_model  # noqa: E402
from commsrisk.training.finetune import DEFAULT_LEARNING_RATES, FineTuneConfig  # noqa: E402
from commsrisk.training.pipeline import FINAL_MODEL, SplitScores, TrainingOutcome, run_training  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "training_comparison.json"
BUDGETS: dict[str, dict[str, int]] = {
    "lora": {"epochs": 1, "max_steps": 300, "eval_every": 100, "patience": 2},
    "lora-mean": {"epochs": 1, "max_steps": 300, "eval_every": 100, "patience": 2},
    "full": {"epochs": 1, "max_steps": 300, "eval_every": 100, "patience": 2},
    "frozen": {"epochs": 1},
}
"""Optimiser steps per method (batch 16: 300 steps are 4,800 messages, about two thirds of an epoch),
sized so that 3 methods x 3 seeds fit in about 75 minutes on 2 CPU cores; the dev set is scored
every 100 steps and the best weights are kept."""


class CachedAnalyzer:
    """The NLP step, remembered per text: every run of one seed analyses the same messages."""

    def __init__(self, analyzer: Any) -> None:
        self.analyzer = analyzer
        self.cache: dict[tuple[str, str | None], Any] = {}

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Any]:
        """Analyses in input order; only unseen (text, language) pairs reach the analyzer."""
        keys = list(zip(texts, languages, strict=True))
        todo = [k for k in dict.fromkeys(keys) if k not in self.cache]
        if todo:
            found = self.analyzer.analyze_batch([t for t, _ in todo], [lang for _, lang in todo])
            self.cache.update(zip(todo, found, strict=True))
        return [self.cache[k] for k in keys]


def _summary(ev: ModelEvaluation) -> dict[str, float]:
    out = {"macro_f1": ev.macro_f1, **{f"{r}_f1": ev.per_risk[r].f1 for r in RISKS}}
    out.update({f"{r}_pr_auc": ev.per_risk[r].pr_auc for r in RISKS})
    out["hard_macro_f1"] = ev.hard_cases.get("macro_f1", float("nan"))
    out.update({f"lang_{k}": v["macro_f1"] for k, v in ev.per_language.items()})
    return out


def _ensemble(runs: list[TrainingOutcome], name: str) -> dict[str, dict[str, float]]:
    """Average the members' final probabilities; thresholds from the averaged calibration scores."""
    scores = {split: [run.final_scores[split] for run in runs] for split in ("calibration", "test", "dev")}
    for split, members in scores.items():
        if any(m.message_ids != members[0].message_ids for m in members):
            raise ValueError(f"ensemble members disagree on the {split} rows (different seeds?)")
    mean = {split: np.mean([m.proba for m in members], axis=0) for split, members in scores.items()}
    cut = best_f1_thresholds(scores["calibration"][0].labels, mean["calibration"])
    out = {}
    for split in ("test", "dev"):
        first = scores[split][0]
        out[split] = _summary(evaluate_model(name, first.labels, mean[split], cut, first.languages, first.hard))
    return out


def _save_scores(outcome: TrainingOutcome, path: Path) -> None:
    """The final model's probabilities per split (ids, labels, slices; no text), for a later ensemble."""
    arrays: dict[str, Any] = {}
    for split, sc in outcome.final_scores.items():
        arrays[f"{split}_ids"] = np.asarray(sc.message_ids)
        arrays[f"{split}_labels"] = sc.labels
        arrays[f"{split}_proba"] = sc.proba
        arrays[f"{split}_languages"] = np.asarray(sc.languages)
        arrays[f"{split}_hard"] = sc.hard if sc.hard is not None else np.zeros(0, dtype=bool)
    np.savez(path, **arrays)


def _load_scores(path: Path) -> TrainingOutcome:
    """A stand-in outcome holding only the saved final scores (what the ensemble needs)."""
    data = np.load(path)
    outcome = TrainingOutcome("", None, path.parent, [], "", {})
    for split in ("calibration", "test", "dev"):
        hard = data[f"{split}_hard"]
        outcome.final_scores[split] = SplitScores(
            data[f"{split}_ids"].tolist(),
            data[f"{split}_labels"],
            data[f"{split}_proba"],
            data[f"{split}_languages"].tolist(),
            hard if len(hard) else None,
        )
    return outcome


def _ngram_scores(seed: int) -> TrainingOutcome:
    """The character n-gram classifier fit on one seed's training split, scored like a final model."""
    from commsrisk.classifier.ngram import CharNgramClassifier
    from commsrisk.training.data import label_matrix, split_labeled
    from commsrisk.training.evaluate import hard_case_mask, language_slices

    data = read_labeled_file(REPO / "data/seed/commsrisk_seed.jsonl").frame
    dev = read_labeled_file(REPO / "data/eval/ood_dev/dev.jsonl").frame
    split = split_labeled(data, seed=seed).to_numpy()
    parts = {name: data[split == name].reset_index(drop=True) for name in ("train", "calibration", "test")}
    parts["dev"] = dev
    model = CharNgramClassifier.fit(parts["train"]["text"].tolist(), label_matrix(parts["train"]), seed=seed)
    outcome = TrainingOutcome("", None, REPO, [], "", {})
    for name in ("calibration", "test", "dev"):
        frame = parts[name]
        outcome.final_scores[name] = SplitScores(
            frame["message_id"].tolist(),
            label_matrix(frame),
            model.predict_proba(frame["text"].tolist()),
            language_slices(frame),
            hard_case_mask(frame),
        )
    return outcome


def merge(paths: Sequence[Path], out: Path) -> None:
    """One comparison from several partial ones: their runs, the ensemble of the two best, the table."""
    parts = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    results: dict[str, list[dict[str, Any]]] = {}
    seconds: dict[str, float] = {}
    for part in parts:
        for method, runs in part["results"].items():
            if not method.startswith(("ensemble", "tfidf")):
                results.setdefault(method, []).extend(runs)
        seconds.update(part["seconds_per_run"])
    methods = list(results)
    ranked = sorted(methods, key=lambda m: -statistics.mean(r["dev"]["macro_f1"] for r in results[m]))
    a, b = ranked[:2]
    seeds = sorted({r["run"]["seed"] for r in results[a]} & {r["run"]["seed"] for r in results[b]})
    name = f"ensemble {a} + {b}"
    comparison = REPO / "models" / "comparison"
    results[name] = [
        _ensemble([_load_scores(comparison / f"{m}-{seed}" / "final_scores.npz") for m in (a, b)], name)
        for seed in seeds
    ]
    for method in ranked[:2]:
        label = f"ensemble {method} + char n-gram"
        results[label] = [
            _ensemble(
                [
                    _load_scores(comparison / f"{method}-{r['run']['seed']}" / "final_scores.npz"),
                    _ngram_scores(r["run"]["seed"]),
                ],
                label,
            )
            for r in results[method]
        ]
    results["tfidf-logreg (baseline)"] = [{"dev": r["dev_tfidf"], "test": r["test_tfidf"]} for r in results[methods[0]]]
    table = _table(results)
    print(table)
    payload = {**parts[0], "command": [p["command"] for p in parts], "results": results, "table": table}
    payload["seconds_per_run"] = seconds
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def _mean_sd(values: list[float]) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def _table(results: dict[str, list[dict[str, dict[str, float]]]]) -> str:
    langs = sorted({k for runs in results.values() for r in runs for k in r["dev"] if k.startswith("lang_")})
    head = ["method", "dev macro-F1", *(f"dev {r}" for r in RISKS), "dev hard", *(f"dev {k[5:]}" for k in langs)]
    head += ["in-corpus macro-F1", "gap"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for method, runs in results.items():

        def dev(key: str, runs: list[dict[str, dict[str, float]]] = runs) -> str:
            return _mean_sd([r["dev"].get(key, float("nan")) for r in runs])

        gaps = [r["test"]["macro_f1"] - r["dev"]["macro_f1"] for r in runs]
        cells = [method, dev("macro_f1"), *(dev(f"{r}_f1") for r in RISKS), dev("hard_macro_f1")]
        cells += [dev(k) for k in langs]
        cells += [_mean_sd([r["test"]["macro_f1"] for r in runs]), _mean_sd(gaps)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "data/seed/commsrisk_seed.jsonl")
    parser.add_argument("--dev", type=Path, default=REPO / "data/eval/ood_dev/dev.jsonl")
    parser.add_argument("--methods", nargs="+", default=["lora", "full", "frozen"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[13, 14, 15])
    parser.add_argument("--limit", type=int, default=None, help="Use about this many messages (smoke runs).")
    parser.add_argument("--max-steps", type=int, default=None, help="Cap every fine-tuning run (smoke runs).")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{REPO / 'mlflow.db'}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--jobs", nargs="+", default=None, help="Explicit method:seed runs instead of the methods x seeds grid."
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (run two processes with 1 each).")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="Combine the JSON results of earlier (parallel) runs, add the ensemble, write --out; trains nothing.",
    )
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.out)
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    settings = Settings.load()
    analyzer = CachedAnalyzer(build_text_analyzer(settings.nlp))
    data = read_labeled_file(args.data)
    dev = read_labeled_file(args.dev)
    results: dict[str, list[dict[str, dict[str, float]]]] = {}
    outcomes: dict[str, list[TrainingOutcome]] = {}
    timings: dict[str, list[float]] = {}

    def write(table: str) -> None:
        """Written after every run, so an interrupted comparison keeps what it measured."""
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "command": "python benchmarks/training_comparison.py " + " ".join(sys.argv[1:]),
            "data": args.data.name,
            "data_digest": data.digest,
            "dev": args.dev.name,
            "dev_digest": dev.digest,
            "seeds": args.seeds,
            "budgets": BUDGETS,
            "seconds_per_run": {m: statistics.mean(t) for m, t in timings.items()},
            "results": results,
            "table": table,
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    grid = [(m, s) for s in args.seeds for m in args.methods]  # seed-major: a partial run covers every method
    jobs = [(job.split(":")[0], int(job.split(":")[1])) for job in args.jobs] if args.jobs else grid
    for method, seed in jobs:
        start = time.perf_counter()
        base_method, _, stack = method.partition("+")  # "frozen+ngram": stacked with the n-gram classifier
        config = FineTuneConfig(
            base_model=settings.model.base_model,
            method=base_method,
            seed=seed,
            learning_rate=DEFAULT_LEARNING_RATES[base_method],
            max_length=settings.model.max_length,
            stack_ngram=stack == "ngram",
            **{**BUDGETS[base_method], **({"max_steps": args.max_steps} if args.max_steps else {})},
        )
        outcome = run_training(
            data,
            config=config,
            analyzer=analyzer,
            out_dir=REPO / "models" / "comparison" / f"{method}-{seed}",
            tracking_uri=args.tracking_uri,
            experiment="commsrisk-method-comparison",
            registered_model=None,
            limit=args.limit,
            run_name=f"{method} seed {seed}",
            dev=dev,
        )
        timings.setdefault(method, []).append(time.perf_counter() - start)
        _save_scores(outcome, REPO / "models" / "comparison" / f"{method}-{seed}" / "final_scores.npz")
        dev_by_name = {ev.name: ev for ev in outcome.dev_evaluations}
        record = {
            "dev": _summary(dev_by_name[FINAL_MODEL]),
            "test": _summary(outcome.evaluation(FINAL_MODEL)),
            "dev_classifier_only": _summary(dev_by_name["classifier-only"]),
            "dev_tfidf": _summary(dev_by_name["tfidf-logreg"]),
            "test_tfidf": _summary(outcome.evaluation("tfidf-logreg")),
            "run": {"id": outcome.run_id, "seed": seed},
        }
        results.setdefault(method, []).append(record)  # type: ignore[arg-type]
        outcomes.setdefault(method, []).append(outcome)
        print(
            f"{method} seed {seed}: dev macro-F1 {record['dev']['macro_f1']:.3f} (classifier only "
            f"{record['dev_classifier_only']['macro_f1']:.3f}), in-corpus {record['test']['macro_f1']:.3f}, "
            f"{timings[method][-1]:.0f} s",
            flush=True,
        )
        write(_table(results))
    ranked = sorted(results, key=lambda m: -statistics.mean(r["dev"]["macro_f1"] for r in results[m]))
    if len(ranked) >= 2 and not args.jobs:
        a, b = ranked[:2]
        name = f"ensemble {a} + {b}"
        results[name] = [_ensemble([oa, ob], name) for oa, ob in zip(outcomes[a], outcomes[b], strict=True)]
    results["tfidf-logreg (baseline)"] = [{"dev": r["dev_tfidf"], "test": r["test_tfidf"]} for r in results[ranked[0]]]
    table = _table(results)
    print(table)
    write(table)


if __name__ == "__main__":
    main()
