"""Builds results.json (schema netconform/v1, contracts §5) from pytest reports on the controller.

Tests attach their cell's static description and its verdict as `user_properties`; xdist ships those
with every report to the controller, so `pytest_runtest_logreport` there sees every cell whether the
run is serial or `-n auto`. One cell per test item, keyed by a stable key (no pod names, no run id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = "netconform/v1"
CELL_PROP = "netconform_cell"
VERDICT_PROP = "netconform_verdict"
OUTCOMES = ("passed", "failed", "flaky", "skipped", "error")


def skip_reason(longrepr: Any) -> str:
    """The reason of a skip report (pytest stores `(path, line, 'Skipped: reason')`)."""
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr or "")
    return text.removeprefix("Skipped: ").strip()


def failure_text(longrepr: Any) -> str:
    text = str(longrepr or "").strip()
    lines = [ln for ln in text.splitlines() if ln.startswith("E ")]
    return (lines[-1][2:].strip() if lines else (text.splitlines() or [""])[-1])[:500]


@dataclass
class Collector:
    """Accumulates one results.json cell per test item from its setup/call/teardown reports."""

    cells: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(
        self,
        nodeid: str,
        when: str,
        outcome: str,
        longrepr: Any,
        duration: float,
        user_properties: list[tuple[str, Any]],
    ) -> None:
        props = dict(user_properties)
        static = props.get(CELL_PROP)
        if static is None:
            return
        cell = self.cells.get(nodeid)
        if cell is None:
            cell = {
                "test": nodeid,
                **static,
                "outcome": None,
                "reason": "",
                "error": None,
                "classified_layer": None,
                "meaning": None,
                "classified_fm": None,
                "evidence": {"checks": []},
                "diagnosis": None,
                "duration_s": 0.0,
            }
            self.cells[nodeid] = cell
        cell["duration_s"] = round(cell["duration_s"] + duration, 4)
        verdict = props.get(VERDICT_PROP)
        if verdict:
            cell["reason"] = verdict.get("reason", "")
            cell["error"] = verdict.get("error")
            cell["classified_layer"] = verdict.get("classified_layer")
            cell["meaning"] = verdict.get("meaning")
            cell["classified_fm"] = verdict.get("classified_fm")
            cell["evidence"] = {"checks": verdict.get("checks", []), "notes": verdict.get("notes", [])}
            cell["diagnosis"] = verdict.get("diagnosis")
        if outcome == "skipped" and cell["outcome"] in (None, "passed"):
            cell["outcome"] = "skipped"
            cell["reason"] = skip_reason(longrepr)
        elif outcome == "failed":
            if when == "call":
                cell["outcome"] = (
                    (verdict or {}).get("outcome")
                    if (verdict or {}).get("outcome") in ("failed", "flaky", "error")
                    else "failed"
                )
                if not verdict:
                    cell["reason"] = failure_text(longrepr)
            elif cell["outcome"] != "failed":
                cell["outcome"] = "error"
                cell["reason"] = cell["reason"] or f"{when}: {failure_text(longrepr)}"
        elif outcome == "passed" and when == "call" and cell["outcome"] is None:
            cell["outcome"] = "passed"

    def add_report(self, report: Any) -> None:
        self.add(
            report.nodeid,
            report.when,
            report.outcome,
            report.longrepr,
            float(report.duration or 0.0),
            list(getattr(report, "user_properties", []) or []),
        )

    def finished_cells(self) -> list[dict[str, Any]]:
        out = []
        for nodeid in sorted(self.cells):
            cell = dict(self.cells[nodeid])
            if cell["outcome"] is None:
                cell["outcome"] = "error"
                cell["reason"] = cell["reason"] or "the test did not report an outcome (interrupted)"
            out.append(cell)
        return out


def add_followups(collector: Collector, verdicts: dict[str, dict[str, Any]]) -> int:
    """Cells the engine added because sampled pairs failed (`--peers K`): each becomes a cell of the
    test that covers its kind (same subject/target kind, layer, protocol), marked `"followup": true`,
    so the run's verdict sees the whole row and column of a failing node. Returns how many."""
    templates: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for nodeid, cell in collector.cells.items():
        kind = (cell["subject"].split("@")[0], cell["target"].split("@")[0], cell["layer"], cell["protocol"])
        templates.setdefault(kind, {"nodeid": nodeid, **cell})
    added = 0
    for cell_id, verdict in sorted(verdicts.items()):
        subject, rest = cell_id.split("->", 1)
        target, _, tail = rest.rpartition("/")
        layer, _, protocol = tail.partition("-")
        template = templates.get((subject.split("@")[0], target.split("@")[0], layer, protocol))
        if template is None or verdict.get("outcome") == "skipped":
            continue
        nodeid = template["nodeid"].split("[", 1)[0] + f"[{cell_id}]"
        fm = list(template.get("fm") or [])
        target_kind = template["target_kind"]
        if target_kind in ("T-POD-NODE", "T-POD-CLUSTER"):
            same = subject.split("@")[-1] == target.split("@")[-1]
            target_kind = "T-POD-NODE" if same else "T-POD-CLUSTER"
        static = {
            "key": "|".join([fm[0] if fm else "FM-00", subject, target, layer, protocol]),
            "fm": fm,
            "subject": subject,
            "subject_kind": template["subject_kind"],
            "target": target,
            "target_kind": target_kind,
            "layer": layer,
            "protocol": protocol,
            "followup": True,
        }
        outcome = "passed" if verdict.get("outcome") == "passed" else "failed"
        props = [(CELL_PROP, static), (VERDICT_PROP, verdict)]
        collector.add(nodeid, "call", outcome, None, 0.0, props)
        added += 1
    return added


def counts(cells: list[dict[str, Any]]) -> dict[str, int]:
    out = dict.fromkeys(OUTCOMES, 0)
    for cell in cells:
        out[cell["outcome"]] = out.get(cell["outcome"], 0) + 1
    return out


def document(
    collector: Collector,
    *,
    run_id: str,
    started: datetime,
    duration_s: float,
    cluster: dict[str, Any],
    options: dict[str, Any],
    stats: dict[str, Any],
    extra_run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    cells = collector.finished_cells()
    return {
        "schema": SCHEMA,
        "run": {
            "id": run_id,
            "started": started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_s": round(duration_s, 3),
            "cluster": cluster,
            "options": options,
            "stats": stats,
            "counts": counts(cells),
            **(extra_run or {}),
        },
        "cells": cells,
    }


def dumps(doc: dict[str, Any]) -> str:
    """results.json's text: the run's keys indented, then one cell per line.

    A cell a line is what `grep`, `diff` and a code review want of a 14,000-cell file, and each line is
    the C encoder's work: `indent=` alone takes Python's encoder, 2 s for a 20-node run (issue 15).

    >>> print(dumps({"schema": 1, "cells": [{"key": "a", "outcome": "passed"}, {"key": "b"}]}))
    {
     "schema": 1,
     "cells": [
    {"key": "a", "outcome": "passed"},
    {"key": "b"}
    ]
    }
    """
    parts: list[str] = []
    for key, value in doc.items():
        if key == "cells" and isinstance(value, list):
            lines = ",\n".join(json.dumps(cell) for cell in value)
            parts.append(f"{json.dumps(key)}: [\n{lines}\n]" if value else f"{json.dumps(key)}: []")
        else:
            text = json.dumps(value, indent=1).replace("\n", "\n ")
            parts.append(f"{json.dumps(key)}: {text}")
    return "{\n " + ",\n ".join(parts) + "\n}"


def write(doc: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(dumps(doc), encoding="utf-8")
    tmp.replace(path)
    return path
