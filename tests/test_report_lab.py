"""The reports on REAL runs: a 12-node lab, the suite run as a user runs it, healthy and with a fault.

One 12-node lab is brought up once; `netconform run --lab` (a real subprocess) runs the suite against it:

- ``healthy``   every cell, no fault;
- ``partition`` every cell, node-7 cut off from the other nodes (``node-partition --node node-7``),
  gated with ``--baseline healthy --fail-on regressions``;
- ``known``     a deterministic subset (cross-node pod TCP and node pings), partition still on,
  ``--baseline partition --fail-on regressions``: known-broken paths pass the gate;
- ``failures``  the same subset and baseline with ``--fail-on failures``: they do not;
- ``cleared``   the subset, no fault, ``--baseline healthy --fail-on regressions``;
- ``tunnel``    the subset with node-7's tunnel blocked (``tunnel-blocked --node node-7``).

The faults are added once the run's probe kit is Ready (tests/lab_fault_plugin.py), as the suite's own
lab tests do: added before the run, the partitioned node's echo pod starts late (its HTTP server looks
its own name up through the unreachable DNS first) and the run measures that instead.

Then the files the runs wrote are checked: the schema, matrix.html (every cell, outcome classes, the
verdict, no external URL, < 5 MB, in Chromium < 2 s with a filter and a click), ``netconform diff``
against an expected set computed here from the two files, the gate's exit codes, junit.xml per cell,
and the terminal matrix in 100 columns. Timings and sizes go to test-artifacts/report-lab.json.
"""

from __future__ import annotations

import fcntl
import html
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from netconform.report.matrix import page_data, render_matrix
from netconform.report.results import load_results, make_key
from netconform.report.terminal import render_terminal
from netconform.report.verdict import compute_verdict
from tests.can_run import missing, needs
from tests.report_browser import ARTIFACTS, Opened, expected_badges, js_number, launched_chromium
from tests.report_pagecheck import embedded_data, parse_page, self_contained_problems

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "results.schema.json").read_text())
LAB = f"ncrep{os.getpid() % 10000}"
NODES = 12
CUT = "node-7"  # the node the faults isolate
SUBSET = "pod_to_pod_tcp or node_ping"  # cells whose outcome under both faults is certain
RUN_TIMEOUT = 240.0
# the suite's default: a pod's `resolve` is four DNS round trips (ndots:5 and three search domains),
# measured at 0.43 s p99 and 0.62 s max on a busy 2-core machine; with 1 s, CI's healthy run had one
# flaky resolve (1/2 attempts), which this test would count as a lab fault
PROBE_TIMEOUT = 2.0
MAX_MATRIX_BYTES = 5 * 1024 * 1024
FAILING = ("failed", "error")
TRAFFIC = frozenset({"icmp", "tcp", "udp", "http", "mtu"})  # protocols that send packets across nodes

pytestmark = [
    needs("lab"),
    pytest.mark.xdist_group("lab-report12"),
    pytest.mark.lab,
    pytest.mark.slow,
]


@dataclass
class SuiteRun:
    """One `netconform run` subprocess and what it left in its --out folder."""

    name: str
    out: Path
    rc: int
    output: str
    elapsed_s: float
    results: dict[str, Any] | None = None
    files: dict[str, int] = field(default_factory=dict)

    @property
    def doc(self) -> dict[str, Any]:
        assert self.results is not None, f"run {self.name} wrote no results.json:\n{self.output[-3000:]}"
        return self.results


@dataclass
class Campaign:
    lab_up_s: float
    runs: dict[str, SuiteRun]


def _env(fault: str | None) -> dict[str, str]:
    return {
        **os.environ,
        "NC_TEST_LAB": LAB,
        "NC_TEST_FAULT": fault or "",
        "NC_TEST_FAULT_NODE": CUT if fault else "",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }


