"""Scope inference: the smallest description, in the matrix's coordinates, of the cells that fail.

Every measured cell is a point: subject (family ``pod``/``host``/``external``/``cluster`` and node),
target (class ``pod``/``node``/``clusterip``/``coredns``/``outside``/... and node), path (``same-node``,
``cross-node``, ``off-cluster`` or ``-``) and channel (layer and protocol, e.g. ``L3 icmp``, ``DNS udp``).
A :class:`Box` is a conjunction of constraints on those coordinates (any coordinate may be left free).
:func:`infer` looks for the box with the fewest constraints that covers every failing point and no
passing one; when none exists it covers the failing points with a few boxes (greedy set cover, e.g. one
per partition edge). Cells that could not be measured (outcome ``error``) and skipped cells are never
points: they cannot move the scope. Flaky cells are inferred apart (:func:`infer` with ``target="flaky"``).

Pure: the input is the cells' dicts as in ``results.json``; the output is frozen dataclasses.

>>> cells = [
...     {"key": f"k{s}{t}{p}", "subject": f"pod@n{s}", "target": f"pod@n{t}", "layer": lay, "protocol": p,
...      "outcome": "failed" if p == "icmp" and s != t else "passed"}
...     for s in (1, 2) for t in (1, 2) for lay, p in (("L3", "icmp"), ("L4", "tcp"))]
>>> [b.describe() for b in infer(cells).boxes]
['ICMP (ping) only, on cross-node paths']
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from netconform.model.channels import channel_words
from netconform.model.partition import join_words, natural
from netconform.model.refs import Ref

CellDict = Mapping[str, Any]

#: outcomes that are points of the network scope
MEASURED = ("passed", "failed", "flaky")

PATH_WORDS = {
    "same-node": "same-node paths",
    "cross-node": "cross-node paths",
    "off-cluster": "paths that leave the cluster",
    "-": "paths through a Service, a name or a component",
}
FAMILY_WORDS = {
    "pod": "pods",
    "workload": "workload pods (--subject)",
    "host": "nodes (host network)",
    "external": "the outside client",
    "cluster": "cluster-wide checks",
}
CLASS_WORDS = {
    "pod": "pod IPs",
    "node": "node IPs",
    "clusterip": "the ClusterIP Service",
    "nodeport": "NodePorts",
    "lb-vip": "the LoadBalancer VIP",
    "dns-internal": "cluster names via kube-dns",
    "dns-external": "external names via kube-dns",
    "coredns": "the CoreDNS pods directly",
    "nameserver": "the nodes' nameservers",
    "outside": "the outside",
    "internet": "the internet",
}


def class_words(target_class: str) -> str:
    if target_class.startswith("component:"):
        return target_class.split(":", 1)[1]
    if target_class.startswith("ingress:"):
        return f"the ingress of class {target_class.split(':', 1)[1]}"
    if target_class.startswith("gateway:"):
        return f"Gateway {target_class.split(':', 1)[1]}"
    return CLASS_WORDS.get(target_class, target_class)


def _node(scope_id: str) -> str | None:
    return Ref.parse(scope_id).node


@dataclass(frozen=True)
class Point:
    """One measured cell in the matrix's coordinates."""

    key: str
    family: str
    subject_node: str | None
    target_class: str
    target_node: str | None
    path: str
    channel: str
    outcome: str
    fail_ratio: float  # failed attempts / attempts over the cell's checks (1.0 when unknown and failed)

    @property
    def involved(self) -> frozenset[str]:
        return frozenset(n for n in (self.subject_node, self.target_node) if n)

    @property
    def pair(self) -> tuple[str, str] | None:
        if self.subject_node and self.target_node and self.subject_node != self.target_node:
            return (self.subject_node, self.target_node)
        return None


def _fail_ratio(cell: CellDict) -> float:
    attempts = [
        a for c in (cell.get("evidence") or {}).get("checks", []) or [] for a in c.get("attempts", []) or []
    ]
    if not attempts:
        return {"failed": 1.0, "passed": 0.0}.get(str(cell.get("outcome")), -1.0)  # -1: not known
    return sum(1 for a in attempts if not a.get("ok")) / len(attempts)


