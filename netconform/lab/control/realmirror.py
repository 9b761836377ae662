"""The lab's own controllers over the real API server (`lab up --control-plane real`).

`RealApi` is a small adapter on aiohttp: requests with the lab's admin client certificate, every one with
a timeout, and list-then-watch loops (`timeoutSeconds`, bookmarks, relist on 410 Gone) that copy
namespaces, nodes, Services, EndpointSlices, ConfigMaps and Secrets of the real API into the lab's local
store. The lab's controllers and kubelet read that store as they read the emulated one: the service proxy
(iptables DNAT per node), the L2 announcer of LoadBalancer VIPs, the cluster DNS zone and the pod
volumes. The local `endpoints` are built from the real EndpointSlices (`endpoints_from_slices`), so the
data plane follows what the real EndpointSlice controller decides. LoadBalancer VIPs the lab allocates
are written back to the real Service's `status` (`services/status`).

`bootstrap_objects` turns what the emulated lab creates at start (kube-dns Service, CoreDNS-like pods,
CNI pods, the API's endpoint pod, their ConfigMaps) into create requests for the real API.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from netconform.lab import components as comp
from netconform.lab.api.store import Store
from netconform.lab.control.controllers import Controllers
from netconform.lab.control.nodebridge import remove, upsert
from netconform.lab.faults.conditions import LabConditions
from netconform.lab.net.addressing import CONTROL_PLANE_VIP, KUBE_DNS_IP
from netconform.lab.net.dataplane import DataPlane

log = logging.getLogger("netconform.lab.control.realmirror")

Obj = dict[str, Any]
WATCH_TIMEOUT_S = 50  # the server ends each watch after this; the client reads with a margin
REQUEST_TIMEOUT_S = 15.0
KUBERNETES_ENDPOINT_PORT = 6443

# local resource name, list path, namespaced, kind
MIRRORED: tuple[tuple[str, str, bool, str], ...] = (
    ("namespaces", "/api/v1/namespaces", False, "Namespace"),
    ("nodes", "/api/v1/nodes", False, "Node"),
    ("services", "/api/v1/services", True, "Service"),
    ("endpointslices", "/apis/discovery.k8s.io/v1/endpointslices", True, "EndpointSlice"),
    ("configmaps", "/api/v1/configmaps", True, "ConfigMap"),
    ("secrets", "/api/v1/secrets", True, "Secret"),
    ("networkpolicies", "/apis/networking.k8s.io/v1/networkpolicies", True, "NetworkPolicy"),
)


class RealApiError(RuntimeError):
    def __init__(self, status: int, body: Obj | str) -> None:
        self.status = status
        self.body = body
        message = body.get("message", "") if isinstance(body, dict) else body
        super().__init__(f"{status}: {message}")


class RealApi:
    def __init__(self, url: str, ca_file: Path, cert: Path, key: Path) -> None:
        self.url = url
        self.ssl = ssl.create_default_context(cafile=str(ca_file))
        self.ssl.load_cert_chain(str(cert), str(key))
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl, limit=20))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def request(
        self, method: str, path: str, body: Obj | None = None, content_type: str = "application/json"
    ) -> Obj:
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        async with self.session.request(
            method, self.url + path, data=data, headers=headers, timeout=timeout
        ) as resp:
            text = await resp.text()
            try:
                parsed: Obj = json.loads(text) if text else {}
            except ValueError:
                raise RealApiError(resp.status, text) from None
            if resp.status >= 400:
                raise RealApiError(resp.status, parsed)
            return parsed


def endpoints_from_slices(service: Obj, slices: list[Obj]) -> Obj:
    """A v1 Endpoints object (what the lab's controllers read) for `service` from its EndpointSlices."""
    meta = service["metadata"]
    subsets = []
    for sl in slices:
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        ports = [
            {
                k: v
                for k, v in (
                    ("name", p.get("name", "")),
                    ("port", p.get("port")),
                    ("protocol", p.get("protocol", "TCP")),
                )
                if v is not None
            }
            for p in sl.get("ports") or []
        ]
        ready: list[Obj] = []
        not_ready: list[Obj] = []
        for ep in sl.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            for addr in ep.get("addresses") or []:
                a: Obj = {"ip": addr}
                if ep.get("nodeName"):
                    a["nodeName"] = ep["nodeName"]
                if ep.get("targetRef"):
                    a["targetRef"] = ep["targetRef"]
                (ready if cond.get("ready") is not False else not_ready).append(a)
        if not ports or not (ready or not_ready):
            continue
        subset: Obj = {"ports": ports}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        subsets.append(subset)
    return {
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "subsets": subsets,
    }


class Mirror:
    """Copies the real API into the local store and writes the lab's LoadBalancer allocations back."""

    def __init__(self, api: RealApi, store: Store) -> None:
        self.api = api
        self.store = store
        self.tasks: list[asyncio.Task[None]] = []
        self.synced: dict[str, asyncio.Event] = {r: asyncio.Event() for r, *_ in MIRRORED}
        self.lb_pending: dict[tuple[str, str], list[Obj]] = {}
        self.watch_restarts = 0
        self.relists = 0
        self.events_seen = 0
        self.lb_writes = 0

    def start(self) -> None:
        for resource, path, namespaced, kind in MIRRORED:
            self.tasks.append(asyncio.ensure_future(self._follow(resource, path, namespaced, kind)))

    async def wait_synced(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self.synced.values())), timeout)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(BaseException):
                await t

    # -- local copies
    def _apply(self, resource: str, kind: str, obj: Obj, namespaced: bool) -> None:
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", "discovery.k8s.io/v1" if resource == "endpointslices" else "v1")
        meta = obj["metadata"]
        if resource == "services":
            key = (meta["namespace"], meta["name"])
            pending = self.lb_pending.get(key)
            real = obj.get("status", {}).get("loadBalancer", {}).get("ingress")
            if pending and not real:
                obj.setdefault("status", {})["loadBalancer"] = {"ingress": copy.deepcopy(pending)}
            elif real:
                self.lb_pending.pop(key, None)
        upsert(self.store, resource, obj, namespaced)
        if resource in ("endpointslices", "services"):
            self._rebuild_endpoints(meta["namespace"], self._service_of(resource, obj))

    @staticmethod
    def _service_of(resource: str, obj: Obj) -> str:
        if resource == "services":
            name: str = obj["metadata"]["name"]
            return name
        return str((obj["metadata"].get("labels") or {}).get("kubernetes.io/service-name", ""))

    def _rebuild_endpoints(self, namespace: str, service: str) -> None:
        if not service:
            return
        svc = self.store.find("services", namespace, service)
        slices = [
            s
            for s in self.store.select("endpointslices", namespace)
            if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == service
        ]
        if svc is None:
            remove(self.store, "endpoints", namespace, service)
            return
        desired = endpoints_from_slices(svc, slices)
        current = self.store.find("endpoints", namespace, service)
        if current is not None and current.get("subsets") == desired["subsets"]:
            return
        upsert(self.store, "endpoints", desired)

    def _delete(self, resource: str, obj: Obj, namespaced: bool) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace", "") if namespaced else ""
        remove(self.store, resource, ns, meta["name"])
        if resource in ("endpointslices", "services"):
            self._rebuild_endpoints(ns, self._service_of(resource, obj))

    def _replace_all(self, resource: str, kind: str, items: list[Obj], namespaced: bool) -> None:
        keep = set()
        for obj in items:
            meta = obj["metadata"]
            keep.add((meta.get("namespace", "") if namespaced else "", meta["name"]))
            self._apply(resource, kind, obj, namespaced)
        for obj in self.store.select(resource):
            meta = obj["metadata"]
            if (meta.get("namespace", ""), meta["name"]) not in keep:
                self._delete(resource, obj, namespaced)

    # -- list + watch
    async def _follow(self, resource: str, path: str, namespaced: bool, kind: str) -> None:
        rv = ""
        while True:
            try:
                if not rv:
                    listed = await self.api.request("GET", path)
                    self.relists += 1
                    self._replace_all(resource, kind, listed.get("items") or [], namespaced)
                    rv = listed["metadata"]["resourceVersion"]
                    self.synced[resource].set()
                rv = await self._watch(resource, path, namespaced, kind, rv)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.watch_restarts += 1
                log.warning("mirror %s: %s: %s", resource, type(err).__name__, err)
                await asyncio.sleep(1.0)  # back off before the next list; bounded by cancellation

    async def _watch(self, resource: str, path: str, namespaced: bool, kind: str, rv: str) -> str:
        assert self.api.session is not None
        url = (
            f"{self.api.url}{path}?watch=1&allowWatchBookmarks=true"
            f"&resourceVersion={rv}&timeoutSeconds={WATCH_TIMEOUT_S}"
        )
        timeout = aiohttp.ClientTimeout(
            total=WATCH_TIMEOUT_S + 15, sock_connect=5, sock_read=WATCH_TIMEOUT_S + 10
        )
        async with self.api.session.get(url, timeout=timeout) as resp:
            if resp.status == 410:
                return ""
            if resp.status >= 400:
                raise RealApiError(resp.status, await resp.text())
            async for raw in resp.content:
                if not raw.strip():
                    continue
                ev = json.loads(raw)
                obj = ev.get("object") or {}
                typ = ev.get("type")
                self.events_seen += 1
                if typ == "ERROR":
                    if obj.get("code") == 410:
                        return ""  # too old: list again
                    raise RealApiError(int(obj.get("code", 500)), obj)
                rv = obj.get("metadata", {}).get("resourceVersion", rv)
                if typ == "BOOKMARK":
                    continue
                if typ in ("ADDED", "MODIFIED"):
                    self._apply(resource, kind, obj, namespaced)
                elif typ == "DELETED":
                    self._delete(resource, obj, namespaced)
        return rv

    # -- writes back
    async def push_lb_status(self) -> None:
        """The VIPs the lab's LB allocated in the local store, written to the real Services' status."""
        for svc in self.store.select("services"):
            if svc["spec"].get("type") != "LoadBalancer":
                continue
            meta = svc["metadata"]
            key = (meta["namespace"], meta["name"])
            ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress")
            if not ingress or key in self.lb_pending:
                continue
            self.lb_pending[key] = ingress
            path = f"/api/v1/namespaces/{key[0]}/services/{key[1]}/status"
            try:
                await self.api.request(
                    "PATCH",
                    path,
                    {"status": {"loadBalancer": {"ingress": ingress}}},
                    "application/merge-patch+json",
                )
                self.lb_writes += 1
            except (RealApiError, aiohttp.ClientError, TimeoutError) as err:
                log.warning("LB status of %s/%s: %s", *key, err)
                self.lb_pending.pop(key, None)

    def summary(self) -> Obj:
        return {
            "events_seen": self.events_seen,
            "relists": self.relists,
            "watch_restarts": self.watch_restarts,
            "lb_status_writes": self.lb_writes,
        }


