"""The node network: node-to-node ping and ARP, routes, conntrack budget, iptables drops, stale ARP,
and every node reaching the API server's endpoints."""

import pytest

from netconform.model.cell import Cell


@pytest.mark.fm("FM-13", "FM-15")
@pytest.mark.scope("host-node-icmp")
def test_node_ping(cell: Cell, conformance) -> None:
    """Every node pings every other node."""
    conformance.expect(cell)


@pytest.mark.fm("FM-16")
@pytest.mark.scope("host-node-arp")
def test_node_arp(cell: Cell, conformance) -> None:
    """Exactly one MAC answers ARP for each node (several = IP conflict, with vendors)."""
    conformance.expect(cell)


@pytest.mark.fm("FM-17", "FM-10")
@pytest.mark.scope("host-routes")
def test_routes(cell: Cell, conformance) -> None:
    """Every node has a route for each of its pods and can route to all others."""
    conformance.expect(cell)


@pytest.mark.fm("FM-30")
@pytest.mark.scope("host-conntrack")
def test_conntrack_budget(cell: Cell, conformance) -> None:
    """Conntrack use stays below the SNAT port budget."""
    conformance.expect(cell)


@pytest.mark.fm("FM-19")
@pytest.mark.scope("host-iptables")
def test_iptables_drops(cell: Cell, conformance) -> None:
    """DROP rule counters (privileged, opt-in)."""
    conformance.expect(cell)


@pytest.mark.fm("FM-28")
@pytest.mark.scope("host-cp-vip-arp")
def test_control_plane_vip_arp(cell: Cell, conformance) -> None:
    """No node caches a stale MAC for the control-plane VIP."""
    conformance.expect(cell)


@pytest.mark.fm("FM-28")
@pytest.mark.scope("host-apiserver-tcp")
def test_control_plane_endpoint_tcp(cell: Cell, conformance) -> None:
    """Every node connects to the API server's endpoints (a stale ARP entry makes this time out)."""
    conformance.expect(cell)