def point_of(cell: CellDict) -> Point:
    """The coordinates of one cell dict (``subject``, ``target``, ``layer``, ``protocol``, ``outcome``)."""
    subject, target = str(cell["subject"]), str(cell["target"])
    family, dest = Ref.parse(subject).head, Ref.parse(target)
    tclass = target if dest.name is not None else dest.head  # each component, ingress, check: its own class
    s_node, t_node = _node(subject), _node(target)
    if family == "cluster":
        s_node = None
    if s_node and t_node:
        path = "same-node" if s_node == t_node else "cross-node"
    elif tclass in ("outside", "internet"):
        path = "off-cluster"
    else:
        path = "-"
    key = cell.get("key") or "|".join([subject, target, str(cell["layer"]), str(cell["protocol"])])
    return Point(
        key=str(key),
        family=family,
        subject_node=s_node,
        target_class=tclass,
        target_node=t_node,
        path=path,
        channel=f"{cell['layer']} {cell['protocol']}",
        outcome=str(cell.get("outcome")),
        fail_ratio=round(_fail_ratio(cell), 3),
    )


# the free coordinates (sets of values); node constraints are separate (they have shapes)
COORDS = ("family", "target_class", "path", "channel")
NODE_MODES = ("subject", "target", "both", "involves", "pairs")
#: a single box up to this cost is preferred to any union of boxes
SIMPLE = 5.0
#: the search's size bound: per grouping of the greedy cover, the biggest groups tried (a 100-node run with
#: scattered failures has hundreds of node and pair groups; the verdict must still take seconds)
MAX_GROUPS = 40
#: target classes reached through a translation or a server (a Service, a name): their failures follow
#: from the direct paths (backend pod, DNS server) when those fail too
INDIRECT = frozenset(
    {
        "clusterip",
        "nodeport",
        "lb-vip",
        "dns-internal",
        "dns-external",
        "component:pod-mesh",
        # the API server's endpoint lives on a node behind the control-plane VIP: a node cut off from the
        # others loses it too, as a consequence
        "component:apiserver",
        "component:control-plane-vip",
    }
)


def indirect(target_class: str) -> bool:
    """Reached through a translation, a server or a proxy (an ingress of any class counts too).

    >>> indirect("clusterip"), indirect("ingress:nginx"), indirect("gateway:a/gw"), indirect("pod")
    (True, True, True, False)
    """
    return target_class in INDIRECT or target_class.startswith(("ingress:", "gateway:"))