class RealControllers(Controllers):
    """The lab's controllers minus what the real control plane does (namespaces, scheduling, endpoints,
    node lifecycle): the LB allocator, the DNS zone, the service proxy and the VIP announcer."""

    def __init__(self, mirror: Mirror, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mirror = mirror
        self.lb_tasks: set[asyncio.Future[None]] = set()
        # where a node's Ready condition goes: the node agent that reports that node (NodeBridge.set_ready)
        self.report_node_ready: Callable[[str, bool, str, str], None] | None = None
        self.f5_lock = asyncio.Lock()
        self.f5_writes = 0

    def set_node_condition(self, node: str, ready: bool, reason: str, message: str) -> None:
        """A fault's Ready condition (cni-not-ready): the node's agent reports it to the real API, as a
        kubelet whose runtime says NetworkReady=false would; the mirror then brings it back locally."""
        if node not in self.nodes:
            raise ValueError(f"node {node!r}: the lab has {', '.join(self.nodes)}")
        if self.report_node_ready is None:
            raise ValueError("the node agents are not connected yet")
        self.report_node_ready(node, ready, reason, message)

    def reconcile(self) -> None:
        self._load_balancers()
        self._zone()
        # the real Service status, asynchronously; the mirror keeps the local allocation meanwhile
        self._background(self.mirror.push_lb_status())
        if self.components.lb == "f5":
            self._background(self.push_f5())

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.lb_tasks.add(task)
        task.add_done_callback(self.lb_tasks.discard)

    async def push_f5(self) -> None:
        """load-balancer-f5 on the real API: one ConfigMap per port of every LoadBalancer Service (none
        under f5-configmap-missing), created, updated and deleted in the real API (the mirror copies
        them back into the local store)."""
        async with self.f5_lock:
            wanted = comp.f5_config_maps(self.state_dir, self.store.select("services"))
            keys = set()
            try:
                for cm in wanted:
                    ns, name = cm["metadata"]["namespace"], cm["metadata"]["name"]
                    keys.add((ns, name))
                    current = self.store.find("configmaps", ns, name)
                    base = f"/api/v1/namespaces/{ns}/configmaps"
                    if current is None:
                        try:
                            await self.mirror.api.request("POST", base, cm)
                        except RealApiError as err:
                            if err.status != 409:
                                raise
                    elif current.get("data") != cm["data"]:
                        await self.mirror.api.request(
                            "PATCH", f"{base}/{name}", {"data": cm["data"]}, "application/merge-patch+json"
                        )
                    else:
                        continue
                    self.f5_writes += 1
                for cm in self.store.select("configmaps"):
                    meta = cm["metadata"]
                    managed = (meta.get("labels") or {}).get("app.kubernetes.io/managed-by")
                    if managed == comp.F5_MANAGED_BY and (meta["namespace"], meta["name"]) not in keys:
                        with contextlib.suppress(RealApiError):  # 404: gone already
                            path = f"/api/v1/namespaces/{meta['namespace']}/configmaps/{meta['name']}"
                            await self.mirror.api.request("DELETE", path)
                            self.f5_writes += 1
            except (RealApiError, aiohttp.ClientError, TimeoutError) as err:
                log.warning("f5 ConfigMaps: %s", err)
                asyncio.get_running_loop().call_later(1.0, self.kick)  # try again in a second
            comp.write_virtuals(self.state_dir, wanted)


def scratch_bootstrap(
    nodes: list[str],
    state_dir: Path,
    lb: bool,
    dataplane: DataPlane,
    components: comp.ComponentConfig,
    *,
    ingress: bool = False,
) -> Store:
    """What the emulated lab creates at start, in a throwaway store."""
    scratch = Store()

    def no_delete(*_: Any) -> Obj:
        return {}

    # the real state dir: the CoreDNS-like pods' arguments name its zone file (which the real
    # controllers rewrite: reset their `last_zone` after this)
    ctrl = Controllers(
        scratch,
        dataplane,
        nodes,
        state_dir,
        lb,
        no_delete,
        LabConditions(),
        components,
        ingress=ingress,
    )
    ctrl.bootstrap()
    return scratch


API_PATHS = {
    "configmaps": "/api/v1/namespaces/{ns}/configmaps",
    "services": "/api/v1/namespaces/{ns}/services",
    "endpoints": "/api/v1/namespaces/{ns}/endpoints",
    "pods": "/api/v1/namespaces/{ns}/pods",
    "serviceaccounts": "/api/v1/namespaces/{ns}/serviceaccounts",
    "endpointslices": "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
    "ingressclasses": "/apis/networking.k8s.io/v1/ingressclasses",
    "gatewayclasses": "/apis/gateway.networking.k8s.io/v1/gatewayclasses",
    "gateways": "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/gateways",
}


def _clean(resource: str, obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    for k in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
        meta.pop(k, None)
    obj.pop("status", None)
    if resource == "services":
        spec = obj["spec"]
        if meta["name"] != "kube-dns":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        else:
            spec["clusterIP"] = KUBE_DNS_IP
            spec["clusterIPs"] = [KUBE_DNS_IP]
        for p in spec.get("ports") or []:
            p.pop("nodePort", None)
    return obj


def bootstrap_objects(scratch: Store) -> list[tuple[str, Obj]]:
    """(resource, object) create requests for the real API, in dependency order. The `kubernetes`
    Service itself is the API server's; its endpoint (the control-plane VIP on node-1, see docs/lab.md)
    is written here because `--endpoint-reconciler-type=none` leaves it to us."""
    out: list[tuple[str, Obj]] = []
    for resource in ("ingressclasses", "gatewayclasses", "gateways", "configmaps", "services", "pods"):
        for obj in scratch.select(resource):
            meta = obj["metadata"]
            if resource == "services" and (meta["namespace"], meta["name"]) == ("default", "kubernetes"):
                continue
            if resource == "configmaps" and meta["name"] == "kube-root-ca.crt":
                continue
            out.append((resource, _clean(resource, obj)))
    out.append(
        (
            "endpoints",
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
                },
                "subsets": [
                    {
                        "addresses": [{"ip": CONTROL_PLANE_VIP}],
                        "ports": [{"name": "https", "port": KUBERNETES_ENDPOINT_PORT, "protocol": "TCP"}],
                    }
                ],
            },
        )
    )
    out.append(
        (
            "endpointslices",
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {
                        "kubernetes.io/service-name": "kubernetes",
                        "endpointslice.kubernetes.io/managed-by": "lab.netconform.io",
                    },
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [CONTROL_PLANE_VIP], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": KUBERNETES_ENDPOINT_PORT, "protocol": "TCP"}],
            },
        )
    )
    return out


