"""The end-of-run terminal summary: a compact matrix (one character per layer per cell) and the verdict.

Columns are the target *kinds* (pod same node, pod other node, ClusterIP ...), so 12 nodes still fit in
100 columns; inside a kind, one character per layer/protocol slot shows the worst outcome of the
subject's cells there, with ``x`` for "some of several failed" so one bad node stands out from a
cluster-wide failure. Colour only when asked for (a TTY without ``NO_COLOR``).
"""

from __future__ import annotations

import os
import textwrap
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, TextIO

from netconform.report.layout import KIND_SHORT, build_layout, subject_label, worst
from netconform.report.results import canonical_cells, count_outcomes, nodes_of
from netconform.report.verdict import verdict_data

CHAR = {"passed": ".", "failed": "F", "flaky": "f", "skipped": "s", "error": "E"}
PARTIAL_FAIL = "x"
ANSI = {"passed": "32", "failed": "31;1", "flaky": "33;1", "skipped": "2", "error": "35;1", "partial": "31"}
LEGEND = ". passed  F failed  x some failed  f flaky  E error  s skipped  (blank) not run"


def use_color(stream: TextIO) -> bool:
    """Colour for a TTY unless NO_COLOR is set or the terminal is dumb (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def _char(outcomes: list[str], color: bool) -> str:
    top = worst(outcomes)
    if top == "failed" and len(set(outcomes)) > 1:
        return _paint(PARTIAL_FAIL, ANSI["partial"], color)
    return _paint(CHAR.get(top, "?"), ANSI.get(top, "0"), color)


def render_terminal(results: Mapping[str, Any], *, width: int = 100, color: bool = False) -> str:
    """The summary block as text, every line at most ``width`` visible columns."""
    cells = canonical_cells(results)
    counts = count_outcomes(cells)
    run = results.get("run", {})
    nodes = nodes_of(results)
    head = f"netconform run {run.get('id', '?')}: {len(nodes)} nodes, {len(cells)} cells: " + ", ".join(
        f"{n} {o}" for o, n in counts.items() if n
    )
    lines = textwrap.wrap(head, width) or [head]
    if cells:
        lines += _matrix_lines(cells, width, color)
    lines.append("")
    lines += textwrap.wrap("Verdict: " + verdict_data(results)["text"], width)
    return "\n".join(lines)


def _matrix_lines(cells: list[Mapping[str, Any]], width: int, color: bool) -> list[str]:
    layout = build_layout(cells)
    # slots used per kind, in layout order; outcomes per (subject, kind, slot)
    kind_slots: dict[str, list[tuple[str, str]]] = defaultdict(list)
    grid: dict[tuple[str, str, tuple[str, str]], list[str]] = defaultdict(list)
    for c in cells:
        kind, slot = str(c.get("target_kind") or "T-?"), (c["layer"], c["protocol"])
        grid[(c["subject"], kind, slot)].append(str(c["outcome"]))
    for kind in layout.kinds:
        kind_slots[kind] = [s for s in layout.slots if any((sub, kind, s) in grid for sub in layout.subjects)]
    label_w = min(20, max(len(subject_label(s)) for s in layout.subjects))
    col_w = {k: max(len(KIND_SHORT.get(k, k)), len(kind_slots[k])) for k in layout.kinds}
    # split the kinds into blocks that fit the width (label + one space before each column)
    blocks: list[list[str]] = [[]]
    used = label_w
    for kind in layout.kinds:
        need = 1 + col_w[kind]
        if blocks[-1] and used + need > width:
            blocks.append([])
            used = label_w
        blocks[-1].append(kind)
        used += need
    lines = ["", LEGEND if len(LEGEND) <= width else LEGEND[:width], *_column_key(layout, width)]
    for block in blocks:
        lines.append("")
        titles = "".join(" " + KIND_SHORT.get(k, k)[: col_w[k]].ljust(col_w[k]) for k in block)
        layer_row = "".join(
            " " + "".join(layout.slot_codes[s][0] for s in kind_slots[k]).ljust(col_w[k]) for k in block
        )
        proto_row = "".join(
            " " + "".join(layout.slot_codes[s][1:2] or " " for s in kind_slots[k]).ljust(col_w[k])
            for k in block
        )
        lines += [(" " * label_w + row).rstrip() for row in (titles, layer_row, proto_row)]
        for subject in layout.subjects:
            row = [subject_label(subject)[:label_w].ljust(label_w)]
            for kind in block:
                chars = [
                    _char(grid[(subject, kind, s)], color) if (subject, kind, s) in grid else " "
                    for s in kind_slots[kind]
                ]
                row.append(" " + "".join(chars) + " " * (col_w[kind] - len(kind_slots[kind])))
            lines.append("".join(row).rstrip())
    return lines


def _column_key(layout: Any, width: int) -> list[str]:
    """What the two header rows under each target kind mean: layer digit over protocol letter."""
    order = {layer: i for i, layer in enumerate(("L2", "L3", "L4", "L7", "DNS"))}
    slots = sorted(layout.slot_codes.items(), key=lambda item: (order.get(item[0][0], 9), item[0]))
    words = [f"{code[:1]}/{code[1:2] or ' '}={layer} {proto}" for (layer, proto), code in slots]
    lines, line = [], "columns, layer over protocol:"
    for word in words:
        if len(line) + 2 + len(word) > width:
            lines.append(line)
            line = " "
        line += "  " + word
    return [*lines, line]


def write_terminal_summary(terminalreporter: Any, results: Mapping[str, Any]) -> None:
    """For the suite plugin's ``pytest_terminal_summary``: the block, coloured as pytest colours."""
    color = bool(getattr(terminalreporter, "hasmarkup", False)) and not os.environ.get("NO_COLOR")
    terminalreporter.write_sep("=", "netconform matrix")
    for line in render_terminal(results, width=100, color=color).splitlines():
        terminalreporter.write_line(line)
