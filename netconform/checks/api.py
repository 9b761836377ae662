"""Checks as values: who sends (subjects), to what (targets), what is sent (probe) and what must happen.

A check is the unit of the catalogue and of users' own checks (Cilium's scenario x expectation, as one
value). It expands over the cluster's topology into cells; the engine plans every selected cell's probes
from its check (still one exec per subject per phase) and judges them with the check's expectation.

>>> from netconform.checks.catalogue.pods import POD_POD_TCP
>>> POD_POD_TCP.name, POD_POD_TCP.fm[0], POD_POD_TCP.probe.kind, POD_POD_TCP.expect.name
('pod-pod-tcp', 'FM-09', 'tcp', 'reachable')
>>> from netconform.model.topology import NodeInfo, Topology
>>> topo = Topology("https://127.0.0.1:6443", "v1.34.4", None, [NodeInfo("a"), NodeInfo("b")])
>>> [c.id for c in POD_POD_TCP.cells(topo)][:2]
['pod@a->pod@a/L4-tcp', 'pod@a->pod@b/L4-tcp']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from netconform.checks.context import Context
from netconform.checks.judging import Results
from netconform.checks.probes import Probe
from netconform.model.cell import Cell, target_head
from netconform.model.refs import Ref
from netconform.model.sampling import peer_pairs
from netconform.model.topology import Topology
from netconform.model.verdict import Verdict

Plan = Callable[[Cell, Context], list[Probe]]
Followups = Callable[[Cell, Context, Results], list[Probe]]
Judge = Callable[[Cell, Context, list[Probe], Results], Verdict]
Pairing = Literal["all", "same", "cross"]
SubjectRole = Literal["pod", "host", "external", "cluster"]


# ------------------------------------------------------------------------------------------ subjects
@dataclass(frozen=True)
class Subjects:
    """Who sends: the kit's probe pods (`pod`), its host-network probes (`host`), the outside client
    (`external`) or the cluster itself (`cluster`: judged from the API or from other cells).

    >>> Subjects("host", nodes=("b",)).refs(Topology("", "", None, []))
    ['host@b']
    """

    role: SubjectRole
    nodes: tuple[str, ...] | None = None  # None: every node (pod and host only)
    workloads_only: bool = False  # only the pods of every workload of the run (--subject, --policy-table)

    def refs(self, topo: Topology) -> list[str]:
        if self.workloads_only:
            return [s for w in topo.workloads for s in w.subjects]
        if self.role in ("external", "cluster"):
            return [self.role]
        nodes = self.nodes if self.nodes is not None else tuple(topo.node_names)
        refs = [f"{self.role}@{n}" for n in nodes]
        if self.role == "pod" and self.nodes is None:  # --subject: the workloads' pods run the pod checks
            refs += topo.workload_subjects()
        return refs


KIT_PODS = Subjects("pod")
WORKLOAD_PODS = Subjects("pod", workloads_only=True)
HOST_PROBES = Subjects("host")
OUTSIDE_CLIENT = Subjects("external")
CLUSTER = Subjects("cluster")


def _node_of(ref: str) -> str | None:
    return Ref.parse(ref).node


# ------------------------------------------------------------------------------------------- targets
class Targets(Protocol):
    """What is reached: expands, for one subject, into the target references of its cells."""

    @property
    def head(self) -> str: ...

    def refs(self, topo: Topology, subject: str) -> list[str]: ...

    def matches(self, subject: str, target: str) -> bool: ...


@dataclass(frozen=True)
class PerNode:
    """One target per node (`pod@N`: the echo pod; `node@N`; `nodeport@N`; `nameserver@N` ...), paired with
    the subject's node: `all` nodes, the `same` node only, or `cross` (every other node).

    >>> from netconform.model.topology import NodeInfo
    >>> PerNode("pod", "cross").refs(Topology("", "", None, [NodeInfo("a"), NodeInfo("b")]), "pod@a")
    ['pod@b']
    """

    head: str
    pairing: Pairing = "all"

    def refs(self, topo: Topology, subject: str) -> list[str]:
        a = _node_of(subject)
        # --peers K: a node's cells towards other nodes only for the K peers it samples (model/sampling.py)
        sampled = peer_pairs(topo) if topo.peers is not None and a is not None else None
        return [
            f"{self.head}@{b}"
            for b in topo.node_names
            if self._pairs(a, b) and (sampled is None or a == b or (a, b) in sampled)
        ]

    def _pairs(self, subject_node: str | None, node: str) -> bool:
        if self.pairing == "same":
            return subject_node == node
        if self.pairing == "cross":
            return subject_node != node
        return True

    def matches(self, subject: str, target: str) -> bool:
        node = _node_of(target)
        return node is not None and self._pairs(_node_of(subject), node)


@dataclass(frozen=True)
class Fixed:
    """One named target for every subject: `clusterip`, `lb-vip`, `dns-internal`, `outside`,
    `component:iptables` ..."""

    ref: str

    @property
    def head(self) -> str:
        return target_head(self.ref)

    def refs(self, topo: Topology, subject: str) -> list[str]:
        return [self.ref]

    def matches(self, subject: str, target: str) -> bool:
        return target == self.ref


@dataclass(frozen=True)
class CoreDnsPods:
    """Each node that runs a CoreDNS pod (`coredns@N`), queried pod by pod."""

    head: str = "coredns"

    def refs(self, topo: Topology, subject: str) -> list[str]:
        return [f"coredns@{n}" for n in topo.coredns_nodes()]

    def matches(self, subject: str, target: str) -> bool:
        return target.startswith("coredns@")


@dataclass(frozen=True)
class L7Entries:
    """Each L7 entry point: every IngressClass (`ingress:CLASS`, with TLS only under --ingress-tls) or
    every Gateway asked for with --gateway (`gateway:NS/NAME`)."""

    kind: Literal["ingress", "gateway"]
    tls: bool = False

    @property
    def head(self) -> str:
        return self.kind

    def refs(self, topo: Topology, subject: str) -> list[str]:
        if self.kind == "gateway":
            return [f"gateway:{ref}" for ref in topo.requested_gateways]
        if self.tls and not topo.ingress_tls:
            return []
        return [f"ingress:{c.name}" for c in topo.ingress_classes]

    def matches(self, subject: str, target: str) -> bool:
        return target.startswith(f"{self.kind}:")


# ---------------------------------------------------------------------------------- probe, expectation
@dataclass(frozen=True)
class ProbeSpec:
    """What is sent for one cell: the kind (the cell's protocol: tcp, udp, http, icmp, mtu, arp, dns,
    resolve, routes, iptables ...) and the plan that turns a cell into agent probes. A spec without a plan
    is judged from the API or from other cells (`api`, `cells`)."""

    kind: str
    plan: Plan | None = field(default=None, compare=False)  # compared by kind: a re-import is equal
    followups: Followups | None = field(default=None, compare=False)
    about: str = ""


@dataclass(frozen=True)
class Expectation:
    """A named rule from measurements to a verdict: `reachable`, `blocked`, `vip_port_not_ping` ..."""

    name: str
    judge: Judge = field(compare=False)
    about: str = ""


# ----------------------------------------------------------------------------------------------- check
@dataclass(frozen=True)
class Check:
    """One conformance check; `cells(topo)` are what it says "works" or "broken" about."""

    name: str
    fm: tuple[str, ...]
    layer: str
    subjects: tuple[Subjects, ...]
    targets: Targets
    probe: ProbeSpec
    expect: Expectation
    needs: str = "no cell in this cluster"  # the skip reason when the cluster yields no cell
    about: str = ""
    user: bool = False  # a user's check: its cells' target is `check:NAME`, one column per check

    @classmethod
    def to(
        cls,
        name: str,
        subjects: Subjects | tuple[Subjects, ...],
        target: Targets,
        probe: ProbeSpec,
        expect: Expectation,
        *,
        fm: tuple[str, ...] = (),
        layer: str | None = None,
        about: str = "",
    ) -> Check:
        """A user's check: `name` is its column; the layer follows from the probe (tcp -> L4 ...)."""
        from netconform.checks.user import LAYER_OF

        if not NAME.match(name):
            raise ValueError(
                f"check name {name!r}: use lowercase letters, digits and '-' (e.g. db-reachable)"
            )
        return cls(
            name,
            fm,
            layer or LAYER_OF.get(probe.kind, "L4"),
            subjects if isinstance(subjects, tuple) else (subjects,),
            target,
            probe,
            expect,
            about=about or f"{probe.kind} to {_describe(target)}: {expect.name}",
            user=True,
        )

    def cells(self, topo: Topology) -> list[Cell]:
        out = {
            Cell(s, t, self.layer, self.probe.kind)
            for subjects in self.subjects
            for s in subjects.refs(topo)
            for t in ([f"check:{self.name}"] if self.user else self.targets.refs(topo, s))
        }
        return sorted(out)

    def missing(self, topo: Topology) -> str:
        """Why the check has no cell here: what is missing, and what discovery could not see."""
        note = topo.ingress_note if self.targets.head in ("ingress", "gateway") else None
        return f"{self.needs} ({note})" if note else self.needs

    def measures_like(self, cell: Cell) -> bool:
        """Whether this check's plan and expectation measure `cell` (same target kind, layer, protocol)."""
        return (
            self.probe.plan is not None
            and cell.protocol == self.probe.kind
            and cell.layer == self.layer
            and target_head(cell.target) == self.targets.head
        )

    def covers(self, cell: Cell) -> bool:
        """Whether `cell` is one of this check's cells (on any topology)."""
        return (
            cell.protocol == self.probe.kind
            and cell.layer == self.layer
            and any(_role(cell.subject) == s.role for s in self.subjects)
            and target_head(cell.target) == self.targets.head
            and self.targets.matches(cell.subject, cell.target)
        )


NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _describe(target: Targets) -> str:
    describe = getattr(target, "describe", None)
    return str(describe()) if callable(describe) else target.head


def _role(subject: str) -> str:
    return Ref.parse(subject).role


# -------------------------------------------------------------------------------------------- registry
@dataclass
class Registry:
    """Every check this process knows: the built-in catalogue and the users' checks, by name."""

    checks: dict[str, Check] = field(default_factory=dict)
    _catalogue_loaded: bool = False

    def _load(self) -> None:
        """Import the built-in catalogue once, on first use (it registers itself)."""
        if not self._catalogue_loaded:
            self._catalogue_loaded = True
            import netconform.checks.catalogue  # noqa: F401

    def add(self, check: Check) -> Check:
        known = self.checks.get(check.name)
        if known is not None and known != check:
            raise ValueError(f"two different checks are named {check.name!r}: give one another name")
        self.checks[check.name] = check
        return check

    def get(self, name: str) -> Check:
        self._load()
        try:
            return self.checks[name]
        except KeyError:
            raise KeyError(f"unknown check {name!r}; known: {', '.join(sorted(self.checks))}") from None

    def check_for(self, cell: Cell) -> Check | None:
        """The check whose cells include `cell` (evidence cells of a diagnosis are found this way)."""
        self._load()
        if cell.target.startswith("check:"):
            return self.checks.get(cell.target.split(":", 1)[1])
        builtin = [c for c in self.checks.values() if not c.user]
        exact = next((c for c in builtin if c.covers(cell)), None)
        if exact is not None:
            return exact
        # an evidence cell no check lists (e.g. host -> pod over HTTP, to diagnose a host's ingress cell):
        # measured and judged like the check with the same target kind, layer and protocol
        return next((c for c in builtin if c.measures_like(cell)), None)

    def all_cells(self, topo: Topology, names: Iterable[str] | None = None) -> list[Cell]:
        self._load()
        chosen = self.checks.values() if names is None else [self.get(n) for n in names]
        return sorted({cell for check in chosen for cell in check.cells(topo)})


REGISTRY = Registry()


def register(*checks: Check) -> Sequence[Check]:
    """Add checks to the process's registry (idempotent for the same value)."""
    return [REGISTRY.add(c) for c in checks]
