"""DNS: cluster names through kube-dns (UDP, TCP, the system resolver), each CoreDNS pod, external names,
and the nodes' own nameservers (FM-04/21/22/23/24/33)."""

from __future__ import annotations

from netconform.checks import expectations as E
from netconform.checks import plans
from netconform.checks.api import (
    CLUSTER,
    HOST_PROBES,
    KIT_PODS,
    Check,
    CoreDnsPods,
    Fixed,
    PerNode,
    ProbeSpec,
)

INTERNAL, EXTERNAL = Fixed("dns-internal"), Fixed("dns-external")


def _dns(kind: str) -> ProbeSpec:
    return ProbeSpec(kind, plans.dns)


POD_DNS_INTERNAL_UDP = Check(
    "pod-dns-internal-udp",
    fm=("FM-21", "FM-04"),
    layer="DNS",
    subjects=(KIT_PODS,),
    targets=INTERNAL,
    probe=_dns("udp"),
    expect=E.dns_answers,
    about="kubernetes.default.svc.<domain> through the kube-dns Service IP (UDP).",
)
POD_DNS_INTERNAL_TCP = Check(
    "pod-dns-internal-tcp",
    fm=("FM-33", "FM-21"),
    layer="DNS",
    subjects=(KIT_PODS,),
    targets=INTERNAL,
    probe=_dns("tcp"),
    expect=E.dns_answers,
    about="The same query over TCP.",
)
POD_DNS_INTERNAL_RESOLVE = Check(
    "pod-dns-internal-resolve",
    fm=("FM-21",),
    layer="DNS",
    subjects=(KIT_PODS,),
    targets=INTERNAL,
    probe=_dns("resolve"),
    expect=E.reachable,
    about="What applications see: getaddrinfo in a pod.",
)
POD_DNS_EXTERNAL_UDP = Check(
    "pod-dns-external-udp",
    fm=("FM-21", "FM-23"),
    layer="DNS",
    subjects=(KIT_PODS,),
    targets=EXTERNAL,
    probe=_dns("udp"),
    expect=E.dns_answers,
    about="An external name through kube-dns (CoreDNS forwards it upstream).",
)
POD_COREDNS_UDP = Check(
    "pod-coredns-udp",
    fm=("FM-22",),
    layer="DNS",
    subjects=(KIT_PODS,),
    targets=CoreDnsPods(),
    probe=_dns("udp"),
    expect=E.dns_answers,
    needs="no CoreDNS pod found in kube-system",
    about="Each CoreDNS pod answers directly, from every node's pods.",
)
HOST_DNS_INTERNAL_RESOLVE = Check(
    "host-dns-internal-resolve",
    fm=("FM-24",),
    layer="DNS",
    subjects=(HOST_PROBES,),
    targets=INTERNAL,
    probe=_dns("resolve"),
    expect=E.node_resolver_answers,
    about="Nodes do not know cluster.local: expected; their resolver must still answer.",
)
HOST_DNS_EXTERNAL_RESOLVE = Check(
    "host-dns-external-resolve",
    fm=("FM-24", "FM-23"),
    layer="DNS",
    subjects=(HOST_PROBES,),
    targets=EXTERNAL,
    probe=_dns("resolve"),
    expect=E.reachable,
    about="Nodes resolve external names with their own nameservers.",
)
HOST_NAMESERVERS = Check(
    "host-nameservers",
    fm=("FM-24", "FM-23"),
    layer="DNS",
    subjects=(HOST_PROBES,),
    targets=PerNode("nameserver", "same"),
    probe=ProbeSpec(
        "udp", plans.dns, plans.nameserver_followups, "resolv.conf, then each nameserver on its own"
    ),
    expect=E.every_nameserver_answers,
    about="Every nameserver a node lists answers when asked on its own.",
)
NODE_NAMESERVER_SETS = Check(
    "node-nameserver-sets",
    fm=("FM-24",),
    layer="DNS",
    subjects=(CLUSTER,),
    targets=Fixed("component:node-nameservers"),
    probe=ProbeSpec("config", plans.cluster_nameserver_sets),
    expect=E.same_nameserver_sets,
    about="Every node lists the same set of nameservers.",
)

CHECKS = (
    POD_DNS_INTERNAL_UDP,
    POD_DNS_INTERNAL_TCP,
    POD_DNS_INTERNAL_RESOLVE,
    POD_DNS_EXTERNAL_UDP,
    POD_COREDNS_UDP,
    HOST_DNS_INTERNAL_RESOLVE,
    HOST_DNS_EXTERNAL_RESOLVE,
    HOST_NAMESERVERS,
    NODE_NAMESERVER_SETS,
)
