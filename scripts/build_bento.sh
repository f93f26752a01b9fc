#!/usr/bin/env bash
# Build the Bento: this package as a wheel (so the Bento imports commsrisk like any installed
# package), then `bentoml build` with bentofile.yaml. Needs models/default (committed).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENTOML_HOME=${BENTOML_HOME:-$PWD/.commsrisk/bentoml}
rm -rf dist
.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w dist . 2>&1 | grep -v "is ignored" || true
.venv/bin/bentoml build -f bentofile.yaml "$@"
