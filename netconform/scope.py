"""The scope model of the seed: subject x target x layer, as cells with stable, readable ids.

A cell is one thing the suite can say "works" or "broken" about, e.g. `pod@node-1->pod@node-2/L4-tcp`.
Ids contain node names but never pod names or run ids, so they match across runs (baseline diffs).
Families group the cells a test function is parametrized over; they are computed from the topology
snapshot only, so every xdist worker derives the same list in the same (sorted) order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from netconform.kube.topology import Topology
from netconform.model.sampling import sampled_pairs

LAYERS = ("L2", "L3", "L4", "L7", "DNS")
SUBJECT_KINDS = {"host": "S-NODE", "pod": "S-POD-NODE", "external": "S-EXTERNAL", "cluster": "S-CLUSTER"}
CELL_ID = re.compile(
    r"^(?P<subject>[^>]+)->(?P<target>.+)/(?P<layer>L2|L3|L4|L7|DNS)-(?P<protocol>[a-z0-9-]+)$"
)


def _node_of(ref: str) -> str | None:
    return ref.split("@", 1)[1] if "@" in ref else None


def subject_kind(subject: str) -> str:
    return SUBJECT_KINDS[subject.split("@", 1)[0]]


def target_kind(subject: str, target: str) -> str:
    """Kind of a target as seen from a subject (a pod on the subject's own node is T-POD-NODE)."""
    if target.startswith("component:"):
        return "T-COMPONENT"
    if target.startswith(("ingress:", "gateway:")):
        return "T-INGRESS-L7"
    head = target.split("@", 1)[0]
    if head == "pod":
        return "T-POD-NODE" if _node_of(target) == _node_of(subject) else "T-POD-CLUSTER"
    return {
        "node": "T-NODE",
        "clusterip": "T-CLUSTERIP",
        "nodeport": "T-NODEPORT",
        "lb-vip": "T-LB-VIP",
        "dns-internal": "T-DNS-INTERNAL",
        "dns-external": "T-DNS-EXTERNAL",
        "coredns": "T-DNS-SERVER",
        "nameserver": "T-DNS-SERVER",
        "outside": "T-OUTSIDE",
        "internet": "T-INTERNET",
    }[head]


@dataclass(frozen=True, order=True)
class Cell:
    """One (subject, target, layer, protocol) coordinate; the unit that passes or fails."""

    subject: str
    target: str
    layer: str
    protocol: str

    @property
    def id(self) -> str:
        return f"{self.subject}->{self.target}/{self.layer}-{self.protocol}"

    @property
    def subject_kind(self) -> str:
        return subject_kind(self.subject)

    @property
    def target_kind(self) -> str:
        return target_kind(self.subject, self.target)

    @property
    def subject_node(self) -> str | None:
        return _node_of(self.subject)

    @property
    def target_node(self) -> str | None:
        return _node_of(self.target)

    @property
    def cross_node(self) -> bool:
        return self.subject_node is not None and self.target_node not in (None, self.subject_node)

    def key(self, fm: str) -> str:
        """The stable key of `results.json` (first FM id, subject, target, layer, protocol)."""
        return "|".join([fm, self.subject, self.target, self.layer, self.protocol])

    @classmethod
    def parse(cls, text: str) -> Cell:
        match = CELL_ID.match(text)
        if not match:
            raise ValueError(f"not a cell id: {text!r}")
        return cls(match["subject"], match["target"], match["layer"], match["protocol"])


@dataclass(frozen=True)
class Family:
    """The cells one test function covers, and what is missing when there are none."""

    name: str
    build: Callable[[Topology], Iterable[Cell]]
    needs: str  # the skip reason when the cluster yields no cell, naming what is missing

    def cells(self, topo: Topology) -> list[Cell]:
        return sorted(set(self.build(topo)))

    def missing(self, topo: Topology) -> str:
        """Why the family has no cell here: what is missing, and what discovery could not see."""
        note = topo.ingress_note if self.name.startswith("ingress") else None
        return f"{self.needs} ({note})" if note else self.needs


def _nodes(t: Topology) -> list[str]:
    return t.node_names


def _pairs(t: Topology, cross_only: bool = False, same_only: bool = False) -> Iterable[tuple[str, str]]:
    sampled = peer_pairs(t)
    for a in _nodes(t):
        for b in _nodes(t):
            if (cross_only and a == b) or (same_only and a != b) or (a != b and (a, b) not in sampled):
                continue
            yield a, b


def peer_pairs(t: Topology) -> frozenset[tuple[str, str]]:
    """The node pairs the node x node families cover: all, or K peers per node (--peers)."""
    return sampled_pairs(t.node_names, t.peers, {n.name: n.domain for n in t.nodes})


def _per_node(subject: str, target: str, layer: str, protocol: str) -> Callable[[Topology], Iterable[Cell]]:
    """Cells `SUBJECT@node -> TARGET/...` for every node (`{n}` in target is the subject's node)."""

    def build(t: Topology) -> Iterable[Cell]:
        return (Cell(f"{subject}@{n}", target.format(n=n), layer, protocol) for n in _nodes(t))

    return build


def _pair_family(
    subject: str, target: str, layer: str, protocol: str, **kw: bool
) -> Callable[[Topology], Iterable[Cell]]:
    def build(t: Topology) -> Iterable[Cell]:
        return (Cell(f"{subject}@{a}", f"{target}@{b}", layer, protocol) for a, b in _pairs(t, **kw))

    return build


def _single(subject: str, target: str, layer: str, protocol: str) -> Callable[[Topology], Iterable[Cell]]:
    def build(t: Topology) -> Iterable[Cell]:
        return [Cell(subject, target, layer, protocol)]

    return build


def _external_nodeports(t: Topology) -> Iterable[Cell]:
    return (Cell("external", f"nodeport@{n}", "L4", "tcp") for n in _nodes(t))


def _pod_coredns(t: Topology) -> Iterable[Cell]:
    return (Cell(f"pod@{a}", f"coredns@{b}", "DNS", "udp") for a in _nodes(t) for b in t.coredns_nodes())


def _ingress(t: Topology) -> Iterable[Cell]:
    """HTTP through each IngressClass's controller, from outside, from every node's pods and hosts."""
    for c in t.ingress_classes:
        target = f"ingress:{c.name}"
        yield Cell("external", target, "L7", "http")
        for n in _nodes(t):
            yield Cell(f"pod@{n}", target, "L7", "http")
            yield Cell(f"host@{n}", target, "L7", "http")


def _ingress_https(t: Topology) -> Iterable[Cell]:
    """HTTPS with SNI through each IngressClass (only with --ingress-tls): same subjects as HTTP."""
    if t.ingress_tls:
        for c in _ingress(t):
            yield Cell(c.subject, c.target, "L7", "https")


def _gateway(t: Topology) -> Iterable[Cell]:
    """HTTP through each Gateway named by --gateway (`gateway:NS/NAME`; CELL_ID's target takes the
    slash: the layer/protocol suffix is matched from the right)."""
    for ref in t.requested_gateways:
        target = f"gateway:{ref}"
        yield Cell("external", target, "L7", "http")
        for n in _nodes(t):
            yield Cell(f"pod@{n}", target, "L7", "http")
            yield Cell(f"host@{n}", target, "L7", "http")


def l7_entry_ref(target: str) -> tuple[str, str] | None:
    """("ingress", CLASS) or ("gateway", "NS/NAME") for an L7 ingress target, else None.

    >>> l7_entry_ref("gateway:kube-system/lab-gateway"), l7_entry_ref("ingress:lab"), l7_entry_ref("pod@n")
    (('gateway', 'kube-system/lab-gateway'), ('ingress', 'lab'), None)
    """
    head, sep, rest = target.partition(":")
    return (head, rest) if sep and head in ("ingress", "gateway") else None


NO_INGRESS = "no IngressClass in this cluster: no ingress controller to send traffic through"


def _cni_ready(t: Topology) -> Iterable[Cell]:
    return (Cell("cluster", f"node@{n}", "L3", "cni-ready") for n in _nodes(t))


ONE_NODE = "needs a second node: the cluster has only one"
FAMILIES: dict[str, Family] = {}


def _register(
    name: str, build: Callable[[Topology], Iterable[Cell]], needs: str = "no cell in this cluster"
) -> None:
    FAMILIES[name] = Family(name, build, needs)


# pod network
for _proto, _layer in (("icmp", "L3"), ("tcp", "L4"), ("udp", "L4"), ("http", "L7")):
    _register(f"pod-pod-{_proto}", _pair_family("pod", "pod", _layer, _proto))
_register("pod-pod-mtu", _pair_family("pod", "pod", "L3", "mtu", cross_only=True), ONE_NODE)
_register("host-own-pod-tcp", _pair_family("host", "pod", "L4", "tcp", same_only=True))
_register("host-own-pod-icmp", _pair_family("host", "pod", "L3", "icmp", same_only=True))
_register("host-pod-tcp", _pair_family("host", "pod", "L4", "tcp", cross_only=True), ONE_NODE)
_register("pod-mesh", _single("cluster", "component:pod-mesh", "L3", "partition"))
# node network
_register("host-node-icmp", _pair_family("host", "node", "L3", "icmp", cross_only=True), ONE_NODE)
_register("host-node-arp", _pair_family("host", "node", "L2", "arp", cross_only=True), ONE_NODE)
_register("host-routes", _per_node("host", "node@{n}", "L3", "routes"))
_register("host-conntrack", _per_node("host", "node@{n}", "L4", "conntrack"))
_register("host-iptables", _per_node("host", "component:iptables", "L3", "drops"))
_register("host-cp-vip-arp", _per_node("host", "component:control-plane-vip", "L2", "arp"))
_register("host-apiserver-tcp", _per_node("host", "component:apiserver", "L4", "tcp"))
# services
for _proto, _layer in (("tcp", "L4"), ("udp", "L4"), ("http", "L7"), ("icmp", "L3")):
    _register(f"pod-clusterip-{_proto}", _per_node("pod", "clusterip", _layer, _proto))
_register("host-clusterip-tcp", _per_node("host", "clusterip", "L4", "tcp"))
_register("pod-nodeport-tcp", _pair_family("pod", "nodeport", "L4", "tcp"))
_register("host-nodeport-tcp", _pair_family("host", "nodeport", "L4", "tcp"))
_register("external-nodeport-tcp", _external_nodeports)
# load balancer
for _proto, _layer in (("tcp", "L4"), ("http", "L7"), ("icmp", "L3")):
    _register(f"external-lb-{_proto}", _single("external", "lb-vip", _layer, _proto))
_register("pod-lb-tcp", _per_node("pod", "lb-vip", "L4", "tcp"))
_register("host-lb-arp", _per_node("host", "lb-vip", "L2", "arp"))
_register("f5-config", _single("cluster", "component:f5", "L4", "config"))
_register("metallb-announce", _single("cluster", "component:metallb", "L2", "announce"))
# L7 ingress
_register("ingress-http", _ingress, NO_INGRESS)
_register(
    "ingress-https",
    _ingress_https,
    "HTTPS through the ingress is off (pass --ingress-tls), or no IngressClass in this cluster",
)
_register("gateway-http", _gateway, "no Gateway asked for: pass --gateway NAMESPACE/NAME")
# egress
_register("pod-outside-snat", _per_node("pod", "outside", "L4", "snat"))
_register("pod-outside-icmp", _per_node("pod", "outside", "L3", "icmp"))
_register("pod-outside-tcp", _per_node("pod", "outside", "L4", "tcp"))
_register("host-outside-tcp", _per_node("host", "outside", "L4", "tcp"))
_register("pod-internet-http", _per_node("pod", "internet", "L7", "http"))
# dns
_register("pod-dns-internal-udp", _per_node("pod", "dns-internal", "DNS", "udp"))
_register("pod-dns-internal-tcp", _per_node("pod", "dns-internal", "DNS", "tcp"))
_register("pod-dns-internal-resolve", _per_node("pod", "dns-internal", "DNS", "resolve"))
_register("pod-dns-external-udp", _per_node("pod", "dns-external", "DNS", "udp"))
_register("pod-coredns-udp", _pod_coredns, "no CoreDNS pod found in kube-system")
_register("host-dns-internal-resolve", _per_node("host", "dns-internal", "DNS", "resolve"))
_register("host-dns-external-resolve", _per_node("host", "dns-external", "DNS", "resolve"))
_register("host-nameservers", _per_node("host", "nameserver@{n}", "DNS", "udp"))
_register("node-nameserver-sets", _single("cluster", "component:node-nameservers", "DNS", "config"))
# dataplane components
_register("cni-ready", _cni_ready)
_register("cilium-health", _single("cluster", "component:cilium-health", "L3", "health"))
_register("cilium-rate-limit", _single("cluster", "component:cilium-api", "L7", "rate-limit"))
_register("ebpf-maps", _single("cluster", "component:ebpf-maps", "L3", "map-fill"))
_register("drop-monitor", _single("cluster", "component:drop-monitor", "L3", "drops"))


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown scope family {name!r}; known: {', '.join(sorted(FAMILIES))}") from None


def all_cells(topo: Topology) -> list[Cell]:
    """Every cell of every family (the controller selects from these by the collected ids)."""
    return sorted({c for fam in FAMILIES.values() for c in fam.cells(topo)})
