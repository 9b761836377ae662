"""Reading ``results.json`` (schema ``netconform/v1``, contracts §5) and the helpers every report shares.

Every report is a pure function of the results dict, so a run with ``-n auto`` (results gathered on the
controller) renders exactly like a serial one. Loading checks the structure the reports rely on and
turns any problem into one :class:`ResultsError` line instead of a traceback deep inside a renderer.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from netconform.model.refs import Ref

SCHEMA_ID = "netconform/v1"
OUTCOMES: tuple[str, ...] = ("passed", "failed", "flaky", "skipped", "error")
# outcomes that mean "this path is broken"; flaky is reported apart (intermittent), skipped is neutral
FAILING: frozenset[str] = frozenset({"failed", "error"})
LAYERS: tuple[str, ...] = ("L2", "L3", "L4", "L7", "DNS")

Cell = dict[str, Any]
Results = dict[str, Any]

_REQUIRED_STR = ("subject", "target", "layer", "protocol", "outcome")


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


def check_results(data: Any) -> Results:
    """Check the fields the reports read (the full schema is docs/results.schema.json); return ``data``."""
    if not isinstance(data, dict):
        raise ResultsError("not a results document (expected a JSON object)")
    if data.get("schema") != SCHEMA_ID:
        raise ResultsError(f"schema is {data.get('schema')!r}, expected {SCHEMA_ID!r}")
    if not isinstance(data.get("run"), dict):
        raise ResultsError("'run' is missing or not an object")
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise ResultsError("'cells' is missing or not a list")
    for index, cell in enumerate(cells):
        _check_cell(index, cell)
    return data


def _check_cell(index: int, cell: Any) -> None:
    where = f"cells[{index}]"
    if not isinstance(cell, dict):
        raise ResultsError(f"{where} is not an object")
    for field in _REQUIRED_STR:
        if not isinstance(cell.get(field), str) or not cell[field]:
            raise ResultsError(f"{where}: '{field}' is missing or not a non-empty string")
    fm = cell.get("fm")
    if not isinstance(fm, list) or not all(isinstance(x, str) for x in fm):
        raise ResultsError(f"{where}: 'fm' must be a list of FM IDs")
    if cell["outcome"] not in OUTCOMES:
        raise ResultsError(f"{where}: outcome {cell['outcome']!r} is not one of {', '.join(OUTCOMES)}")


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
