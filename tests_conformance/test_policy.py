"""NetworkPolicy truth tables (`--policy-table FILE.yaml`, docs/policy.md): each (source workload pod,
destination, port) as the table expects it, allowed (reachable) or denied (blocked: dropped or refused)."""

from netconform.checks import check
from netconform.checks.catalogue.policy import POLICY_TCP, POLICY_UDP
from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture


@check(POLICY_TCP)
def test_policy_table_tcp(cell: Cell, conformance: ConformanceFixture) -> None:
    conformance.expect(cell)


@check(POLICY_UDP)
def test_policy_table_udp(cell: Cell, conformance: ConformanceFixture) -> None:
    conformance.expect(cell)