@dataclass(frozen=True)
class Box:
    """A conjunction of constraints; ``None`` means the coordinate is free."""

    family: frozenset[str] | None = None
    target_class: frozenset[str] | None = None
    path: frozenset[str] | None = None
    channel: frozenset[str] | None = None
    subject_nodes: frozenset[str] | None = None
    target_nodes: frozenset[str] | None = None
    involves: frozenset[str] | None = None
    pairs: frozenset[tuple[str, str]] | None = None

    def matches(self, p: Point) -> bool:
        for name in COORDS:
            allowed = getattr(self, name)
            if allowed is not None and getattr(p, name) not in allowed:
                return False
        if self.subject_nodes is not None and p.subject_node not in self.subject_nodes:
            return False
        if self.target_nodes is not None and p.target_node not in self.target_nodes:
            return False
        if self.involves is not None and not (p.involved & self.involves):
            return False
        return not (self.pairs is not None and p.pair not in self.pairs)

    @property
    def terms(self) -> int:
        """Constrained coordinates."""
        return len(self.constrained())

    @property
    def cost(self) -> float:
        """Description length: one per term, half per extra value listed (pairs are the last resort)."""
        n = 0.0
        for name in (*COORDS, "subject_nodes", "target_nodes", "involves"):
            value = getattr(self, name)
            if value is not None:
                n += 1 + 0.5 * (len(value) - 1)
        if self.pairs is not None:
            n += 2 + 0.5 * len(self.pairs)
        return n

    def constrained(self) -> list[str]:
        names = [c for c in COORDS if getattr(self, c) is not None]
        names += [
            n for n in ("subject_nodes", "target_nodes", "involves", "pairs") if getattr(self, n) is not None
        ]
        return names

    def relax(self, name: str) -> Box:
        return replace(self, **{name: None})

    def describe(self) -> str:
        """The scope in words: protocol/layer first (the matrix's third coordinate), then subject, target."""
        parts: list[str] = []
        if self.channel is not None:
            parts.append(join_words(channel_words(c) for c in sorted(self.channel)) + " only")
        if self.family is not None or self.subject_nodes is not None:
            fam = join_words(FAMILY_WORDS.get(f, f) for f in sorted(self.family or ())) or "subjects"
            if self.subject_nodes is not None:
                fam = f"{fam} on {_nodes(self.subject_nodes)}"
            parts.append(f"from {fam}")
        if self.target_class is not None or self.target_nodes is not None:
            what = join_words(class_words(t) for t in sorted(self.target_class or ())) or "targets"
            if self.target_nodes is not None:
                what = f"{what} on {_nodes(self.target_nodes)}"
            parts.append(f"to {what}")
        if self.path is not None:
            paths = sorted(self.path)
            if set(paths) == {"cross-node", "off-cluster"}:
                parts.append("on paths that leave the subject's node")
            else:
                parts.append("on " + join_words(PATH_WORDS.get(p, p) for p in paths))
        if self.involves is not None:
            parts.append(f"through {_nodes(self.involves)}")
        if self.pairs is not None:
            parts.append(
                "between the node pairs " + ", ".join(f"{a}→{b}" for a, b in _sorted_pairs(self.pairs))
            )
        return ", ".join(parts) if parts else "everything measured"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in (*COORDS, "subject_nodes", "target_nodes", "involves"):
            value = getattr(self, name)
            if value is not None:
                out[name] = sorted(value, key=natural)
        if self.pairs is not None:
            out["pairs"] = [list(p) for p in _sorted_pairs(self.pairs)]
        return out


def _sorted_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(pairs, key=lambda p: (natural(p[0]), natural(p[1])))


def _nodes(nodes: Iterable[str]) -> str:
    return join_words(sorted(nodes, key=natural))


@dataclass(frozen=True)
class Contrast:
    """Passing cells that differ from the scope in one coordinate: the evidence that bounds it."""

    coordinate: str
    text: str
    keys: tuple[str, ...]
    working: tuple[str, ...] = ()  # the values of that coordinate that work

    def to_json(self) -> dict[str, Any]:
        return {"coordinate": self.coordinate, "text": self.text, "cells": list(self.keys)}


@dataclass(frozen=True)
class Scope:
    """One box and the failing (or flaky) cells it covers, with its contrasts."""

    box: Box
    points: tuple[Point, ...]
    contrasts: tuple[Contrast, ...] = ()
    exact: bool = True  # False only when a passing cell has the very same coordinates
    # Service / DNS-name cells that fail because of this scope (a backend or server it cuts off)
    consequences: tuple[Point, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in (*self.points, *self.consequences))

    @property
    def nodes(self) -> set[str]:
        """Nodes named by the box, else the nodes every covered cell involves."""
        for named in (self.box.involves, self.box.subject_nodes, self.box.target_nodes):
            if named is not None:
                return set(named)
        sets = [set(p.involved) for p in self.points if p.involved]
        return set.intersection(*sets) if sets and len(sets) == len(self.points) else set()

    def values(self, name: str) -> set[Any]:
        return {getattr(p, name) for p in self.points}

    def fail_ratio(self) -> float | None:
        """Failed attempts per attempt over the covered cells (None when the attempts are not known)."""
        known = [p.fail_ratio for p in self.points if p.fail_ratio >= 0]
        return round(sum(known) / len(known), 3) if known else None

    def describe(self) -> str:
        """The box in words; a long protocol list is said as "all but" what the contrast shows working."""
        box = self.box
        if box.channel is not None and len(box.channel) >= 3:
            working = {p for c in self.contrasts if c.coordinate == "channel" for p in c.working}
            if working and len(working) < len(box.channel):
                text = replace(box, channel=None).describe()
                but = "everything but " + join_words(channel_words(c) for c in sorted(working))
                return but if text == "everything measured" else f"{but}, {text}"
        return self._named().describe()

    def _named(self) -> Box:
        """The box with a single covered family / target class written out where nodes are named
        ("from pods on node-3", not "from subjects on node-3"): the same cells, plainer words."""
        box = self.box
        fams, classes = self.values("family"), self.values("target_class")
        if box.family is None and box.subject_nodes is not None and len(fams) == 1:
            box = replace(box, family=frozenset(fams))
        if box.target_class is None and box.target_nodes is not None and len(classes) == 1:
            box = replace(box, target_class=frozenset(classes))
        return box

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.describe(),
            "box": self.box.to_json(),
            "cells": [p.key for p in self.points],
            "consequences": [p.key for p in self.consequences],
            "contrasts": [c.to_json() for c in self.contrasts],
            "fail_ratio": self.fail_ratio(),
            "exact": self.exact,
        }


