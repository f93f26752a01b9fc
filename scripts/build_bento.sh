#!/usr/bin/env bash
# Build the Bento: this package as a wheel (so the Bento imports commsrisk like any installed
# package), the encoder and classifier into BentoML's model store (`commsrisk bento save-models`, by
# tag, so the Bento carries them and serves from any directory), then `bentoml build` with bentofile.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENTOML_HOME=${BENTOML_HOME:-$PWD/.commsrisk/bentoml}
rm -rf dist
.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w dist . 2>&1 | grep -v "is ignored" || true
.venv/bin/commsrisk bento save-models
.venv/bin/bentoml build -f bentofile.yaml "$@"
