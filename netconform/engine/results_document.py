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


def write(doc: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return path