@dataclass(frozen=True)
class Inference:
    """The boxes that together cover the failing (or flaky) points."""

    scopes: tuple[Scope, ...]
    target: str  # "failed" or "flaky"
    #: failed Service / name cells left to the flaky inference: see :func:`_flickering`
    unlucky: tuple[Point, ...] = ()

    def explains(self, p: Point) -> bool:
        return any(_explains(s, p, True) for s in self.scopes)

    @property
    def boxes(self) -> list[Box]:
        return [s.box for s in self.scopes]

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.scopes]


# ---- search -------------------------------------------------------------------------------------------


def _hitting_sets(points: Sequence[Point], limit: int = 2) -> list[frozenset[str]]:
    """Smallest node sets that every point involves at least one of (up to `limit` nodes)."""
    if not points or any(not p.involved for p in points):
        return []
    nodes = sorted(set().union(*(p.involved for p in points)), key=natural)
    for size in range(1, limit + 1):
        found = [
            frozenset(c)
            for c in itertools.combinations(nodes, size)
            if all(p.involved & set(c) for p in points)
        ]
        if found:
            return found
    return []


def _node_options(points: Sequence[Point]) -> list[dict[str, Any]]:
    s_nodes = {p.subject_node for p in points}
    t_nodes = {p.target_node for p in points}
    options: list[dict[str, Any]] = [{}]
    if None not in s_nodes:
        options.append({"subject_nodes": frozenset(n for n in s_nodes if n)})
    if None not in t_nodes:
        options.append({"target_nodes": frozenset(n for n in t_nodes if n)})
    if None not in s_nodes and None not in t_nodes:
        options.append(
            {
                "subject_nodes": frozenset(n for n in s_nodes if n),
                "target_nodes": frozenset(n for n in t_nodes if n),
            }
        )
    options += [{"involves": h} for h in _hitting_sets(points)]
    pairs = {p.pair for p in points}
    if None not in pairs:
        options.append({"pairs": frozenset(x for x in pairs if x)})
    return options


def _order(box: Box) -> tuple[Any, ...]:
    # fewest terms; then prefer the protocol/layer and path coordinates (a flowchart narrows layer early),
    # then node terms over target-class lists; finally a stable text order
    pref = {
        "channel": 0,
        "path": 1,
        "involves": 2,
        "subject_nodes": 3,
        "target_nodes": 3,
        "family": 4,
        "target_class": 5,
        "pairs": 6,
    }
    return (box.cost, sorted(pref[c] for c in box.constrained()), box.describe())


