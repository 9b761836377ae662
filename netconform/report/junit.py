"""``junit.xml`` with one testcase per matrix cell, so a CI system names the exact path that broke.

Each testcase carries properties ``fm``, ``subject``, ``target``, ``layer``, ``protocol``,
``classified_layer`` (and the stable ``key``). Failed cells get ``<failure>``, errors ``<error>``,
skips ``<skipped>``; flaky cells pass with a Surefire-style ``<flakyFailure>`` (understood by Jenkins)
so an intermittent path is visible without failing the build by itself.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netconform.report.results import canonical_cells, count_outcomes, first_fm, key_of

# characters XML 1.0 cannot carry at all (agent messages may contain raw bytes)
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(value: Any) -> str:
    return _INVALID_XML.sub("\N{REPLACEMENT CHARACTER}", "" if value is None else str(value))


def cell_name(cell: Mapping[str, Any]) -> str:
    """``SUBJECT->TARGET/LAYER-PROTOCOL``, the suite's test id for the cell (contracts §4)."""
    return f"{cell['subject']}->{cell['target']}/{cell['layer']}-{cell['protocol']}"


def failure_text(cell: Mapping[str, Any]) -> str:
    """The body CI shows for a failing cell: reason, classification, diagnosis, captures, attempts."""
    lines = [str(cell.get("reason") or "")]
    if cell.get("classified_layer") or cell.get("meaning"):
        lines.append(
            f"classified: {cell.get('classified_layer') or '?'} - {cell.get('meaning') or ''}".rstrip(" -")
        )
    diagnosis = cell.get("diagnosis")
    if isinstance(diagnosis, Mapping):
        if diagnosis.get("hop"):
            lines.append(f"first broken hop: {diagnosis['hop']}")
        if diagnosis.get("summary"):
            lines.append(f"diagnosis: {diagnosis['summary']}")
        for command in diagnosis.get("capture") or []:
            lines.append(f"capture: {command}")
    evidence = cell.get("evidence")
    checks = evidence.get("checks", []) if isinstance(evidence, Mapping) else []
    for check in checks:
        where = check.get("host") or check.get("url") or check.get("name") or ""
        if check.get("port") is not None:
            where = f"{where}:{check['port']}"
        attempts = check.get("attempts") or []
        tries = ", ".join(
            f"{'ok' if a.get('ok') else a.get('error') or 'failed'} {a.get('elapsed_ms', '?')} ms"
            for a in attempts
        )
        lines.append(f"check {check.get('kind', '?')} {where}: {tries or check.get('error') or ''}".rstrip())
    return "\n".join(line for line in lines if line)


def build_junit(results: Mapping[str, Any]) -> ET.Element:
    cells = canonical_cells(results)
    run = results.get("run", {})
    counts = count_outcomes(cells)
    total_time = sum(float(c.get("duration_s") or 0.0) for c in cells)
    root = ET.Element("testsuites", name="netconform")
    suite = ET.SubElement(
        root,
        "testsuite",
        name="netconform",
        tests=str(len(cells)),
        failures=str(counts["failed"]),
        errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
        time=f"{total_time:.3f}",
        timestamp=_clean(run.get("started") or ""),
    )
    suite_props = ET.SubElement(suite, "properties")
    cluster = run.get("cluster") or {}
    for name, value in (
        ("run", run.get("id")),
        ("server", cluster.get("server")),
        ("version", cluster.get("version")),
    ):
        if value:
            ET.SubElement(suite_props, "property", name=name, value=_clean(value))
    for cell in cells:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"netconform.{_clean(first_fm(cell))}",
            name=_clean(cell_name(cell)),
            time=f"{float(cell.get('duration_s') or 0.0):.3f}",
        )
        props = ET.SubElement(case, "properties")
        for name, value in (
            ("fm", ",".join(cell["fm"])),
            ("subject", cell["subject"]),
            ("target", cell["target"]),
            ("layer", cell["layer"]),
            ("protocol", cell["protocol"]),
            ("classified_layer", cell.get("classified_layer") or ""),
            ("outcome", cell["outcome"]),
            ("key", key_of(cell)),
            ("test", cell.get("test") or ""),
        ):
            ET.SubElement(props, "property", name=name, value=_clean(value))
        outcome = cell["outcome"]
        message = _clean(cell.get("reason") or outcome)
        kind = _clean(cell.get("classified_layer") or cell.get("error") or outcome)
        if outcome == "failed":
            ET.SubElement(case, "failure", message=message, type=kind).text = _clean(failure_text(cell))
        elif outcome == "error":
            ET.SubElement(case, "error", message=message, type=kind).text = _clean(failure_text(cell))
        elif outcome == "skipped":
            ET.SubElement(case, "skipped", message=message)
        elif outcome == "flaky":
            ET.SubElement(case, "flakyFailure", message=message, type="flaky").text = _clean(
                failure_text(cell)
            )
    ET.indent(root)
    return root


def render_junit(results: Mapping[str, Any]) -> str:
    return ET.tostring(build_junit(results), encoding="unicode", xml_declaration=True) + "\n"


def write_junit(results: Mapping[str, Any], path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_junit(results), encoding="utf-8")
    return out
