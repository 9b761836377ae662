"""Workload subjects: the pods of a user's Deployment, DaemonSet, StatefulSet or label selector.

`--subject deployment/NS/NAME` (or `daemonset/`, `statefulset/`, `pods/NS/SELECTOR`) makes the chosen
pods of that workload subjects of the pod checks: the agent runs in their network namespace through an
ephemeral container (`netconform-probe`). A subject's reference is the workload and the node of the
chosen pod, `deployment/shop/checkout@node-2`: stable across runs (pod names change, nodes do not), so
at most one pod per node is chosen.

>>> parse_subject("deployment/shop/checkout")
WorkloadRef(kind='deployment', namespace='shop', name='checkout')
>>> str(parse_subject("pods/shop/app=db,tier in (a,b)"))
'pods/shop/app=db,tier in (a,b)'
>>> choose_pods([WorkloadPod("b", "n2"), WorkloadPod("a", "n1"), WorkloadPod("c", "n1")], None)
[WorkloadPod(name='a', node='n1', ip=None), WorkloadPod(name='b', node='n2', ip=None)]
>>> [p.node for p in choose_pods([WorkloadPod("a", "n1"), WorkloadPod("b", "n2")], 1)]
['n1']
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("deployment", "daemonset", "statefulset", "pods")
PROBE_CONTAINER = "netconform-probe"
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass(frozen=True)
class WorkloadRef:
    kind: str
    namespace: str
    name: str  # the workload's name, or the label selector of `pods/`

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def describe(self) -> str:
        if self.kind == "pods":
            return f"pods {self.name!r} in namespace {self.namespace}"
        title = {"deployment": "Deployment", "daemonset": "DaemonSet", "statefulset": "StatefulSet"}
        return f"{title[self.kind]} {self.name} in namespace {self.namespace}"


def parse_subject(text: str) -> WorkloadRef:
    """`KIND/NAMESPACE/NAME` (KIND: deployment, daemonset, statefulset) or `pods/NAMESPACE/SELECTOR`."""
    kind, _, rest = text.strip().partition("/")
    namespace, _, name = rest.partition("/")
    example = "deployment/shop/checkout, daemonset/NS/NAME, statefulset/NS/NAME or pods/NS/app=web"
    if kind not in KINDS:
        raise ValueError(f"{text!r}: the kind must be one of {', '.join(KINDS)} (e.g. {example})")
    if not (_LABEL.match(namespace) and len(namespace) <= 63):
        raise ValueError(f"{text!r}: {namespace!r} is not a namespace name (e.g. {example})")
    if kind == "pods":
        if not name or any(c in name for c in "@>/"):
            raise ValueError(f"{text!r}: give a label selector after the namespace (e.g. pods/shop/app=web)")
    elif not (_NAME.match(name) and len(name) <= 253):
        raise ValueError(f"{text!r}: {name!r} is not a {kind} name (e.g. {example})")
    return WorkloadRef(kind, namespace, name)


@dataclass(frozen=True, order=True)
class WorkloadPod:
    name: str
    node: str
    ip: str | None = None


def choose_pods(pods: list[WorkloadPod], limit: int | None) -> list[WorkloadPod]:
    """One pod per node (the first by name), nodes in order, at most `limit` of them (None: every node)."""
    first: dict[str, WorkloadPod] = {}
    for pod in sorted(pods):
        first.setdefault(pod.node, pod)
    chosen = [first[n] for n in sorted(first)]
    return chosen if limit is None else chosen[:limit]


@dataclass
class WorkloadInfo:
    """A workload subject as discovered: the pods chosen and, per node, why one cannot be probed."""

    ref: str  # "deployment/shop/checkout"
    namespace: str
    pods: list[WorkloadPod] = field(default_factory=list)
    running: int = 0  # running pods the workload has (the chosen ones are at most one per node)
    unavailable: dict[str, str] = field(default_factory=dict)  # node -> reason its cells skip
    added: list[str] = field(default_factory=list)  # nodes whose pod got netconform-probe in this run
    rows: bool = True  # the built-in pod checks run from it (False: only a --policy-table's workload)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # chosen pod -> its labels

    def subject(self, node: str) -> str:
        return f"{self.ref}@{node}"

    @property
    def subjects(self) -> list[str]:
        return [self.subject(p.node) for p in self.pods]

    def pod_on(self, node: str) -> WorkloadPod | None:
        return next((p for p in self.pods if p.node == node), None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkloadInfo:
        return cls(
            ref=data["ref"],
            namespace=data["namespace"],
            pods=[WorkloadPod(**p) for p in data.get("pods", [])],
            running=int(data.get("running", 0)),
            unavailable=dict(data.get("unavailable", {})),
            added=list(data.get("added", [])),
            rows=bool(data.get("rows", True)),
            labels={k: dict(v) for k, v in data.get("labels", {}).items()},
        )


def is_workload_ref(text: str) -> bool:
    """A subject reference of a workload (`KIND/NS/NAME@NODE`).

    >>> is_workload_ref("deployment/shop/checkout@node-2"), is_workload_ref("pod@node-2")
    (True, False)
    """
    return text.split("/", 1)[0] in KINDS and "/" in text
