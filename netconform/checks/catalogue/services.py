"""Services: the echo Service's ClusterIP from pods and nodes, NodePorts from pods, nodes and the outside
(FM-08/15/20/32/33)."""

from __future__ import annotations

from netconform.checks import expectations as E
from netconform.checks import plans
from netconform.checks.api import HOST_PROBES, KIT_PODS, OUTSIDE_CLIENT, Check, Fixed, PerNode, ProbeSpec

CLUSTERIP = Fixed("clusterip")


def _svc(kind: str) -> ProbeSpec:
    return ProbeSpec(kind, plans.service_target, about=f"{kind} to the Service address and port")


POD_CLUSTERIP_TCP = Check(
    "pod-clusterip-tcp",
    fm=("FM-08", "FM-20"),
    layer="L4",
    subjects=(KIT_PODS,),
    targets=CLUSTERIP,
    probe=_svc("tcp"),
    expect=E.reachable,
    about="Pods reach the echo Service's ClusterIP on TCP.",
)
POD_CLUSTERIP_UDP = Check(
    "pod-clusterip-udp",
    fm=("FM-33", "FM-08"),
    layer="L4",
    subjects=(KIT_PODS,),
    targets=CLUSTERIP,
    probe=_svc("udp"),
    expect=E.reachable,
    about="Pods reach the ClusterIP on UDP (DNS rides on UDP too).",
)
POD_CLUSTERIP_HTTP = Check(
    "pod-clusterip-http",
    fm=("FM-01", "FM-08"),
    layer="L7",
    subjects=(KIT_PODS,),
    targets=CLUSTERIP,
    probe=_svc("http"),
    expect=E.reachable,
    about="HTTP through the ClusterIP; status errors are L7.",
)
POD_CLUSTERIP_ICMP = Check(
    "pod-clusterip-icmp",
    fm=("FM-15",),
    layer="L3",
    subjects=(KIT_PODS,),
    targets=CLUSTERIP,
    probe=_svc("icmp"),
    expect=E.vip_port_not_ping,
    about="No ping reply from a ClusterIP is expected when VIP:port answers; both silent fails.",
)
HOST_CLUSTERIP_TCP = Check(
    "host-clusterip-tcp",
    fm=("FM-08",),
    layer="L4",
    subjects=(HOST_PROBES,),
    targets=CLUSTERIP,
    probe=_svc("tcp"),
    expect=E.reachable,
    about="Nodes (host network) reach the ClusterIP.",
)
POD_NODEPORT_TCP = Check(
    "pod-nodeport-tcp",
    fm=("FM-32",),
    layer="L4",
    subjects=(KIT_PODS,),
    targets=PerNode("nodeport"),
    probe=_svc("tcp"),
    expect=E.reachable,
    about="Pods reach every node's NodePort.",
)
HOST_NODEPORT_TCP = Check(
    "host-nodeport-tcp",
    fm=("FM-32",),
    layer="L4",
    subjects=(HOST_PROBES,),
    targets=PerNode("nodeport"),
    probe=_svc("tcp"),
    expect=E.reachable,
    about="Nodes reach every node's NodePort.",
)
EXTERNAL_NODEPORT_TCP = Check(
    "external-nodeport-tcp",
    fm=("FM-32", "FM-05"),
    layer="L4",
    subjects=(OUTSIDE_CLIENT,),
    targets=PerNode("nodeport"),
    probe=_svc("tcp"),
    expect=E.reachable,
    about="The outside client reaches every node's NodePort.",
)

CHECKS = (
    POD_CLUSTERIP_TCP,
    POD_CLUSTERIP_UDP,
    POD_CLUSTERIP_HTTP,
    POD_CLUSTERIP_ICMP,
    HOST_CLUSTERIP_TCP,
    POD_NODEPORT_TCP,
    HOST_NODEPORT_TCP,
    EXTERNAL_NODEPORT_TCP,
)
