"""Pins stay in one place: the Bento's requirements are pyproject's dependencies."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bento_requirements_match_pyproject() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [
        ln for ln in (REPO / "requirements" / "bento.txt").read_text().splitlines() if ln and not ln.startswith("#")
    ]
    assert lines == deps


def test_every_dependency_is_pinned_and_constrained() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    assert all("==" in pin for pin in pins), [p for p in pins if "==" not in p]
    constraints = {
        ln.split("==")[0].lower().replace("_", "-")
        for ln in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in ln
    }
    missing = [p.split("==")[0] for p in pins if p.split("==")[0].lower().replace("_", "-") not in constraints]
    assert not missing, f"not in constraints.txt: {missing}"