async def create_all(api: RealApi, objects: list[tuple[str, Obj]], timeout: float) -> list[str]:
    """Creates each object (409 AlreadyExists is fine); retries while a namespace's default
    ServiceAccount does not exist yet (the real ServiceAccount admission refuses pods until then)."""
    created = []
    deadline = time.monotonic() + timeout
    for resource, obj in objects:
        ns = obj["metadata"].get("namespace", "default")
        path = API_PATHS[resource].format(ns=ns)
        while True:
            try:
                await api.request("POST", path, obj)
                created.append(f"{resource}/{ns}/{obj['metadata']['name']}")
                break
            except RealApiError as err:
                if err.status == 409:
                    break
                # 403: the namespace's default ServiceAccount is not there yet; 429/5xx: busy
                if err.status not in (403, 429, 500, 503) or time.monotonic() > deadline:
                    raise
                log.info("creating %s %s/%s: %s (retrying)", resource, ns, obj["metadata"]["name"], err)
                await asyncio.sleep(0.2)  # e.g. the default ServiceAccount not created yet; bounded
    return created


def rbac_objects() -> list[tuple[str, Obj]]:
    """The lab's additions to the default RBAC: the node agents' informers (virtual-kubelet lists
    ConfigMaps, Secrets and Services cluster-wide, which the Node authorizer alone refuses), and the
    viewer token's group bound to the `view` ClusterRole."""
    return [
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "netconform-lab:node-agent"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["configmaps", "secrets", "services"],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            },
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "netconform-lab:node-agent"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "netconform-lab:node-agent",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}
                ],
            },
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "netconform-lab:viewers"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "lab:viewers"}
                ],
            },
        ),
    ]


async def wait_for(api: RealApi, path: str, timeout: float) -> Obj:
    """GET `path` until it answers 200, within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await api.request("GET", path)
        except (RealApiError, aiohttp.ClientError, TimeoutError):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)  # polling for the object, bounded by `timeout`
