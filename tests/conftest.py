"""Shared fixtures: real models, built once per test run (nothing is mocked)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from commsrisk.settings import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings as a user gets them from the repo root (models/default, the built base model)."""
    return Settings.load(
        model={"base_model": str(REPO / "models/base/multilingual-e5-small"), "default_dir": REPO / "models/default"},
    )


@pytest.fixture(scope="session")
def base_model_dir(settings: Settings) -> Path:
    path = Path(settings.model.base_model)
    if not (path / "config.json").is_file():
        pytest.fail(f"base model missing at {path}: run 'bash scripts/setup.sh' (it runs commsrisk base-model build)")
    return path


@pytest.fixture(scope="session")
def text_analyzer(settings: Settings):  # type: ignore[no-untyped-def]
    from commsrisk.nlp.text_analyzer import build_text_analyzer

    return build_text_analyzer(settings.nlp)


@pytest.fixture(scope="session")
def scorer(settings: Settings, text_analyzer, base_model_dir: Path):  # type: ignore[no-untyped-def]
    """The real Scorer on the committed default model, with the built-in default thresholds."""
    from commsrisk.scoring import build_scorer
    from commsrisk.thresholds import BUILTIN_POLICY

    return build_scorer(
        settings,
        classifier_location=str(settings.model.default_dir),
        analyzer=text_analyzer,
        policy=lambda: BUILTIN_POLICY,
    )


@pytest.fixture()
def mlflow_store(tmp_path: Path) -> Iterator[str]:
    """A fresh sqlite MLflow store in a temp dir, set as the tracking URI for the test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    yield uri
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous
