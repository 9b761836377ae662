"""Pod-to-pod: every node's probe pod to every node's echo pod, and each node to its own pods.

Same-node versus cross-node cells separate a broken overlay (FM-09: cross-node fails, same-node works)
from a broken pod route (FM-10: the node itself cannot deliver to its pod); the mesh cell turns N^2
failures into the node groups that cannot reach each other (FM-13).
"""

from netconform.checks import check
from netconform.checks.catalogue import pods
from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture


@check(pods.POD_POD_ICMP)
def test_pod_to_pod_icmp(cell: Cell, conformance: ConformanceFixture) -> None:
    """Ping between pods (L3): pod IPs answer ICMP."""
    conformance.expect(cell)


@check(pods.POD_POD_TCP)
def test_pod_to_pod_tcp(cell: Cell, conformance: ConformanceFixture) -> None:
    """TCP echo between pods; a failure names the first broken hop and prints the tcpdump commands."""
    conformance.expect(cell)


@check(pods.POD_POD_UDP)
def test_pod_to_pod_udp(cell: Cell, conformance: ConformanceFixture) -> None:
    """UDP echo between pods (UDP must work as well as TCP)."""
    conformance.expect(cell)


@check(pods.POD_POD_HTTP)
def test_pod_to_pod_http(cell: Cell, conformance: ConformanceFixture) -> None:
    """HTTP between pods; an HTTP error status means L4 works and L7 fails."""
    conformance.expect(cell)


@check(pods.POD_POD_MTU)
def test_pod_to_pod_mtu(cell: Cell, conformance: ConformanceFixture) -> None:
    """Large DF packets cross nodes through the overlay, or the loss is named an MTU problem."""
    conformance.expect(cell)


@check(pods.HOST_OWN_POD_TCP)
def test_node_reaches_own_pods(cell: Cell, conformance: ConformanceFixture) -> None:
    """Each node delivers to the pods it hosts (per-pod route / veth)."""
    conformance.expect(cell)


@check(pods.HOST_OWN_POD_ICMP)
def test_node_pings_own_pods(cell: Cell, conformance: ConformanceFixture) -> None:
    """Each node pings the pods it hosts."""
    conformance.expect(cell)


@check(pods.HOST_POD_TCP)
def test_node_reaches_other_nodes_pods(cell: Cell, conformance: ConformanceFixture) -> None:
    """Each node reaches pods on the other nodes (node -> tunnel -> pod)."""
    conformance.expect(cell)


@check(pods.POD_MESH)
def test_pod_mesh_partition(cell: Cell, conformance: ConformanceFixture) -> None:
    """All pod pairs work; otherwise the failing node groups are named, not N^2 errors."""
    conformance.expect(cell)
