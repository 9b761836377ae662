"""LoadBalancer Services: north-south from the outside client, ARP for the VIP, F5.

The ingress flowchart: does the packet leave the client (FM-05), is the VIP answered by exactly one MAC
(FM-06/16), is it translated to a backend (FM-08). Without an LB controller these skip with that reason.
"""

from netconform.checks import check
from netconform.checks.catalogue import load_balancer
from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture


@check(load_balancer.EXTERNAL_LB_TCP)
def test_lb_from_outside_tcp(cell: Cell, conformance: ConformanceFixture) -> None:
    """The outside client reaches the LB VIP on TCP."""
    conformance.expect(cell)


@check(load_balancer.EXTERNAL_LB_HTTP)
def test_lb_from_outside_http(cell: Cell, conformance: ConformanceFixture) -> None:
    """The outside client gets HTTP through the LB VIP."""
    conformance.expect(cell)


@check(load_balancer.EXTERNAL_LB_ICMP)
def test_lb_ping(cell: Cell, conformance: ConformanceFixture) -> None:
    """MetalLB/F5 VIPs answer ping; a pure-L4 VIP need not, if VIP:port answers."""
    conformance.expect(cell)


@check(load_balancer.POD_LB_TCP)
def test_lb_from_pods(cell: Cell, conformance: ConformanceFixture) -> None:
    """Pods reach the LB VIP (hairpin through service NAT)."""
    conformance.expect(cell)


@check(load_balancer.HOST_LB_ARP)
def test_lb_vip_arp(cell: Cell, conformance: ConformanceFixture) -> None:
    """Exactly one MAC answers ARP for the VIP on the node segment."""
    conformance.expect(cell)


@check(load_balancer.F5_CONFIG)
def test_f5_config(cell: Cell, conformance: ConformanceFixture) -> None:
    """F5 controller pods run and a ConfigMap holds every LB port's VIP."""
    conformance.expect(cell)


@check(load_balancer.METALLB_ANNOUNCE)
def test_metallb_announcing_node(cell: Cell, conformance: ConformanceFixture) -> None:
    """The MetalLB speaker logs name one node for the VIP, and that node's MAC answers ARP for it."""
    conformance.expect(cell)
