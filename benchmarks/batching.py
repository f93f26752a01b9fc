"""Adaptive batching of /score, measured: the service with it off and on, beside in-process scoring.

    .venv/bin/python benchmarks/batching.py            # 600 messages per pass (about 20 minutes)
    .venv/bin/python benchmarks/batching.py --n 200    # a quicker look

One run, same messages: bare Presidio analyze() (the yardstick of benchmarks/run.py),
Scorer.score_batch in-process (signals only), then the real service over loopback twice:
service.batch_max_size=1 (each /score scored on its own, as before batching), the default
(concurrent /score calls share one Scorer pass, BentoML's adaptive batching), the default on the
onnx-int8 runtime, and two BentoML workers of one torch thread each. Each serves 1, 8 and 32
concurrent clients, one message per request (8 clients asking for phrases on the first two), and
/score_batch with 64 messages per request. Clients run on the same cores as the server.
Writes benchmarks/results/batching.json.
"""

from __future__ import annotations

import argparse
import json
import os
from functools import partial

from run import RESULTS, bare_presidio, build_scorer, corpus, rate_row, service, table, timed

from commsrisk.settings import ServiceSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="messages per pass")
    args = parser.parse_args()
    from commsrisk.training.pipeline import frame_messages

    frame = corpus(args.n)
    texts = frame["text"].tolist()
    messages = frame_messages(frame.assign(lang=None, line=0, external=None))
    scorer = build_scorer()
    analyzer, _ = bare_presidio()
    analyzer.analyze(texts[0], "en")
    scorer.score_batch(messages[:8])
    t, _ = timed(lambda: [analyzer.analyze(text, "en") for text in texts])
    base = len(texts) / t
    rows = [rate_row("(1) Presidio analyze() per message", len(texts), t, base)]
    t, _ = timed(partial(scorer.score_batch, messages, explain="signals"))
    rows.append(rate_row("(3) commsrisk Scorer.score_batch (signals only)", len(texts), t, base))
    in_process = float(rows[-1]["msg/s"])
    for size in (1, 8):  # the ceiling of batching: the Scorer itself on passes of this many messages
        pieces = [messages[i : i + size] for i in range(0, len(messages), size)]
        score = partial(scorer.score_batch, explain="signals")
        t, _ = timed(lambda pieces=pieces, score=score: [score(piece) for piece in pieces])
        rows.append(rate_row(f"(3) Scorer.score_batch on passes of {size} message(s)", len(texts), t, base))
    del scorer, score  # the servers get the cores and the memory
    every = [(1, None), (8, None), (32, None), (8, "phrases")]
    default = ServiceSettings().batch_max_size
    servers = [
        (", batching off (batch_max_size=1)", {"COMMSRISK_SERVICE__BATCH_MAX_SIZE": "1"}, every),
        (f", batching on (batch_max_size={default}, the default)", {}, every),
        (", batching on, model.runtime=onnx-int8", {"COMMSRISK_MODEL__RUNTIME": "onnx-int8"}, every[:3]),
        (
            ", batching on, 2 workers x 1 torch thread",
            {"BENTOML_CONFIG_OPTIONS": "services.commsrisk.workers=2", "COMMSRISK_MODEL__TORCH_THREADS": "1"},
            every[1:3],
        ),
    ]
    for label, settings_env, passes in servers:
        rows += service(frame, passes, base, settings_env, label)
    for row in rows:
        row["vs in-process"] = float(row["msg/s"]) / in_process  # type: ignore[arg-type]
    table(f"Adaptive batching ({len(texts)} messages per pass, {os.cpu_count()} cores, same run)", rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "batching.json"
    path.write_text(json.dumps({"messages": len(texts), "cores": os.cpu_count(), "rows": rows}, indent=1) + "\n")
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
