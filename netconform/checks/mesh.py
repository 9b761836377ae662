"""The pod mesh as node groups (FM-13): which nodes' pods reach which, from the pod-pod TCP cells.

The shape is decided by `netconform.model.partition.analyze`, the one algorithm the FM-13 cell, the
diagnosis and the verdict share.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from netconform.checks.context import Context
from netconform.checks.judging import Results
from netconform.checks.probes import Probe
from netconform.model.cell import Cell
from netconform.model.partition import Partition, analyze
from netconform.model.topology import Topology
from netconform.model.verdict import Verdict

Lookup = Callable[[Cell], str | None]


def cell_ok(lookup: Lookup, cell: Cell) -> bool | None:
    outcome = lookup(cell)
    if outcome is None or outcome in ("skipped", "error"):
        return None
    return outcome in ("passed", "flaky")


def partition(topo: Topology, lookup: Lookup) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """Groups of nodes whose pods reach each other, and the failing (from, to) node pairs (FM-13).

    The shape is decided by :func:`netconform.model.partition.analyze`, the same algorithm the verdict
    uses; only a real partition (``isolated``/``groups``) splits the nodes into several groups.
    """
    shape = mesh_partition(topo, lookup)
    groups = [list(g) for g in shape.groups] if shape.shape in ("isolated", "groups") else [topo.node_names]
    return groups, list(shape.broken)


def mesh_partition(topo: Topology, lookup: Lookup) -> Partition:
    """The shape of the pod-pod TCP cells: broken where they fail, working where they pass (a sampled
    mesh or a cell not measured leaves a pair unknown, and the sentence says how many are)."""
    nodes = topo.node_names
    broken: list[tuple[str, str]] = []
    working: list[tuple[str, str]] = []
    for a in nodes:
        for b in nodes:
            ok = cell_ok(lookup, Cell(f"pod@{a}", f"pod@{b}", "L4", "tcp")) if a != b else None
            if ok is not None:
                (working if ok else broken).append((a, b))
    return analyze(nodes, broken, working)


def describe_partition(topo: Topology, lookup: Lookup) -> str | None:
    shape = mesh_partition(topo, lookup)
    if shape.shape == "none":
        return None
    return f"{shape.describe('pod traffic')} ({len(shape.broken)} failing node pairs)"


def judge_pod_mesh(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-13 from the pod-pod TCP outcomes already judged: one line naming the groups that are cut."""
    topo = ctx.topo
    text = describe_partition(topo, ctx.outcome_of)
    if text:
        groups, broken = partition(topo, ctx.outcome_of)
        return Verdict(
            "failed",
            text,
            error="timeout",
            classified_layer="L3",
            meaning="a group of nodes cannot reach another group (FM-13)",
            classified_fm="FM-13",
            notes=[json.dumps({"groups": groups, "broken": broken})],
        )
    return Verdict("passed", f"every node's pods reach every node's pods ({len(topo.nodes)} nodes)")
