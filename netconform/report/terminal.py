"""The end-of-run terminal summary: a compact matrix (one character per layer per cell) and the verdict.

Columns are the target *kinds* (pod same node, pod other node, ClusterIP ...), so 12 nodes still fit in
100 columns; inside a kind, one character per layer/protocol slot shows the worst outcome of the
subject's cells there, with ``x`` for "some of several failed" so one bad node stands out from a
cluster-wide failure. Colour only when asked for (a TTY without ``NO_COLOR``), painted by pytest's own
``TerminalWriter``.

A big run (at least ``BIG_MATRIX_CELLS`` cells, ~16 nodes) stays bounded: the failing node pairs are
summed up per node (the ten worst), and the matrix keeps only the subjects that have a cell that did not
pass (at most :data:`BIG_ROWS`), with a line saying how many healthy subjects it left out.
"""

from __future__ import annotations

import io
import textwrap
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any, TextIO

from _pytest._io import TerminalWriter

from netconform.report.heatmap import BIG_MATRIX_CELLS, pair_of
from netconform.report.layout import KIND_SHORT, build_layout, subject_label, subject_sort_key, worst
from netconform.report.results import FAILING, canonical_cells, count_outcomes, natural_key, nodes_of
from netconform.report.verdict import verdict_data

CHAR = {"passed": ".", "failed": "F", "flaky": "f", "skipped": "s", "error": "E"}
PARTIAL_FAIL = "x"
MARKUP: dict[str, dict[str, bool]] = {
    "passed": {"green": True},
    "failed": {"red": True, "bold": True},
    "flaky": {"yellow": True, "bold": True},
    "skipped": {"light": True},
    "error": {"purple": True, "bold": True},
    "partial": {"red": True},
}
BIG_ROWS = 30  # subjects shown in a big run's matrix (those with a cell that did not pass)
BIG_NODES = 10  # nodes listed with their failing pairs in a big run
LEGEND = ". passed  F failed  x some failed  f flaky  E error  s skipped  (blank) not run"


def use_color(stream: TextIO) -> bool:
    """pytest's rule: colour for a TTY unless NO_COLOR is set or TERM is dumb (PY_COLORS/FORCE_COLOR win)."""
    return bool(TerminalWriter(stream).hasmarkup)


def _writer(color: bool) -> TerminalWriter:
    """A TerminalWriter used only for its markup (the text is returned, not written)."""
    writer = TerminalWriter(io.StringIO())
    writer.hasmarkup = color
    return writer


def _char(outcomes: list[str], writer: TerminalWriter) -> str:
    top = worst(outcomes)
    if top == "failed" and len(set(outcomes)) > 1:
        return writer.markup(PARTIAL_FAIL, **MARKUP["partial"])
    return writer.markup(CHAR.get(top, "?"), **MARKUP.get(top, {}))


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
    writer = _writer(color)
    if len(cells) >= BIG_MATRIX_CELLS:
        lines += _node_pair_lines(cells, width)
        subjects = {str(c["subject"]) for c in cells}
        # the subjects with the most cells that did not pass, shown in the usual row order
        bad = Counter(str(c["subject"]) for c in cells if c["outcome"] not in ("passed", "skipped"))
        troubled = sorted(bad, key=lambda s: (-bad[s], subject_sort_key(s)))
        keep = set(troubled[:BIG_ROWS])
        if keep:
            lines += _matrix_lines([c for c in cells if c["subject"] in keep], width, writer)
        more = len(troubled) - len(keep)
        note = f"{len(subjects) - len(keep)} of {len(subjects)} subjects not shown: " + (
            f"{more} more with cells that did not pass (see matrix.html), the others all passed or skipped"
            if more
            else "every cell of theirs passed or was skipped"
        )
        lines += ["", *textwrap.wrap(note, width)]
    elif cells:
        lines += _matrix_lines(cells, width, writer)
    lines.append("")
    lines += textwrap.wrap("Verdict: " + verdict_data(results)["text"], width)
    return "\n".join(lines)


def _node_pair_lines(cells: list[Mapping[str, Any]], width: int) -> list[str]:
    """A big run's node pairs in a few lines: how many fail, and the nodes most of them touch."""
    nodes: set[str] = set()
    out: dict[str, set[str]] = defaultdict(set)
    into: dict[str, set[str]] = defaultdict(set)
    failing: Counter[str] = Counter()
    for cell in cells:
        pair = pair_of(cell)
        if pair is None:
            continue
        nodes.update(pair)
        if cell["outcome"] in FAILING:
            a, b = pair
            out[a].add(b)
            into[b].add(a)
            failing.update({a, b})
    pairs = sum(len(v) for v in out.values())
    if not pairs:
        return ["", f"node pairs: no failing cell between any two of the {len(nodes)} nodes"]
    ranked = sorted(failing, key=lambda n: (-(len(out[n]) + len(into[n])), natural_key(n)))
    lines = ["", f"failing node pairs: {pairs} of {len(nodes) ** 2}; the nodes they touch most:"]
    for node in ranked[:BIG_NODES]:
        to, since = len(out[node]), len(into[node])
        line = f"  {node}: to {to} node{'s' * (to != 1)}, from {since} node{'s' * (since != 1)}"
        lines.append(f"{line} ({failing[node]} failing cells)"[:width])
    if len(ranked) > BIG_NODES:
        lines.append(f"  and {len(ranked) - BIG_NODES} more nodes in failing pairs")
    return lines


def _matrix_lines(cells: list[Mapping[str, Any]], width: int, writer: TerminalWriter) -> list[str]:
    layout = build_layout(cells)
    # slots used per kind, in layout order; outcomes per (subject, kind, slot)
    kind_slots: dict[str, list[tuple[str, str]]] = defaultdict(list)
    grid: dict[tuple[str, str, tuple[str, str]], list[str]] = defaultdict(list)
    for c in cells:
        kind, slot = str(c.get("target_kind") or "T-?"), (c["layer"], c["protocol"])
        grid[(c["subject"], kind, slot)].append(str(c["outcome"]))
    for kind in layout.kinds:
        kind_slots[kind] = [s for s in layout.slots if any((sub, kind, s) in grid for sub in layout.subjects)]
    label_w = min(28, max(len(subject_label(s)) for s in layout.subjects))
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
                    _char(grid[(subject, kind, s)], writer) if (subject, kind, s) in grid else " "
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
    color = bool(getattr(terminalreporter, "hasmarkup", False))  # pytest's TerminalWriter decided
    terminalreporter.write_sep("=", "netconform matrix")
    for line in render_terminal(results, width=100, color=color).splitlines():
        terminalreporter.write_line(line)
