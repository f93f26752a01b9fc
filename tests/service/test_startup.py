"""A service that cannot work refuses to start, once, naming why (real `commsrisk serve` subprocesses)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from commsrisk.service.startup import STARTUP_FAILED
from tests.utils.server import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
COMMSRISK = str(Path(sys.executable).with_name("commsrisk"))


def run_serve(
    tmp_path: Path, env: dict[str, str], *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """`commsrisk serve` until it exits by itself; a server that keeps running fails the test at `timeout`."""
    command = [COMMSRISK, "serve", "--port", str(free_port()), *args]
    env = {**os.environ, "COMMSRISK_REVIEWS__URL": f"sqlite:///{tmp_path / 'reviews.sqlite'}", **env}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_corrupt_model_stops_the_server_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(REPO / "models" / "default", broken)
    head = broken / "head.safetensors"
    head.write_bytes(head.read_bytes()[:1000])  # cut short, as an interrupted copy leaves it
    result = run_serve(tmp_path, {"COMMSRISK_MODEL__CLASSIFIER": str(broken)})
    assert result.returncode == STARTUP_FAILED, result.stderr[-2000:]
    assert f"{broken}: cannot load the classifier (SafetensorError" in result.stderr
    assert result.stderr.count('"level": "CRITICAL"') == 1, "one worker tried once; none respawned"


def test_an_invalid_policy_stops_the_server_naming_the_file(tmp_path: Path) -> None:
    policy = tmp_path / "thresholds.yaml"
    policy.write_text("defaults: {leakage: 1.7}\n", encoding="utf-8")
    result = run_serve(
        tmp_path,
        {"COMMSRISK_THRESHOLDS__POLICY_FILE": str(policy), "COMMSRISK_THRESHOLDS__HISTORY_DB": str(tmp_path / "h.db")},
    )
    assert result.returncode == STARTUP_FAILED, result.stderr[-2000:]
    assert str(policy) in result.stderr.split("the service did not start:")[1]


def test_no_keys_on_a_public_address_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = run_serve(tmp_path, {}, "--host", "0.0.0.0", timeout=60)
    assert result.returncode == 1
    assert "refusing to serve on 0.0.0.0" in result.stderr and "commsrisk keys add" in result.stderr
    assert "BentoServer" not in result.stderr
