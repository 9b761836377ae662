"""NetworkPolicy: the cells of a --policy-table (checks/policy_table.py), TCP and UDP ports."""

from __future__ import annotations

from netconform.checks.api import WORKLOAD_PODS, Check, ProbeSpec
from netconform.checks.policy_table import POLICY_TABLE, PolicyTargets, plan

POLICY_TCP, POLICY_UDP = (
    Check(
        f"policy-table-{proto}",
        fm=("FM-37", "FM-38"),
        layer="L4",
        subjects=(WORKLOAD_PODS,),
        targets=PolicyTargets(proto),
        probe=ProbeSpec(proto, plan, about=f"{proto} connect from a workload's pod to a destination"),
        expect=POLICY_TABLE,
        needs=f"no --policy-table with {proto} ports (docs/policy.md)",
        about="a --policy-table cell: what must be allowed or denied between workloads (NetworkPolicy)",
    )
    for proto in ("tcp", "udp")
)
CHECKS = (POLICY_TCP, POLICY_UDP)
