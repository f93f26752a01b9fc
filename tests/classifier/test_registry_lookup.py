"""A models:/ classifier is looked up in the configured registry, and an unanswering one fails in seconds."""

from __future__ import annotations

import socket
import time

import pytest

from commsrisk.classifier.model import classifier_folder
from commsrisk.errors import ModelNotAvailableError


def test_a_registry_that_never_answers_fails_within_the_timeout_naming_it(mlflow_store: str) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ModelNotAvailableError) as error:
            classifier_folder("models:/commsrisk@production", tracking_uri=uri, timeout_s=1)
        took = time.monotonic() - started
    assert uri in str(error.value), "the configured registry is the one asked, not MLflow's default"
    assert took < 15, f"took {took:.1f} s"


def test_the_configured_registry_is_asked_not_the_global_one(mlflow_store: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.raises(ModelNotAvailableError) as error:
        classifier_folder("models:/commsrisk@production", tracking_uri=other, timeout_s=5)
    assert other in str(error.value) and mlflow_store not in str(error.value)
