"""Egress: pods reach the outside with the node's address as source (SNAT), ping it, and the internet."""

import pytest

from netconform.model.cell import Cell


@pytest.mark.fm("FM-11")
@pytest.mark.scope("pod-outside-snat")
def test_egress_snat(cell: Cell, conformance) -> None:
    """The outside echo sees the node IP, not the pod IP."""
    conformance.expect(cell)


@pytest.mark.fm("FM-12")
@pytest.mark.scope("pod-outside-icmp")
def test_egress_ping(cell: Cell, conformance) -> None:
    """Pods ping an outside address (L3)."""
    conformance.expect(cell)


@pytest.mark.fm("FM-12", "FM-30")
@pytest.mark.scope("pod-outside-tcp")
def test_egress_tcp(cell: Cell, conformance) -> None:
    """Pods open TCP connections to the outside (needs SNAT ports)."""
    conformance.expect(cell)


@pytest.mark.fm("FM-12")
@pytest.mark.scope("host-outside-tcp")
def test_node_egress(cell: Cell, conformance) -> None:
    """Nodes reach the outside themselves (tells SNAT from routing)."""
    conformance.expect(cell)


@pytest.mark.fm("FM-12")
@pytest.mark.scope("pod-internet-http")
def test_internet(cell: Cell, conformance) -> None:
    """Pods reach the internet endpoint."""
    conformance.expect(cell)
