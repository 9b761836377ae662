"""What the suite knows about a cluster: nodes, DNS, components, ingress; JSON-serialisable.

Discovered once per run (`netconform.kube.topology.discover`) and written to a snapshot file, so every
xdist worker parametrizes over exactly the same cells.

>>> Topology("https://127.0.0.1:6443", "v1.34.4", None, [NodeInfo("node-2"), NodeInfo("node-1")]).node_names
['node-1', 'node-2']
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netconform.model.workload import WorkloadInfo


@dataclass
class NodeInfo:
    name: str
    internal_ip: str | None = None
    addresses: dict[str, str] = field(default_factory=dict)
    pod_cidrs: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    taints: list[dict[str, str]] = field(default_factory=list)
    conditions: dict[str, dict[str, str]] = field(default_factory=dict)
    domain: str | None = None  # failure domain (zone/rack labels), for peer sampling

    @property
    def ready(self) -> bool:
        return self.conditions.get("Ready", {}).get("status") == "True"


@dataclass
class PodInfo:
    name: str
    namespace: str
    node: str | None
    ip: str | None
    phase: str
    ready: bool
    restarts: int
    waiting_reason: str | None
    message: str | None = None


@dataclass
class IngressClassInfo:
    """An IngressClass and the address its controller exposes (empty when none was found).

    `address_source` says where the address came from: the status of an existing Ingress of the
    class (what the controller publishes), or the controller's LoadBalancer Service.
    """

    name: str
    controller: str
    default: bool
    address: str | None = None
    address_source: str | None = None


@dataclass
class Topology:
    """Everything the scope and the checks are computed from."""

    server: str
    version: str
    context: str | None
    nodes: list[NodeInfo]
    cluster_domain: str = "cluster.local"
    dns_service_ip: str | None = None
    dns_ports: list[dict[str, Any]] = field(default_factory=list)
    coredns: list[PodInfo] = field(default_factory=list)
    cni: dict[str, list[PodInfo]] = field(default_factory=dict)
    lb_controllers: dict[str, list[PodInfo]] = field(default_factory=dict)
    kube_proxy: list[PodInfo] = field(default_factory=list)
    api_endpoints: list[str] = field(default_factory=list)
    api_endpoint_port: int | None = None  # the port of the `kubernetes` endpoints (https), e.g. 6443
    ingress_classes: list[IngressClassInfo] = field(default_factory=list)
    # Gateway API classes and gateways ("ns/name"), and Istio ingress gateway Services ("ns/name")
    gateway_classes: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    istio_gateways: list[str] = field(default_factory=list)
    ingress_note: str | None = None  # why nothing ingress-like was found (e.g. no permission)
    # what the run asked for (set from the options before the snapshot is saved, so every xdist
    # worker derives the same cells): Gateways to route through (--gateway), HTTPS cells (--ingress-tls)
    requested_gateways: list[str] = field(default_factory=list)
    ingress_tls: bool = False
    peers: int | None = None  # K peers per node (--peers), None: every node pair
    workloads: list[WorkloadInfo] = field(default_factory=list)  # --subject: the chosen pods
    policy_table: dict[str, Any] | None = None  # --policy-table, parsed (checks/policy_table.py)

    def workload_subjects(self) -> list[str]:
        """The subjects of the built-in pod checks among the workloads' pods (`deployment/NS/NAME@NODE`)."""
        return [s for w in self.workloads if w.rows for s in w.subjects]

    def workload(self, ref: str) -> WorkloadInfo | None:
        return next((w for w in self.workloads if w.ref == ref), None)

    @property
    def node_names(self) -> list[str]:
        return sorted(n.name for n in self.nodes)

    def node(self, name: str) -> NodeInfo:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def coredns_nodes(self) -> list[str]:
        return sorted({p.node for p in self.coredns if p.node})

    @property
    def cilium_pods(self) -> list[PodInfo]:
        return self.cni.get("anetd", []) + self.cni.get("cilium", [])

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        def pods(items: list[dict[str, Any]]) -> list[PodInfo]:
            return [PodInfo(**p) for p in items]

        return cls(
            server=data["server"],
            version=data["version"],
            context=data.get("context"),
            nodes=[NodeInfo(**n) for n in data["nodes"]],
            cluster_domain=data.get("cluster_domain", "cluster.local"),
            dns_service_ip=data.get("dns_service_ip"),
            dns_ports=data.get("dns_ports", []),
            coredns=pods(data.get("coredns", [])),
            cni={k: pods(v) for k, v in data.get("cni", {}).items()},
            lb_controllers={k: pods(v) for k, v in data.get("lb_controllers", {}).items()},
            kube_proxy=pods(data.get("kube_proxy", [])),
            api_endpoints=data.get("api_endpoints", []),
            api_endpoint_port=data.get("api_endpoint_port"),
            ingress_classes=[IngressClassInfo(**c) for c in data.get("ingress_classes", [])],
            gateway_classes=data.get("gateway_classes", []),
            gateways=data.get("gateways", []),
            istio_gateways=data.get("istio_gateways", []),
            ingress_note=data.get("ingress_note"),
            requested_gateways=data.get("requested_gateways", []),
            ingress_tls=bool(data.get("ingress_tls", False)),
            peers=data.get("peers"),
            workloads=[WorkloadInfo.from_dict(w) for w in data.get("workloads", [])],
            policy_table=data.get("policy_table"),
        )

    @classmethod
    def load(cls, path: Path) -> Topology:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")
