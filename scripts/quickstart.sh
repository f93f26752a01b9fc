#!/usr/bin/env bash
# From a fresh clone: set up, score the example messages once, then start the HTTP service on
# 127.0.0.1:3000 in the background and score one message with curl.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== scoring data/examples.jsonl (30 messages, six languages) =="
.venv/bin/commsrisk score data/examples.jsonl --format table

PORT=${COMMSRISK_PORT:-3000}
mkdir -p .commsrisk
if [ -f .commsrisk/serve.pid ] && kill -0 "$(cat .commsrisk/serve.pid)" 2>/dev/null; then
  echo "== service already running (pid $(cat .commsrisk/serve.pid)) =="
else
  echo "== starting the service on 127.0.0.1:$PORT (log: .commsrisk/serve.log) =="
  nohup .venv/bin/commsrisk serve --port "$PORT" > .commsrisk/serve.log 2>&1 &
  echo $! > .commsrisk/serve.pid
fi
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "service did not become ready; see .commsrisk/serve.log"; exit 1; }

echo "== curl -s 127.0.0.1:$PORT/score =="
curl -s "http://127.0.0.1:$PORT/score" -H 'content-type: application/json' \
  -d '{"message": {"text": "加我微信小号聊，这个群有合规在看。", "business_unit": "equities-trading"}}'
echo
echo "The service keeps running (pid $(cat .commsrisk/serve.pid)). Stop it with: kill \$(cat .commsrisk/serve.pid)"
