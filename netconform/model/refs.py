"""Subject and target references of a cell, parsed in one place.

A reference is `HEAD@NODE` (a kit pod, a host probe, a node, a NodePort, a CoreDNS pod, a node's
nameservers), `HEAD:NAME` (a component, an IngressClass, a Gateway `ns/name`, a user's check) or a bare
`HEAD` (`external`, `cluster`, `clusterip`, `lb-vip`, `dns-internal`, `outside` ...).

>>> Ref.parse("pod@node-2"), str(Ref.parse("gateway:kube-system/gw"))
(Ref(head='pod', node='node-2', name=None), 'gateway:kube-system/gw')
>>> Ref.parse("component:iptables").kind, Ref.parse("ingress:lab").kind, Ref.parse("lb-vip").kind
('component:iptables', 'ingress', 'lb-vip')

A workload subject (`--subject`) is `KIND/NS/NAME@NODE`: head `workload`, the workload as its name.

>>> r = Ref.parse("deployment/shop/checkout@node-2"); (r.head, r.node, r.name, r.role, str(r))
('workload', 'node-2', 'deployment/shop/checkout', 'pod', 'deployment/shop/checkout@node-2')
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

NAMED = ("component", "ingress", "gateway", "check", "family", "policy")
WORKLOAD_KINDS = ("deployment", "daemonset", "statefulset", "pods")  # model/workload.py


@dataclass(frozen=True, order=True)
class Ref:
    head: str
    node: str | None = None
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> Ref:
        return _parse(text)

    @property
    def kind(self) -> str:
        """What selects a check's cells: the head, but each component is a kind of its own."""
        return f"component:{self.name}" if self.head == "component" else self.head

    @property
    def role(self) -> str:
        """The subject role of the checks it runs: a workload's pods run the pod checks."""
        return "pod" if self.head == "workload" else self.head

    def __str__(self) -> str:
        if self.head == "workload":
            return f"{self.name}@{self.node}"
        if self.node is not None:
            return f"{self.head}@{self.node}"
        if self.name is not None:
            return f"{self.head}:{self.name}"
        return self.head


@lru_cache(maxsize=65536)
def _parse(text: str) -> Ref:
    head, sep, name = text.partition(":")
    if sep and head in NAMED:
        return Ref(head, None, name)
    head, sep, node = text.partition("@")
    if sep and "/" in head and head.split("/", 1)[0] in WORKLOAD_KINDS:
        return Ref("workload", node or None, head)
    return Ref(head, node or None) if sep else Ref(text)
