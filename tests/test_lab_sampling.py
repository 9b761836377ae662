"""Peer sampling on a real lab: with --peers small enough that sampling is active, a node cut off and
a cut pair (plain iptables in the node namespaces) still get their own verdict words (issue 15)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab
from netconform.lab.net import addressing as A
from netconform.model.sampling import sampled_pairs
from tests.can_run import missing
from tests.lab_helpers import lab_name, own_lab, run_lab_suite

pytestmark = [pytest.mark.root, pytest.mark.lab, pytest.mark.slow]
NODES, PEERS = 7, 2
SUBSET = "pod_to_pod_tcp or pod_mesh"


@pytest.fixture(scope="module")
def sampled_lab() -> Iterator[Lab]:
    reason = missing("lab")
    if reason:
        pytest.skip(reason)
    yield from own_lab(lab_name("smp"), nodes=NODES)


def _overlay_drop(lab: Lab, node: str, peer: str | None, action: str) -> None:
    """Drop the overlay (UDP 6081) on `node`, to and from `peer` only when given."""
    ns = A.ns_name(lab.name, node)
    for chain, flag in (("INPUT", "-s"), ("OUTPUT", "-d")):
        match = [flag, A.node_ip(peer)] if peer else []
        argv = ["ip", "netns", "exec", ns, "iptables", action, chain, *match]
        subprocess.run(
            [*argv, "-p", "udp", "--dport", str(A.OVERLAY_PORT), "-j", "DROP"], check=True, timeout=10
        )


def _mesh(doc: dict[str, Any]) -> dict[str, Any]:
    cells: list[dict[str, Any]] = [c for c in doc["cells"] if c["target"] == "component:pod-mesh"]
    (cell,) = cells
    return cell


def _pod_tcp_pairs(doc: dict[str, Any], followup: bool) -> set[tuple[str, str]]:
    return {
        (c["subject"].split("@")[1], c["target"].split("@")[1])
        for c in doc["cells"]
        if c["protocol"] == "tcp"
        and c["subject"].startswith("pod@")
        and c["target"].startswith("pod@")
        and c["subject"].split("@")[1] != c["target"].split("@")[1]
        and bool(c.get("followup")) == followup
    }


def test_healthy_run_probes_only_the_sampled_pairs(sampled_lab: Lab, tmp_path: Path) -> None:
    code, doc, out = run_lab_suite(sampled_lab.name, tmp_path, "--peers", str(PEERS), subset=SUBSET)
    assert code == 0, out[-2000:]
    nodes = [f"node-{i}" for i in range(1, NODES + 1)]
    assert _pod_tcp_pairs(doc, followup=False) == set(sampled_pairs(nodes, PEERS))
    assert len(_pod_tcp_pairs(doc, followup=False)) == NODES * PEERS  # not NODES * (NODES - 1)
    assert _pod_tcp_pairs(doc, followup=True) == set()  # nothing failed: no follow-up
    assert _mesh(doc)["outcome"] == "passed"


def test_isolated_node_is_named_cut_off(sampled_lab: Lab, tmp_path: Path) -> None:
    _overlay_drop(sampled_lab, "node-3", None, "-I")
    try:
        code, doc, out = run_lab_suite(sampled_lab.name, tmp_path, "--peers", str(PEERS), subset=SUBSET)
    finally:
        _overlay_drop(sampled_lab, "node-3", None, "-D")
    assert code == 1, out[-2000:]
    mesh = _mesh(doc)
    assert mesh["outcome"] == "failed"
    assert "node-3 is cut off" in mesh["reason"], mesh["reason"]
    assert f"({2 * (NODES - 1)} failing node pairs)" in mesh["reason"]  # its whole row and column
    assert _pod_tcp_pairs(doc, followup=True)  # found by the follow-ups, not by the sample
    assert "node-3 is cut off" in doc["verdict"]["text"], doc["verdict"]["text"]


def test_cut_pair_is_named_as_the_pair(sampled_lab: Lab, tmp_path: Path) -> None:
    nodes = [f"node-{i}" for i in range(1, NODES + 1)]
    peer = sorted(b for a, b in sampled_pairs(nodes, PEERS) if a == "node-2")[0]
    _overlay_drop(sampled_lab, "node-2", peer, "-I")
    try:
        code, doc, out = run_lab_suite(sampled_lab.name, tmp_path, "--peers", str(PEERS), subset=SUBSET)
    finally:
        _overlay_drop(sampled_lab, "node-2", peer, "-D")
    assert code == 1, out[-2000:]
    reason = _mesh(doc)["reason"]
    first, second = sorted(["node-2", peer], key=A.node_index)
    assert f"fails only between {first} and {second} (both directions)" in reason, reason
    assert "cut off" not in reason and "cut off" not in doc["verdict"]["text"]
