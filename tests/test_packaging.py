"""What a user installs: a wheel built as a user builds it (pip, build isolation: pip fetches
setuptools>=68 from the package index, as pyproject.toml's build-system asks), once for every check here.

It holds every package of the tree under `netconform/` (the suite's plugin and conformance tests as
`netconform.fixtures` / `netconform.tests_conformance`, no top-level `fixtures`: another PyPI project has
that name), the report templates, the results schema and the failure-mode catalogue the reports read.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from netconform.report.catalogue import CATALOGUE, parse_catalogue

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in ("netconform", "fixtures", "tests_conformance"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w", str(tmp / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    (built,) = (tmp / "out").glob("netconform-*.whl")
    with zipfile.ZipFile(built) as zf:
        yield zf


def test_every_package_is_installed_inside_the_netconform_namespace(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.startswith("netconform-")}
    assert tops == {"netconform"}, tops
    tree = {
        "netconform/" + str(p.parent.relative_to(ROOT / "netconform")).replace(".", "")
        for p in (ROOT / "netconform").rglob("__init__.py")
    }
    tree = {t.rstrip("/") for t in tree} | {"netconform/fixtures", "netconform/tests_conformance"}
    shipped = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert shipped == tree, sorted(shipped ^ tree)
    assert "netconform/fixtures/plugin.py" in names
    assert "netconform/tests_conformance/test_pod_to_pod.py" in names
    entry = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "netconform = netconform.fixtures.plugin" in entry and "netconform.cli.main:main" in entry


def test_report_templates_schema_and_catalogue_are_package_data(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    needed = [
        *(
            f"netconform/report/templates/{t}"
            for t in ("matrix.html.j2", "macros.html.j2", "htmlreport.html.j2")
        ),
        "netconform/report/results.schema.json",
        "netconform/report/matrix.js",
        "netconform/report/matrix.css",
        "netconform/data/failure-modes.md",
        "netconform/agent/probe_agent.py",
        "netconform/lab/manifests/system.yaml",
    ]
    assert [n for n in needed if n not in names] == []
    assert (
        wheel.read("netconform/report/results.schema.json")
        == (ROOT / "docs/results.schema.json").read_bytes()
    )
    assert parse_catalogue(wheel.read("netconform/data/failure-modes.md").decode("utf-8")) == CATALOGUE
