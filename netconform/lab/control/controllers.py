"""The lab's controllers: scheduler, pod IPAM, endpoints/EndpointSlices, service proxy sync, load
balancer (MetalLB-like), namespace deletion, the DNS zone file, node conditions and kube-system bootstrap.

They reconcile from the store after every relevant change (one debounced loop, all in memory and cheap for
a lab of a few dozen objects); only the data-plane calls (iptables, ARP announcements) leave the event
loop, to an executor, and only when what they would program actually changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netconform.agent import SOURCE as AGENT_FILE
from netconform.lab import components as comp
from netconform.lab import manifests
from netconform.lab.api.store import (
    ApiError,
    Obj,
    Store,
    WatchEvent,
    labels_match,
    now_iso,
    selector_from_match_labels,
)
from netconform.lab.control import events as events
from netconform.lab.faults.conditions import NAMESPACE_STUCK, LabConditions
from netconform.lab.net import netpol
from netconform.lab.net.addressing import (
    CONTROL_PLANE_VIP,
    KUBE_DNS_IP,
    KUBERNETES_SERVICE_IP,
    lb_pool,
    node_ip,
    pod_cidr,
)
from netconform.lab.net.dataplane import DataPlane
from netconform.lab.net.iptrules import Backend, ServiceNAT, ServicePort

log = logging.getLogger("netconform.lab.control.controllers")

CLUSTER_DOMAIN = "cluster.local"
KUBERNETES_ENDPOINT_PORT = 6443
SLICE_MANAGER = "endpointslice-controller.k8s.io"
RECONCILE_KINDS = {
    "pods",
    "services",
    "endpoints",
    "namespaces",
    "nodes",
    "configmaps",
    "networkpolicies",
    "deployments",
}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NAMESPACED_RESOURCES = (
    "pods",
    "services",
    "endpoints",
    "endpointslices",
    "configmaps",
    "events",
    "serviceaccounts",
    "secrets",
    "daemonsets",
    "deployments",
    "ingresses",
    "gateways",
    "httproutes",
    "networkpolicies",
)
REPO_ROOT = Path(__file__).resolve().parents[3]
AGENT_SOURCE = AGENT_FILE
STUCK_MESSAGE = (
    "Failed to delete all resource types, 1 remaining: Internal error occurred: error deleting "
    "stuckobjects.lab.netconform.io: the server is currently unable to handle the request "
    "(lab condition namespace-stuck)"
)


class Ipam:
    """Pod IPs per node from the node's /24 (.1 is the bridge): the next free address after the last one
    given, wrapping around, as the host-local IPAM plugin does. A pod that replaces a deleted one does
    not get its address back at once: a long-lived pod's peers (CoreDNS's) may still hold state about
    the old owner for seconds.

    >>> ipam = Ipam()
    >>> ipam.allocate("node-2", "a"), ipam.allocate("node-2", "b")
    ('10.244.2.2', '10.244.2.3')
    >>> ipam.release("a"); ipam.allocate("node-2", "c")
    '10.244.2.4'
    """

    def __init__(self) -> None:
        self.by_key: dict[str, str] = {}
        self.last: dict[str, str] = {}  # node -> the address given last

    def allocate(self, node: str, key: str) -> str:
        if key in self.by_key:
            return self.by_key[key]
        used = set(self.by_key.values())
        net = ipaddress.ip_network(pod_cidr(node))
        hosts = [str(h) for h in list(net.hosts())[1:]]
        start = hosts.index(self.last[node]) + 1 if self.last.get(node) in hosts else 0
        for host in hosts[start:] + hosts[:start]:
            if host not in used:
                self.by_key[key] = self.last[node] = host
                return host
        raise RuntimeError(f"failed to allocate for range {net}: no IP addresses available in range set")

    def release(self, key: str) -> None:
        self.by_key.pop(key, None)


# ---------------------------------------------------------------------------- scheduling


def _tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t["key"] == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _match_expression(expr: Obj, value: str | None) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        with contextlib.suppress(ValueError):
            return int(value) > int(values[0]) if op == "Gt" else int(value) < int(values[0])
    return False


def unfit_reason(pod: Obj, node: Obj) -> str | None:
    """Why `pod` cannot go to `node` (the scheduler's message fragment), or None when it fits."""
    spec = pod.get("spec", {})
    labels = node["metadata"].get("labels", {})
    if node.get("spec", {}).get("unschedulable"):
        return "node(s) were unschedulable"
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            spec.get("tolerations") or [], taint
        ):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return "node(s) didn't match Pod's node affinity/selector"
    required = (
        (spec.get("affinity") or {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    if required:
        terms = required.get("nodeSelectorTerms") or []
        name = node["metadata"]["name"]

        def term_ok(term: Obj) -> bool:
            exprs = term.get("matchExpressions") or []
            fields = term.get("matchFields") or []
            if not exprs and not fields:
                return False
            return all(_match_expression(e, labels.get(e.get("key", ""))) for e in exprs) and all(
                _match_expression(f, name if f.get("key") == "metadata.name" else None) for f in fields
            )

        if not any(term_ok(t) for t in terms):
            return "node(s) didn't match Pod's node affinity/selector"
    return None


def stuck_namespace_conditions(now: str) -> list[Obj]:
    """The five deletion conditions of a namespace whose content deletion keeps failing."""
    rows = (
        (
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        ("NamespaceDeletionContentFailure", "True", "ContentDeletionFailed", STUCK_MESSAGE),
        ("NamespaceContentRemaining", "False", "ContentRemoved", "All content successfully removed"),
        (
            "NamespaceFinalizersRemaining",
            "False",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished",
        ),
    )
    return [
        {"type": t, "status": st, "reason": r, "message": m, "lastTransitionTime": now}
        for t, st, r, m in rows
    ]


# ---------------------------------------------------------------------------- controller


class Controllers:
    """Everything that reacts to API state; `kick()` after any change, `run()` as a background task."""

    def __init__(
        self,
        store: Store,
        dataplane: DataPlane,
        nodes: list[str],
        state_dir: Path,
        lb_enabled: bool,
        delete_object: Callable[[str, str, str, str | None], Obj],
        conditions: LabConditions | None = None,
        components: comp.ComponentConfig | None = None,
        *,
        ingress: bool = False,
    ) -> None:
        self.store = store
        self.ingress = ingress
        self.components = components or comp.ComponentConfig()
        self.last_lb: str | None = None
        self.conditions = conditions or LabConditions()
        self.conditions.on_change.append(self.kick)
        self.dataplane = dataplane
        self.nodes = nodes
        self.state_dir = state_dir
        self.lb_enabled = lb_enabled
        self.delete_object = delete_object
        self.zone_file = state_dir / "dns" / "zone.json"
        self.dirty = asyncio.Event()
        self.announced: dict[str, str] = {}  # vip -> node
        self.last_nat: list[ServiceNAT] | None = None
        self.last_policies: dict[str, list[Obj]] | None = None
        self.last_zone: str | None = None
        self.unschedulable_noted: set[str] = set()
        self.sync_errors = 0
        self.idle = asyncio.Event()
        store.listeners.append(self._on_event)

    def _on_event(self, ev: WatchEvent) -> None:
        if ev.resource in RECONCILE_KINDS:
            self.dirty.set()
            self.idle.clear()

    def kick(self) -> None:
        self.dirty.set()
        self.idle.clear()

    async def run(self) -> None:
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            try:
                self.reconcile()
                await self._sync_dataplane()
            except Exception:
                self.sync_errors += 1
                log.exception("reconcile failed")
            if not self.dirty.is_set():
                self.idle.set()

    def reconcile(self) -> None:
        self._namespaces()
        self._deployments()
        self._schedule()
        self._endpoints()
        self._load_balancers()
        self._f5()
        self._zone()

    # ------------------------------------------------------------------ nodes
    def bootstrap_nodes(self) -> None:
        kernel = os.uname().release
        for i, name in enumerate(self.nodes):
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
            }
            taints: list[Obj] = []
            if i == 0:
                labels["node-role.kubernetes.io/control-plane"] = ""
                taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
            now = now_iso()
            node: Obj = {
                "kind": "Node",
                "apiVersion": "v1",
                "metadata": {"name": name, "labels": labels},
                "spec": {"podCIDR": pod_cidr(name), "podCIDRs": [pod_cidr(name)], "taints": taints},
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": node_ip(name)},
                        {"type": "Hostname", "address": name},
                    ],
                    "conditions": [
                        {
                            "type": t,
                            "status": "False",
                            "reason": r,
                            "message": m,
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                        for t, r, m in (
                            (
                                "MemoryPressure",
                                "KubeletHasSufficientMemory",
                                "kubelet has sufficient memory available",
                            ),
                            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                            (
                                "PIDPressure",
                                "KubeletHasSufficientPID",
                                "kubelet has sufficient PID available",
                            ),
                        )
                    ]
                    + [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                    ],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                    "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                    "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                    "nodeInfo": {
                        "kubeletVersion": "v1.31.0-lab",
                        "kubeProxyVersion": "v1.31.0-lab",
                        "osImage": "netconform lab (host filesystem)",
                        "kernelVersion": kernel,
                        "containerRuntimeVersion": "lab://1.0",
                        "machineID": hashlib.sha1(f"machine-{name}".encode()).hexdigest(),
                        "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.netconform.lab")),
                        "bootID": str(uuid.uuid4()),
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                    },
                },
            }
            self.store.create("nodes", node, namespaced=False)

    def set_node_condition(self, node: str, ready: bool, reason: str, message: str) -> None:
        """Used by faults (cni-not-ready): flips the node's Ready condition like a kubelet would report it."""
        if node not in self.nodes:
            raise ValueError(f"node {node!r}: the lab has {', '.join(self.nodes)}")

        def apply(obj: Obj) -> None:
            now = now_iso()
            for cond in obj["status"]["conditions"]:
                if cond["type"] == "Ready":
                    value = "True" if ready else "False"
                    if cond["status"] != value:
                        cond["lastTransitionTime"] = now
                    cond.update(status=value, reason=reason, message=message, lastHeartbeatTime=now)

        obj = self.store.mutate("nodes", "", node, apply)
        if obj is not None:
            events.record(
                self.store,
                obj,
                "Normal" if ready else "Warning",
                "NodeReady" if ready else "NodeNotReady",
                f"Node {node} status is now: {'NodeReady' if ready else 'NodeNotReady'}",
                "kubelet",
                node,
            )

    def ready_nodes(self) -> list[str]:
        out = []
        for n in self.store.select("nodes"):
            cond = next((c for c in n["status"].get("conditions", []) if c["type"] == "Ready"), None)
            if cond and cond["status"] == "True":
                out.append(n["metadata"]["name"])
        return sorted(out, key=lambda x: int(x.split("-")[1]))

    # ------------------------------------------------------------------ namespaces
    def _namespaces(self) -> None:
        for ns in self.store.select("namespaces"):
            name = ns["metadata"]["name"]
            if not ns["metadata"].get("deletionTimestamp"):
                if self.store.find("serviceaccounts", name, "default") is None:
                    self.store.create(
                        "serviceaccounts",
                        {
                            "kind": "ServiceAccount",
                            "apiVersion": "v1",
                            "metadata": {"name": "default", "namespace": name},
                        },
                        True,
                    )
                continue
            pods = self.store.select("pods", name)
            for pod in pods:
                if not pod["metadata"].get("deletionTimestamp"):
                    with contextlib.suppress(ApiError):
                        self.delete_object("pods", name, pod["metadata"]["name"], None)
            for resource in NAMESPACED_RESOURCES:
                if resource == "pods":
                    continue
                for obj in self.store.select(resource, name):
                    with contextlib.suppress(ApiError):
                        self.store.delete(resource, name, obj["metadata"]["name"])
            if not self.store.select("pods", name):
                for resource in NAMESPACED_RESOURCES:
                    for obj in self.store.select(resource, name):
                        with contextlib.suppress(ApiError):
                            self.store.delete(resource, name, obj["metadata"]["name"])
                finalized = not (ns.get("spec") or {}).get("finalizers")  # e.g. forced through /finalize
                if self.conditions.is_active(NAMESPACE_STUCK) and not finalized:
                    self._mark_deletion_failed(ns)
                    continue
                with contextlib.suppress(ApiError):
                    self.store.delete("namespaces", "", name)

    def _mark_deletion_failed(self, ns: Obj) -> None:
        """`namespace-stuck`: the namespace keeps its `kubernetes` finalizer and shows why, as the real
        namespace controller does when deleting its content fails (set once; the store is not touched again).
        Removing the finalizer through `/finalize` lets it go, as in a real cluster.
        """
        name = ns["metadata"]["name"]
        conditions = stuck_namespace_conditions(now_iso())
        current = [(c["type"], c["status"]) for c in (ns.get("status") or {}).get("conditions") or []]
        if current == [(c["type"], c["status"]) for c in conditions]:
            return

        def apply(o: Obj) -> None:
            o.setdefault("status", {})["conditions"] = conditions

        self.store.mutate("namespaces", "", name, apply)

    # ------------------------------------------------------------------ scheduler
    def _deployments(self) -> None:
        """A Deployment's pods from its template, up to spec.replicas (no ReplicaSet in between: the pods
        are owned by the Deployment; no scale-down or rollout), spread by the scheduler like any pod."""
        from netconform.lab.api.admission import Admission
        from netconform.lab.api.resources import lookup

        pod_res = lookup("", "v1", "pods")
        assert pod_res is not None
        pods = self.store.select("pods")
        for dep in self.store.select("deployments"):
            meta, spec = dep["metadata"], dep.get("spec") or {}
            if meta.get("deletionTimestamp"):
                continue
            owned = [
                p
                for p in pods
                if p["metadata"]["namespace"] == meta["namespace"]
                and any(o.get("uid") == meta["uid"] for o in p["metadata"].get("ownerReferences") or [])
                and not p["metadata"].get("deletionTimestamp")
            ]
            template = spec.get("template") or {}
            digest = hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
            names = {p["metadata"]["name"] for p in pods}
            for i in range(len(owned), int(spec.get("replicas", 1))):
                n = 0
                while True:
                    suffix = hashlib.sha1(f"{meta['uid']}/{i}/{n}".encode()).hexdigest()[:5]
                    name = f"{meta['name']}-{digest}-{suffix}"
                    if name not in names:
                        break
                    n += 1
                names.add(name)
                labels = {
                    **((template.get("metadata") or {}).get("labels") or {}),
                    "pod-template-hash": digest,
                }
                owner = {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "namespace": meta["namespace"],
                        "labels": labels,
                        "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": True}],
                    },
                    "spec": json.loads(json.dumps(template.get("spec") or {})),
                }
                try:
                    Admission(self.store).on_create(pod_res, pod)
                    self.store.create("pods", pod, namespaced=True)
                except Exception as exc:  # e.g. PodSecurity: the Deployment's event says why, as kube's
                    message = str(exc)[:300]
                    events.record(
                        self.store, dep, "Warning", "FailedCreate", message, "deployment-controller"
                    )
                    break

    def _schedule(self) -> None:
        nodes = self.store.select("nodes")
        counts: dict[str, int] = {n["metadata"]["name"]: 0 for n in nodes}
        pending = []
        for pod in self.store.select("pods"):
            node = pod.get("spec", {}).get("nodeName")
            if node:
                counts[node] = counts.get(node, 0) + 1
            elif not pod["metadata"].get("deletionTimestamp"):
                pending.append(pod)
        for pod in pending:
            meta = pod["metadata"]
            reasons: dict[str, int] = {}
            fitting = []
            for n in nodes:
                why = unfit_reason(pod, n)
                if why is None:
                    fitting.append(n["metadata"]["name"])
                else:
                    reasons[why] = reasons.get(why, 0) + 1
            key = f"{meta['namespace']}/{meta['name']}/{meta['uid']}"
            if not fitting:
                detail = ", ".join(f"{c} {r}" for r, c in sorted(reasons.items()))
                message = f"0/{len(nodes)} nodes are available: {detail}."
                if key not in self.unschedulable_noted:
                    self.unschedulable_noted.add(key)
                    events.record(
                        self.store, pod, "Warning", "FailedScheduling", message, "default-scheduler"
                    )

                def unschedulable(o: Obj, message: str = message) -> None:
                    o.setdefault("status", {})["conditions"] = [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                            "lastProbeTime": None,
                            "lastTransitionTime": now_iso(),
                        }
                    ]

                self.store.mutate("pods", meta["namespace"], meta["name"], unschedulable)
                continue
            target = min(fitting, key=lambda n: (counts.get(n, 0), int(n.split("-")[1])))
            counts[target] = counts.get(target, 0) + 1
            self.unschedulable_noted.discard(key)

            def bind(o: Obj, target: str = target) -> None:
                o["spec"]["nodeName"] = target

            bound = self.store.mutate("pods", meta["namespace"], meta["name"], bind)
            if bound is not None:
                events.record(
                    self.store,
                    bound,
                    "Normal",
                    "Scheduled",
                    f"Successfully assigned {meta['namespace']}/{meta['name']} to {target}",
                    "default-scheduler",
                )

    # ------------------------------------------------------------------ endpoints
    @staticmethod
    def _pod_ready(pod: Obj) -> bool:
        if pod["metadata"].get("deletionTimestamp"):
            return False
        conds = pod.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    @staticmethod
    def _target_port(svc_port: Obj, pod: Obj) -> int | None:
        tp = svc_port.get("targetPort", svc_port["port"])
        if isinstance(tp, int):
            return tp
        if isinstance(tp, str) and tp.isdigit():
            return int(tp)
        for c in pod["spec"].get("containers", []):
            for p in c.get("ports") or []:
                if p.get("name") == tp and p.get("protocol", "TCP") == svc_port.get("protocol", "TCP"):
                    return int(p["containerPort"])
        return None

    def _desired_endpoints(self, svc: Obj) -> list[tuple[list[Obj], list[Obj], list[Obj]]]:
        """Groups of (ready pods, not-ready pods, ports) sharing one resolved port mapping."""
        ns = svc["metadata"]["namespace"]
        reqs = selector_from_match_labels(svc["spec"].get("selector"))
        groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj]]] = {}
        for pod in self.store.select("pods", ns):
            if not labels_match(reqs, pod["metadata"].get("labels")):
                continue
            status = pod.get("status", {})
            if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
                continue
            resolved = []
            for p in svc["spec"].get("ports", []):
                port = self._target_port(p, pod)
                if port is not None:
                    resolved.append((p.get("name", ""), port, p.get("protocol", "TCP")))
            ready, not_ready = groups.setdefault(tuple(resolved), ([], []))
            (ready if self._pod_ready(pod) else not_ready).append(pod)
        return [
            (
                r,
                nr,
                [
                    {"name": n, "port": p, "protocol": pr} if n else {"port": p, "protocol": pr}
                    for n, p, pr in key
                ],
            )
            for key, (r, nr) in sorted(groups.items())
        ]

    @staticmethod
    def _address(pod: Obj) -> Obj:
        meta = pod["metadata"]
        return {
            "ip": pod["status"]["podIP"],
            "nodeName": pod["spec"].get("nodeName"),
            "targetRef": {
                "kind": "Pod",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }

    def _apply(self, resource: str, desired: Obj, compare: tuple[str, ...]) -> None:
        meta = desired["metadata"]
        current = self.store.find(resource, meta["namespace"], meta["name"])
        if current is None:
            self.store.create(resource, desired, namespaced=True)
            return
        if all(current.get(k) == desired.get(k) for k in compare) and current["metadata"].get(
            "labels"
        ) == meta.get("labels"):
            return

        def replace(o: Obj) -> None:
            for k in compare:
                if k in desired:
                    o[k] = desired[k]
                else:
                    o.pop(k, None)
            o["metadata"]["labels"] = meta.get("labels", {})

        self.store.mutate(resource, meta["namespace"], meta["name"], replace)

    def _endpoints(self) -> None:
        services = {
            (s["metadata"]["namespace"], s["metadata"]["name"]): s for s in self.store.select("services")
        }
        wanted_slices: set[tuple[str, str]] = set()
        for (ns, name), svc in services.items():
            spec = svc["spec"]
            if spec.get("type") == "ExternalName" or not spec.get("selector"):
                for sl in self.store.select("endpointslices", ns):
                    if sl["metadata"].get("labels", {}).get("kubernetes.io/service-name") == name:
                        wanted_slices.add((ns, sl["metadata"]["name"]))
                continue
            groups = self._desired_endpoints(svc)
            owner = [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": name,
                    "uid": svc["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
            subsets = []
            for ready, not_ready, ports in groups:
                if not ready and not not_ready:
                    continue
                subset: Obj = {"ports": ports}
                if ready:
                    subset["addresses"] = [self._address(p) for p in ready]
                if not_ready:
                    subset["notReadyAddresses"] = [self._address(p) for p in not_ready]
                subsets.append(subset)
            labels = dict(svc["metadata"].get("labels") or {})
            ep: Obj = {
                "kind": "Endpoints",
                "apiVersion": "v1",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
            }
            if subsets:
                ep["subsets"] = subsets
            self._apply("endpoints", ep, ("subsets",))
            suffix = hashlib.sha1(svc["metadata"]["uid"].encode()).hexdigest()[:5]
            if not groups:
                groups = [([], [], [])]
            for i, (ready, not_ready, ports) in enumerate(groups):
                slice_name = f"{name}-{suffix}" + (f"-{i}" if i else "")
                wanted_slices.add((ns, slice_name))
                endpoints = []
                for pod in ready + not_ready:
                    addr = self._address(pod)
                    is_ready = pod in ready
                    endpoints.append(
                        {
                            "addresses": [addr["ip"]],
                            "conditions": {
                                "ready": is_ready,
                                "serving": is_ready,
                                "terminating": bool(pod["metadata"].get("deletionTimestamp")),
                            },
                            "nodeName": addr["nodeName"],
                            "targetRef": addr["targetRef"],
                        }
                    )
                slice_obj: Obj = {
                    "kind": "EndpointSlice",
                    "apiVersion": "discovery.k8s.io/v1",
                    "metadata": {
                        "name": slice_name,
                        "namespace": ns,
                        "labels": {
                            **labels,
                            "kubernetes.io/service-name": name,
                            "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER,
                        },
                        "ownerReferences": owner,
                    },
                    "addressType": "IPv4",
                    "endpoints": endpoints,
                    "ports": ports or None,
                }
                self._apply("endpointslices", slice_obj, ("endpoints", "ports", "addressType"))
        for sl in self.store.select("endpointslices"):
            ns, sname = sl["metadata"]["namespace"], sl["metadata"]["name"]
            managed = (
                sl["metadata"].get("labels", {}).get("endpointslice.kubernetes.io/managed-by")
                == SLICE_MANAGER
            )
            if managed and (ns, sname) not in wanted_slices:
                with contextlib.suppress(ApiError):
                    self.store.delete("endpointslices", ns, sname)
        for ep in self.store.select("endpoints"):
            ns, ename = ep["metadata"]["namespace"], ep["metadata"]["name"]
            if (ns, ename) not in services and ename != "kubernetes":
                with contextlib.suppress(ApiError):
                    self.store.delete("endpoints", ns, ename)

    # ------------------------------------------------------------------ load balancers
    def _load_balancers(self) -> None:
        if not self.lb_enabled:
            return
        pool = lb_pool()
        services = self.store.select("services")
        in_use = {
            i.get("ip")
            for s in services
            if s["spec"].get("type") == "LoadBalancer"
            for i in s.get("status", {}).get("loadBalancer", {}).get("ingress") or []
        }
        for svc in services:
            if svc["spec"].get("type") != "LoadBalancer":
                continue
            ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []
            if ingress:
                continue
            wanted = svc["spec"].get("loadBalancerIP")
            if wanted and (wanted not in pool or wanted in in_use):
                events.record(
                    self.store,
                    svc,
                    "Warning",
                    "AllocationFailed",
                    f'Failed to allocate IP for "{svc["metadata"]["namespace"]}/'
                    f'{svc["metadata"]["name"]}": {wanted} is not free in the pool 10.89.0.200-239',
                    "metallb-controller",
                )
                continue
            vip = wanted or next((ip for ip in pool if ip not in in_use), None)
            if vip is None:
                events.record(
                    self.store,
                    svc,
                    "Warning",
                    "AllocationFailed",
                    "no available IPs in pool lab-pool",
                    "metallb-controller",
                )
                continue
            in_use.add(vip)

            def assign(o: Obj, vip: str = vip) -> None:
                o.setdefault("status", {})["loadBalancer"] = {"ingress": [{"ip": vip, "ipMode": "VIP"}]}

            updated = self.store.mutate(
                "services", svc["metadata"]["namespace"], svc["metadata"]["name"], assign
            )
            if updated is not None:
                events.record(
                    self.store,
                    updated,
                    "Normal",
                    "IPAllocated",
                    f'Assigned IP ["{vip}"]',
                    "metallb-controller",
                )

    def desired_announcements(self) -> dict[str, str]:
        """vip -> node: one node per VIP among the Ready nodes, stable for a given service.

        With MetalLB, only nodes whose speaker runs announce (fault metallb-speaker-down: none there).
        """
        ready = self.ready_nodes() or sorted(self.nodes)
        out: dict[str, str] = {}
        if not self.lb_enabled:
            return out
        if self.components.lb == "metallb":
            down = comp.speakers_down(self.state_dir)
            ready = [n for n in ready if n not in down]
            if not ready:
                return out
        for svc in self.store.select("services"):
            if svc["spec"].get("type") != "LoadBalancer":
                continue
            key = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
            idx = int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(ready)
            for ing in svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []:
                if ing.get("ip"):
                    out[ing["ip"]] = ready[idx]
        return out

    # ------------------------------------------------------------------ service proxy
    def desired_nat(self) -> list[ServiceNAT]:
        out: list[ServiceNAT] = []
        endpoints = {
            (e["metadata"]["namespace"], e["metadata"]["name"]): e for e in self.store.select("endpoints")
        }
        for svc in self.store.select("services"):
            spec = svc["spec"]
            if spec.get("type") == "ExternalName":
                continue
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            ep = endpoints.get((ns, name), {})
            ports = []
            for p in spec.get("ports", []):
                if p.get("protocol", "TCP") not in ("TCP", "UDP"):
                    continue
                backends = []
                for subset in ep.get("subsets") or []:
                    match = next(
                        (
                            sp
                            for sp in subset.get("ports", [])
                            if sp.get("name", "") == p.get("name", "")
                            and sp.get("protocol", "TCP") == p.get("protocol", "TCP")
                        ),
                        None,
                    )
                    if match is None:
                        continue
                    backends += [Backend(a["ip"], int(match["port"])) for a in subset.get("addresses", [])]
                ports.append(
                    ServicePort(
                        p.get("protocol", "TCP"),
                        int(p["port"]),
                        tuple(sorted(set(backends), key=lambda b: (b.ip, b.port))),
                        p.get("nodePort"),
                        p.get("name", ""),
                    )
                )
            cluster_ip = spec.get("clusterIP")
            lb_ips = tuple(
                i["ip"]
                for i in svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []
                if i.get("ip")
            )
            out.append(
                ServiceNAT(
                    f"{ns}/{name}", None if cluster_ip in (None, "None") else cluster_ip, tuple(ports), lb_ips
                )
            )
        return out

    async def _sync_dataplane(self) -> None:
        loop = asyncio.get_running_loop()
        nat = self.desired_nat()
        if nat != self.last_nat:
            await loop.run_in_executor(None, self.dataplane.sync_services, nat)
            self.last_nat = nat
            if self.components.cilium:  # the agents' eBPF LB maps hold what the proxy programs
                comp.write_services(self.state_dir, [n.to_json() for n in nat])
        policies = netpol.compile_policies(
            self.store.select("pods"),
            self.store.select("namespaces"),
            self.store.select("networkpolicies"),
            self.nodes,
        )
        if policies != self.last_policies:
            await loop.run_in_executor(None, self.dataplane.sync_policies, policies)
            self.last_policies = policies
        wanted = self.desired_announcements()
        if self.components.lb == "metallb":
            self._metallb_view(wanted)
        for vip, node in list(self.announced.items()):
            if wanted.get(vip) != node:
                await loop.run_in_executor(None, self.dataplane.withdraw_vip, vip)
                del self.announced[vip]
        for vip, node in wanted.items():
            if self.announced.get(vip) != node:
                await loop.run_in_executor(None, self.dataplane.announce_vip, vip, node)
                self.announced[vip] = node
                svc = next(
                    (
                        s
                        for s in self.store.select("services")
                        if any(
                            i.get("ip") == vip
                            for i in s.get("status", {}).get("loadBalancer", {}).get("ingress") or []
                        )
                    ),
                    None,
                )
                if svc is not None:
                    events.record(
                        self.store,
                        svc,
                        "Normal",
                        "nodeAssigned",
                        f'announcing from node "{node}" with protocol "layer2"',
                        "metallb-speaker",
                        node,
                    )

    def _metallb_view(self, wanted: dict[str, str]) -> None:
        """Tell the MetalLB pods what the controller allocated and which node announces each VIP."""
        allocations: dict[str, str] = {}
        for svc in self.store.select("services"):
            key = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
            for ing in svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []:
                if ing.get("ip"):
                    allocations[ing["ip"]] = key
        announced = {v: (n, allocations.get(v, "")) for v, n in wanted.items()}
        text = json.dumps([allocations, announced], sort_keys=True)
        if text != self.last_lb:
            comp.write_lb(self.state_dir, allocations, announced)
            self.last_lb = text

    def _f5(self) -> None:
        """load-balancer-f5: one ConfigMap per port of every LoadBalancer Service (none under the
        fault f5-configmap-missing); stale ones are deleted."""
        if self.components.lb != "f5":
            return
        wanted = comp.f5_config_maps(self.state_dir, self.store.select("services"))
        keys = set()
        for cm in wanted:
            keys.add((cm["metadata"]["namespace"], cm["metadata"]["name"]))
            self._apply("configmaps", cm, ("data",))
        for cm in self.store.select("configmaps"):
            meta = cm["metadata"]
            managed = (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == comp.F5_MANAGED_BY
            if managed and (meta["namespace"], meta["name"]) not in keys:
                with contextlib.suppress(ApiError):
                    self.store.delete("configmaps", meta["namespace"], meta["name"])
        comp.write_virtuals(self.state_dir, wanted)

    # ------------------------------------------------------------------ DNS zone
    def zone(self) -> Obj:
        """The cluster.local records for clusterdns: name -> {"A": [ip...], "SRV": [...], "CNAME": name}."""
        records: dict[str, Obj] = {}
        endpoints = {
            (e["metadata"]["namespace"], e["metadata"]["name"]): e for e in self.store.select("endpoints")
        }
        for svc in self.store.select("services"):
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            spec = svc["spec"]
            fqdn = f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"
            if spec.get("type") == "ExternalName":
                records[fqdn] = {"CNAME": spec.get("externalName", "")}
                continue
            rec = records.setdefault(fqdn, {})
            if spec.get("clusterIP") not in (None, "", "None"):
                rec["A"] = [spec["clusterIP"]]
                targets = [fqdn]
            else:
                addrs = [
                    a
                    for sub in endpoints.get((ns, name), {}).get("subsets") or []
                    for a in sub.get("addresses", [])
                ]
                rec["A"] = sorted({a["ip"] for a in addrs})
                targets = []
                for a in addrs:
                    host = a["ip"].replace(".", "-")
                    records[f"{host}.{fqdn}"] = {"A": [a["ip"]]}
                    targets.append(f"{host}.{fqdn}")
            for p in spec.get("ports", []):
                if p.get("name"):
                    srv = f"_{p['name']}._{p.get('protocol', 'TCP').lower()}.{fqdn}"
                    records[srv] = {
                        "SRV": [
                            {"priority": 0, "weight": 100, "port": p["port"], "target": t}
                            for t in sorted(set(targets))
                        ]
                    }
        return {"domain": CLUSTER_DOMAIN, "records": dict(sorted(records.items()))}

    def _zone(self) -> None:
        text = json.dumps(self.zone(), indent=1)
        if text == self.last_zone:
            return
        self.zone_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.zone_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.zone_file)
        self.last_zone = text

    # ------------------------------------------------------------------ kube-system
    def bootstrap(self) -> None:
        """Namespaces, nodes, the `kubernetes` and `kube-dns` Services, CoreDNS-like and CNI pods."""
        for ns in SYSTEM_NAMESPACES:
            self.store.create(
                "namespaces",
                {
                    "kind": "Namespace",
                    "apiVersion": "v1",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
                namespaced=False,
            )
        self.bootstrap_nodes()
        self._zone()
        from netconform.lab.api.admission import Admission
        from netconform.lab.api.resources import lookup

        admission = Admission(self.store)
        svc_res, pod_res = lookup("", "v1", "services"), lookup("", "v1", "pods")
        assert svc_res is not None and pod_res is not None

        def create(resource: str, obj: Obj) -> None:
            res = svc_res if resource == "services" else pod_res
            admission.on_create(res, obj)
            self.store.create(resource, obj, namespaced=True)

        values = {
            "KUBERNETES_SERVICE_IP": KUBERNETES_SERVICE_IP,
            "KUBERNETES_ENDPOINT_PORT": KUBERNETES_ENDPOINT_PORT,
            "CONTROL_PLANE_VIP": CONTROL_PLANE_VIP,
            "KUBE_DNS_IP": KUBE_DNS_IP,
        }
        resource_of = {"Service": "services", "Endpoints": "endpoints", "EndpointSlice": "endpointslices"}
        resource_of["ConfigMap"] = "configmaps"
        for obj in manifests.render("system.yaml", **values):
            resource = resource_of[obj["kind"]]
            if resource == "services":
                create(resource, obj)  # admission allocates and defaults as for any Service
            else:
                self.store.create(resource, obj, namespaced=True)
        dns_nodes = self.nodes[:2] if len(self.nodes) > 1 else self.nodes * 2
        template = hashlib.sha1(b"coredns").hexdigest()[:10]
        for i, node in enumerate(dns_nodes):
            suffix = hashlib.sha1(f"coredns-{i}".encode()).hexdigest()[:5]
            (pod,) = manifests.render(
                "coredns-pod.yaml",
                NAME=f"coredns-{template}-{suffix}",
                TEMPLATE_HASH=template,
                NODE=node,
                PYTHON=sys.executable,
                ZONE_FILE=self.zone_file,
                REPO_ROOT=REPO_ROOT,
            )
            create("pods", pod)
        create("pods", self._apiserver_endpoint_pod())
        if self.ingress:
            from netconform.lab.control import ingress

            for resource, obj in ingress.manifests(self.nodes[0], self.state_dir, sys.executable, REPO_ROOT):
                if resource in ("services", "pods"):
                    create(resource, obj)
                else:
                    self.store.create(resource, obj, namespaced=bool(obj["metadata"].get("namespace")))
        for extra in comp.system_pods(self.state_dir, self.components, self.nodes):
            create("pods", extra)
        anetd = comp.cni_pods(self.state_dir, self.components, self.nodes)
        for extra in anetd or []:
            create("pods", extra)
        for node in self.nodes if anetd is None else []:
            create("pods", manifests.render("lab-cni-pod.yaml", NODE=node)[0])
        self.kick()

    def _apiserver_endpoint_pod(self) -> Obj:
        """A TCP responder on the control-plane VIP's port in node-1's namespace (static-pod look-alike)."""
        (pod,) = manifests.render(
            "apiserver-pod.yaml",
            NODE=self.nodes[0],
            CONTROL_PLANE_VIP=CONTROL_PLANE_VIP,
            PORT=KUBERNETES_ENDPOINT_PORT,
            PYTHON=sys.executable,
            AGENT=AGENT_SOURCE,
        )
        return pod

    def lab_summary(self) -> Obj:
        return {
            "announced_vips": dict(self.announced),
            "sync_errors": self.sync_errors,
            "zone_file": str(self.zone_file),
        }


def describe_nat(nat: list[ServiceNAT]) -> list[dict[str, Any]]:
    return [n.to_json() for n in nat]
