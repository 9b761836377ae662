"""pytest-html integration, in a real pytest run: FM/subject/target/layer columns and the matrix summary."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from netconform.report.htmlreport import summary_html
from tests.report_synth import Fault, synth_results

CONFTEST = """
import json, os
from netconform.report.htmlreport import register

RESULTS = json.load(open(os.environ["NC_RESULTS"]))

def pytest_configure(config):
    print("netconform-html-registered:", register(config, lambda: RESULTS))
"""

TESTS = """
def test_suite_style(request):
    cell = {"fm": ["FM-09", "FM-13"], "subject": "pod@node-1", "target": "pod@node-3", "layer": "L4",
            "protocol": "tcp"}
    request.node.user_properties.append(("netconform_cell", cell))

def test_flat_properties(request):
    request.node.user_properties += [("fm", "FM-21"), ("subject", "pod@node-2"), ("target", "dns-internal"),
        ("layer", "DNS")]

def test_no_properties():
    pass
"""


def _run(tmp_path: Path, results: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (tmp_path / "test_paths.py").write_text(textwrap.dedent(TESTS), encoding="utf-8")
    (tmp_path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    env = {**os.environ, "NC_RESULTS": str(tmp_path / "results.json"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    plugins = ["-p", "pytest_metadata.plugin", "-p", "pytest_html.plugin", "-p", "no:cacheprovider"]
    cmd = [sys.executable, "-m", "pytest", *plugins, "-q", "-s", *extra, "test_paths.py"]
    return subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_columns_and_summary_in_report_html(tmp_path: Path) -> None:
    results = synth_results(3, Fault("tunnel-blocked", "node-3"))
    done = _run(tmp_path, results, "--html=out/report.html", "--self-contained-html")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "netconform-html-registered: True" in done.stdout
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    for column in ("FM", "Subject", "Target", "Layer"):
        assert f'data-column-type="nc{column.lower()}">{column}</th>' in page
    blob = re.search(r'data-jsonblob="([^"]*)"', page)
    assert blob is not None
    rows = {
        nodeid: entries[0]["resultsTableRow"]
        for nodeid, entries in json.loads(html.unescape(blob[1]))["tests"].items()
    }
    assert rows["test_paths.py::test_suite_style"][2:6] == [
        '<td class="col-ncfm">FM-09, FM-13</td>',
        '<td class="col-ncsubject">pod@node-1</td>',
        '<td class="col-nctarget">pod@node-3</td>',
        '<td class="col-nclayer">L4 tcp</td>',
    ]
    assert rows["test_paths.py::test_flat_properties"][2] == '<td class="col-ncfm">FM-21</td>'
    assert rows["test_paths.py::test_no_properties"][2] == '<td class="col-ncfm"></td>'
    assert len({len(r) for r in rows.values()}) == 1
    # the matrix summary (verdict and the per-kind table) sits in the summary section
    summary = page.split('class="additional-summary prefix"', 1)[1]
    assert "Network conformance matrix" in summary and "node-3 is cut off" in summary
    assert '<a href="matrix.html">' in summary


def test_nothing_registered_without_html_option(tmp_path: Path) -> None:
    done = _run(tmp_path, synth_results(2, None))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "netconform-html-registered: False" in done.stdout


def test_summary_counts_partial_cells() -> None:
    text = summary_html(synth_results(3, Fault("tunnel-blocked", "node-3")))
    assert ">failed</td>" in text and "5/10 failed" in text
    assert "passed, 10 skipped" in summary_html(synth_results(2, None))  # 8, and the 2 --policy-table checks


@pytest.mark.parametrize("href", ["matrix.html", "../reports/matrix.html"])
def test_summary_link_is_relative(href: str) -> None:
    assert f'<a href="{href}">' in summary_html(synth_results(2, None), href)


def test_cell_text_is_escaped_by_the_templates() -> None:
    """Autoescape: text from the run (here a hostile subject) never becomes markup in report.html."""
    from types import SimpleNamespace

    from netconform.report.htmlreport import HtmlReportHooks

    evil = '<img src=x onerror="alert(1)">&'
    hooks = HtmlReportHooks(lambda: None)
    report = SimpleNamespace(user_properties=[("netconform_cell", {"subject": evil, "fm": ["FM-09"]})])
    cells: list[str] = ["<td>a</td>", "<td>b</td>"]
    hooks.pytest_html_results_table_row(report, cells)
    assert cells[3] == '<td class="col-ncsubject">&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;</td>'
    setup = SimpleNamespace(
        when="setup", outcome="passed", sections=[], user_properties=report.user_properties
    )
    hooks.pytest_html_results_table_row(setup, setup_cells := ["<td>a</td>", "<td>b</td>"])
    assert setup_cells == []  # a passed setup has no row: pytest-html stops before formatting it
    results = synth_results(2, Fault("tunnel-blocked", "node-2"))
    for cell in results["cells"]:
        cell["subject"] = cell["subject"].replace("node-2", "<b>node-2</b>")
    text = summary_html(results, matrix_href='m.html" onclick="x')
    assert "<b>node-2</b>" not in text and "&lt;b&gt;node-2&lt;/b&gt;" in text
    assert 'href="m.html&#34; onclick=&#34;x"' in text
