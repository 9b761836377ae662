"""The node network: nodes reach each other (ICMP, one MAC per address), routes, conntrack, firewall drops,
and the control-plane endpoints (FM-13/15/16/17/10/19/28/30)."""

from __future__ import annotations

from netconform.checks import expectations as E
from netconform.checks import plans
from netconform.checks.api import HOST_PROBES, Check, Fixed, PerNode, ProbeSpec
from netconform.checks.catalogue.pods import ONE_NODE
from netconform.checks.context import Context
from netconform.model.cell import Cell


def _target_node_ip(cell: Cell, ctx: Context) -> str:
    return ctx.node_ip(cell.target_node or "")


HOST_NODE_ICMP = Check(
    "host-node-icmp",
    fm=("FM-13", "FM-15"),
    layer="L3",
    subjects=(HOST_PROBES,),
    targets=PerNode("node", "cross"),
    probe=ProbeSpec("icmp", plans.node_target),
    expect=E.reachable,
    needs=ONE_NODE,
    about="Every node pings every other node.",
)
HOST_NODE_ARP = Check(
    "host-node-arp",
    fm=("FM-16", "FM-28"),
    layer="L2",
    subjects=(HOST_PROBES,),
    targets=PerNode("node", "cross"),
    probe=ProbeSpec("arp", plans.node_target),
    expect=E.one_mac(_target_node_ip, lambda c: f"node {c.target_node}"),
    needs=ONE_NODE,
    about="Exactly one MAC answers ARP for each node (several = IP conflict, with vendors), and the "
    "subject's neighbour cache holds that MAC (another = stale entry, FM-28).",
)
HOST_ROUTES = Check(
    "host-routes",
    fm=("FM-17", "FM-10"),
    layer="L3",
    subjects=(HOST_PROBES,),
    targets=PerNode("node", "same"),
    probe=ProbeSpec("routes", plans.node_target, about="/proc/net/route"),
    expect=E.routes_cover_pods,
    about="Every node has a route for each of its pods and can route to all others.",
)
HOST_CONNTRACK = Check(
    "host-conntrack",
    fm=("FM-30",),
    layer="L4",
    subjects=(HOST_PROBES,),
    targets=PerNode("node", "same"),
    probe=ProbeSpec("conntrack", plans.node_target, about="nf_conntrack_count and _max"),
    expect=E.conntrack_below_budget,
    about="Conntrack use stays below the SNAT port budget.",
)
HOST_IPTABLES = Check(
    "host-iptables",
    fm=("FM-19",),
    layer="L3",
    subjects=(HOST_PROBES,),
    targets=Fixed("component:iptables"),
    probe=ProbeSpec("drops", plans.iptables_snapshots, about="iptables-save -c twice, a window apart"),
    expect=E.no_drop_counter_grows,
    about="DROP rule counters (privileged, opt-in).",
)
HOST_CP_VIP_ARP = Check(
    "host-cp-vip-arp",
    fm=("FM-28",),
    layer="L2",
    subjects=(HOST_PROBES,),
    targets=Fixed("component:control-plane-vip"),
    probe=ProbeSpec("arp", plans.cp_vip_arp, about="neighbour cache, fib_trie, ARP who-has"),
    expect=E.cp_vip_mac_current,
    about="No node caches a stale MAC for the control-plane VIP.",
)
HOST_APISERVER_TCP = Check(
    "host-apiserver-tcp",
    fm=("FM-28",),
    layer="L4",
    subjects=(HOST_PROBES,),
    targets=Fixed("component:apiserver"),
    probe=ProbeSpec("tcp", plans.apiserver_tcp, about="connect to every endpoint of the kubernetes Service"),
    expect=E.apiserver_endpoints_accept,
    about="Every node connects to the API server's endpoints (a stale ARP entry makes this time out).",
)

CHECKS = (
    HOST_NODE_ICMP,
    HOST_NODE_ARP,
    HOST_ROUTES,
    HOST_CONNTRACK,
    HOST_IPTABLES,
    HOST_CP_VIP_ARP,
    HOST_APISERVER_TCP,
)