def best_box(points: Sequence[Point], passing: Sequence[Point]) -> Box | None:
    """The simplest box covering every point of `points` and no point of `passing` (None: there is none).

    >>> f = [Point("a", "pod", "n1", "pod", "n2", "cross-node", "L3 icmp", "failed", 1.0)]
    >>> ok = [Point("b", "pod", "n1", "pod", "n2", "cross-node", "L4 tcp", "passed", 0.0)]
    >>> best_box(f, ok).describe()
    'ICMP (ping) only'
    """
    if not points:
        return None
    bounds = {c: frozenset(getattr(p, c) for p in points) for c in COORDS}
    best: Box | None = None
    options = _node_options(points)
    by_coords: dict[tuple[str, ...], list[Point]] = {}  # passing points by their free coordinates
    by_node: dict[tuple[str, Any], list[Point]] = {}  # ... and by subject node, target node, pair
    for q in passing:
        by_coords.setdefault(tuple(getattr(q, c) for c in COORDS), []).append(q)
        by_node.setdefault(("subject_nodes", q.subject_node), []).append(q)
        by_node.setdefault(("target_nodes", q.target_node), []).append(q)
        if q.pair:
            by_node.setdefault(("pairs", q.pair), []).append(q)
    node_near = [_node_candidates(nodes, by_node) for nodes in options]
    for chosen in itertools.product((False, True), repeat=len(COORDS)):
        fixed = {c: bounds[c] for c, on in zip(COORDS, chosen, strict=True) if on}
        near: list[Point] | None = None  # the passing points inside the fixed coordinates, once per choice
        for nodes, candidates in zip(options, node_near, strict=True):
            box = Box(**fixed, **nodes)
            if best is not None and _order(box) >= _order(best):
                continue
            if candidates is not None:  # fewer passing points to test: those on the box's nodes
                if any(box.matches(q) for q in candidates):
                    continue
                best = box
                continue
            if near is None:
                near = [
                    q
                    for coords, qs in by_coords.items()
                    if all(coords[i] in bounds[c] for i, c in enumerate(COORDS) if c in fixed)
                    for q in qs
                ]
            if any(box.matches(q) for q in near):
                continue
            best = box
    return best


def _node_candidates(
    nodes: Mapping[str, Any], by_node: Mapping[tuple[str, Any], list[Point]]
) -> list[Point] | None:
    """The passing points that a box with these node constraints can match (a superset), from the
    index; None when the option constrains no node (every passing point is a candidate)."""
    if not nodes:
        return None
    keys: list[tuple[str, Any]] = []
    if "subject_nodes" in nodes:
        keys = [("subject_nodes", n) for n in nodes["subject_nodes"]]
    elif "target_nodes" in nodes:
        keys = [("target_nodes", n) for n in nodes["target_nodes"]]
    elif "pairs" in nodes:
        keys = [("pairs", pair) for pair in nodes["pairs"]]
    elif "involves" in nodes:
        keys = [(side, n) for n in nodes["involves"] for side in ("subject_nodes", "target_nodes")]
    else:
        return None
    return [q for k in keys for q in by_node.get(k, ())]


Grouping = Callable[[Point], Iterable[Any]]

GROUPINGS: tuple[Grouping, ...] = (
    lambda p: [0],
    lambda p: [p.channel],
    lambda p: [p.target_class],
    lambda p: [p.family],
    lambda p: [p.subject_node],
    lambda p: [p.target_node],
    lambda p: list(p.involved),
    lambda p: [(p.channel, p.target_class)],
    lambda p: [(p.family, p.target_class)],
    lambda p: [(p.channel, p.subject_node)],
    lambda p: [(p.target_class, p.target_node)],
    lambda p: [frozenset(p.pair)] if p.pair else [],
    lambda p: [(p.family, p.target_class, p.channel)],
)