def suite_run(
    name: str, base: Path, *options: str, fault: str | None = None, subset: bool = False
) -> SuiteRun:
    out = base / name
    argv = [
        sys.executable, "-m", "netconform.cli.main", "run", "--lab", LAB, "--out", str(out),
        "--probe-timeout", str(PROBE_TIMEOUT), "--attempts", "2", *options,
        "--", "-p", "tests.lab_fault_plugin", *(["-k", SUBSET] if subset else []),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=ROOT, env=_env(fault), check=False
    )
    run = SuiteRun(name, out, proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)
    if (out / "results.json").exists():
        run.results = load_results(out / "results.json")
    run.files = {p.name: p.stat().st_size for p in sorted(out.glob("*")) if p.is_file()}
    return run


def run_campaign(base: Path) -> Campaign:
    """Lab up, the six runs, lab down: the tests afterwards only read the files the runs wrote."""
    from netconform.lab.cluster import Lab, LabError

    lab = Lab(LAB)
    started = time.monotonic()
    try:
        lab.up(nodes=NODES, lb=True)
    except LabError as exc:
        lab.down()
        # `needs("lab")` has skipped the machines without what a lab needs: here it is a bug
        pytest.fail(f"the 12-node lab did not come up: {exc}")
    lab_up_s = time.monotonic() - started
    runs: dict[str, SuiteRun] = {}
    try:
        runs["healthy"] = healthy = suite_run("healthy", base)
        baseline = str(healthy.out / "results.json")
        try:
            runs["partition"] = suite_run(
                "partition", base, "--no-html", "--baseline", baseline, "--fail-on", "regressions",
                fault="node-partition",
            )  # fmt: skip
        finally:
            lab.fault_clear()
        known = str(runs["partition"].out / "results.json")
        for name, fail_on in (("known", "regressions"), ("failures", "failures")):
            try:
                runs[name] = suite_run(
                    name, base, "--no-html", "--baseline", known, "--fail-on", fail_on,
                    fault="node-partition", subset=True,
                )  # fmt: skip
            finally:
                lab.fault_clear()
        runs["cleared"] = suite_run(
            "cleared", base, "--no-html", "--baseline", baseline, "--fail-on", "regressions", subset=True
        )
        try:
            runs["tunnel"] = suite_run("tunnel", base, "--no-html", fault="tunnel-blocked", subset=True)
        finally:
            lab.fault_clear()
    finally:
        lab.down()
        _record({"lab_up_s": round(lab_up_s, 2)}, runs)
    return Campaign(lab_up_s, runs)


