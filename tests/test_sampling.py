"""Peer sampling (netconform/model/sampling.py): degrees, determinism, stability, domains, follow-ups."""

from __future__ import annotations

import doctest
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netconform.model import partition, sampling
from netconform.model.sampling import followup_pairs, resolve_peers, sampled_pairs

NAMES = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), min_size=2, max_size=60, unique=True)


def test_doctests() -> None:
    assert doctest.testmod(sampling).failed == 0


@settings(max_examples=150, deadline=None)
@given(NAMES, st.integers(min_value=1, max_value=12))
def test_in_and_out_degree_exactly_k(nodes: list[str], k: int) -> None:
    pairs = sampled_pairs(nodes, k)
    n = len(nodes)
    if n > k + 1:
        out_deg = Counter(a for a, _ in pairs)
        in_deg = Counter(b for _, b in pairs)
        assert set(out_deg.values()) == {k} and set(in_deg.values()) == {k}
        assert set(out_deg) == set(in_deg) == set(nodes)
        assert len(pairs) == n * k
    else:
        assert len(pairs) == n * (n - 1)  # K >= N-1: the full mesh
    assert all(a != b for a, b in pairs)


@settings(max_examples=100, deadline=None)
@given(NAMES, st.integers(min_value=1, max_value=10), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_order(nodes: list[str], k: int, rnd: object) -> None:
    shuffled = list(nodes)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert sampled_pairs(nodes, k) == sampled_pairs(shuffled, k)
    sampling._sampled.cache_clear()  # a fresh computation (another process) gives the same pairs
    assert sampled_pairs(shuffled, k) == sampled_pairs(nodes, k)


@settings(max_examples=100, deadline=None)
@given(NAMES.filter(lambda ns: len(ns) >= 12), st.integers(min_value=2, max_value=8))
def test_adding_one_node_keeps_most_pairs(nodes: list[str], k: int) -> None:
    *before, _new = nodes
    old = sampled_pairs(before, k)
    kept = old & sampled_pairs(nodes, k)
    # the new node takes its place on the ring: only the k pairs spanning it move
    assert len(old) - len(kept) <= k
    assert len(kept) >= 0.8 * len(old) or len(before) < 5 * k


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=12, max_value=90), st.integers(min_value=2, max_value=4), st.data())
def test_adding_one_node_with_domains_keeps_most_pairs(n: int, zones: int, data: st.DataObject) -> None:
    nodes = [f"node-{i}" for i in range(1, n + 2)]
    domains = {x: f"zone-{i % zones}" for i, x in enumerate(nodes)}
    k = data.draw(st.integers(min_value=2, max_value=8))
    old = sampled_pairs(nodes[:-1], k, domains)
    kept = old & sampled_pairs(nodes, k, domains)
    # the domains' nodes are spread evenly on the ring, so one more node in a domain shifts that
    # domain's places: measured 42-83 % of the pairs kept (without domains: all but k)
    assert len(kept) >= 0.4 * len(old)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=21, max_value=100), st.integers(min_value=2, max_value=5))