def cover(failing: Sequence[Point], passing: Sequence[Point], max_boxes: int = 8) -> list[Box]:
    """A few boxes that together cover `failing` and exclude `passing`: one box when a simple one exists
    (cost at most :data:`SIMPLE`), else a greedy set cover by cells covered per unit of cost."""
    single = best_box(failing, passing)
    if single is not None and single.cost <= SIMPLE:
        return [single]
    uncovered = list(failing)
    boxes: list[Box] = []
    known: dict[tuple[str, ...], Box | None] = {}  # a group's best box does not change between rounds
    while uncovered and len(boxes) < max_boxes:
        best: tuple[Any, ...] | None = None
        tried: set[tuple[str, ...]] = set()
        for grouping in GROUPINGS:
            groups: dict[Any, list[Point]] = {}
            for p in uncovered:
                for k in grouping(p):
                    groups.setdefault(k, []).append(p)
            # bound (docs/scale.md): the MAX_GROUPS biggest groups of each grouping; a run with fewer
            # groups (every grouping up to 6 nodes, most up to 20) is searched in full, as before
            chosen = sorted(groups.values(), key=len, reverse=True)[:MAX_GROUPS]
            for group in chosen:
                sig = tuple(sorted(p.key for p in group))
                if sig in tried:
                    continue
                tried.add(sig)
                if sig not in known:
                    known[sig] = best_box(group, passing)
                box = known[sig]
                if box is None:
                    continue
                n = sum(1 for p in uncovered if box.matches(p))
                rank = (n / max(box.cost, 1.0), n, tuple(-x for x in _order(box)[1]), box.describe())
                if best is None or rank > best[0]:
                    best = (rank, box)
        if best is None:
            break
        boxes.append(best[1])
        uncovered = [p for p in uncovered if not best[1].matches(p)]
    for p in uncovered:  # a point a passing cell shares: say it as it is
        boxes.append(_point_box(p))
    if single is not None and single.cost <= sum(b.cost for b in boxes):
        return [single]
    return boxes


def _point_box(p: Point) -> Box:
    return Box(
        family=frozenset({p.family}),
        target_class=frozenset({p.target_class}),
        channel=frozenset({p.channel}),
        subject_nodes=frozenset({p.subject_node}) if p.subject_node else None,
        target_nodes=frozenset({p.target_node}) if p.target_node else None,
    )


# ---- contrasts ----------------------------------------------------------------------------------------


def _contrast_text(name: str, box: Box, passes: Sequence[Point]) -> str:
    if name == "channel":
        chans = sorted({p.channel for p in passes} - set(box.channel or ()))
        return f"{join_words(channel_words(c) for c in chans)} on the same paths work"
    if name == "path":
        paths = sorted({p.path for p in passes} - set(box.path or ()))
        if paths == ["same-node"]:
            return "same-node traffic works"
        return f"{join_words(PATH_WORDS.get(p, p) for p in paths)} work"
    if name == "family":
        fams = sorted({p.family for p in passes} - set(box.family or ()))
        return (
            f"the same targets answer {join_words(FAMILY_WORDS.get(f, f) for f in fams)}".replace(
                "answer pods", "answer from pods"
            )
            .replace("answer nodes", "answer from the nodes")
            .replace("answer the outside", "answer from the outside")
        )
    if name == "subject_nodes":
        nodes = {p.subject_node for p in passes if p.subject_node} - set(box.subject_nodes or ())
        return f"the same checks from {_nodes(nodes)} work"
    if name == "target_nodes":
        nodes = {p.target_node for p in passes if p.target_node} - set(box.target_nodes or ())
        return f"the same checks to {_nodes(nodes)} work"
    if name == "involves":
        return f"paths that do not touch {_nodes(box.involves or ())} work"
    if name == "pairs":
        return "the other node pairs work"
    classes = sorted({p.target_class for p in passes} - set(box.target_class or ()))
    words = join_words(class_words(c) for c in classes)
    if "pod" in classes and (box.target_class or set()) & {"clusterip", "nodeport", "lb-vip"}:
        return f"the backend pods answer directly ({words} work from the same subjects)"
    if "pod" in classes and (box.target_class or set()) & {"coredns", "dns-internal", "dns-external"}:
        return f"the same subjects reach other pods ({words} work)"
    if any(c.startswith(("ingress:", "gateway:")) for c in box.target_class or ()) and set(classes) & {
        "pod",
        "clusterip",
        "lb-vip",
    }:
        return f"the echo backends answer without the ingress ({words} from the same subjects)"
    return f"{words} {'works' if len(classes) == 1 else 'work'} from the same subjects"


