"""Baseline diff: exactly the cells a fault breaks are regressions, the reverse are fixes; gate exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from netconform.cli.main import main as cli_main
from netconform.report.diff import (
    annotate,
    classify_change,
    compare,
    format_markdown,
    format_text,
    gate_exit_code,
    main,
)
from tests.report_synth import Fault, synth_results

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "results.schema.json").read_text())


@pytest.fixture(scope="module")
def healthy() -> dict[str, Any]:
    return synth_results(3, None, run_id="before")


@pytest.fixture(scope="module")
def faulted() -> dict[str, Any]:
    return synth_results(3, Fault("tunnel-blocked", "node-3"), run_id="after")


def _broken_by_fault(healthy: dict[str, Any], faulted: dict[str, Any]) -> set[str]:
    was = {c["key"]: c["outcome"] for c in healthy["cells"]}
    return {c["key"] for c in faulted["cells"] if was[c["key"]] == "passed" and c["outcome"] != "passed"}


def test_fault_breaks_exactly_its_cells(healthy: dict[str, Any], faulted: dict[str, Any]) -> None:
    comparison = compare(healthy, faulted)
    regressed = {c.key for c in comparison.by_status("regressed")}
    assert regressed == _broken_by_fault(healthy, faulted)
    # independent of the implementation: the fault's signature is in, same-node paths are out
    assert "FM-09|pod@node-1|pod@node-3|L4|tcp" in regressed
    assert "FM-15|pod@node-3|pod@node-2|L3|icmp" in regressed
    same_node_pod = [
        k
        for k in regressed
        if k.split("|")[2].startswith("pod@")
        and k.split("|")[1].split("@")[-1] == k.split("|")[2].split("@")[-1]
    ]
    assert same_node_pod == []
    assert not [k for k in regressed if "pod@node-1|pod@node-2" in k]
    counts = comparison.counts()
    assert counts["unchanged"] == len(healthy["cells"]) - len(regressed)
    assert counts["fixed"] == counts["new"] == counts["gone"] == counts["still-failing"] == 0
    assert gate_exit_code(faulted, comparison, "regressions") == 1


def test_reverse_lists_them_as_fixed(healthy: dict[str, Any], faulted: dict[str, Any]) -> None:
    comparison = compare(faulted, healthy)
    assert {c.key for c in comparison.by_status("fixed")} == _broken_by_fault(healthy, faulted)
    assert comparison.by_status("regressed") == [] and comparison.gate_failures == []
    assert gate_exit_code(healthy, comparison, "regressions") == 0
    assert gate_exit_code(healthy, comparison, "failures") == 0


def test_known_broken_paths_pass_the_regressions_gate(faulted: dict[str, Any]) -> None:
    comparison = compare(faulted, faulted)
    assert comparison.counts()["still-failing"] == sum(
        1 for c in faulted["cells"] if c["outcome"] in ("failed", "flaky", "error")
    )
    assert gate_exit_code(faulted, comparison, "regressions") == 0
    assert gate_exit_code(faulted, comparison, "failures") == 1


def test_new_gone_and_now_skipped(healthy: dict[str, Any]) -> None:
    after = json.loads(json.dumps(healthy))
    after["cells"].sort(key=lambda c: c["outcome"] != "passed")  # passed cells first
    removed = after["cells"].pop(0)
    after["cells"][0]["outcome"] = "skipped"
    new_cell = dict(
        after["cells"][1],
        key="FM-32|external|nodeport@node-9|L4|tcp",
        target="nodeport@node-9",
        outcome="failed",
        reason="tcp 10.89.0.19:30080: timeout",
    )
    after["cells"].append(new_cell)
    comparison = compare(healthy, after)
    status = comparison.status_of()
    assert status[removed["key"]] == "gone"
    assert status[after["cells"][0]["key"]] == "now-skipped"
    assert status[new_cell["key"]] == "new"
    # a new failing path is not a known-broken one: the gate fails
    assert [c.key for c in comparison.gate_failures] == [new_cell["key"]]


@pytest.mark.parametrize(
    ("before", "after", "status"),
    [
        ("passed", "failed", "regressed"),
        ("passed", "flaky", "regressed"),
        ("flaky", "failed", "regressed"),
        ("passed", "error", "regressed"),
        ("failed", "passed", "fixed"),
        ("flaky", "passed", "fixed"),
        ("failed", "flaky", "still-failing"),
        ("error", "failed", "still-failing"),
        ("passed", "passed", "unchanged"),
        ("skipped", "skipped", "unchanged"),
        ("skipped", "failed", "new"),
        (None, "passed", "new"),
        ("passed", None, "gone"),
        ("skipped", None, "unchanged"),
        ("failed", "skipped", "now-skipped"),
    ],
)
def test_classify_change(before: str | None, after: str | None, status: str) -> None:
    assert classify_change(before, after) == status


def test_annotate_keeps_the_schema(healthy: dict[str, Any], faulted: dict[str, Any]) -> None:
    doc = annotate(json.loads(json.dumps(faulted)), compare(healthy, faulted), "before.json")
    assert doc["run"]["baseline"]["counts"]["regressed"] == len(_broken_by_fault(healthy, faulted))
    assert {c["baseline"] for c in doc["cells"]} == {"regressed", "unchanged"}
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)


def test_gate_rejects_bad_modes(faulted: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="needs --baseline"):
        gate_exit_code(faulted, None, "regressions")
    with pytest.raises(ValueError, match="must be one of"):
        gate_exit_code(faulted, None, "sometimes")


def test_text_and_markdown(healthy: dict[str, Any], faulted: dict[str, Any]) -> None:
    comparison = compare(healthy, faulted)
    n = len(_broken_by_fault(healthy, faulted))
    text = format_text(comparison)
    assert text.startswith(f"baseline before -> run after: {n} regressed")
    assert "pod@node-1 -> pod@node-3 L4 tcp  (passed -> failed)" in text and "gate: FAIL" in text
    md = format_markdown(comparison)
    assert md.startswith("### netconform: ❌ regressions")
    assert f"| regressed | {n} |" in md and "| `pod@node-1 -> pod@node-3 L4 tcp` | passed -> failed |" in md
    assert format_markdown(compare(healthy, healthy)).startswith("### netconform: ✅ no regressions")


def _write(tmp_path: Path, name: str, doc: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_netconform_diff_exit_codes(
    tmp_path: Path, healthy: dict[str, Any], faulted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    before, after = _write(tmp_path, "before.json", healthy), _write(tmp_path, "after.json", faulted)
    assert main([before, after]) == 1
    assert "Regressed (" in capsys.readouterr().out
    assert main([after, before, "--format", "markdown"]) == 0
    assert "#### Fixed (" in capsys.readouterr().out
    assert cli_main(["diff", before, before]) == 0
    capsys.readouterr()
    assert main([before, str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "missing.json: no such file" in err


def test_netconform_diff_as_a_command(
    tmp_path: Path, healthy: dict[str, Any], faulted: dict[str, Any]
) -> None:
    before, after = _write(tmp_path, "before.json", healthy), _write(tmp_path, "after.json", faulted)
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    run = [sys.executable, "-m", "netconform.cli.main", "diff"]
    done = subprocess.run([*run, before, after], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "gate: FAIL" in done.stdout
    done = subprocess.run([*run, str(bad), after], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "not JSON" in done.stderr


def test_limit_lists_every_cell_or_truncates_and_bad_limits_are_one_line(
    tmp_path: Path, healthy: dict[str, Any], faulted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    before, after = _write(tmp_path, "before.json", healthy), _write(tmp_path, "after.json", faulted)
    regressed = len(compare(healthy, faulted).by_status("regressed"))
    assert regressed > 3
    assert main([before, after, "--limit", "0"]) == 1
    out = capsys.readouterr().out
    section = out.split(f"Regressed ({regressed}):\n", 1)[1].split("\n\n", 1)[0]
    assert len(section.splitlines()) == regressed and "more" not in section
    assert main([before, after, "--limit", "2"]) == 1
    section = capsys.readouterr().out.split(f"Regressed ({regressed}):\n", 1)[1].split("\n\n", 1)[0]
    assert section.splitlines()[2:] == [f"  ... and {regressed - 2} more"]
    for bad in ("-1", "x"):
        with pytest.raises(SystemExit) as exc:
            main([before, after, "--limit", bad])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and "--limit" in err, err
