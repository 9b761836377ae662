"""Reports built from ``results.json``: the HTML matrix, JUnit per cell, the terminal matrix, the verdict,
pytest-html columns and the baseline diff. Every renderer is a pure function of the results dict.

The suite's controller calls :func:`write_reports` once the results are complete (also under ``-n auto``);
``python -m netconform.report results.json --out DIR`` re-renders them from a saved file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netconform.report.junit import write_junit
from netconform.report.matrix import write_matrix
from netconform.report.results import ResultsError, check_results, load_results
from netconform.report.terminal import render_terminal
from netconform.report.verdict import compute_verdict

MATRIX_FILE = "matrix.html"
JUNIT_FILE = "junit.xml"


def write_reports(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write matrix.html and junit.xml into ``out_dir``; returns {"matrix": path, "junit": path}."""
    out = Path(out_dir)
    return {
        "matrix": write_matrix(results, out / MATRIX_FILE),
        "junit": write_junit(results, out / JUNIT_FILE),
    }


__all__ = [
    "JUNIT_FILE",
    "MATRIX_FILE",
    "ResultsError",
    "check_results",
    "compute_verdict",
    "load_results",
    "render_terminal",
    "write_reports",
]
