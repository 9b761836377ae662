"""The node network: node-to-node ping and ARP, routes, conntrack budget, iptables drops, stale ARP,
and every node reaching the API server's endpoints."""

from netconform.checks import check
from netconform.checks.catalogue import nodes
from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture


@check(nodes.HOST_NODE_ICMP)
def test_node_ping(cell: Cell, conformance: ConformanceFixture) -> None:
    """Every node pings every other node."""
    conformance.expect(cell)


@check(nodes.HOST_NODE_ARP)
def test_node_arp(cell: Cell, conformance: ConformanceFixture) -> None:
    """Exactly one MAC answers ARP for each node (several = IP conflict, with vendors)."""
    conformance.expect(cell)


@check(nodes.HOST_ROUTES)
def test_routes(cell: Cell, conformance: ConformanceFixture) -> None:
    """Every node has a route for each of its pods and can route to all others."""
    conformance.expect(cell)


@check(nodes.HOST_CONNTRACK)
def test_conntrack_budget(cell: Cell, conformance: ConformanceFixture) -> None:
    """Conntrack use stays below the SNAT port budget."""
    conformance.expect(cell)


@check(nodes.HOST_IPTABLES)
def test_iptables_drops(cell: Cell, conformance: ConformanceFixture) -> None:
    """DROP rule counters (privileged, opt-in)."""
    conformance.expect(cell)


@check(nodes.HOST_CP_VIP_ARP)
def test_control_plane_vip_arp(cell: Cell, conformance: ConformanceFixture) -> None:
    """No node caches a stale MAC for the control-plane VIP."""
    conformance.expect(cell)


@check(nodes.HOST_APISERVER_TCP)
def test_control_plane_endpoint_tcp(cell: Cell, conformance: ConformanceFixture) -> None:
    """Every node connects to the API server's endpoints (a stale ARP entry makes this time out)."""
    conformance.expect(cell)
