"""Egress: pods and nodes reach the outside, with the node's address as the source (FM-11/12/30)."""

from __future__ import annotations

from netconform.checks import expectations as E
from netconform.checks import plans
from netconform.checks.api import HOST_PROBES, KIT_PODS, Check, Fixed, ProbeSpec

OUTSIDE = Fixed("outside")

POD_OUTSIDE_SNAT = Check(
    "pod-outside-snat",
    fm=("FM-11",),
    layer="L4",
    subjects=(KIT_PODS,),
    targets=OUTSIDE,
    probe=ProbeSpec(
        "snat", plans.egress, about="HTTP to the outside echo that reflects the caller's address"
    ),
    expect=E.source_is_node_ip,
    about="The outside echo sees the node IP, not the pod IP.",
)
POD_OUTSIDE_ICMP = Check(
    "pod-outside-icmp",
    fm=("FM-12",),
    layer="L3",
    subjects=(KIT_PODS,),
    targets=OUTSIDE,
    probe=ProbeSpec("icmp", plans.egress),
    expect=E.reachable,
    about="Pods ping an outside address (L3).",
)
POD_OUTSIDE_TCP = Check(
    "pod-outside-tcp",
    fm=("FM-12", "FM-30"),
    layer="L4",
    subjects=(KIT_PODS,),
    targets=OUTSIDE,
    probe=ProbeSpec("tcp", plans.egress),
    expect=E.reachable,
    about="Pods open TCP connections to the outside (needs SNAT ports).",
)
HOST_OUTSIDE_TCP = Check(
    "host-outside-tcp",
    fm=("FM-12",),
    layer="L4",
    subjects=(HOST_PROBES,),
    targets=OUTSIDE,
    probe=ProbeSpec("tcp", plans.egress),
    expect=E.reachable,
    about="Nodes reach the outside themselves (tells SNAT from routing).",
)
POD_INTERNET_HTTP = Check(
    "pod-internet-http",
    fm=("FM-12",),
    layer="L7",
    subjects=(KIT_PODS,),
    targets=Fixed("internet"),
    probe=ProbeSpec("http", plans.egress),
    expect=E.reachable,
    about="Pods reach the internet endpoint.",
)

CHECKS = (POD_OUTSIDE_SNAT, POD_OUTSIDE_ICMP, POD_OUTSIDE_TCP, HOST_OUTSIDE_TCP, POD_INTERNET_HTTP)
