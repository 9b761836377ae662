"""The matrix geometry shared by the HTML, terminal and pytest-html views: rows, columns and badge slots.

Rows are subjects (each node's host network, the pods of each node, the outside client); columns are
either every target (``pod@node-2``, ``clusterip`` ...) grouped by family, or the target *kinds* of the
scope model (pod same node, pod other node, ClusterIP ...). Inside a cell there is one badge per
layer/protocol "slot". Order is fixed here so every view lines up the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netconform.report.results import LAYERS, OUTCOMES, family_of, natural_key, node_of

SUBJECT_FAMILY_ORDER = ("host", "pod", "workload", "external", "cluster")
SUBJECT_FAMILY_LABEL = {
    "host": "host network",
    "pod": "pods",
    "workload": "workload pods",
    "external": "outside client",
    "cluster": "cluster-wide checks",
}

TARGET_FAMILY_ORDER = (
    "pod",
    "node",
    "clusterip",
    "nodeport",
    "lb-vip",
    "ingress",
    "gateway",
    "dns-internal",
    "dns-external",
    "coredns",
    "nameserver",
    "outside",
    "internet",
    "component",
    "family",
)
TARGET_FAMILY_LABEL = {
    "pod": "pods",
    "node": "nodes",
    "clusterip": "ClusterIP",
    "nodeport": "NodePort",
    "lb-vip": "LB VIP",
    "ingress": "L7 ingress",
    "gateway": "Gateway API",
    "dns-internal": "DNS internal",
    "dns-external": "DNS external",
    "coredns": "CoreDNS pods",
    "nameserver": "nameservers",
    "outside": "outside",
    "internet": "internet",
    "component": "components",
    "family": "not in this cluster",
    "check": "your checks",
}

KIND_ORDER = (
    "T-POD-NODE",
    "T-POD-CLUSTER",
    "T-CLUSTERIP",
    "T-NODEPORT",
    "T-LB-VIP",
    "T-INGRESS-L7",
    "T-NODE",
    "T-DNS-INTERNAL",
    "T-DNS-EXTERNAL",
    "T-DNS-SERVER",
    "T-OUTSIDE",
    "T-INTERNET",
    "T-COMPONENT",
    "T-USER",
)
KIND_LABEL = {
    "T-POD-NODE": "pod, same node",
    "T-POD-CLUSTER": "pod, other node",
    "T-CLUSTERIP": "ClusterIP",
    "T-NODEPORT": "NodePort",
    "T-LB-VIP": "LB VIP",
    "T-INGRESS-L7": "L7 ingress",
    "T-NODE": "nodes",
    "T-DNS-INTERNAL": "DNS internal",
    "T-DNS-EXTERNAL": "DNS external",
    "T-DNS-SERVER": "DNS servers",
    "T-OUTSIDE": "outside",
    "T-INTERNET": "internet",
    "T-COMPONENT": "components",
    "T-USER": "your checks",
}
# short column titles for the 100-column terminal
KIND_SHORT = {
    "T-POD-NODE": "pod=",
    "T-POD-CLUSTER": "pod≠",
    "T-CLUSTERIP": "cip",
    "T-NODEPORT": "np",
    "T-LB-VIP": "lb",
    "T-INGRESS-L7": "ing",
    "T-NODE": "node",
    "T-DNS-INTERNAL": "dnsI",
    "T-DNS-EXTERNAL": "dnsE",
    "T-DNS-SERVER": "dnsS",
    "T-OUTSIDE": "out",
    "T-INTERNET": "inet",
    "T-COMPONENT": "comp",
    "T-USER": "user",
}

LAYER_CODE = {"L2": "2", "L3": "3", "L4": "4", "L7": "7", "DNS": "D"}
PROTOCOL_ORDER = ("arp", "icmp", "route", "mtu", "tcp", "udp", "http", "https", "tls", "dns", "resolve")

# worst first: the outcome an aggregated badge shows when its cells disagree
SEVERITY = {"failed": 5, "error": 4, "flaky": 3, "passed": 1, "skipped": 0}


def worst(outcomes: Iterable[str]) -> str:
    """The outcome an aggregate shows: failed/error over flaky over passed over skipped."""
    return max(outcomes, key=lambda outcome: SEVERITY.get(outcome, 0), default="")


def _rank(order: Sequence[str], value: str) -> int:
    return order.index(value) if value in order else len(order)


def subject_sort_key(subject: str) -> tuple[Any, ...]:
    workload = subject.rpartition("@")[0] if family_of(subject) == "workload" else ""
    return (
        _rank(SUBJECT_FAMILY_ORDER, family_of(subject)),
        workload,
        natural_key(node_of(subject) or subject),
    )


def target_sort_key(target: str) -> tuple[Any, ...]:
    return (_rank(TARGET_FAMILY_ORDER, family_of(target)), natural_key(target))


def slot_sort_key(slot: tuple[str, str]) -> tuple[Any, ...]:
    layer, protocol = slot
    return (_rank(LAYERS, layer), _rank(PROTOCOL_ORDER, protocol), protocol)


def subject_label(subject: str) -> str:
    """Row title: ``host@node-1`` -> ``node-1 host``, ``pod@node-1`` -> ``node-1 pods``, a workload's
    ``deployment/shop/checkout@node-2`` -> ``shop/checkout pods on node-2`` (``pods/NS/SEL``: NS/SEL).

    >>> subject_label("deployment/shop/checkout@node-2"), subject_label("pods/db/app=pg@node-1")
    ('shop/checkout pods on node-2', 'db/app=pg pods on node-1')
    """
    family, node = family_of(subject), node_of(subject)
    if family == "workload":
        return f"{subject.rpartition('@')[0].split('/', 1)[1]} pods on {node}"
    if node:
        return f"{node} {'pods' if family == 'pod' else family}"
    return SUBJECT_FAMILY_LABEL.get(family, subject)


def target_label(target: str) -> str:
    """Column title inside its family group: the node name, or the component name, or the target id."""
    node = node_of(target)
    if node:
        return node
    if target.startswith(("component:", "family:")):
        return target.split(":", 1)[1]
    return TARGET_FAMILY_LABEL.get(target, target)


def kind_label(kind: str) -> str:
    return KIND_LABEL.get(kind, kind)


def _slot_codes(slots: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Badge text per slot: layer code + the shortest protocol prefix that is unique within the layer."""
    codes: dict[tuple[str, str], str] = {}
    for layer in {s[0] for s in slots}:
        protocols = sorted({s[1] for s in slots if s[0] == layer})
        for protocol in protocols:
            length = 1
            while length < len(protocol) and any(
                p != protocol and p[:length] == protocol[:length] for p in protocols
            ):
                length += 1
            codes[(layer, protocol)] = LAYER_CODE.get(layer, layer[:1]) + protocol[:length]
    return codes


