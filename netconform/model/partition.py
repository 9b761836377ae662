"""Which node pairs are cut, in one of a few shapes (FM-13): the one algorithm the FM-13 cell and the
verdict share.

Shapes: ``none``; ``all`` (every pair); ``isolated`` (some nodes cut from all others, the rest fine);
``groups`` (the nodes split into groups that work inside and fail across); ``one-way`` (from some nodes to
all others, or to some nodes from all others, the other direction working); ``pairs`` (anything else,
e.g. only the pair A–C while A–B and B–C work: listed edge by edge, never blamed on one node).

>>> analyze(["a", "b", "c"], {("a", "c"), ("c", "a")}).describe("pod traffic")
'pod traffic fails only between a and c (both directions); each still reaches b'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Pair = tuple[str, str]

_DIGITS = re.compile(r"(\d+)")


def natural(text: str) -> tuple[Any, ...]:
    """Sort ``node-2`` before ``node-10``."""
    return tuple(int(p) if p.isdigit() else p for p in _DIGITS.split(text))


def join_words(items: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _nodes(nodes: Iterable[str]) -> str:
    return join_words(sorted(nodes, key=natural))


@dataclass(frozen=True)
class Partition:
    """The shape of a set of broken (from, to) node pairs."""

    shape: str
    nodes: tuple[str, ...]
    broken: tuple[Pair, ...]
    groups: tuple[tuple[str, ...], ...]
    blamed: tuple[str, ...]
    #: the directed pairs measured working (None: every pair not broken is taken as working, a full mesh)
    working: frozenset[Pair] | None = None

    @property
    def edges(self) -> list[tuple[str, str, str]]:
        """Undirected broken edges as (a, b, direction) with direction ``both``, ``a->b`` or ``b->a``."""
        seen: dict[tuple[str, str], set[Pair]] = {}
        for a, b in self.broken:
            key = tuple(sorted((a, b), key=natural))
            seen.setdefault((key[0], key[1]), set()).add((a, b))
        out = []
        for (a, b), dirs in sorted(seen.items(), key=lambda kv: (natural(kv[0][0]), natural(kv[0][1]))):
            out.append((a, b, "both" if len(dirs) == 2 else f"{next(iter(dirs))[0]}->{next(iter(dirs))[1]}"))
        return out

    def _one_way(self, direction: str) -> str:
        """ " only" when the reverse of a one-way edge ("a->b") was measured working, else what is known."""
        src, _, dst = direction.partition("->")
        if self.working is None or (dst, src) in self.working:
            return " only"
        return f" ({dst} → {src} not measured)"

    def reverse_works(self) -> bool:
        """Whether the reverse of every broken pair that is not broken itself was measured working."""
        back = {(b, a) for a, b in self.broken} - set(self.broken)
        return self.working is None or back <= self.working

    def describe(self, what: str = "pod traffic") -> str:
        """One clause in plain words."""
        n = len(self.nodes)
        if self.shape == "none":
            return f"{what} works between all {n} nodes"
        if self.shape == "all":
            return f"{what} fails between all {n} nodes"
        groups = " | ".join("{" + ", ".join(g) + "}" for g in self.groups)
        if self.shape == "isolated":
            cut = _nodes(self.blamed)
            verb = "is" if len(self.blamed) == 1 else "are"
            rest = "the other nodes" if n - len(self.blamed) > 1 else "any other node"
            return (
                f"{what} fails between {cut} and {rest}, in both directions ({cut} {verb} cut off; "
                f"groups {groups})"
            )
        if self.shape == "groups":
            return f"the nodes are partitioned: {what} fails between the groups {groups}, works inside each"
        if self.shape == "one-way":
            sources = {a for a, _ in self.broken}
            targets = {b for _, b in self.broken}
            back = "works" if self.reverse_works() else "works where it was measured"
            if set(self.blamed) == sources:
                return f"{what} fails from {_nodes(sources)} to all other nodes (the other direction {back})"
            return f"{what} fails to {_nodes(targets)} from all other nodes (the other direction {back})"
        edges = self.edges
        parts = [
            f"{a} and {b} (both directions)" if d == "both" else f"{d.replace('->', ' → ')}{self._one_way(d)}"
            for a, b, d in edges
        ]
        involved = {x for a, b, _ in edges for x in (a, b)}
        others = [m for m in self.nodes if m not in involved]
        tail = self._still_reaches(involved, others)
        if len(edges) == 1 and edges[0][2] == "both":
            return f"{what} fails only between {parts[0]}{tail}"
        if len(edges) == 1:
            src, _, dst = edges[0][2].partition("->")
            if self._one_way(edges[0][2]) != " only":
                return f"{what} fails from {src} to {dst}{self._one_way(edges[0][2])}{tail}"
            return f"{what} fails only from {src} to {dst}{tail}"
        return f"{what} fails on {len(edges)} node pairs only: {'; '.join(parts)}{tail}"

    def _still_reaches(self, involved: set[str], others: Sequence[str]) -> str:
        """What the nodes of the broken pairs are seen reaching: every other node when each pair to them
        was measured working, else (a sampled mesh, cells not measured) how many such pairs were.

        >>> cut = {("a", "b"), ("b", "a")}
        >>> sampled = analyze(["a", "b", "c", "d"], cut, working={("a", "c"), ("d", "b")})
        >>> sampled.describe()
        'pod traffic fails only between a and b (both directions); between these nodes and the others, 2 \
measured pairs work and 6 were not measured'
        """
        if not others:
            return ""
        pairs = [(x, m) for x in sorted(involved, key=natural) for m in others]
        if self.working is None or all(p in self.working and p[::-1] in self.working for p in pairs):
            return f"; each still reaches {_nodes(others)}"
        seen = sum(1 for x, m in pairs for p in ((x, m), (m, x)) if p in self.working)
        unseen = 2 * len(pairs) - seen
        return (
            f"; between these nodes and the others, {seen} measured pairs work and {unseen} were not measured"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "nodes": list(self.nodes),
            "broken": [list(p) for p in self.broken],
            "groups": [list(g) for g in self.groups],
            "blamed": list(self.blamed),
            "edges": [{"a": a, "b": b, "direction": d} for a, b, d in self.edges],
        }


def _components(nodes: Sequence[str], cut: set[frozenset[str]]) -> list[tuple[str, ...]]:
    """Connected components of the graph whose edges are the pairs that work both ways."""
    parent = {n: n for n in nodes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            if frozenset((a, b)) not in cut:
                parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for n in nodes:
        groups.setdefault(find(n), []).append(n)
    out = [tuple(sorted(g, key=natural)) for g in groups.values()]
    return sorted(out, key=lambda g: (len(g) == 1, natural(g[0])))


def analyze(nodes: Iterable[str], broken: Iterable[Pair], working: Iterable[Pair] | None = None) -> Partition:
    """The shape of the broken directed node pairs (pairs not listed are taken as working). `working`,
    the pairs measured working, only keeps the sentence from claiming pairs nobody measured: the shapes
    need the unlisted pairs measured, which is what the sampled mesh's follow-ups are for.

    >>> analyze(["n1", "n2", "n3"], {("n1", "n3"), ("n3", "n1"), ("n2", "n3"), ("n3", "n2")}).shape
    'isolated'
    """
    listed = set(broken)
    seen = None if working is None else frozenset(working)
    names = tuple(sorted(set(nodes) | {x for p in listed for x in p}, key=natural))
    bad = {(a, b) for a, b in listed if a != b}
    ordered = tuple(sorted(bad, key=lambda p: (natural(p[0]), natural(p[1]))))
    if not bad:
        return Partition("none", names, (), (names,), (), seen)
    every = {(a, b) for a in names for b in names if a != b}
    if bad >= every:
        return Partition("all", names, ordered, tuple((n,) for n in names), names, seen)
    cut = {frozenset(p) for p in bad}
    groups = _components(list(names), cut)
    group_of = {n: i for i, g in enumerate(groups) for n in g}
    across = {(a, b) for a, b in every if group_of[a] != group_of[b]}
    if len(groups) > 1 and bad == across:
        singles = [g[0] for g in groups if len(g) == 1]
        big = [g for g in groups if len(g) > 1]
        if singles and len(big) <= 1:
            return Partition("isolated", names, ordered, tuple(groups), tuple(singles), seen)
        return Partition("groups", names, ordered, tuple(groups), names, seen)
    sources = {a for a, _ in bad}
    targets = {b for _, b in bad}
    if bad == {(a, b) for a in sources for b in names if a != b} and not (sources & targets):
        return Partition("one-way", names, ordered, tuple(groups), tuple(sorted(sources, key=natural)), seen)
    if bad == {(a, b) for b in targets for a in names if a != b} and not (sources & targets):
        return Partition("one-way", names, ordered, tuple(groups), tuple(sorted(targets, key=natural)), seen)
    edge_nodes = [{a, b} for a, b in bad]
    common = set.intersection(*edge_nodes)
    blamed = common if common and len(edge_nodes) > 1 else {x for p in bad for x in p}
    return Partition("pairs", names, ordered, tuple(groups), tuple(sorted(blamed, key=natural)), seen)
