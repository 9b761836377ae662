"""pytest-html integration: FM / subject / target / layer columns and the matrix summary in report.html.

The suite's plugin calls :func:`register` from its ``pytest_configure``, handing over a callable that
returns the run's results dict (or None before there is one). Nothing is registered unless pytest-html
is installed *and* ``--html`` was given, and the hooks are optional hooks, so a run without pytest-html
never sees them. Columns read the test report's ``user_properties`` that the suite records per item
(``fm``, ``subject``, ``target``, ``layer``, ``protocol``), so they work unchanged under ``-n auto``.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from netconform.report.layout import KIND_LABEL, build_layout, subject_label, worst
from netconform.report.results import canonical_cells, count_outcomes
from netconform.report.templating import environment
from netconform.report.verdict import verdict_data

PLUGIN_NAME = "netconform-html-report"
TEMPLATE = "htmlreport.html.j2"  # the column cells and the summary, autoescaped
COLUMNS = (("fm", "FM"), ("subject", "Subject"), ("target", "Target"), ("layer", "Layer"))

ResultsProvider = Callable[[], Mapping[str, Any] | None]


CELL_PROPERTY = (
    "netconform_cell"  # the suite's static cell description (netconform.engine.results_document.CELL_PROP)
)


def _props(report: Any) -> dict[str, Any]:
    """Cell fields from the report's user_properties: flat pairs, or the suite's ``netconform_cell`` dict."""
    props: dict[str, Any] = {}
    for item in getattr(report, "user_properties", None) or []:
        if isinstance(item, tuple | list) and len(item) == 2:
            props[str(item[0])] = item[1]
    cell = props.get(CELL_PROPERTY)
    if isinstance(cell, Mapping):
        props = {**props, **cell}
    return props


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


COLOURS = {
    "passed": "#2e7d32",
    "failed": "#c62828",
    "flaky": "#e67700",
    "skipped": "#9aa0a6",
    "error": "#6a1b9a",
}


@functools.cache
def _macro(name: str) -> Any:
    """The template's macro `name`, made once: `Template.module` builds a new module on every access
    (issue 15: 55,000 row cells of a 20-node run spent 2.2 s there)."""
    return getattr(environment().get_template(TEMPLATE).module, name)


@functools.lru_cache(maxsize=8192)
def _row_cell(title: str, value: str) -> str:
    """One column's cell; the same subjects, targets and layers recur in thousands of rows."""
    return str(_macro("row_cell")(title, value))


def _row_left_out(report: Any) -> bool:
    """A passed setup or teardown that pytest-html would not show: it keeps only the call's row, failed
    setups and teardowns, and a teardown's captured output (appended to the call's log). Left out
    before pytest-html formats it, that is two of every three reports (a 100-node run has 11,700 tests).

    >>> from types import SimpleNamespace as R
    >>> _row_left_out(R(when="setup", outcome="passed", sections=[]))
    True
    >>> _row_left_out(R(when="teardown", outcome="passed", sections=[("Captured stdout teardown", "x")]))
    False
    >>> _row_left_out(R(when="call", outcome="passed", sections=[]))
    False
    """
    when = getattr(report, "when", "call")
    if when not in ("setup", "teardown") or getattr(report, "outcome", "") != "passed":
        return False
    return when == "setup" or not any("teardown" in header for header, _ in report.sections)


def summary_html(results: Mapping[str, Any], matrix_href: str = "matrix.html") -> str:
    """Verdict, counts and a subject × target-kind table of worst outcomes, in inline-styled HTML."""
    cells = canonical_cells(results)
    counts = count_outcomes(cells)
    verdict = verdict_data(results)
    kinds: list[str] = []
    rows: list[dict[str, Any]] = []
    if cells:
        layout = build_layout(cells)
        grid: dict[tuple[str, str], list[str]] = defaultdict(list)
        for c in cells:
            grid[(c["subject"], str(c.get("target_kind") or "T-?"))].append(str(c["outcome"]))
        kinds = [KIND_LABEL.get(k, k) for k in layout.kinds]
        for subject in layout.subjects:
            tds: list[dict[str, str] | None] = []
            for kind in layout.kinds:
                outcomes = grid.get((subject, kind))
                if not outcomes:
                    tds.append(None)
                    continue
                top = worst(outcomes)
                same = sum(1 for o in outcomes if o == top)
                if same == len(outcomes):
                    label = top
                elif top == "passed":
                    label = f"passed, {len(outcomes) - same} skipped"
                else:
                    label = f"{same}/{len(outcomes)} {top}"
                tds.append({"top": top, "label": label})
            rows.append({"label": subject_label(subject), "cells": tds})
    chips = [(o, n) for o, n in counts.items() if n]
    return str(_macro("summary")(chips, verdict["text"], matrix_href, kinds, rows, COLOURS))


class HtmlReportHooks:
    """The pytest-html hook implementations, bound to the run's results provider."""

    def __init__(self, results: ResultsProvider, matrix_href: str = "matrix.html") -> None:
        self._results = results
        self._matrix_href = matrix_href

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        for index, (_, title) in enumerate(COLUMNS):
            cells.insert(2 + index, str(_macro("header_cell")(title)))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: Any, cells: list[str]) -> None:
        if _row_left_out(report):
            cells.clear()  # pytest-html's way to leave a report out: it stops before the rest of its work
            return
        props = _props(report)
        for index, (name, title) in enumerate(COLUMNS):
            value = _text(props.get(name))
            if name == "layer" and props.get("protocol"):
                value = f"{value} {_text(props['protocol'])}".strip()
            cells.insert(2 + index, _row_cell(title, value))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str]) -> None:
        results = self._results()
        if results is not None:
            prefix.append(summary_html(results, self._matrix_href))


def html_report_active(config: pytest.Config) -> bool:
    """pytest-html's hooks exist (plugin loaded, whatever its registered name) and ``--html`` was given."""
    return hasattr(config.hook, "pytest_html_results_table_row") and bool(config.getoption("htmlpath", None))


def register(config: pytest.Config, results: ResultsProvider, matrix_href: str = "matrix.html") -> bool:
    """Register the hooks if pytest-html is active; call from ``pytest_configure``. True when it did."""
    if not html_report_active(config) or config.pluginmanager.has_plugin(PLUGIN_NAME):
        return False
    config.pluginmanager.register(HtmlReportHooks(results, matrix_href), PLUGIN_NAME)
    return True