SHARED_WAIT_S = 900.0  # another worker's campaign: six suite runs on 12 nodes


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    """The campaign once per test session, even when xdist spreads this module over several workers.

    `--dist loadgroup` should keep the module on one worker, but with pytest 9.2 and pytest-xdist 3.8
    the group mark is lost (xdist sets ``item._nodeid``, which pytest no longer reads), so workers
    share one campaign through a lock and a record in the session's common temp folder.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield run_campaign(tmp_path_factory.mktemp("report-lab"))
        return
    shared = tmp_path_factory.getbasetemp().parent / "report-lab-shared"
    shared.mkdir(exist_ok=True)
    record = shared / "campaign.json"
    with (shared / "lock").open("w") as lock:
        deadline = time.monotonic() + SHARED_WAIT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # waiting for the worker that runs the campaign to finish it (bounded)
                assert time.monotonic() < deadline, f"no campaign from the other worker in {SHARED_WAIT_S} s"
                time.sleep(0.5)
        try:
            if record.exists():
                result = _load_campaign(record)
            else:
                result = run_campaign(shared)
                record.write_text(json.dumps(_dump_campaign(result)))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    yield result


def _dump_campaign(campaign: Campaign) -> dict[str, Any]:
    return {
        "lab_up_s": campaign.lab_up_s,
        "runs": {
            n: {"out": str(r.out), "rc": r.rc, "output": r.output, "elapsed_s": r.elapsed_s, "files": r.files}
            for n, r in campaign.runs.items()
        },
    }


def _load_campaign(path: Path) -> Campaign:
    data = json.loads(path.read_text())
    runs = {}
    for name, r in data["runs"].items():
        out = Path(r["out"])
        results = load_results(out / "results.json") if (out / "results.json").exists() else None
        runs[name] = SuiteRun(name, out, r["rc"], r["output"], r["elapsed_s"], results, r["files"])
    return Campaign(data["lab_up_s"], runs)


MEASURED: dict[str, Any] = {}


def _record(head: Mapping[str, Any], runs: Mapping[str, SuiteRun]) -> None:
    """Timings and sizes of this module's runs, kept as a test artifact (and merged with later notes)."""
    MEASURED.update(head)
    MEASURED["runs"] = {
        name: {
            "rc": run.rc,
            "elapsed_s": round(run.elapsed_s, 1),
            "cells": len(run.results["cells"]) if run.results else None,
            "counts": run.results["run"].get("counts") if run.results else None,
            "bytes": run.files,
        }
        for name, run in runs.items()
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-lab.json").write_text(json.dumps(MEASURED, indent=2) + "\n")


def _cell_id(cell: Mapping[str, Any]) -> str:
    return f"{cell['subject']}->{cell['target']}/{cell['layer']}-{cell['protocol']}"


def _node(scope: str) -> str | None:
    return scope.split("@", 1)[1] if "@" in scope else None


def _family(scope: str) -> str:
    return scope.split("@", 1)[0].split(":", 1)[0]


def _node_path(cell: Mapping[str, Any]) -> tuple[str, str] | None:
    """(source node, destination node) of a host/pod -> pod/node cell that sends packets, else None."""
    if _family(cell["subject"]) not in ("host", "pod") or _family(cell["target"]) not in ("pod", "node"):
        return None
    if cell["layer"] == "L2" or cell["protocol"] not in TRAFFIC:
        return None  # ARP is not IPv4 (the partition drops IPv4 only); routes/config cells send nothing
    src, dst = _node(cell["subject"]), _node(cell["target"])
    return (src, dst) if src and dst else None


# ---------------------------------------------------------------------------------------------------------
def test_twelve_node_runs_complete_and_the_healthy_one_is_clean(campaign: Campaign) -> None:
    healthy = campaign.runs["healthy"]
    doc = healthy.doc
    assert sorted(doc["run"]["cluster"]["nodes"]) == sorted(f"node-{i}" for i in range(1, NODES + 1))
    assert len(doc["cells"]) > 1500, len(doc["cells"])
    bad = [
        (_cell_id(c), c["outcome"], c["reason"])
        for c in doc["cells"]
        if c["outcome"] not in ("passed", "skipped")
    ]
    assert not bad and healthy.rc == 0, (bad[:10], healthy.output[-2000:])
    assert campaign.lab_up_s < 60, campaign.lab_up_s
    for run in campaign.runs.values():
        assert run.results is not None, (run.name, run.rc, run.output[-2000:])
        assert run.elapsed_s < RUN_TIMEOUT
    # a full 12-node run costs about one probe timeout x attempts per phase, not one per cell
    assert campaign.runs["partition"].elapsed_s < healthy.elapsed_s + 2 * (PROBE_TIMEOUT * 2) + 20


def test_real_results_follow_the_schema_and_the_key_rule(campaign: Campaign) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for run in campaign.runs.values():
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(run.doc)]
        assert not errors, (run.name, errors[:5])
        wrong = [c["key"] for c in run.doc["cells"] if c["key"] != make_key(c)]
        assert not wrong, (run.name, wrong[:3])
        keys = [c["key"] for c in run.doc["cells"]]
        assert len(keys) == len(set(keys)), run.name


def test_the_partition_fails_exactly_the_paths_through_the_cut_node(campaign: Campaign) -> None:
    cells = campaign.runs["partition"].doc["cells"]
    cross = [c for c in cells if (p := _node_path(c)) and p[0] != p[1]]
    through = [c for c in cross if CUT in (_node_path(c) or ())]
    around = [c for c in cross if CUT not in (_node_path(c) or ())]
    same = [c for c in cells if (p := _node_path(c)) and p[0] == p[1]]
    # 11 other nodes, both ways, 7 slots (host->node icmp, host->pod tcp, pod->pod icmp mtu tcp udp http)
    assert len(through) == (NODES - 1) * 2 * 7 and len(around) == (NODES - 1) * (NODES - 2) * 7
    not_failed = [(_cell_id(c), c["outcome"]) for c in through if c["outcome"] != "failed"]
    assert not not_failed, not_failed[:10]
    # a packet that never arrives is a time-out: L3 by FM-03
    assert {c["classified_layer"] for c in through} == {"L3"}
    broken = [(_cell_id(c), c["reason"]) for c in around + same if c["outcome"] in FAILING]
    assert not broken, broken[:10]


