"""The package's shape: no import circle, and each stage depends only on the stages before it.

Imports are read from the source (every `import`, including those inside functions, which are
still dependencies), so the test sees what a reader of the code sees.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "commsrisk"

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "commsrisk.classifier": ("cli", "service", "training", "explain", "scoring", "thresholds"),
    "commsrisk.nlp": ("cli", "service", "training", "classifier", "scoring", "thresholds"),
    "commsrisk.thresholds": ("cli", "service", "training", "scoring"),
    "commsrisk.ingest": ("cli", "service", "training", "scoring", "classifier", "nlp"),
    "commsrisk.scoring": ("cli", "service", "training"),
    "commsrisk.training": ("cli", "service"),
    "commsrisk.service": ("cli", "training"),
    "commsrisk.reviews": ("cli", "service", "scoring"),
    "commsrisk.archives": ("cli", "service", "training", "reviews"),
}
"""For each stage, the parts of the package it must never import (the flow runs one way)."""


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its __init__)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's modules that one module imports, resolved to modules (not names in them)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module in known}


def import_graph() -> dict[str, set[str]]:
    """Edges from each module to what it imports, and to the packages whose __init__ that runs.

    A module's own enclosing packages are left out: importing a sibling re-enters a package that
    is already being imported, which Python allows and which is not a circle between stages.
    """
    names = module_names()
    known = set(names)
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        edges: set[str] = set()
        for target in imported_modules(path, name, known):
            parts = target.split(".")
            edges.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
        graph[name] = {t for t in edges if t in known and t not in own}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def test_the_graph_is_read_from_the_source() -> None:
    graph = import_graph()
    assert "commsrisk.classifier.model" in graph["commsrisk.scoring"]
    assert "commsrisk.explain" in graph["commsrisk.scoring"]
    assert "commsrisk.classifier.model" in graph["commsrisk.explain"]
    assert "commsrisk.thresholds.policy" in graph["commsrisk.thresholds.store"]
    assert "commsrisk.cli.score" in graph["commsrisk.cli.app"]


def test_a_circle_is_found_when_there_is_one() -> None:
    graph = import_graph()
    graph["commsrisk.classifier.model"] = graph["commsrisk.classifier.model"] | {"commsrisk.explain"}
    cycle = find_cycle(graph)
    assert cycle is not None and {"commsrisk.classifier.model", "commsrisk.explain"} <= set(cycle)


def test_the_package_has_no_import_circle() -> None:
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_each_stage_imports_only_what_comes_before_it(stage: str) -> None:
    graph = import_graph()
    members = [m for m in graph if m == stage or m.startswith(stage + ".")]
    assert members, f"{stage} has no modules"
    banned = tuple(f"commsrisk.{part}" for part in FORBIDDEN[stage])
    wrong = sorted(
        f"{m} -> {t}" for m in members for t in graph[m] if any(t == b or t.startswith(b + ".") for b in banned)
    )
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_cli_modules_stay_thin() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (PACKAGE / "cli").glob("*.py")}
    assert {"app.py", "score.py", "train.py", "thresholds.py", "data.py", "base_model.py"} <= set(sizes)
    assert all(lines < 250 for lines in sizes.values()), sizes
