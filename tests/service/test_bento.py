"""`bentoml build` turns the repo into a Bento that carries its models and serves from anywhere."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.utils.server import bentoml_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_bento_builds_with_model_and_pins_and_serves_outside_the_repo(tmp_path: Path, base_model_dir: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COMMSRISK_")},
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "COMMSRISK_REVIEWS__URL": f"sqlite:///{tmp_path / 'reviews.sqlite'}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    build_env = {**env, "COMMSRISK_MODEL__BASE_MODEL": str(base_model_dir.resolve())}
    run = subprocess.run(
        ["bash", "scripts/build_bento.sh"], cwd=REPO, env=build_env, capture_output=True, text=True, timeout=600
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
    stored = {p.name for p in (tmp_path / "bentoml" / "models").iterdir()}
    assert {"commsrisk-encoder", "commsrisk-classifier"} <= stored  # by tag in the model store, not by path

    # Served by tag from a directory that is not the repo, with no model path in the environment.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with bentoml_server("commsrisk:latest", cwd=elsewhere, env=env, log=tmp_path / "serve.log") as base:
        text = "Text me on my personal WhatsApp, the desk line is recorded. Delete this after."
        message = {"text": text, "message_id": "b1"}
        response = httpx.post(f"{base}/score", json={"message": message}, timeout=60)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["message_id"] == "b1" and result["risks"]["off_channel"]["flagged"]
        model = httpx.get(f"{base}/model", timeout=10).json()
        shipped = json.loads((REPO / "models" / "default" / "commsrisk_model.json").read_text())
        assert model["model_version"] == shipped["version"]
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