def test_matrix_html_of_the_real_runs_holds_every_cell_and_loads_nothing(campaign: Campaign) -> None:
    for name in ("healthy", "partition"):
        run = campaign.runs[name]
        path = run.out / "matrix.html"
        page = path.read_text(encoding="utf-8")
        assert path.stat().st_size < MAX_MATRIX_BYTES, (name, path.stat().st_size)
        assert self_contained_problems(page) == [], name
        # a pure function of results.json: re-rendering the saved file gives the same bytes
        assert render_matrix(run.doc) == page, name
        data = embedded_data(parse_page(page))
        want = sorted((c["key"], c["outcome"]) for c in run.doc["cells"])
        assert sorted((c["key"], c["outcome"]) for c in data["cells"]) == want
        assert len(data["index"]) == len(run.doc["cells"])
        # every outcome has its colour class in the inline CSS
        for outcome in ("passed", "failed", "flaky", "skipped", "error"):
            assert re.search(rf"\.b\.{outcome}\b[^{{]*\{{[^}}]*background: var\(--{outcome}\)", page)
        verdict = compute_verdict(run.doc)
        assert f"<p>{html.escape(verdict.text)}</p>" in page
        assert f'class="verdict {verdict.status}"' in page
    page = (campaign.runs["partition"].out / "matrix.html").read_text(encoding="utf-8")
    header = page.split('<nav class="toolbar"', 1)[0]
    for needle in (CUT, "node network", "partition", "FM-13", "12: node-1, node-2"):
        assert needle in header, needle


def test_the_verdict_on_real_runs_names_the_node_and_the_component(campaign: Campaign) -> None:
    healthy = compute_verdict(campaign.runs["healthy"].doc)
    assert (
        healthy.status == "healthy" and healthy.text.startswith("All ") and "12 nodes passed" in healthy.text
    )

    partition = compute_verdict(campaign.runs["partition"].doc)
    first = partition.findings[0]
    assert partition.status == "failing"
    assert first.component == "node network" and "FM-13" in first.fm, first
    for words in (f"between {CUT} and the other nodes", f"{CUT} is cut off", "same-node",
                  "node-to-node traffic fails", f"node network of {CUT}", "a partition"):  # fmt: skip
        assert words in first.summary, (words, first.summary)
    # Service checks that land on the cut node's backend are symptoms, not a second cause
    assert [f.component for f in partition.findings] == ["node network"], partition.text
    failing = {c["key"] for c in campaign.runs["partition"].doc["cells"] if c["outcome"] in FAILING}
    assert failing <= set(first.keys), sorted(failing - set(first.keys))[:5]

    tunnel = compute_verdict(campaign.runs["tunnel"].doc)
    first = tunnel.findings[0]
    assert first.component == "tunnel" and first.fm[0] == "FM-09", tunnel.text
    for words in (f"{CUT} is cut off", "same-node traffic works", "the nodes reach each other directly",
                  f"the tunnel (overlay, UDP 6081) on {CUT}"):  # fmt: skip
        assert words in first.summary, (words, first.summary)
    assert len(tunnel.findings) == 1, tunnel.text