@dataclass(frozen=True)
class Layout:
    """Rows, columns and slots of one run's matrix, in display order."""

    subjects: list[str]
    targets: list[str]
    kinds: list[str]
    slots: list[tuple[str, str]]
    slot_codes: dict[tuple[str, str], str]

    def target_families(self) -> list[tuple[str, list[str]]]:
        """Consecutive column groups ``(family, [targets])`` for the two-row table header."""
        groups: list[tuple[str, list[str]]] = []
        for target in self.targets:
            family = family_of(target)
            if groups and groups[-1][0] == family:
                groups[-1][1].append(target)
            else:
                groups.append((family, [target]))
        return groups


def build_layout(cells: Iterable[Mapping[str, Any]]) -> Layout:
    cell_list = list(cells)
    subjects = sorted({c["subject"] for c in cell_list}, key=subject_sort_key)
    targets = sorted({c["target"] for c in cell_list}, key=target_sort_key)
    kinds = sorted(
        {str(c.get("target_kind") or "T-?") for c in cell_list}, key=lambda k: (_rank(KIND_ORDER, k), k)
    )
    slots = sorted({(c["layer"], c["protocol"]) for c in cell_list}, key=slot_sort_key)
    return Layout(subjects, targets, kinds, slots, _slot_codes(slots))


def slot_label(slot: tuple[str, str]) -> str:
    return f"{slot[0]} {slot[1]}"


__all__ = [
    "KIND_LABEL",
    "KIND_SHORT",
    "OUTCOMES",
    "SEVERITY",
    "Layout",
    "build_layout",
    "kind_label",
    "slot_label",
    "subject_label",
    "target_label",
    "worst",
]