def test_cross_domain_pairs_preferred(n: int, zones: int) -> None:
    nodes = [f"node-{i}" for i in range(1, n + 1)]
    domains = {x: f"zone-{i % zones}" for i, x in enumerate(nodes)}
    k = min(8, n - 2)
    pairs = sampled_pairs(nodes, k, domains)
    crossing = sum(domains[a] != domains[b] for a, b in pairs) / len(pairs)
    blind = sampled_pairs(nodes, k)  # the same ring, ignoring the domains
    crossing_blind = sum(domains[a] != domains[b] for a, b in blind) / len(blind)
    others = n - -(-n // zones)  # the fewest nodes outside one node's domain
    best = min(k, others) / k
    assert crossing >= 0.6 * best, crossing  # measured: 62-100 % of the pairs that could cross do
    assert crossing >= crossing_blind
    # nearly every node probes into another domain (with unequal domains the node where two of the
    # same domain meet on the ring may not)
    crossers = [a for a in nodes if any(domains[b] != domains[a] for x, b in pairs if x == a)]
    assert len(crossers) >= 0.9 * n


def test_resolve_peers_default_and_all() -> None:
    assert resolve_peers(None, 3) is None and resolve_peers(None, 20) is None
    assert resolve_peers(None, 100) == 8 and resolve_peers("all", 100) is None
    assert resolve_peers("2", 5) == 2 and resolve_peers("4", 5) is None
    with pytest.raises(ValueError, match="--peers"):
        sampling.parse_peers("zero")


def _observed(nodes: list[str], k: int, broken: set[tuple[str, str]]) -> partition.Partition:
    """What the partition verdict sees: sampled pairs, then the follow-ups of the failing ones."""
    probed = set(sampled_pairs(nodes, k))
    for _ in range(sampling.FOLLOWUP_ROUNDS):  # what the engine does: a phase per round
        extra = followup_pairs(nodes, probed, probed & broken)
        if not extra:
            break
        probed |= extra
    return partition.analyze(nodes, probed & broken)


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=6, max_value=40), st.integers(min_value=1, max_value=4), st.data())
def test_followups_keep_the_partition_verdict(n: int, k: int, data: st.DataObject) -> None:
    nodes = [f"node-{i}" for i in range(1, n + 1)]
    x, y = data.draw(st.lists(st.sampled_from(nodes), min_size=2, max_size=2, unique=True))
    isolated = {(x, o) for o in nodes if o != x} | {(o, x) for o in nodes if o != x}
    seen = _observed(nodes, k, isolated)
    assert seen.shape == "isolated" and seen.blamed == (x,)
    assert seen.describe() == partition.analyze(nodes, isolated).describe()
    cut = {(x, y), (y, x)}
    seen = _observed(nodes, k, cut)
    truth = partition.analyze(nodes, cut)
    if (x, y) in sampled_pairs(nodes, k) or (y, x) in sampled_pairs(nodes, k):
        assert seen.shape == "pairs" and seen.describe() == truth.describe()
        assert "fails only between" in seen.describe()
    else:
        assert seen.shape == "none"  # sampling missed the pair: nothing can be said, nothing wrong said
    half = set(nodes[: n // 2])
    groups = {(a, b) for a in nodes for b in nodes if a != b and ((a in half) != (b in half))}
    assert _observed(nodes, k, groups).describe() == partition.analyze(nodes, groups).describe()


def test_followups_never_repeat_sampled_pairs_and_stay_bounded() -> None:
    nodes = [f"node-{i}" for i in range(1, 101)]
    pairs = sampled_pairs(nodes, 8)
    extra = followup_pairs(nodes, pairs, {("node-1", "node-2")})
    assert not extra & pairs
    assert 0 < len(extra) <= 1 + 2 * 2 * 2  # the reverse, two witnesses each way for both ends
    assert all("node-1" in p or "node-2" in p for p in extra)
    suspect = followup_pairs(nodes, pairs, {("node-1", b) for a, b in pairs if a == "node-1"})
    assert {("node-1", f"node-{i}") for i in range(2, 101)} <= suspect | pairs  # its row completes
    assert {(f"node-{i}", "node-1") for i in range(2, 101)} <= suspect | pairs  # and its column
    assert followup_pairs(nodes, pairs, set()) == set()


def _probed(nodes: list[str], k: int, broken: set[tuple[str, str]]) -> set[tuple[str, str]]:
    probed = set(sampled_pairs(nodes, k))
    for _ in range(sampling.FOLLOWUP_ROUNDS):
        extra = followup_pairs(nodes, probed, probed & broken)
        if not extra:
            break
        probed |= extra
    return probed


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=3, max_value=12), st.data())
def test_full_mesh_measured_working_reads_as_before(n: int, data: st.DataObject) -> None:
    """Given every pair measured, the working pairs change no word: the full mesh reads as it always has."""
    nodes = [f"node-{i}" for i in range(1, n + 1)]
    every = [(a, b) for a in nodes for b in nodes if a != b]
    broken = set(data.draw(st.lists(st.sampled_from(every), max_size=len(every))))
    plain = partition.analyze(nodes, broken)
    measured = partition.analyze(nodes, broken, working=set(every) - broken)
    assert measured.describe() == plain.describe() and measured.shape == plain.shape


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=12, max_value=40), st.integers(min_value=2, max_value=4), st.data())
def test_sampled_cut_pair_claims_only_measured_pairs(n: int, k: int, data: st.DataObject) -> None:
    """A cut pair in a sampled mesh: the follow-ups measure both directions, and the sentence no longer
    says the pair's nodes reach every other node (most of those pairs were never probed)."""
    nodes = [f"node-{i}" for i in range(1, n + 1)]
    x, y = sorted(data.draw(st.lists(st.sampled_from(nodes), min_size=2, max_size=2, unique=True)),
                  key=partition.natural)  # fmt: skip
    cut = {(x, y), (y, x)}
    probed = _probed(nodes, k, cut)
    if not probed & cut:
        return  # sampling missed the pair: nothing to say (test_followups_keep_the_partition_verdict)
    seen = partition.analyze(nodes, probed & cut, working=probed - cut)
    text = seen.describe()
    assert f"fails only between {x} and {y} (both directions)" in text, text
    others = [m for m in nodes if m not in (x, y)]
    unmeasured = sum(1 for a in (x, y) for m in others for p in ((a, m), (m, a)) if p not in probed)
    assert unmeasured > 0  # K << N: most pairs of x and y are not probed
    assert "each still reaches" not in text and f"{unmeasured} were not measured" in text, text


def test_one_way_needs_the_reverse_measured() -> None:
    """A failing sampled pair whose reverse nobody probed is not called one-way."""
    nodes = ["a", "b", "c"]
    one = partition.analyze(nodes, {("a", "b")}, working={("a", "c"), ("c", "a"), ("b", "c"), ("c", "b")})
    assert not one.reverse_works()
    assert one.describe() == "pod traffic fails from a to b (b → a not measured); each still reaches c"
    both = partition.analyze(
        nodes, {("a", "b")}, working={("b", "a"), ("a", "c"), ("c", "a"), ("b", "c"), ("c", "b")}
    )
    assert both.reverse_works() and "fails only from a to b" in both.describe()
