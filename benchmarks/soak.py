"""Soak test of the HTTP service: many clients for minutes, mixed /score and /score_batch.

    .venv/bin/python benchmarks/soak.py                                    # the review: 32 clients, 10 min
    .venv/bin/python benchmarks/soak.py --clients 8 --minutes 1 --out /tmp/soak.json   # smoke run

The security review's target: "32 clients for 10 minutes, mixed /score and /score_batch: 0 errors,
0 lost, RSS growth under 10%, p95 reported."

One real server (`bentoml serve commsrisk.service.app:CommsriskService` on a loopback port, started
by tests/utils/server.py like the HTTP tests; same environment as benchmarks/run.py), a warm-up at
full load, then `--clients` threads for `--minutes`, each with its own connection, sending messages
drawn from the seed corpus (all six languages; the same draw as run.py, never the dev set). Every
message carries a unique message_id and every answer is checked: HTTP 200, one result per message
sent, in order, each with the id it was sent with. A message whose result does not come back so is
lost. A 429 (over service.max_in_flight) is counted apart and retried after a short backoff;
any other status, a timeout or a malformed answer is an error. Every 5 s the RSS of the server
process and all its children (BentoML runs the worker as a child) is sampled and /readyz is probed
(the service reports 503 there while service.max_in_flight requests are scoring). RSS growth is
(mean RSS over the last minute - RSS after the warm-up) / RSS after the warm-up.

Prints tables and writes a JSON report (default benchmarks/results/soak.json); exits 1 on FAIL.
The clients run in this process, on the same cores as the server: the figures are those of one box
under full load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from run import REPO, RESULTS, corpus, table  # noqa: E402

import tests.utils.server as server_utils  # noqa: E402

ROUTES = ("/score", "/score_batch")
SAMPLE_S = 5.0
POOL_SIZE = 2000  # messages drawn from the seed corpus, as run.py's full run
MAX_429_WAIT_S = 60.0  # a request still answered 429 after this long is an error (and its messages lost)
TARGET_RSS_GROWTH = 0.10


@dataclass
class Tally:
    """What one client saw in one phase; merged after the phase (no locks on the hot path)."""

    requests: Counter[str] = field(default_factory=Counter)  # per route: answered 200
    messages_sent: Counter[str] = field(default_factory=Counter)
    messages_ok: Counter[str] = field(default_factory=Counter)  # results back with their id
    lost_in_ok: Counter[str] = field(default_factory=Counter)  # sent, in a 200 answer, result missing or wrong
    rate_limited: Counter[str] = field(default_factory=Counter)  # 429 answers, each retried
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, status or exception)
    latency: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROUTES})  # the 200 attempt
    latency_total: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROUTES})  # with retries
    error_samples: list[str] = field(default_factory=list)
    live: list[int] = field(default_factory=lambda: [0, 0, 0])  # messages scored, 429s, errors: for the bar

    def merge(self, other: Tally) -> None:
        for name in ("requests", "messages_sent", "messages_ok", "lost_in_ok", "rate_limited", "errors"):
            getattr(self, name).update(getattr(other, name))
        for route in ROUTES:
            self.latency[route] += other.latency[route]
            self.latency_total[route] += other.latency_total[route]
        self.error_samples += other.error_samples[: max(0, 20 - len(self.error_samples))]


def check_answer(route: str, response: httpx.Response, ids: list[str]) -> tuple[int, str | None]:
    """(messages whose result came back with its id, why the answer is malformed or None)."""
    try:
        body = response.json()
    except ValueError:
        return 0, "answer is not JSON"
    if route == "/score":
        if isinstance(body, dict) and body.get("message_id") == ids[0] and isinstance(body.get("risks"), dict):
            return 1, None
        return 0, f"result without the id sent ({ids[0]}): {str(body)[:200]}"
    if not isinstance(body, list):
        return 0, f"batch answer is not a list: {str(body)[:200]}"
    ok, problems = 0, []
    for index, message_id in enumerate(ids):
        item = body[index] if index < len(body) else None
        result = item.get("result") if isinstance(item, dict) else None
        if isinstance(result, dict) and item.get("index") == index and result.get("message_id") == message_id:
            ok += 1
        elif len(problems) < 3:
            problems.append(f"item {index}: {str(item)[:160]}")
    if len(body) != len(ids):
        problems.insert(0, f"{len(body)} results for {len(ids)} messages")
    return ok, "; ".join(problems) or None


def client_loop(
    tally: Tally,
    number: int,
    phase: str,
    url: str,
    texts: list[str],
    args: argparse.Namespace,
    until: float,
    stop: threading.Event,
) -> None:
    """One client: requests back to back until `until` (then its last one finishes), checking every answer."""
    rng = random.Random(f"{phase}-{number}")
    seq = 0
    with httpx.Client(base_url=url, timeout=120) as client:
        while time.monotonic() < until and not stop.is_set():
            route = "/score_batch" if rng.random() < args.batch_share else "/score"
            count = args.batch_size if route == "/score_batch" else 1
            ids = [f"soak-{phase}-{number}-{seq}-{i}" for i in range(count)]
            seq += 1
            messages = [{"text": rng.choice(texts), "message_id": i} for i in ids]
            body = {"message": messages[0]} if route == "/score" else {"messages": messages}
            tally.messages_sent[route] += count
            first = time.perf_counter()
            attempt = 0
            while True:
                start = time.perf_counter()
                try:
                    response = client.post(route, json=body)
                except httpx.HTTPError as error:
                    tally.errors[(route, type(error).__name__)] += 1
                    tally.live[2] += 1
                    tally.error_samples.append(f"{route}: {type(error).__name__}: {error}")
                    break
                if response.status_code == 429 and time.perf_counter() - first < MAX_429_WAIT_S:
                    tally.rate_limited[route] += 1
                    tally.live[1] += 1
                    time.sleep(min(2.0, 0.05 * 2**attempt) * rng.uniform(0.5, 1.5))
                    attempt += 1
                    continue
                end = time.perf_counter()
                if response.status_code != 200:
                    tally.errors[(route, str(response.status_code))] += 1
                    tally.live[2] += 1
                    tally.error_samples.append(f"{route}: HTTP {response.status_code}: {response.text[:200]}")
                    break
                ok, problem = check_answer(route, response, ids)
                tally.messages_ok[route] += ok
                tally.live[0] += ok
                tally.lost_in_ok[route] += count - ok
                if problem:
                    tally.errors[(route, "malformed 200")] += 1
                    tally.live[2] += 1
                    tally.error_samples.append(f"{route}: {problem}")
                    break
                tally.requests[route] += 1
                tally.latency[route].append(end - start)
                tally.latency_total[route].append(end - first)
                break


class Sampler(threading.Thread):
    """Every SAMPLE_S: RSS of the server process tree, and what /readyz answers."""

    def __init__(self, server: psutil.Process, url: str) -> None:
        super().__init__(daemon=True)
        self.server, self.url = server, url
        self.phase = "warm-up"
        self.samples: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self._halt = threading.Event()

    def rss(self) -> tuple[int, int]:
        """(bytes, processes): the server and all its descendants (shared pages count once per process)."""
        total, count = 0, 0
        for proc in [self.server, *self.server.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
                count += 1
            except psutil.NoSuchProcess:
                pass
        return total, count

    def sample(self, phase: str | None = None) -> dict[str, Any]:
        rss, procs = self.rss()
        try:
            ready: int | str = httpx.get(f"{self.url}/readyz", timeout=5).status_code
        except httpx.HTTPError as error:
            ready = type(error).__name__
        row = {"t_s": round(time.monotonic() - self.t0, 1), "phase": phase or self.phase, "rss_mb": rss / 2**20}
        row |= {"processes": procs, "readyz": ready}
        self.samples.append(row)
        return row

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            self.sample()
            self._halt.wait(max(0.0, SAMPLE_S - (time.monotonic() - started)))

    def stop(self) -> None:
        self._halt.set()
        self.join()


class Bar:
    """A progress bar over a phase's duration: rich if installed, else tqdm."""

    def __init__(self, label: str, seconds: float) -> None:
        self.seconds = seconds
        try:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.rich: Any = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
            )
            self.task = self.rich.add_task(label, total=seconds, info="")
            self.rich.start()
        except ImportError:
            from tqdm import tqdm

            self.rich = None
            self.tqdm = tqdm(total=round(seconds), desc=label, unit="s")

    def update(self, elapsed: float, info: str) -> None:
        elapsed = min(elapsed, self.seconds)
        if self.rich is not None:
            self.rich.update(self.task, completed=elapsed, info=info)
        else:
            self.tqdm.n = round(elapsed)
            self.tqdm.set_postfix_str(info)

    def close(self) -> None:
        if self.rich is not None:
            self.rich.stop()
        else:
            self.tqdm.close()


