"""Services: ClusterIP over TCP, UDP and HTTP, NodePort from pods, nodes and the outside.

A VIP that fails while its backend pods answer directly is the Service's destination NAT (FM-08).
A ClusterIP need not answer ping; it must answer on VIP:port (FM-15) - the ping test encodes that.
"""

from netconform.checks import check
from netconform.checks.catalogue import services
from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture


@check(services.POD_CLUSTERIP_TCP)
def test_clusterip_tcp(cell: Cell, conformance: ConformanceFixture) -> None:
    """Pods reach the echo Service's ClusterIP on TCP."""
    conformance.expect(cell)


@check(services.POD_CLUSTERIP_UDP)
def test_clusterip_udp(cell: Cell, conformance: ConformanceFixture) -> None:
    """Pods reach the ClusterIP on UDP (DNS rides on UDP too)."""
    conformance.expect(cell)


@check(services.POD_CLUSTERIP_HTTP)
def test_clusterip_http(cell: Cell, conformance: ConformanceFixture) -> None:
    """HTTP through the ClusterIP; status errors are L7."""
    conformance.expect(cell)


@check(services.POD_CLUSTERIP_ICMP)
def test_clusterip_ping_is_not_required(cell: Cell, conformance: ConformanceFixture) -> None:
    """No ping reply from a ClusterIP is expected when VIP:port answers; both silent fails."""
    conformance.expect(cell)


@check(services.HOST_CLUSTERIP_TCP)
def test_node_to_clusterip(cell: Cell, conformance: ConformanceFixture) -> None:
    """Nodes (host network) reach the ClusterIP."""
    conformance.expect(cell)


@check(services.POD_NODEPORT_TCP)
def test_nodeport_from_pods(cell: Cell, conformance: ConformanceFixture) -> None:
    """Pods reach every node's NodePort."""
    conformance.expect(cell)


@check(services.HOST_NODEPORT_TCP)
def test_nodeport_from_nodes(cell: Cell, conformance: ConformanceFixture) -> None:
    """Nodes reach every node's NodePort."""
    conformance.expect(cell)


@check(services.EXTERNAL_NODEPORT_TCP)
def test_nodeport_from_outside(cell: Cell, conformance: ConformanceFixture) -> None:
    """The outside client reaches every node's NodePort."""
    conformance.expect(cell)
