"""The data of matrix.html for big runs: node x node heat maps, with the cells compressed on the side.

From :data:`BIG_MATRIX_CELLS` cells on (about 16 nodes with every family), a per-cell matrix no longer
fits a page a browser opens quickly (4.9 MB at 20 nodes, ~120 MB at 100). The page then shows:

- one heat map per *plane* of node-pair cells (subject family, target family, layer, protocol: "pods ->
  pods L4 tcp", "host -> nodes L2 arp" ...), plus the "all planes" aggregate: subject node x target node,
  each square the worst outcome there (``x`` = some of several failed, so one bad pair stands apart from
  a cluster-wide failure);
- a compact subject x target-kind table for every cell that is not between two nodes (ClusterIP, DNS,
  outside, components, the outside client, cluster-wide checks);
- the cells themselves as gzip + base64 blobs, one per subject node (and one for subjects without a
  node), inflated by the browser (``DecompressionStream``) only when a square is clicked.

Everything is deterministic (gzip ``mtime=0``, cells in key order), so the page stays a pure function of
results.json.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from netconform.report.layout import SEVERITY, TARGET_FAMILY_LABEL, Layout, kind_label, subject_label
from netconform.report.results import family_of, natural_key, node_of

# below this many cells the page keeps the full per-cell matrix (a 16-node run has ~2,900 cells with
# every family; the full matrix of 4,534 cells at 20 nodes is 4.9 MB and slow to lay out)
BIG_MATRIX_CELLS = 3000
# target families whose cells name a node: a subject node -> target node square of a heat map
PAIR_TARGETS = frozenset({"pod", "node", "nodeport", "coredns", "nameserver"})
# one character per square: the worst outcome of its cells; "x" when some of several failed
SQUARE = {"passed": "p", "failed": "F", "flaky": "f", "skipped": "s", "error": "E"}
PARTIAL = "x"
NONE = "."
SUBJECT_FAMILY_NOUN = {"pod": "pods", "host": "host"}
ALL_PLANES = "all"


def square(outcomes: Sequence[str]) -> str:
    """The character of one square (or one table cell) for the outcomes of its cells."""
    if not outcomes:
        return NONE
    top = max(outcomes, key=lambda o: SEVERITY.get(o, 0))
    if top == "failed" and any(o != "failed" for o in outcomes):
        return PARTIAL
    return SQUARE.get(top, "?")


def pair_of(cell: Mapping[str, Any]) -> tuple[str, str] | None:
    """(subject node, target node) when the cell is between two nodes of the cluster, else None."""
    subject, target = str(cell["subject"]), str(cell["target"])
    a, b = node_of(subject), node_of(target)
    if a is None or b is None or family_of(target) not in PAIR_TARGETS:
        return None
    return a, b


def plane_of(cell: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (family_of(str(cell["subject"])), family_of(str(cell["target"])), cell["layer"], cell["protocol"])


def plane_label(plane: tuple[str, str, str, str]) -> str:
    subject, target, layer, protocol = plane
    return (
        f"{SUBJECT_FAMILY_NOUN.get(subject, subject)} → {TARGET_FAMILY_LABEL.get(target, target)} "
        f"{layer} {protocol}"
    )


def pack(value: Any) -> str:
    """JSON, gzip (deterministic: no timestamp), base64: what the page inflates on demand."""
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def unpack(text: str) -> Any:
    """The inverse of :func:`pack` (for tests and tools)."""
    return json.loads(gzip.decompress(base64.b64decode(text)).decode("utf-8"))


def heatmap_data(cells: Sequence[Mapping[str, Any]], layout: Layout, nodes: Sequence[str]) -> dict[str, Any]:
    """The ``big`` part of the page data for cells in canonical order (see the module docstring)."""
    node_list = sorted(
        {*nodes, *(n for c in cells for n in (pair_of(c) or ()))},
        key=natural_key,
    )
    node_index = {n: i for i, n in enumerate(node_list)}
    slot_index = {s: i for i, s in enumerate(layout.slots)}
    size = len(node_list)

    planes: dict[tuple[str, str, str, str], dict[tuple[int, int], list[str]]] = defaultdict(
        lambda: defaultdict(list)
    )
    every: dict[tuple[int, int], list[str]] = defaultdict(list)
    # the other cells: subject x target kind
    rest: dict[tuple[str, str], list[str]] = defaultdict(list)
    chunks: list[list[dict[str, Any]]] = [[] for _ in range(size + 1)]  # last: subjects without a node
    for cell in cells:
        outcome = str(cell["outcome"])
        pair = pair_of(cell)
        slot = slot_index[(cell["layer"], cell["protocol"])]
        subject_node = node_of(str(cell["subject"]))
        if pair is not None:
            at = (node_index[pair[0]], node_index[pair[1]])
            planes[plane_of(cell)][at].append(outcome)
            every[at].append(outcome)
        else:
            rest[(str(cell["subject"]), str(cell.get("target_kind") or "T-?"))].append(outcome)
        chunk = node_index.get(subject_node, size) if subject_node is not None else size
        chunks[chunk].append({**cell, "_s": slot})

    def grid(squares: Mapping[tuple[int, int], list[str]]) -> str:
        return "".join(square(squares.get((i, j), [])) for i in range(size) for j in range(size))

    def failing_pairs(squares: Mapping[tuple[int, int], list[str]]) -> int:
        return sum(1 for outcomes in squares.values() if square(outcomes) in ("F", PARTIAL, "E"))

    ordered = sorted(planes, key=lambda p: (p[0], p[1], layout.slots.index((p[2], p[3]))))
    plane_rows = [
        {
            "id": ALL_PLANES,
            "label": "all node-pair checks",
            "grid": grid(every),
            "failing": failing_pairs(every),
        }
    ] + [
        {
            "id": "|".join(p),
            "label": plane_label(p),
            "subject": p[0],
            "target": p[1],
            "layer": p[2],
            "protocol": p[3],
            "grid": grid(planes[p]),
            "failing": failing_pairs(planes[p]),
        }
        for p in ordered
    ]
    subjects = [s for s in layout.subjects if any((s, k) in rest for k in layout.kinds)]
    kinds = [k for k in layout.kinds if any((s, k) in rest for s in subjects)]
    return {
        "nodes": node_list,
        "planes": plane_rows,
        "rest": {
            "subjects": [
                {"id": s, "label": subject_label(s), "chunk": node_index.get(node_of(s) or "", size)}
                for s in subjects
            ],
            "kinds": [{"id": k, "label": kind_label(k)} for k in kinds],
            "grid": "".join(square(rest.get((s, k), [])) for s in subjects for k in kinds),
        },
        "chunks": [pack(chunk) for chunk in chunks],
        "square": {**SQUARE, "partial": PARTIAL, "none": NONE},
        "pair_targets": sorted(PAIR_TARGETS),
    }


__all__ = ["BIG_MATRIX_CELLS", "heatmap_data", "pack", "pair_of", "plane_label", "square", "unpack"]
