"""Dataplane components: CNI readiness per node; Cilium/anetd health, rate limits, eBPF maps, drops.

Without a Cilium-based dataplane the Cilium tests skip naming it; 429 rate limits are information.
"""

from netconform.checks import check
from netconform.checks.catalogue import dataplane
from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture


@check(dataplane.CNI_READY)
def test_cni_ready(cell: Cell, conformance: ConformanceFixture) -> None:
    """Each node is Ready without NetworkPluginNotReady and its CNI agent runs."""
    conformance.expect(cell)


@check(dataplane.CILIUM_HEALTH)
def test_cilium_health(cell: Cell, conformance: ConformanceFixture) -> None:
    """cilium status --all-health: every node reachable from every agent."""
    conformance.expect(cell)


@check(dataplane.CILIUM_RATE_LIMIT)
def test_cilium_rate_limit_is_information(cell: Cell, conformance: ConformanceFixture) -> None:
    """429 putEndpointIdTooManyRequests counted, never a failure."""
    conformance.expect(cell)


@check(dataplane.EBPF_MAPS)
def test_ebpf_map_fill(cell: Cell, conformance: ConformanceFixture) -> None:
    """LB service/backend eBPF maps below the 64k limit (privileged)."""
    conformance.expect(cell)


@check(dataplane.DROP_MONITOR)
def test_drop_monitor(cell: Cell, conformance: ConformanceFixture) -> None:
    """A bounded drop-monitor sample per agent, as evidence."""
    conformance.expect(cell)