def contrasts(box: Box, passing: Sequence[Point]) -> tuple[Contrast, ...]:
    """For every constrained coordinate, the passing cells the box would cover without it."""
    out = []
    for name in box.constrained():
        relaxed = box.relax(name)
        if name == "subject_nodes" and box.target_nodes is None and box.involves is None:
            relaxed = relaxed  # the same targets from other nodes
        near = [p for p in passing if relaxed.matches(p)]
        if not near:
            continue
        attr = {"subject_nodes": "subject_node", "target_nodes": "target_node"}.get(name, name)
        values = (
            sorted({str(getattr(p, attr, "")) for p in near}) if attr in Point.__dataclass_fields__ else []
        )
        out.append(
            Contrast(name, _contrast_text(name, box, near), tuple(sorted(p.key for p in near)), tuple(values))
        )
    return tuple(out)


# ---- entry points -------------------------------------------------------------------------------------


def points_of(cells: Iterable[CellDict]) -> list[Point]:
    """Measured cells as points (outcome passed/failed/flaky); unmeasured and skipped cells are left out."""
    return sorted((point_of(c) for c in cells if c.get("outcome") in MEASURED), key=lambda p: p.key)


def _explains(scope: Scope, p: Point, lone: bool = False) -> bool:
    """Does a direct scope explain an indirect (Service / DNS name) cell?

    A Service or name answered by backends on every node fails, or flickers, when the connection lands
    on a backend the scope cuts off: from a subject on the scope's nodes, to a NodePort on them, or
    intermittently from anywhere. A scope over ICMP, MTU or ARP only explains nothing of the kind.
    """
    chans = scope.values("channel")
    if p.target_class == "component:pod-mesh":  # the FM-13 summary of the pod paths themselves
        return "pod" in scope.values("target_class") and "cross-node" in scope.values("path")
    if chans <= {"L3 icmp", "L3 mtu", "L2 arp", "L4 snat"}:
        return False
    if not scope.values("target_class") & {"pod", "coredns", "node"}:
        return False
    nodes = scope.nodes
    if not nodes:
        return p.outcome == "flaky" or scope.values("path") >= {"cross-node"}
    # `lone`: the subject's only check of that target, or its other checks of it pass: one connection
    # that landed on the cut-off backend on every attempt, not a broken Service on that subject
    return (
        p.outcome == "flaky"
        or lone
        or bool(p.involved & nodes)
        or p.target_class in ("dns-internal", "dns-external")
    )


def _scopes(failing: Sequence[Point], passing: Sequence[Point]) -> list[Scope]:
    scopes = []
    left = list(failing)
    for box in cover(failing, passing):
        covered = tuple(p for p in left if box.matches(p))
        if not covered:
            continue
        left = [p for p in left if not box.matches(p)]
        exact = not any(box.matches(q) for q in passing)
        scopes.append(Scope(box, covered, contrasts(box, passing), exact))
    return scopes


def infer(cells: Iterable[CellDict], target: str = "failed", roots: Inference | None = None) -> Inference:
    """Boxes covering the cells whose outcome is `target` ("failed" or "flaky") and no passing cell;
    cells of the other non-passing outcome are neither covered nor excluded.

    Direct paths (pods, nodes, DNS servers, the outside) are inferred first; a Service or DNS-name cell
    that a direct scope explains (its backend or server is on the cut side) becomes a *consequence* of
    that scope; the Service / name cells left get scopes of their own, except, when inferring failed
    cells, those whose subject's direct paths on the same channel flicker (:func:`_flickering`): they
    are kept in ``unlucky`` for the flaky inference. `roots` (the failed inference, when inferring flaky
    cells) claims the flaky Service / name cells its scopes explain first, and its ``unlucky`` cells
    become consequences of the flaky scope holding the flickering paths.
    """
    points = points_of(cells)
    failing = [p for p in points if p.outcome == target]
    if roots is not None:
        failing = [p for p in failing if not (indirect(p.target_class) and roots.explains(p))]
    passing = [p for p in points if p.outcome == "passed"]
    if not failing:
        return Inference((), target)
    direct = [p for p in failing if not indirect(p.target_class)]
    per_target = Counter((p.family, p.subject_node, p.target_class) for p in points)
    working = {(p.family, p.subject_node, p.target_class) for p in passing}
    scopes = _scopes(direct, passing)
    rest: list[Point] = []
    attached: dict[int, list[Point]] = {}
    for p in failing:
        if not indirect(p.target_class):
            continue
        k = (p.family, p.subject_node, p.target_class)
        lone = per_target[k] < 2 or k in working
        owner = next((i for i, s in enumerate(scopes) if _explains(s, p, lone)), None)
        if owner is None:
            rest.append(p)
        else:
            attached.setdefault(owner, []).append(p)
    if roots is not None:  # the failed Service / name cells the failed inference left to the flickers
        flickering = [_flickering(s.points) for s in scopes]
        for p in roots.unlucky:
            owner = next((i for i, keys in enumerate(flickering) if _subject_channel(p) in keys), None)
            if owner is None:
                rest.append(p)
            else:
                attached.setdefault(owner, []).append(p)
    scopes = [replace(s, consequences=tuple(attached.get(i, ()))) for i, s in enumerate(scopes)]
    unlucky: list[Point] = []
    if target == "failed":
        keys = _flickering(points)
        unlucky = [p for p in rest if _subject_channel(p) in keys]
        rest = [p for p in rest if _subject_channel(p) not in keys]
    scopes += _scopes(rest, passing)
    return Inference(tuple(scopes), target, tuple(unlucky))


