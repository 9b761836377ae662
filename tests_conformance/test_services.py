"""Services: ClusterIP over TCP, UDP and HTTP, NodePort from pods, nodes and the outside.

A VIP that fails while its backend pods answer directly is the Service's destination NAT (FM-08).
A ClusterIP need not answer ping; it must answer on VIP:port (FM-15) - the ping test encodes that.
"""

import pytest

from netconform.model.cell import Cell


@pytest.mark.fm("FM-08", "FM-20")
@pytest.mark.scope("pod-clusterip-tcp")
def test_clusterip_tcp(cell: Cell, conformance) -> None:
    """Pods reach the echo Service's ClusterIP on TCP."""
    conformance.expect(cell)


@pytest.mark.fm("FM-33", "FM-08")
@pytest.mark.scope("pod-clusterip-udp")
def test_clusterip_udp(cell: Cell, conformance) -> None:
    """Pods reach the ClusterIP on UDP (DNS rides on UDP too)."""
    conformance.expect(cell)


@pytest.mark.fm("FM-01", "FM-08")
@pytest.mark.scope("pod-clusterip-http")
def test_clusterip_http(cell: Cell, conformance) -> None:
    """HTTP through the ClusterIP; status errors are L7."""
    conformance.expect(cell)


@pytest.mark.fm("FM-15")
@pytest.mark.scope("pod-clusterip-icmp")
def test_clusterip_ping_is_not_required(cell: Cell, conformance) -> None:
    """No ping reply from a ClusterIP is expected when VIP:port answers; both silent fails."""
    conformance.expect(cell)


@pytest.mark.fm("FM-08")
@pytest.mark.scope("host-clusterip-tcp")
def test_node_to_clusterip(cell: Cell, conformance) -> None:
    """Nodes (host network) reach the ClusterIP."""
    conformance.expect(cell)


@pytest.mark.fm("FM-32")
@pytest.mark.scope("pod-nodeport-tcp")
def test_nodeport_from_pods(cell: Cell, conformance) -> None:
    """Pods reach every node's NodePort."""
    conformance.expect(cell)


@pytest.mark.fm("FM-32")
@pytest.mark.scope("host-nodeport-tcp")
def test_nodeport_from_nodes(cell: Cell, conformance) -> None:
    """Nodes reach every node's NodePort."""
    conformance.expect(cell)


@pytest.mark.fm("FM-32", "FM-05")
@pytest.mark.scope("external-nodeport-tcp")
def test_nodeport_from_outside(cell: Cell, conformance) -> None:
    """The outside client reaches every node's NodePort."""
    conformance.expect(cell)
