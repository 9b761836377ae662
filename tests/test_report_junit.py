"""junit.xml: one testcase per cell with the path's properties, failures with their evidence."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netconform.report.junit import render_junit, write_junit
from tests.report_synth import Fault, synth_results


def test_one_testcase_per_cell_with_properties(tmp_path: Path) -> None:
    results = synth_results(3, Fault("tunnel-blocked", "node-3"))
    path = write_junit(results, tmp_path / "out" / "junit.xml")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    counts = results["run"]["counts"]
    assert len(cases) == len(results["cells"]) == int(suite.get("tests", "0"))
    assert int(suite.get("failures", "0")) == counts["failed"] == len(suite.findall("testcase/failure"))
    assert int(suite.get("skipped", "0")) == counts["skipped"] == len(suite.findall("testcase/skipped"))
    assert len(suite.findall("testcase/flakyFailure")) == counts["flaky"]
    by_name = {c.get("name"): c for c in cases}
    case = by_name["pod@node-1->pod@node-3/L4-tcp"]
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert (
        props["fm"] == "FM-09,FM-13,FM-02,FM-03,FM-20"
        and props["subject"] == "pod@node-1"
        and props["target"] == "pod@node-3"
    )
    assert props["layer"] == "L4" and props["classified_layer"] == "L3" and props["protocol"] == "tcp"
    assert case.get("classname") == "netconform.FM-09"
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "L3"
    assert failure.get("message", "").startswith("tcp 10.244.3.6:9000: timeout")
    assert "first broken hop: overlay tunnel node-1 -> node-3" in (failure.text or "")
    assert "capture: tcpdump -ni any 'udp port 6081" in (failure.text or "")
    assert "timeout 2001.4 ms, timeout 2001.4 ms" in (failure.text or "")
    passed = by_name["pod@node-1->pod@node-2/L4-tcp"]
    assert list(passed) == [passed.find("properties")]


def test_error_cells_and_unprintable_text() -> None:
    results = synth_results(2, None)
    results["cells"][0].update(outcome="error", reason="agent said \x00\x1b[31m boom", error="other")
    root = ET.fromstring(render_junit(results))
    error = root.find("testsuite/testcase/error")
    assert error is not None and "boom" in error.get("message", "")
    suite = root.find("testsuite")
    assert suite is not None and suite.get("errors") == "1"


@pytest.mark.slow
def test_junit_time_grows_linearly_with_the_cells() -> None:
    """One testcase per cell at 100 nodes is ~100,000 testcases: the cost per cell must not grow with
    the run (CPU time, so a busy machine does not make it flaky; measured 50-70 µs per cell)."""
    per_cell = {}
    for nodes in (12, 48):
        results = synth_results(nodes, Fault("isolated", "node-7"))
        started = time.process_time()
        text = render_junit(results)
        per_cell[nodes] = (time.process_time() - started) / len(results["cells"])
        assert text.count("<testcase ") == len(results["cells"])
    assert per_cell[48] < 3 * per_cell[12], per_cell
