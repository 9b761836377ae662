"""Peer sampling: which node pairs a big cluster probes, and which to add when a sampled pair fails.

Pure (no Kubernetes): the scope families and the engine call it with node names and failure domains.

With N nodes and K peers (N > K + 1), every node probes exactly K others and is probed by exactly K
others: the nodes sit on a ring ordered by a stable hash of their names (kubenurse's hash ring,
goldpinger's rendezvous hashing), and node i probes the nodes at K fixed offsets after it (a circulant
graph, so in- and out-degree are K by construction and the graph is strongly connected, offset 1 being
always among them). Two runs over the same nodes choose the same pairs, and adding one node moves only
the pairs around its place on the ring. Failure domains (zone, rack) are interleaved on the ring and the
offsets skip multiples of the number of domains, so with balanced domains almost every pair crosses
two of them (at a price: one more node in a domain shifts that domain's places, and 40-80 % of the
pairs stay, against all but K without domains); a node whose domain is unknown is placed by its hash.

>>> nodes = [f"node-{i}" for i in range(1, 7)]
>>> pairs = sampled_pairs(nodes, 2)
>>> ring(nodes)
['node-2', 'node-1', 'node-6', 'node-4', 'node-3', 'node-5']
>>> len(pairs), sorted(b for a, b in pairs if a == "node-1")
(12, ['node-4', 'node-6'])
>>> sorted(a for a, b in pairs if b == "node-1")
['node-2', 'node-5']
>>> extra = followup_pairs(nodes, pairs, {("node-1", "node-4")})  # the reverse, two witnesses each
>>> ("node-4", "node-1") in extra, len(extra), all("node-1" in p or "node-4" in p for p in extra)
(True, 6, True)

Sampling only thins the mesh: :func:`followup_pairs` probes the reverse of a failing pair and a few
witnesses of both ends, and completes the row and the column of every node failing with two or more
others, so the partition verdict (``netconform.model.partition.analyze``, which takes
unlisted pairs as working) sees every pair that could be broken: an isolated node is seen cut from all
others, a cut pair is seen as only that pair.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from netconform.model.topology import Topology

Pair = tuple[str, str]

FOLLOWUP_ROUNDS = 3  # follow-up phases at most (a partition into groups needs 2: see followup_pairs)
FULL_MESH_UP_TO = 20  # the default: every pair up to this many nodes ...
DEFAULT_PEERS = 8  # ... and this many peers per node above it
# labels naming a node's failure domain, most significant first (the domain is their values joined)
DOMAIN_LABELS = (
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/rack",
    "rack",
)


def parse_peers(text: str) -> str:
    """``all`` or a whole number >= 1, as given to ``--peers`` (checked, normalised).

    >>> parse_peers(" 8"), parse_peers("ALL")
    ('8', 'all')
    """
    value = text.strip().lower()
    if value == "all":
        return value
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"--peers takes 'all' or a number of peers >= 1, got {text!r}")
    return str(int(value))


def resolve_peers(spec: str | None, node_count: int) -> int | None:
    """K for this cluster, or None for the full mesh (``all``, the default up to 20 nodes, or K >= N-1).

    >>> resolve_peers(None, 20), resolve_peers(None, 21), resolve_peers("3", 10), resolve_peers("9", 10)
    (None, 8, 3, None)
    """
    if spec is None:
        k = None if node_count <= FULL_MESH_UP_TO else DEFAULT_PEERS
    else:
        k = None if parse_peers(spec) == "all" else int(spec)
    return None if k is None or k >= node_count - 1 else k


def failure_domain(labels: Mapping[str, str]) -> str | None:
    """The node's failure domain from its labels (region/zone/rack joined), None when none is set.

    >>> failure_domain({"topology.kubernetes.io/zone": "a", "rack": "r7"}), failure_domain({})
    ('a/r7', None)
    """
    parts = [labels[k] for k in DOMAIN_LABELS if labels.get(k)]
    return "/".join(parts) if parts else None


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def ring(nodes: Iterable[str], domains: Mapping[str, str | None] | None = None) -> list[str]:
    """The nodes in ring order: by hash of name inside each domain, the domains spread evenly."""
    groups: dict[str, list[str]] = {}
    for n in set(nodes):
        groups.setdefault((domains or {}).get(n) or "", []).append(n)
    position: dict[str, float] = {}
    for domain, members in groups.items():
        members.sort(key=lambda n: (_hash(n), n))
        start = _hash("domain:" + domain) / 2**64  # where this domain's first node sits, in [0, 1)
        for rank, n in enumerate(members):
            position[n] = (rank + start) / len(members)
    return sorted(position, key=lambda n: (position[n], _hash(n), n))


def offsets(node_count: int, k: int, domain_count: int = 1) -> list[int]:
    """K distinct ring offsets in 1..N-1: 1, 2, 3, ... skipping multiples of the domain count first.

    >>> offsets(10, 4), offsets(10, 4, domain_count=2), offsets(4, 3, domain_count=2)
    ([1, 2, 3, 4], [1, 3, 5, 7], [1, 3, 2])
    """
    every = range(1, node_count)
    crossing = [o for o in every if domain_count <= 1 or o % domain_count]
    return (crossing + [o for o in every if o not in crossing])[:k]


def sampled_pairs(
    nodes: Iterable[str], k: int | None, domains: Mapping[str, str | None] | None = None
) -> frozenset[Pair]:
    """The directed (prober, probed) node pairs to probe; every ordered pair when k is None or >= N-1."""
    names = tuple(sorted(set(nodes)))
    key = tuple(sorted((n, (domains or {}).get(n) or "") for n in names))
    return _sampled(names, k, key)


@lru_cache(maxsize=64)
def _sampled(
    names: tuple[str, ...], k: int | None, domain_key: tuple[tuple[str, str], ...]
) -> frozenset[Pair]:
    n = len(names)
    if k is None or k >= n - 1:
        return frozenset((a, b) for a in names for b in names if a != b)
    domains = dict(domain_key)
    order = ring(names, domains)
    count = len({d for d in domains.values()})
    return frozenset((order[i], order[(i + o) % n]) for i in range(n) for o in offsets(n, max(k, 0), count))


def followup_pairs(
    nodes: Sequence[str], probed: Iterable[Pair], failing: Iterable[Pair], witnesses: int = 2
) -> set[Pair]:
    """The pairs to probe next so failing pairs can be told apart: "node X is isolated" (or "X cannot
    send/receive", or a partition into groups) from "only X-Y is broken".

    The reverse of every failing pair is added (one-way or both directions?). A node failing with two
    or more others is a suspect: every pair from it and to it not probed yet
    is added (its row and column complete, as with the full mesh). A node failing with one other only
    gets `witnesses` extra nodes probed both ways, chosen by a stable hash: if they fail too, it is a
    suspect in the next round; if they work, the failure is the pair's. Probed pairs and same-node pairs
    are never returned. Called again with what the follow-ups found (the engine runs up to
    FOLLOWUP_ROUNDS phases), a partition into groups is seen whole after at most three rounds: each
    round's suspects show every node across from them failing with several others.

    >>> nodes = ["a", "b", "c", "d", "e"]
    >>> ring_pairs = {("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("e", "a")}
    >>> sorted(followup_pairs(nodes, ring_pairs, {("a", "b")}, witnesses=1))
    [('a', 'd'), ('b', 'a'), ('b', 'd'), ('d', 'a'), ('d', 'b')]
    >>> len(followup_pairs(nodes, ring_pairs, {("a", "b"), ("e", "a")}, witnesses=1))  # a: a suspect
    10
    """
    done = set(probed)
    names = sorted(set(nodes))
    partners: dict[str, set[str]] = {}
    for a, b in failing:
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    out = {(b, a) for a, b in failing if (b, a) not in done}  # the other direction: one-way or both?
    for x, others in partners.items():
        if len(others) >= 2:
            candidates = [o for o in names if o != x]
        else:  # the nodes with the lowest hash for x (rendezvous): stable, spread over the cluster
            free = [o for o in names if o != x and o not in others]
            candidates = sorted(free, key=lambda o: (_hash(f"{x}|{o}"), o))[:witnesses]
        for other in candidates:
            out |= {p for p in ((x, other), (other, x)) if p not in done}
    return out


def peer_pairs(topo: Topology) -> frozenset[Pair]:
    """The node pairs the node x node checks cover on this topology: all, or K peers per node (--peers)."""
    return sampled_pairs(topo.node_names, topo.peers, {n.name: n.domain for n in topo.nodes})
