"""Egress: pods reach the outside with the node's address as source (SNAT), ping it, and the internet."""

from netconform.checks import check
from netconform.checks.catalogue import egress
from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture


@check(egress.POD_OUTSIDE_SNAT)
def test_egress_snat(cell: Cell, conformance: ConformanceFixture) -> None:
    """The outside echo sees the node IP, not the pod IP."""
    conformance.expect(cell)


@check(egress.POD_OUTSIDE_ICMP)
def test_egress_ping(cell: Cell, conformance: ConformanceFixture) -> None:
    """Pods ping an outside address (L3)."""
    conformance.expect(cell)


@check(egress.POD_OUTSIDE_TCP)
def test_egress_tcp(cell: Cell, conformance: ConformanceFixture) -> None:
    """Pods open TCP connections to the outside (needs SNAT ports)."""
    conformance.expect(cell)


@check(egress.HOST_OUTSIDE_TCP)
def test_node_egress(cell: Cell, conformance: ConformanceFixture) -> None:
    """Nodes reach the outside themselves (tells SNAT from routing)."""
    conformance.expect(cell)


@check(egress.POD_INTERNET_HTTP)
def test_internet(cell: Cell, conformance: ConformanceFixture) -> None:
    """Pods reach the internet endpoint."""
    conformance.expect(cell)