def load_phase(
    phase: str, url: str, texts: list[str], args: argparse.Namespace, seconds: float, stop: threading.Event
) -> tuple[Tally, float]:
    """`args.clients` clients for `seconds`; (merged tally, wall seconds until the last one finished)."""
    tallies = [Tally() for _ in range(args.clients)]
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client_loop, args=(tallies[k], k, phase, url, texts, args, until, stop), daemon=True)
        for k in range(args.clients)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    bar = Bar(f"{phase}: {args.clients} clients", seconds)
    try:
        while any(thread.is_alive() for thread in threads):
            now = time.monotonic()
            bar.update(now - started, "draining" if now >= until else progress(tallies))
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        bar.close()
    wall = time.monotonic() - started
    merged = Tally()
    for tally in tallies:
        merged.merge(tally)
    return merged, wall


def progress(tallies: list[Tally]) -> str:
    scored, limited, errors = (sum(t.live[i] for t in tallies) for i in range(3))
    return f"{scored} msgs scored, {limited} x 429, {errors} errors"


def percentiles_ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    q = np.percentile(np.array(values) * 1000, [50, 95, 99])
    return {"p50_ms": float(q[0]), "p95_ms": float(q[1]), "p99_ms": float(q[2])}


def git_commit() -> dict[str, Any]:
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def server_log_summary(log: Path) -> dict[str, Any]:
    """Warnings and errors of the server log (JSON lines of commsrisk, plain lines of BentoML)."""
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    tracebacks = 0
    for line in log.read_text(errors="replace").splitlines():
        tracebacks += "Traceback (most recent call last)" in line
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            level = str(record.get("level", ""))
            if level in ("WARNING", "ERROR", "CRITICAL"):
                levels[level] += 1
                messages[f"{level}: {record.get('message')}"] += 1
        elif " ERROR " in line or "[ERROR]" in line:
            levels["ERROR (bentoml)"] += 1
            messages[line[:200]] += 1
    return {"path": str(log), "levels": dict(levels), "tracebacks": tracebacks, "top": dict(messages.most_common(10))}


