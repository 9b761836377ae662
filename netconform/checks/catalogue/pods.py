"""Pod network: every node's probe pod to every node's echo pod, and each node to its pods.

Same-node versus cross-node cells separate a broken overlay (FM-09: cross-node fails, same-node works) from
a broken pod route (FM-10: the node cannot deliver to its own pod); the mesh check turns N^2 failures into
the node groups that cannot reach each other (FM-13).
"""

from __future__ import annotations

from netconform.checks import expectations as E
from netconform.checks import plans
from netconform.checks.api import (
    CLUSTER,
    HOST_PROBES,
    KIT_PODS,
    Check,
    Expectation,
    Fixed,
    PerNode,
    ProbeSpec,
)
from netconform.checks.mesh import judge_pod_mesh

ONE_NODE = "needs a second node: the cluster has only one"


def _echo(kind: str) -> ProbeSpec:
    return ProbeSpec(kind, plans.pod_target, about=f"{kind} to the echo pod of the target node")


POD_POD_ICMP = Check(
    "pod-pod-icmp",
    fm=("FM-15", "FM-03"),
    layer="L3",
    subjects=(KIT_PODS,),
    targets=PerNode("pod"),
    probe=_echo("icmp"),
    expect=E.reachable,
    about="Ping between pods (L3): pod IPs answer ICMP.",
)
POD_POD_TCP = Check(
    "pod-pod-tcp",
    fm=("FM-09", "FM-13", "FM-02", "FM-03", "FM-20"),
    layer="L4",
    subjects=(KIT_PODS,),
    targets=PerNode("pod"),
    probe=_echo("tcp"),
    expect=E.reachable,
    about="TCP echo between pods; a failure names the first broken hop and prints the tcpdump commands.",
)
POD_POD_UDP = Check(
    "pod-pod-udp",
    fm=("FM-33", "FM-09"),
    layer="L4",
    subjects=(KIT_PODS,),
    targets=PerNode("pod"),
    probe=_echo("udp"),
    expect=E.reachable,
    about="UDP echo between pods (UDP must work as well as TCP).",
)
POD_POD_HTTP = Check(
    "pod-pod-http",
    fm=("FM-01",),
    layer="L7",
    subjects=(KIT_PODS,),
    targets=PerNode("pod"),
    probe=_echo("http"),
    expect=E.reachable,
    about="HTTP between pods; an HTTP error status means L4 works and L7 fails.",
)
POD_POD_MTU = Check(
    "pod-pod-mtu",
    fm=("FM-31",),
    layer="L3",
    subjects=(KIT_PODS,),
    targets=PerNode("pod", "cross"),
    probe=_echo("mtu"),
    expect=E.largest_df_size_at_least(min(plans.MTU_SIZES)),
    needs=ONE_NODE,
    about="Large DF packets cross nodes through the overlay, or the loss is named an MTU problem.",
)
HOST_OWN_POD_TCP = Check(
    "host-own-pod-tcp",
    fm=("FM-10",),
    layer="L4",
    subjects=(HOST_PROBES,),
    targets=PerNode("pod", "same"),
    probe=_echo("tcp"),
    expect=E.reachable,
    about="Each node delivers to the pods it hosts (per-pod route / veth).",
)
HOST_OWN_POD_ICMP = Check(
    "host-own-pod-icmp",
    fm=("FM-10", "FM-15"),
    layer="L3",
    subjects=(HOST_PROBES,),
    targets=PerNode("pod", "same"),
    probe=_echo("icmp"),
    expect=E.reachable,
    about="Each node pings the pods it hosts.",
)
HOST_POD_TCP = Check(
    "host-pod-tcp",
    fm=("FM-09", "FM-10"),
    layer="L4",
    subjects=(HOST_PROBES,),
    targets=PerNode("pod", "cross"),
    probe=_echo("tcp"),
    expect=E.reachable,
    needs=ONE_NODE,
    about="Each node reaches pods on the other nodes (node -> tunnel -> pod).",
)
POD_MESH = Check(
    "pod-mesh",
    fm=("FM-13",),
    layer="L3",
    subjects=(CLUSTER,),
    targets=Fixed("component:pod-mesh"),
    probe=ProbeSpec("partition", about="judged from the pod-pod TCP cells"),
    expect=Expectation("no_partition", judge_pod_mesh, "every node's pods reach every node's pods"),
    about="All pod pairs work; otherwise the failing node groups are named, not N^2 errors.",
)

CHECKS = (
    POD_POD_ICMP,
    POD_POD_TCP,
    POD_POD_UDP,
    POD_POD_HTTP,
    POD_POD_MTU,
    HOST_OWN_POD_TCP,
    HOST_OWN_POD_ICMP,
    HOST_POD_TCP,
    POD_MESH,
)