def _subject_channel(p: Point) -> tuple[str, str | None, str]:
    return (p.family, p.subject_node, p.channel)


def _flickering(points: Iterable[Point]) -> frozenset[tuple[str, str | None, str]]:
    """The (subject, channel) pairs whose own direct paths flicker, read once per inference.

    A Service / name cell of such a subject and channel that failed on every attempt is the same loss,
    unlucky on each (every attempt may land on a backend behind the flickering path), not a broken
    Service: "the backend pods answer directly" would be false. Such cells go with the flickering paths'
    scope, as consequences, not to a scope of their own (which would suspect service NAT).

    >>> a = Point("a", "pod", "node-1", "pod", "node-2", "cross-node", "L4 tcp", "flaky", 0.5)
    >>> svc = Point("s", "pod", "node-1", "clusterip", None, "service", "L4 tcp", "failed", 1.0)
    >>> keys = _flickering([a])
    >>> _subject_channel(svc) in keys, _subject_channel(replace(svc, channel="L4 udp")) in keys
    (True, False)
    """
    return frozenset(
        _subject_channel(q) for q in points if q.outcome == "flaky" and not indirect(q.target_class)
    )


@dataclass(frozen=True)
class Unmeasured:
    """Cells that could not be measured, grouped by reason (reported before any network scope)."""

    reason: str
    keys: tuple[str, ...]
    subjects: tuple[str, ...]
    at: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "cells": list(self.keys),
            "subjects": list(self.subjects),
            "at": list(self.at),
        }


def _first_time(cell: CellDict) -> str | None:
    for check in (cell.get("evidence") or {}).get("checks", []) or []:
        if check.get("at"):
            return str(check["at"])
    return None


def unmeasured(cells: Iterable[CellDict]) -> list[Unmeasured]:
    """Cells with outcome ``error``, grouped by their reason with the subject names taken out."""
    groups: dict[str, list[CellDict]] = {}
    for c in cells:
        if c.get("outcome") != "error":
            continue
        reason = str(c.get("reason") or c.get("error") or "could not be measured")
        for name in (str(c.get("subject", "")), str(c.get("target", ""))):
            if name:
                reason = reason.replace(name, "…")
        groups.setdefault(reason, []).append(c)
    out = []
    for reason, members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        times = sorted({t for c in members if (t := _first_time(c))})
        out.append(
            Unmeasured(
                reason,
                tuple(sorted(str(c.get("key") or c.get("test")) for c in members)),
                tuple(sorted({str(c.get("subject")) for c in members}, key=natural)),
                tuple(times[:1] + times[-1:]) if times else (),
            )
        )
    return out


def channel_counts(points: Iterable[Point]) -> Counter[str]:
    return Counter(p.channel for p in points)