def _diff(*args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "netconform.cli.main", "diff", *args, "--limit", "0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


_LINE = re.compile(r"^  (\S+) -> (\S+) (\S+) (\S+)  \((\S+) -> (\S+)\)  \[([^\]]*)\]")


def _listed(text: str, title: str) -> dict[str, tuple[str, str]]:
    """key -> (before, after) of every line under ``title`` in `netconform diff` text output."""
    if f"\n{title} (" not in text:
        return {}
    section = text.split(f"\n{title} (", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    out = {}
    for line in section:
        m = _LINE.match(line)
        assert m, line
        subject, target, layer, protocol, before, after, fms = m.groups()
        out["|".join([fms.split(", ")[0], subject, target, layer, protocol])] = (before, after)
    return out


def _worse(before: str, after: str) -> bool:
    """The documented regression rule, restated: passed -> flaky/failed/error, flaky -> failed/error."""
    return (before == "passed" and after in ("flaky", *FAILING)) or (before == "flaky" and after in FAILING)


def test_diff_lists_exactly_what_the_fault_broke_and_the_reverse_as_fixed(campaign: Campaign) -> None:
    healthy, partition = campaign.runs["healthy"], campaign.runs["partition"]
    before = {c["key"]: c["outcome"] for c in healthy.doc["cells"]}
    after = {c["key"]: c["outcome"] for c in partition.doc["cells"]}
    assert before.keys() == after.keys()
    broke = {k for k in after if _worse(before[k], after[k])}
    through = {c["key"] for c in partition.doc["cells"] if (p := _node_path(c)) and p[0] != p[1] and CUT in p}
    assert through - {k for k, o in before.items() if o != "passed"} <= broke

    rc, text = _diff(str(healthy.out / "results.json"), str(partition.out / "results.json"))
    assert rc == 1 and "gate: FAIL" in text, text[-2000:]
    listed = _listed(text, "Regressed")
    assert set(listed) == broke, (sorted(set(listed) ^ broke)[:10], text[:500])
    assert all(listed[k] == (before[k], after[k]) for k in listed)
    assert f"Regressed ({len(broke)}):" in text

    rc, text = _diff(str(partition.out / "results.json"), str(healthy.out / "results.json"))
    fixed = {k for k in after if after[k] in ("flaky", *FAILING) and before[k] == "passed"}
    assert set(_listed(text, "Fixed")) == fixed
    assert _listed(text, "Regressed") == {} and rc == 0, text[:1500]

    # the run itself was gated against the same baseline: each cell carries its status
    doc = partition.doc
    status = {c["key"]: c["baseline"] for c in doc["cells"]}
    assert {k for k, s in status.items() if s == "regressed"} == broke
    assert doc["run"]["baseline"]["counts"]["regressed"] == len(broke)
    assert doc["run"]["baseline"]["file"] == "results.json"


def test_gate_exit_codes_of_real_runs(campaign: Campaign) -> None:
    runs = campaign.runs
    # regressions against the healthy baseline fail the gate
    assert runs["partition"].rc == 1, runs["partition"].output[-1500:]
    assert runs["tunnel"].rc == 1
    # the same broken paths against a baseline that already had them: known-broken, the gate passes
    known = runs["known"]
    assert any(c["outcome"] == "failed" for c in known.doc["cells"])
    assert {c["baseline"] for c in known.doc["cells"] if c["outcome"] == "failed"} == {"still-failing"}
    assert known.rc == 0, known.output[-1500:]
    # --fail-on failures fails on any failing cell, known or not
    assert runs["failures"].rc == 1
    # the fault cleared: no regression against the healthy baseline (missing cells are "gone", not failures)
    cleared = runs["cleared"]
    assert all(c["outcome"] == "passed" for c in cleared.doc["cells"]), cleared.output[-1500:]
    assert cleared.doc["run"]["baseline"]["counts"]["gone"] > 1000
    assert cleared.rc == 0, cleared.output[-1500:]


_PROPERTIES = {"fm", "subject", "target", "layer", "protocol", "classified_layer", "outcome", "key", "test"}
_ELEMENT = {"failed": "failure", "error": "error", "skipped": "skipped", "flaky": "flakyFailure"}


def test_junit_of_the_real_run_has_one_testcase_per_cell(campaign: Campaign) -> None:
    run = campaign.runs["partition"]
    root = ET.parse(run.out / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    cells = {c["key"]: c for c in run.doc["cells"]}
    assert len(cases) == len(cells) == int(suite.get("tests", "0"))
    assert int(suite.get("failures", "0")) == sum(c["outcome"] == "failed" for c in cells.values())
    seen = set()
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iterfind("properties/property")}
        assert set(props) == _PROPERTIES, props
        cell = cells[str(props["key"])]
        seen.add(cell["key"])
        assert case.get("name") == _cell_id(cell)
        assert case.get("classname") == f"netconform.{cell['fm'][0]}"
        assert props["fm"] == ",".join(cell["fm"]) and props["outcome"] == cell["outcome"]
        assert props["classified_layer"] == (cell.get("classified_layer") or "")
        children = [child.tag for child in case if child.tag != "properties"]
        assert children == ([_ELEMENT[cell["outcome"]]] if cell["outcome"] in _ELEMENT else []), (
            cell["key"],
            children,
        )
        if cell["outcome"] == "failed":
            failure = case.find("failure")
            assert failure is not None and failure.get("message") == cell["reason"]
    assert seen == set(cells)


def test_terminal_matrix_of_the_real_run_fits_100_columns(campaign: Campaign) -> None:
    run = campaign.runs["partition"]
    lines = run.output.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith(f"netconform run {run.doc['run']['id']}:")
    )
    end = next(i for i, line in enumerate(lines) if line.startswith("netconform: results in"))
    block = lines[start:end]
    assert block == render_terminal(run.doc).splitlines()
    too_wide = [line for line in block if len(line) > 100]
    assert not too_wide, too_wide
    assert not any("\x1b" in line for line in block), "colour codes in output that is not a terminal"
    rows = [line.split("  ")[0] for line in block]
    for i in range(1, NODES + 1):
        assert f"node-{i} host" in rows and f"node-{i} pods" in rows, i
    assert any(line.startswith("Verdict: ") and CUT in line for line in block)


# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing("chromium")
    if reason:
        pytest.skip(reason)
    with launched_chromium() as chromium:
        yield chromium


@pytest.mark.browser
def test_real_twelve_node_matrix_in_chromium(campaign: Campaign, browser: Any) -> None:
    run = campaign.runs["partition"]
    path = run.out / "matrix.html"
    data = page_data(run.doc)
    opened = Opened(browser, path, width=1600, height=760)
    page = opened.page
    ARTIFACTS.mkdir(exist_ok=True)
    MEASURED["browser"] = {
        "matrix_bytes": path.stat().st_size,
        "open_to_rendered_s": round(opened.open_s, 3),
        "rendered_marker_ms": round(opened.rendered_ms),
        "cells": len(data["cells"]),
    }
    _record({}, campaign.runs)
    try:
        assert opened.open_s < 2.0, f"navigation to rendered took {opened.open_s:.2f} s"
        assert opened.rendered_ms < 2000, opened.rendered_ms
        # by target kind: every badge has the worst outcome of its cells, striped when they disagree
        assert opened.badge_classes() == expected_badges(data, column=2)
        colours = page.evaluate(
            """() => Object.fromEntries(['passed', 'failed', 'flaky', 'skipped'].map(o => {
                   const b = document.querySelector('#matrix .b.' + o + ':not(.mixed)');
                   return [o, b ? getComputedStyle(b).backgroundColor : null]; }))"""
        )
        assert colours["passed"] == "rgb(46, 125, 50)" and colours["failed"] == "rgb(198, 40, 40)", colours
        assert colours["skipped"] == "rgb(154, 160, 166)", colours
        assert colours["flaky"] in (None, "rgb(230, 119, 0)"), colours
        page.screenshot(path=str(ARTIFACTS / "report-lab-12-kind.png"), full_page=True)

        # by target: one column per target; usable at 12 nodes: the table scrolls inside its frame while
        # the header row and the subject column stay in view
        page.click(".tab[data-view=target]")
        assert opened.badge_classes() == expected_badges(data, column=1)
        stuck = page.evaluate(
            """() => { const w = document.querySelector('.wrap');
                   w.scrollTop = 400; w.scrollLeft = 1200;
                   const box = w.getBoundingClientRect();
                   const head = document.querySelector('#matrix thead th.fam').getBoundingClientRect();
                   const row = document.querySelector('#matrix tbody th.rowh').getBoundingClientRect();
                   return {wide: w.scrollWidth > w.clientWidth, tall: w.scrollHeight > w.clientHeight,
                           scrolled: [w.scrollLeft, w.scrollTop],
                           head: head.top - box.top, row: row.left - box.left,
                           page_fits: document.documentElement.scrollWidth <= window.innerWidth}; }"""
        )
        assert stuck["wide"] and stuck["page_fits"], stuck  # the table scrolls, not the page
        assert stuck["scrolled"][0] == 1200 and 0 <= stuck["row"] <= 2, stuck  # subjects stay in view
        if stuck["tall"]:
            assert 0 <= stuck["head"] <= 2, stuck  # and so do the column titles
        page.evaluate(
            "() => { const w = document.querySelector('.wrap'); w.scrollTop = 0; w.scrollLeft = 0; }"
        )
        page.screenshot(path=str(ARTIFACTS / "report-lab-12-target.png"))

        # filter: the failed cells only; every badge left is red
        page.select_option("#f-outcome", "failed")
        failed = sum(1 for c in data["cells"] if c["outcome"] == "failed")
        assert page.locator("#f-count").inner_text() == f"{failed} of {len(data['cells'])} cells shown"

        def keep(c: Mapping[str, Any]) -> bool:
            return bool(c["outcome"] == "failed")

        got = opened.badge_classes()
        assert got == expected_badges(data, 1, keep) and all("failed" in v for v in got.values())

        # click node-1's pods -> the pod on the cut node: its evidence, diagnosis and capture commands
        row = next(i for i, s in enumerate(data["layout"]["subjects"]) if s["id"] == "pod@node-1")
        col = next(i for i, t in enumerate(data["layout"]["targets"]) if t["id"] == f"pod@{CUT}")
        page.click(f"#matrix td[data-r='{row}'][data-c='{col}']")
        panel = page.locator("#detail")
        assert panel.is_visible()
        assert page.locator("#detail-title").inner_text() == f"node-1 pods → {CUT}"
        shown = [c for c in run.doc["cells"] if c["subject"] == "pod@node-1" and c["target"] == f"pod@{CUT}"]
        assert page.locator("#detail .item").count() == sum(1 for c in shown if keep(c)) > 3
        text = panel.inner_text()
        for cell in filter(keep, shown):
            assert cell["reason"] in text, cell["reason"]
            assert f"L3 — {cell['meaning']}" in text
            for check in cell["evidence"]["checks"]:
                # as the page prints it: an agent watchdog's 3000.0 is "3000" (a real-plane run under load)
                assert js_number(check["attempts"][0]["elapsed_ms"]) in text
                if check.get("host"):
                    assert f"{check['host']}{':' + str(check['port']) if 'port' in check else ''}" in text
            for command in (cell.get("diagnosis") or {}).get("capture", []):
                assert command in text, command
        assert any((c.get("diagnosis") or {}).get("capture") for c in filter(keep, shown))
        assert "tcpdump" in text and "first broken hop" in text
        assert page.locator("#detail .item[open] table.attempts tr").count() >= 3
        page.screenshot(path=str(ARTIFACTS / "report-lab-12-detail.png"))
        page.keyboard.press("Escape")
        assert not panel.is_visible()

        # the by-FM view lists the partition's FM with its failing cells
        page.click(".tab[data-view=fm]")
        page.click(".fm-group[data-fm='FM-13'] .fm-head")
        fm13 = sum(1 for c in data["cells"] if "FM-13" in c["fm"] and keep(c))
        assert page.locator(".fm-group[data-fm='FM-13'] tbody tr").count() == fm13 > 0
        page.screenshot(path=str(ARTIFACTS / "report-lab-12-by-fm.png"))
    finally:
        page.close()
    assert opened.errors == []
    assert opened.foreign_requests() == [] and len(opened.requests) == 1

    healthy = Opened(browser, campaign.runs["healthy"].out / "matrix.html")
    try:
        classes = {cls for v in healthy.badge_classes().values() for cls in v} - {"b", "mixed"}
        assert classes == {"passed", "skipped"}
        assert healthy.page.locator("#verdict.healthy").count() == 1
        assert healthy.open_s < 2.0
    finally:
        healthy.page.close()
    assert healthy.errors == [] and healthy.foreign_requests() == []
