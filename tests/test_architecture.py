"""The layers of docs/architecture.md, enforced: each package imports only the layers it may.

Every `import netconform.X` / `from netconform.X import ...` in a module counts, at any depth (a lazy
import inside a function is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

ROOT = Path(__file__).resolve().parent.parent
# layer -> the layers it may import (itself always); keep in step with docs/architecture.md
ALLOWED: dict[str, set[str]] = {
    "agent": set(),  # shipped into pods as one stdlib-only file
    "pki": set(),
    "model": {"agent"},  # pure: the agent's error-code vocabulary only
    "checks": {"model", "agent"},
    "kube": {"model", "agent", "pki"},
    "engine": {"model", "checks", "kube", "agent"},
    "report": {"model"},  # reads results.json; never the engine or a cluster
    "lab": {"agent", "pki"},  # a cluster, not a client of the suite
    "fixtures": {"model", "checks", "engine", "kube", "report", "agent", "lab"},  # lab: --lab NAME options
    "tests_conformance": {"model", "checks"},
    "cli": {"model", "checks", "engine", "kube", "report", "lab", "fixtures", "agent"},
}


def _layer_of(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    if rel[0] in ("fixtures", "tests_conformance"):
        return rel[0]
    return rel[1].removesuffix(".py")


def _imported_layers(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [
                f"{node.module}.{a.name}" for a in node.names if node.module == "netconform"
            ]
        for name in names:
            parts = name.split(".")
            if parts[0] == "netconform" and len(parts) > 1:
                layer = {"fixtures": "fixtures", "tests_conformance": "tests_conformance"}.get(
                    parts[1], parts[1]
                )
                out.add((layer, node.lineno))
    return out


SOURCES = sorted(
    p
    for base in ("netconform", "fixtures", "tests_conformance")
    for p in (ROOT / base).rglob("*.py")
    if p.name != "__init__.py" or p.parent.name != "netconform"
)


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_a_module_imports_only_the_layers_below_it(path: Path) -> None:
    layer = _layer_of(path)
    assert layer in ALLOWED, f"{path}: package {layer!r} is not in docs/architecture.md's layer table"
    wrong = sorted(
        (f"netconform.{dep}", line)
        for dep, line in _imported_layers(path)
        if dep != layer and dep not in ALLOWED[layer]
    )
    assert not wrong, f"{path.relative_to(ROOT)} ({layer}) may not import {wrong}"


def test_every_package_of_the_tree_is_a_known_layer() -> None:
    packages = {p.name for p in (ROOT / "netconform").iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in (ROOT / "netconform").glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(ALLOWED), sorted((packages | modules) - set(ALLOWED))


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The rule is not vacuous: a report module that imports the engine is found."""
    bad = ROOT / "netconform" / "report" / "_probe_layer_check.py"
    bad.write_text("def f():\n    from netconform.engine.run import Engine\n    return Engine\n")
    try:
        assert ("engine", 2) in _imported_layers(bad)
        with pytest.raises(AssertionError, match="may not import"):
            test_a_module_imports_only_the_layers_below_it(bad)
    finally:
        bad.unlink()


if TYPE_CHECKING:
    from fixtures.plugin import Conformance
    from netconform.model.conformance import ConformanceFixture

    def _the_fixture_has_the_shape_the_tests_are_typed_with(fixture: Conformance) -> ConformanceFixture:
        """mypy checks this: the plugin's Conformance satisfies the protocol conformance tests annotate."""
        return fixture
