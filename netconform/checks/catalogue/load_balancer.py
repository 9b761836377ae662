"""The LoadBalancer VIP from outside and from pods, its ARP announcement, and the F5 / MetalLB controllers
(FM-05/06/07/08/15/16/29)."""

from __future__ import annotations

from netconform.checks import components as K
from netconform.checks import expectations as E
from netconform.checks import plans
from netconform.checks.api import (
    CLUSTER,
    HOST_PROBES,
    KIT_PODS,
    OUTSIDE_CLIENT,
    Check,
    Expectation,
    Fixed,
    ProbeSpec,
)
from netconform.checks.catalogue.dataplane import api_judge
from netconform.checks.context import Context
from netconform.model.cell import Cell
from netconform.model.verdict import Verdict

LB_VIP = Fixed("lb-vip")


def _svc(kind: str) -> ProbeSpec:
    return ProbeSpec(kind, plans.service_target, about=f"{kind} to the LB VIP and port")


def _lb_ip(cell: Cell, ctx: Context) -> str:
    return ctx.lb_ip()


def _f5(cell: Cell, ctx: Context) -> Verdict:
    kit = ctx.kit
    ports = [kit.service_ports["http"], kit.service_ports["tcp"]]
    return K.judge_f5(ctx.topo, ctx.api, kit.lb_ip, ports, kit.namespace)


def _metallb(cell: Cell, ctx: Context) -> Verdict:
    assert ctx.arp is not None, "the engine provides ARP lookups to API-judged checks"
    return K.judge_metallb(ctx.topo, ctx.api, ctx.kit.lb_ip, ctx.arp)


EXTERNAL_LB_TCP = Check(
    "external-lb-tcp",
    fm=("FM-05", "FM-08"),
    layer="L4",
    subjects=(OUTSIDE_CLIENT,),
    targets=LB_VIP,
    probe=_svc("tcp"),
    expect=E.reachable,
    about="The outside client reaches the LB VIP on TCP.",
)
EXTERNAL_LB_HTTP = Check(
    "external-lb-http",
    fm=("FM-05", "FM-01"),
    layer="L7",
    subjects=(OUTSIDE_CLIENT,),
    targets=LB_VIP,
    probe=_svc("http"),
    expect=E.reachable,
    about="The outside client gets HTTP through the LB VIP.",
)
EXTERNAL_LB_ICMP = Check(
    "external-lb-icmp",
    fm=("FM-15",),
    layer="L3",
    subjects=(OUTSIDE_CLIENT,),
    targets=LB_VIP,
    probe=_svc("icmp"),
    expect=E.vip_port_not_ping,
    about="MetalLB/F5 VIPs answer ping; a pure-L4 VIP need not, if VIP:port answers.",
)
POD_LB_TCP = Check(
    "pod-lb-tcp",
    fm=("FM-08",),
    layer="L4",
    subjects=(KIT_PODS,),
    targets=LB_VIP,
    probe=_svc("tcp"),
    expect=E.reachable,
    about="Pods reach the LB VIP (hairpin through service NAT).",
)
HOST_LB_ARP = Check(
    "host-lb-arp",
    fm=("FM-06", "FM-16"),
    layer="L2",
    subjects=(HOST_PROBES,),
    targets=LB_VIP,
    probe=_svc("arp"),
    expect=E.one_mac(_lb_ip, lambda c: "the LB VIP", local_ok=True),
    about="Exactly one MAC answers ARP for the VIP on the node segment.",
)
F5_CONFIG = Check(
    "f5-config",
    fm=("FM-07", "FM-29"),
    layer="L4",
    subjects=(CLUSTER,),
    targets=Fixed("component:f5"),
    probe=ProbeSpec("config"),
    expect=Expectation("f5_config_has_every_vip", api_judge(_f5)),
    about="F5 controller pods run and a ConfigMap holds every LB port's VIP.",
)
METALLB_ANNOUNCE = Check(
    "metallb-announce",
    fm=("FM-06",),
    layer="L2",
    subjects=(CLUSTER,),
    targets=Fixed("component:metallb"),
    probe=ProbeSpec("announce"),
    expect=Expectation("one_node_announces", api_judge(_metallb)),
    about="The MetalLB speaker logs name one node for the VIP, and that node's MAC answers ARP for it.",
)

CHECKS = (
    EXTERNAL_LB_TCP,
    EXTERNAL_LB_HTTP,
    EXTERNAL_LB_ICMP,
    POD_LB_TCP,
    HOST_LB_ARP,
    F5_CONFIG,
    METALLB_ANNOUNCE,
)
