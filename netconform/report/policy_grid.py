"""The expected-vs-observed grids of a --policy-table (results.json `run.policy_table`) as text, like
the Kubernetes network-policy e2e tests and cyclonus print them: one grid per port, sources as rows,
destinations as columns, and each wrong cell with the command that reproduces it.

>>> doc = {"run": {"policy_table": {"file": "t.yaml", "rows": ["deployment/a/w@n1"], "columns": [
...     "deployment/b/w@n2"], "counts": {"as_expected": 0, "wrong": 1, "unmeasured": 0}, "grids": [{"port":
...     "tcp/80", "rows": {"deployment/a/w@n1": {"deployment/b/w@n2": "X"}}}], "wrong": [{"from":
...     "deployment/a/w@n1", "to": "deployment/b/w@n2", "port": "tcp/80", "expected": "deny", "observed":
...     "allow", "command": "kubectl ..."}]}}}
>>> print("\\n".join(render(doc)))  # doctest: +NORMALIZE_WHITESPACE
policy table t.yaml: 0 as expected, 1 wrong, 0 unmeasured
  a/d: allowed/denied as expected, X: wrong, ?: unmeasured
tcp/80             1
  1 a/w@n1         X
  columns: 1 = b/w@n2
wrong: a/w@n1 -> b/w@n2 tcp/80: expected deny, observed allow; reproduce: kubectl ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def short(ref: str) -> str:
    """`deployment/ns-a/w1@node-2` -> `ns-a/w1@node-2` (the kind is in the table)."""
    return ref.split("/", 1)[1] if ref.count("/") >= 2 else ref


def render(results: Mapping[str, Any]) -> list[str]:
    table = (results.get("run") or {}).get("policy_table")
    if not table:
        return []
    counts = table["counts"]
    lines = [
        f"policy table {table['file']}: {counts['as_expected']} as expected, {counts['wrong']} wrong, "
        f"{counts['unmeasured']} unmeasured",
        "  a/d: allowed/denied as expected, X: wrong, ?: unmeasured",
    ]
    for name, tally in (table.get("by_policy") or {}).items():
        lines.append(
            f"  policy {name}: {tally['as_expected']} as expected, {tally['wrong']} wrong, "
            f"{tally['unmeasured']} unmeasured"
        )
    cols = table["columns"]
    number = {c: str(i + 1) for i, c in enumerate(cols)}
    label_w = max([len(short(r)) + 2 + len(str(len(table["rows"]))) for r in table["rows"]] + [10])
    width = max(len(n) for n in number.values())
    for g in table["grids"]:
        head = " ".join(number[c].rjust(width) for c in cols)
        lines.append(f"{g['port'].ljust(label_w)} {head}")
        for i, row in enumerate(table["rows"]):
            marks = g["rows"].get(row, {})
            cells = " ".join(marks.get(c, "-").rjust(width) for c in cols)
            lines.append(
                f"  {str(i + 1).rjust(len(str(len(table['rows']))))} {short(row)}".ljust(label_w)
                + f" {cells}"
            )
        lines.append("  columns: " + ", ".join(f"{number[c]} = {short(c)}" for c in cols))
    for w in table["wrong"]:
        lines.append(
            f"wrong: {short(w['from'])} -> {short(w['to'])} {w['port']}: expected {w['expected']}, "
            f"observed {w['observed']}; reproduce: {w['command']}"
        )
    return lines
