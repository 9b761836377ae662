"""The report templates and the results schema are package data: a non-editable install has them.

The wheel is built the way a user builds it (pip, with build isolation: pip fetches setuptools>=68
from the package index into a throwaway environment, as pyproject.toml's build-system asks).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDED = (
    "netconform/report/templates/matrix.html.j2",
    "netconform/report/templates/macros.html.j2",
    "netconform/report/templates/htmlreport.html.j2",
    "netconform/report/results.schema.json",
    "netconform/report/matrix.js",
    "netconform/report/matrix.css",
)


@pytest.mark.slow
def test_wheel_ships_templates_and_schema(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("netconform", "fixtures", "tests_conformance"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    wheels = list(tmp_path.glob("netconform-*.whl"))
    assert len(wheels) == 1
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    missing = [n for n in NEEDED if n not in names]
    assert not missing, missing
    with zipfile.ZipFile(wheels[0]) as wheel:
        assert (
            wheel.read("netconform/report/results.schema.json")
            == (ROOT / "docs/results.schema.json").read_bytes()
        )
