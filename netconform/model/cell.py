"""Cells: subject x target x layer x protocol, the coordinates the suite says "works" or "broken" about.

A cell is one thing the suite can say "works" or "broken" about, e.g. `pod@node-1->pod@node-2/L4-tcp`.
Ids contain node names but never pod names or run ids, so they match across runs (baseline diffs).
Checks (`netconform.checks.api.Check`) expand into cells over the topology snapshot only, so every xdist
worker derives the same cells in the same (sorted) order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from netconform.model.refs import Ref

LAYERS = ("L2", "L3", "L4", "L7", "DNS")
SUBJECT_KINDS = {
    "host": "S-NODE",
    "pod": "S-POD-NODE",
    "workload": "S-POD-WORKLOAD",  # a user's workload pod (--subject deployment/NS/NAME, model/workload.py)
    "external": "S-EXTERNAL",
    "cluster": "S-CLUSTER",
}
CELL_ID = re.compile(
    r"^(?P<subject>[^>]+)->(?P<target>.+)/(?P<layer>L2|L3|L4|L7|DNS)-(?P<protocol>[a-z0-9-]+)$"
)


def _node_of(ref: str) -> str | None:
    return Ref.parse(ref).node


def subject_kind(subject: str) -> str:
    return SUBJECT_KINDS[Ref.parse(subject).head]


def target_kind(subject: str, target: str) -> str:
    """Kind of a target as seen from a subject (a pod on the subject's own node is T-POD-NODE)."""
    if target.startswith("component:"):
        return "T-COMPONENT"
    if target.startswith(("ingress:", "gateway:")):
        return "T-INGRESS-L7"
    if target.startswith("check:"):
        return "T-USER"
    if target.startswith("policy:"):
        return "T-POLICY"  # a --policy-table column: a workload's pod or an address, and a port
    head = Ref.parse(target).head
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
    def source(self) -> Ref:
        """The subject as a typed reference (role and node)."""
        return Ref.parse(self.subject)

    @property
    def dest(self) -> Ref:
        """The target as a typed reference (kind, node, name)."""
        return Ref.parse(self.target)

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


def l7_entry_ref(target: str) -> tuple[str, str] | None:
    """("ingress", CLASS) or ("gateway", "NS/NAME") for an L7 ingress target, else None.

    >>> l7_entry_ref("gateway:kube-system/lab-gateway"), l7_entry_ref("ingress:lab"), l7_entry_ref("pod@n")
    (('gateway', 'kube-system/lab-gateway'), ('ingress', 'lab'), None)
    """
    head, sep, rest = target.partition(":")
    return (head, rest) if sep and head in ("ingress", "gateway") else None


def target_head(target: str) -> str:
    """The kind part of a target reference: `pod@node-1` -> `pod`; `ingress:lab` -> `ingress`;
    `component:iptables` stays whole (each component is its own kind); `check:NAME` -> `check`.

    >>> [target_head(t) for t in ("pod@node-1", "ingress:lab", "component:f5", "lb-vip")]
    ['pod', 'ingress', 'component:f5', 'lb-vip']
    """
    return Ref.parse(target).kind
