"""Reading ``results.json`` (schema ``netconform/v1``, contracts §5) and the helpers every report shares.

Every report is a pure function of the results dict, so a run with ``-n auto`` (results gathered on the
controller) renders exactly like a serial one. Loading validates the document against the shipped JSON
Schema (``results.schema.json``, the same file as docs/results.schema.json) and turns any problem into one
:class:`ResultsError` line (file, JSON path, problem) instead of a traceback deep inside a renderer.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

import jsonschema

from netconform.model.refs import Ref

SCHEMA_ID = "netconform/v1"
OUTCOMES: tuple[str, ...] = ("passed", "failed", "flaky", "skipped", "error")
# outcomes that mean "this path is broken"; flaky is reported apart (intermittent), skipped is neutral
FAILING: frozenset[str] = frozenset({"failed", "error"})
LAYERS: tuple[str, ...] = ("L2", "L3", "L4", "L7", "DNS")

Cell = dict[str, Any]
Results = dict[str, Any]


class ResultsError(ValueError):
    """results.json is missing, unreadable or not the shape the reports need (one-line message)."""


def load_results(path: str | Path) -> Results:
    """Read and check one results.json; any problem is a :class:`ResultsError` naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{p}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{p}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    try:
        return check_results(data)
    except ResultsError as exc:
        raise ResultsError(f"{p}: {exc}") from None


SCHEMA_FILE = "results.schema.json"  # shipped next to this module: a copy of docs/results.schema.json


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of results.json (draft 2020-12) shipped with the package."""
    text = resources.files("netconform.report").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(definition: str | None = None) -> jsonschema.protocols.Validator:
    """The validator of the whole document, or of one of its ``$defs`` (``"cell"``)."""
    root = schema()
    if definition is not None:
        root = {k: root[k] for k in ("$schema", "$id", "$defs") if k in root} | {
            "$ref": f"#/$defs/{definition}"
        }
    cls = jsonschema.validators.validator_for(root)
    return cls(root, format_checker=cls.FORMAT_CHECKER)


def json_path(path: Iterable[Any]) -> str:
    """``["cells", 3, "outcome"]`` -> ``$.cells[3].outcome`` (where in the document the problem is)."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


# jsonschema walks ~0.5-1.5 ms per cell: every cell of a run up to ~20 nodes (a few seconds); past
# this, the header and a deterministic sample (every cell that did not pass, then every k-th one)
FULL_VALIDATION_CELLS = 5000


def _first_error(instance: Any, prefix: tuple[Any, ...] = (), definition: str | None = None) -> str | None:
    """The first schema error in document order as ``$.path: problem`` (None when valid)."""
    errors = sorted(
        _validator(definition).iter_errors(instance),
        # a wrong "schema" first (another file altogether), then document order, the deepest first
        key=lambda e: (
            list(e.absolute_path) != ["schema"],
            list(map(str, e.absolute_path)),
            -len(e.absolute_path),
        ),
    )
    if not errors:
        return None
    error = errors[0]
    message = " ".join(error.message.split())
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{json_path((*prefix, *error.absolute_path))}: {message}"


def check_results(data: Any, *, full: bool | None = None) -> Results:
    """Validate ``data`` against the shipped schema; return it, or raise one :class:`ResultsError` line
    naming the JSON path and the problem.

    ``full`` None: every cell when there are at most :data:`FULL_VALIDATION_CELLS`, else the header and a
    sample of that many cells (all cells that did not pass first); ``full=True`` checks every cell."""
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list) or full or (full is None and len(cells) <= FULL_VALIDATION_CELLS):
        problem = _first_error(data)
    else:
        problem = _first_error({**data, "cells": []})
        if problem is None:
            picked = [
                i for i, c in enumerate(cells) if not isinstance(c, dict) or c.get("outcome") != "passed"
            ]
            room = max(FULL_VALIDATION_CELLS - len(picked), 1)
            step = max(1, (len(cells) - len(picked)) // room)
            chosen = set(picked[:FULL_VALIDATION_CELLS]) | set(range(0, len(cells), step))
            for index in sorted(chosen):
                problem = _first_error(cells[index], ("cells", index), "cell")
                if problem is not None:
                    break
    if problem is not None:
        raise ResultsError(problem)
    return cast(Results, data)


UNTAGGED_FM = "FM-00"  # what the suite writes for a test that carries no FM marker


def first_fm(cell: Mapping[str, Any]) -> str:
    fms = cell.get("fm") or []
    return str(fms[0]) if fms else UNTAGGED_FM


def make_key(cell: Mapping[str, Any]) -> str:
    """The stable cell key of contracts §5: ``fm[0]|subject|target|layer|protocol`` (no pod names)."""
    return "|".join([first_fm(cell), cell["subject"], cell["target"], cell["layer"], cell["protocol"]])


def key_of(cell: Mapping[str, Any]) -> str:
    """The cell's key as written by the suite, computed when an older writer left it out."""
    key = cell.get("key")
    return key if isinstance(key, str) and key else make_key(cell)


def node_of(scope_id: str) -> str | None:
    """``pod@node-2`` -> ``node-2``; scope ids without a node (``clusterip``, ``external``) -> None."""
    return Ref.parse(scope_id).node


def family_of(scope_id: str) -> str:
    """``pod@node-2`` -> ``pod``, ``component:coredns`` -> ``component``, ``lb-vip`` -> ``lb-vip``."""
    return Ref.parse(scope_id).head


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort ``node-2`` before ``node-10``."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(text))


def canonical_cells(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Cells in key order: with ``-n auto`` the controller may receive them in any order, and every
    report must come out byte-identical either way."""
    return sorted(results.get("cells", []), key=lambda c: (key_of(c), str(c.get("test", ""))))


def is_failing(cell: Mapping[str, Any]) -> bool:
    return cell.get("outcome") in FAILING


def count_outcomes(cells: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Counts per outcome, every outcome present (zeros included) in the canonical order."""
    counter = Counter(str(c.get("outcome")) for c in cells)
    return {outcome: counter.get(outcome, 0) for outcome in OUTCOMES}


def nodes_of(results: Mapping[str, Any]) -> list[str]:
    """Cluster nodes in natural order: the run header's list, plus any node only the cells mention."""
    listed = results.get("run", {}).get("cluster", {}).get("nodes") or []
    seen = {str(n) for n in listed}
    for cell in results.get("cells", []):
        for scope in (cell.get("subject", ""), cell.get("target", "")):
            node = node_of(scope)
            if node and not scope.startswith("component:"):
                seen.add(node)
    return sorted(seen, key=natural_key)


def fm_ids(cells: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every FM ID any cell is tagged with."""
    return {fm for cell in cells for fm in cell.get("fm", [])}