def report(
    args: argparse.Namespace, tally: Tally, wall: float, sampler: Sampler, baseline: dict[str, Any], log: Path
) -> dict[str, Any]:
    routes = {}
    for route in ROUTES:
        routes[route] = {
            "requests_ok": tally.requests[route],
            "messages_sent": tally.messages_sent[route],
            "messages_scored": tally.messages_ok[route],
            "rate_limited_429": tally.rate_limited[route],
            "errors": sum(n for (r, _), n in tally.errors.items() if r == route),
            "lost": tally.messages_sent[route] - tally.messages_ok[route],
            **percentiles_ms(tally.latency[route]),
            "with_429_retries": percentiles_ms(tally.latency_total[route]),
        }
    sent, scored = sum(tally.messages_sent.values()), sum(tally.messages_ok.values())
    errors = sum(tally.errors.values())
    measured = [s for s in sampler.samples if s["phase"] == "soak"]
    end_t = measured[-1]["t_s"] if measured else baseline["t_s"]
    last_minute = [s["rss_mb"] for s in measured if s["t_s"] >= end_t - 60] or [baseline["rss_mb"]]
    growth = (float(np.mean(last_minute)) - baseline["rss_mb"]) / baseline["rss_mb"]
    readyz = Counter(str(s["readyz"]) for s in measured)
    all_rss = [s["rss_mb"] for s in measured] or [baseline["rss_mb"]]
    max_in_flight = _max_in_flight()
    rate_limited = sum(tally.rate_limited.values())
    notes = [
        f"{rate_limited} answers were 429 (each retried after a backoff): a request over service.max_in_flight "
        f"({max_in_flight}) waits its turn up to service.queue_wait_s, then gets a 429"
        if rate_limited
        else f"no 429 with {args.clients} clients: never more than service.max_in_flight ({max_in_flight}) at once",
        f"/readyz during the soak: {dict(readyz)} over {len(measured)} probes "
        f"(503 = at least max_in_flight={max_in_flight} requests scoring)",
    ]
    passed = {"errors == 0": errors == 0, "lost == 0": sent == scored, "rss growth < 10%": growth < TARGET_RSS_GROWTH}
    return {
        "command": shlex.join([sys.executable, *sys.argv]),
        "git": git_commit(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "config": {
            "clients": args.clients,
            "minutes": args.minutes,
            "warmup_s": args.warmup,
            "batch_share": args.batch_share,
            "batch_size": args.batch_size,
            "max_in_flight": max_in_flight,
        },
        "seconds": wall,
        "requests": {route: routes[route]["requests_ok"] for route in ROUTES},
        "messages_sent": sent,
        "messages_scored": scored,
        "msg_per_s": scored / wall if wall else 0.0,
        "errors": errors,
        "errors_by_status": {f"{r} {s}": n for (r, s), n in sorted(tally.errors.items())},
        "error_samples": tally.error_samples,
        "rate_limited_429": rate_limited,
        "lost": sent - scored,
        "lost_in_200_answers": sum(tally.lost_in_ok.values()),
        "routes": routes,
        "rss": {
            "after_warmup_mb": baseline["rss_mb"],
            "end_mb": all_rss[-1],
            "max_mb": max(all_rss),
            "last_minute_mean_mb": float(np.mean(last_minute)),
            "growth_pct": 100 * growth,
            "processes": baseline["processes"],
        },
        "readyz": dict(readyz),
        "notes": notes,
        "targets": passed,
        "passed": all(passed.values()),
        "server_log": server_log_summary(log),
        "samples": sampler.samples,
    }


def _max_in_flight() -> int:
    from commsrisk.settings import Settings

    return Settings.load().service.max_in_flight


def print_report(result: dict[str, Any]) -> None:
    rows = [
        {
            "route": route,
            "requests": r["requests_ok"],
            "messages": r["messages_scored"],
            "429s": r["rate_limited_429"],
            "errors": r["errors"],
            "lost": r["lost"],
            "p50 ms": r["p50_ms"],
            "p95 ms": r["p95_ms"],
            "p99 ms": r["p99_ms"],
        }
        for route, r in result["routes"].items()
    ]
    rss = result["rss"]
    summary = {
        "seconds": result["seconds"],
        "msg/s": result["msg_per_s"],
        "errors": result["errors"],
        "429s": result["rate_limited_429"],
        "lost": result["lost"],
        "RSS after warm-up MB": rss["after_warmup_mb"],
        "RSS end MB": rss["end_mb"],
        "RSS max MB": rss["max_mb"],
        "RSS growth %": rss["growth_pct"],
    }
    verdicts = [{"target": name, "result": "pass" if ok else "FAIL"} for name, ok in result["targets"].items()]
    title = f"Soak: {result['config']['clients']} clients, {result['seconds']:.0f} s"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        table(title, rows)
        table("Totals", [summary])
        table("Targets", verdicts)
    else:
        console = Console()
        if not console.is_terminal:  # a log file: no 80-column wrap
            console = Console(width=160)
        for name, data in ((title, rows), ("Totals", [summary]), ("Targets", verdicts)):
            view = Table(title=name)
            for col in data[0]:
                view.add_column(col, justify="left" if col in ("route", "target", "result") else "right")
            for row in data:
                view.add_row(*(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()))
            console.print(view)
    for note in result["notes"]:
        print(f"- {note}")
    if result["errors_by_status"]:
        print(f"- errors by status: {result['errors_by_status']}")
    for sample in result["error_samples"][:5]:
        print(f"  e.g. {sample}")
    log = result["server_log"]
    print(f"- server log {log['path']}: {log['levels'] or 'no warnings'}, {log['tracebacks']} tracebacks")
    print(f"\n{'PASS' if result['passed'] else 'FAIL'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients, one connection each (32)")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak duration after the warm-up (10)")
    parser.add_argument(
        "--batch-share", type=float, default=0.2, help="fraction of requests sent to /score_batch, 0 to 1 (0.2)"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="messages per /score_batch request (16)")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds of the same load before RSS is taken as the start (60)"
    )
    parser.add_argument("--port", type=int, default=None, help="server port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "soak.json", help="JSON report (benchmarks/results/soak.json)"
    )
    args = parser.parse_args()
    if not 0 <= args.batch_share <= 1 or args.clients < 1 or args.batch_size < 1 or args.minutes <= 0:
        parser.error("need --clients >= 1, --batch-size >= 1, --minutes > 0 and 0 <= --batch-share <= 1")

    texts = corpus(POOL_SIZE)["text"].tolist()
    root = Path(tempfile.mkdtemp(prefix="commsrisk-soak-"))
    env = {
        **os.environ,
        "COMMSRISK_MODEL__CLASSIFIER": str(REPO / "models/default"),
        "BENTOML_HOME": str(root / "bentoml"),
    }
    if args.port is not None:  # the helper picks a free port; this one instead
        server_utils.free_port = lambda: args.port
    log = root / "serve.log"
    print(
        f"# soak: {args.clients} clients, {args.minutes:g} min, {args.batch_share:.0%} /score_batch "
        f"x{args.batch_size}, {len(texts)} seed messages, {os.cpu_count()} cores; server log {log}"
    )
    stop = threading.Event()
    try:
        with server_utils.bentoml_server(
            "commsrisk.service.app:CommsriskService", cwd=REPO, env=env, log=log, wait_s=300
        ) as url:
            server = next(p for p in psutil.Process().children() if "serve" in p.cmdline())
            httpx.post(f"{url}/score", json={"message": {"text": "warm up"}}, timeout=120).raise_for_status()
            sampler = Sampler(server, url)
            sampler.start()
            warm, _ = load_phase("warm-up", url, texts, args, args.warmup, stop)
            if warm.errors:
                print(f"warm-up errors: {dict(warm.errors)}; {warm.error_samples[:3]}")
            baseline = sampler.sample("after warm-up")
            sampler.phase = "soak"
            tally, wall = load_phase("soak", url, texts, args, args.minutes * 60, stop)
            sampler.sample()
            sampler.stop()
    except pytest.fail.Exception as error:  # the helper fails like a test: the server exited or never got ready
        sys.exit(f"server did not serve: {error}")
    result = report(args, tally, wall, sampler, baseline, log)
    result["interrupted"] = stop.is_set()
    result["warmup"] = {
        "requests": dict(warm.requests),
        "errors": sum(warm.errors.values()),
        "rate_limited_429": sum(warm.rate_limited.values()),
    }
    print_report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    if not result["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
