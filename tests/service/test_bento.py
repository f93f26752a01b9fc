"""`bentoml build` turns the repo into a Bento with the default model and pinned requirements."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_bento_builds_with_model_and_pins(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml")}
    run = subprocess.run(
        ["bash", "scripts/build_bento.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (bento,) = (tmp_path / "bentoml" / "bentos" / "commsrisk").glob("*/bento.yaml")
    root = bento.parent
    shipped = {p.name for p in (REPO / "models" / "default").iterdir() if p.is_file()}
    assert {"combiner.json", "commsrisk_model.json", "ngram.npz"} <= shipped
    assert shipped <= {p.name for p in (root / "src" / "models" / "default").iterdir()}  # the whole model travels
    assert (root / "src" / "config" / "thresholds.yaml").is_file()
    requirements = (root / "env" / "python" / "requirements.txt").read_text()
    assert "torch==2.13.0" in requirements and "presidio-analyzer==2.2.366" in requirements
    assert list((root / "env" / "python" / "wheels").glob("commsrisk-*.whl"))
    assert "commsrisk.service.app:CommsriskService" in bento.read_text()
