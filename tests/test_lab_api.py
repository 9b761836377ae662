"""The lab API server and controllers in-process (no root, no namespaces): the official Python client
against a real aiohttp server on 127.0.0.1, with an in-memory data plane standing in for the kernel.

Covers auth (401/403), discovery, CRUD with Status errors (404/409/422), patches, label and field
selectors, watch with resourceVersion, server-side Tables, SelfSubjectAccessReview, service IP/NodePort/
LB allocation, scheduling (nodeSelector, taints), endpoints/EndpointSlices following readiness, the NAT
and DNS zone handed to the data plane, namespace Terminating, the exact request counters, and the
bad-input admission: Pod Security from namespace labels, the `deny-host-network` webhook condition and
the `namespace-stuck` condition.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from netconform.lab.api.apiserver import ApiServer, User
from netconform.lab.api.store import ApiError, Store
from netconform.lab.control.controllers import Controllers
from netconform.lab.faults.conditions import LabConditions
from netconform.lab.net.dataplane import FakeDataPlane
from tests.narrow import present

ADMIN, VIEWER = "admin-token", "viewer-token"
NODES = ["node-1", "node-2", "node-3"]


class NoKubelet:
    """Backend without a kubelet: exec and logs answer like a node that runs nothing."""

    async def exec_argv(
        self, namespace: str, pod: str, container: str | None, command: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        raise ApiError(400, "BadRequest", f"pod {pod} is not running")

    def log_file(self, namespace: str, pod: str, container: str | None, previous: bool) -> Path:
        raise ApiError(400, "BadRequest", f"pod {pod} has no logs")

    def container_alive(self, namespace: str, pod: str, container: str | None) -> bool:
        return False

    def attach_target(self, namespace: str, pod: str, container: str | None) -> tuple[Any, Path]:
        raise ApiError(400, "BadRequest", f"pod {pod} is not running")

    def lab_status(self) -> dict[str, Any]:
        return {}

    async def fault_list(self) -> list[dict[str, Any]]:
        return []

    async def fault_add(self, name: str, node: str | None) -> dict[str, Any]:
        raise ApiError(404, "NotFound", name)

    async def fault_clear(self, name: str | None) -> list[str]:
        return []


class Server:
    def __init__(self, state_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = Store()
        self.plane = FakeDataPlane()
        self.conditions = LabConditions()
        self.api = ApiServer(
            self.store,
            NoKubelet(),
            {ADMIN: User("admin", (), False), VIEWER: User("viewer", (), True)},
            self.conditions,
        )
        self.controllers: Controllers
        self.state_dir = state_dir
        self.url = ""
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.controllers = Controllers(
            self.store, self.plane, NODES, self.state_dir, True, self.api.delete_object, self.conditions
        )
        for ns in ("default", "kube-system"):
            self.store.create(
                "namespaces",
                {
                    "kind": "Namespace",
                    "apiVersion": "v1",
                    "metadata": {"name": ns},
                    "status": {"phase": "Active"},
                },
                namespaced=False,
            )
        self.controllers.bootstrap_nodes()
        self.task = asyncio.ensure_future(self.controllers.run())
        self.runner = web.AppRunner(self.api.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the server's loop (the store is not thread-safe) and return its result."""

        async def wrapper() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=10)

    def settle(self) -> None:
        """Wait until the controllers processed every change so far."""

        async def idle() -> None:
            self.controllers.kick()
            await asyncio.wait_for(self.controllers.idle.wait(), 10)

        asyncio.run_coroutine_threadsafe(idle(), self.loop).result(timeout=15)

    def stop(self) -> None:
        async def shutdown() -> None:
            self.task.cancel()
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("labapi"))
    srv.thread.start()
    assert srv.ready.wait(10)
    try:
        yield srv
    finally:
        srv.stop()


def _client(server: Server, token: str = ADMIN) -> Any:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = server.url
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(cfg)


@pytest.fixture(scope="module")
def core(server: Server) -> Any:
    from kubernetes import client

    return client.CoreV1Api(_client(server))


def _raw(
    server: Server,
    method: str,
    path: str,
    token: str | None = ADMIN,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        server.url + path,
        method=method,
        headers=hdrs,
        data=json.dumps(body).encode() if body is not None else None,
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _status_of(exc: Any) -> tuple[int, dict[str, Any]]:
    return exc.status, json.loads(exc.body)


def test_unauthenticated_is_401_status(server: Server) -> None:
    code, body = _raw(server, "GET", "/api/v1/pods", token=None)
    assert code == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    code, body = _raw(server, "GET", "/api/v1/pods", token="wrong")
    assert code == 401


def test_discovery(server: Server) -> None:
    assert _raw(server, "GET", "/api")[1]["versions"] == ["v1"]
    groups = {g["name"] for g in _raw(server, "GET", "/apis")[1]["groups"]}
    assert {"discovery.k8s.io", "authorization.k8s.io"} <= groups
    core_res = {r["name"] for r in _raw(server, "GET", "/api/v1")[1]["resources"]}
    assert {
        "pods",
        "pods/exec",
        "pods/log",
        "services",
        "endpoints",
        "configmaps",
        "events",
        "nodes",
        "namespaces",
    } <= core_res
    assert _raw(server, "GET", "/version", token=None)[1]["major"] == "1"


def test_errors_404_409_422(core: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "default")
    code, body = _status_of(missing.value)
    assert code == 404 and body["reason"] == "NotFound" and body["message"] == 'configmaps "nope" not found'
    core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}, "data": {"a": "1"}})
    with pytest.raises(ApiException) as dup:
        core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}, "data": {"a": "1"}})
    assert _status_of(dup.value)[0] == 409 and _status_of(dup.value)[1]["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as bad:
        core.create_namespaced_pod(
            "default",
            {"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        )
    assert _status_of(bad.value)[0] == 422 and _status_of(bad.value)[1]["reason"] == "Invalid"
    with pytest.raises(ApiException) as nocontainers:
        core.create_namespaced_pod("default", {"metadata": {"name": "empty"}, "spec": {"containers": []}})
    assert "spec.containers" in _status_of(nocontainers.value)[1]["message"]
    with pytest.raises(ApiException) as nons:
        core.create_namespaced_config_map("no-such-ns", {"metadata": {"name": "x"}})
    assert _status_of(nons.value)[0] == 404


def test_viewer_can_read_not_write_and_ssar(server: Server) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    viewer = client.CoreV1Api(_client(server, VIEWER))
    admin = client.CoreV1Api(_client(server, ADMIN))
    # the viewer reads what the admin reads
    namespaces = [present(n.metadata, "metadata").name for n in viewer.list_namespace().items]
    assert "default" in namespaces
    assert namespaces == [present(n.metadata, "metadata").name for n in admin.list_namespace().items]
    pods = [present(p.metadata, "metadata").name for p in viewer.list_pod_for_all_namespaces().items]
    assert pods == [present(p.metadata, "metadata").name for p in admin.list_pod_for_all_namespaces().items]
    with pytest.raises(ApiException) as denied:
        viewer.create_namespaced_pod(
            "default",
            client.V1Pod(
                metadata=client.V1ObjectMeta(name="v"),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="x")]),
            ),
        )
    code, body = _status_of(denied.value)
    assert code == 403 and body["reason"] == "Forbidden" and 'User "viewer" cannot create' in body["message"]
    for token, allowed in ((ADMIN, True), (VIEWER, False)):
        authz = client.AuthorizationV1Api(_client(server, token))
        attributes = client.V1ResourceAttributes(namespace="default", verb="create", resource="pods")
        review = authz.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
            )
        )
        assert present(review.status, "the review's status").allowed is allowed


def test_services_allocation(server: Server, core: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    def svc(name: str, typ: str, **spec: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {
                "type": typ,
                "selector": {"app": name},
                "ports": [{"port": 80, "targetPort": 8080}],
                **spec,
            },
        }

    cip = core.create_namespaced_service("default", svc("a-cip", "ClusterIP"))
    assert cip.spec.cluster_ip.startswith("10.96.") and cip.spec.cluster_ip not in ("10.96.0.1", "10.96.0.10")
    np_ = core.create_namespaced_service("default", svc("a-np", "NodePort"))
    assert 30000 <= np_.spec.ports[0].node_port <= 32767
    headless = core.create_namespaced_service("default", svc("a-hl", "ClusterIP", clusterIP="None"))
    assert headless.spec.cluster_ip == "None"
    with pytest.raises(ApiException) as taken:
        core.create_namespaced_service("default", svc("a-dup", "ClusterIP", clusterIP=cip.spec.cluster_ip))
    assert _status_of(taken.value)[0] == 422 and "already allocated" in _status_of(taken.value)[1]["message"]
    core.create_namespaced_service("default", svc("a-lb", "LoadBalancer"))
    server.settle()
    lb = core.read_namespaced_service("a-lb", "default")
    vip = lb.status.load_balancer.ingress[0].ip
    assert vip.startswith("10.89.0.2") and lb.spec.ports[0].node_port
    assert server.plane.vips[vip] in NODES, "the VIP must be announced from one node"
    nat = {s.key: s for s in server.plane.services}
    assert nat["default/a-lb"].lb_ips == (vip,)
    assert nat["default/a-hl"].cluster_ip is None


def _fake_kubelet_ready(server: Server, ns: str, name: str, ip: str, ready: bool) -> None:
    """What the kubelet would publish: phase, podIP, Ready condition."""

    def apply(o: dict[str, Any]) -> None:
        o["status"].update(
            phase="Running",
            podIP=ip,
            hostIP="10.89.0.12",
            conditions=[{"type": "Ready", "status": "True" if ready else "False"}],
        )

    server.call(server.store.mutate, "pods", ns, name, apply)


def test_scheduler_endpoints_slices_nat_and_zone(server: Server, core: Any) -> None:
    from kubernetes import client

    core.create_namespace({"metadata": {"name": "web"}})
    container = {
        "name": "c",
        "image": "any",
        "command": ["sleep", "1"],
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    for i in range(2):
        core.create_namespaced_pod(
            "web",
            {"metadata": {"name": f"w{i}", "labels": {"app": "web"}}, "spec": {"containers": [container]}},
        )
    core.create_namespaced_pod(
        "web",
        {
            "metadata": {"name": "pinned"},
            "spec": {
                "containers": [container],
                "nodeSelector": {"kubernetes.io/hostname": "node-1"},
                "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}],
            },
        },
    )
    core.create_namespaced_pod(
        "web",
        {
            "metadata": {"name": "stuck"},
            "spec": {"containers": [container], "nodeSelector": {"kubernetes.io/hostname": "node-1"}},
        },
    )
    core.create_namespaced_service(
        "web",
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    server.settle()
    pods = {p.metadata.name: p for p in core.list_namespaced_pod("web").items}
    assert pods["pinned"].spec.node_name == "node-1"
    assert {pods["w0"].spec.node_name, pods["w1"].spec.node_name} <= {"node-2", "node-3"}, "taint ignored"
    assert pods["stuck"].spec.node_name is None
    cond = pods["stuck"].status.conditions[0]
    assert cond.reason == "Unschedulable" and "untolerated taint" in cond.message
    events = core.list_namespaced_event("web", field_selector="involvedObject.name=stuck").items
    assert any(e.reason == "FailedScheduling" for e in events)
    by_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-1,metadata.namespace=web")
    assert [p.metadata.name for p in by_node.items] == ["pinned"]

    _fake_kubelet_ready(server, "web", "w0", "10.244.2.7", True)
    _fake_kubelet_ready(server, "web", "w1", "10.244.3.7", False)
    server.settle()
    ep = core.read_namespaced_endpoints("web", "web")
    assert [a.ip for a in ep.subsets[0].addresses] == ["10.244.2.7"]
    assert [a.ip for a in ep.subsets[0].not_ready_addresses] == ["10.244.3.7"]
    assert ep.subsets[0].ports[0].port == 8080, "targetPort by name resolves to the container port"
    disc = client.DiscoveryV1Api(core.api_client)
    (sl,) = disc.list_namespaced_endpoint_slice("web", label_selector="kubernetes.io/service-name=web").items
    ready = {e.addresses[0]: present(e.conditions, "conditions").ready for e in sl.endpoints or []}
    assert ready == {"10.244.2.7": True, "10.244.3.7": False}
    nat = {s.key: s for s in server.plane.services}["web/web"]
    assert [(b.ip, b.port) for b in nat.ports[0].backends] == [("10.244.2.7", 8080)]
    zone = json.loads((server.state_dir / "dns" / "zone.json").read_text())
    svc_ip = core.read_namespaced_service("web", "web").spec.cluster_ip
    assert zone["records"]["web.web.svc.cluster.local"] == {"A": [svc_ip]}
    assert zone["records"]["_http._tcp.web.web.svc.cluster.local"]["SRV"][0]["port"] == 80

    _fake_kubelet_ready(server, "web", "w1", "10.244.3.7", True)
    server.settle()
    ep = core.read_namespaced_endpoints("web", "web")
    assert sorted(a.ip for a in ep.subsets[0].addresses) == ["10.244.2.7", "10.244.3.7"]


def test_namespace_terminating_until_pods_are_gone(server: Server, core: Any) -> None:
    core.create_namespace({"metadata": {"name": "gone"}})
    core.create_namespaced_pod(
        "gone",
        {
            "metadata": {"name": "p"},
            "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "x", "command": ["true"]}]},
        },
    )
    core.delete_namespace("gone")
    server.settle()
    assert core.read_namespace("gone").status.phase == "Terminating"
    pod = core.read_namespaced_pod("p", "gone")
    assert pod.metadata.deletion_timestamp is not None, "the namespace controller deletes its pods"
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map("gone", {"metadata": {"name": "late"}})
    assert _status_of(refused.value)[0] == 403
    core.delete_namespaced_pod("p", "gone", grace_period_seconds=0)  # what the kubelet does when done
    server.settle()
    assert "gone" not in [n.metadata.name for n in core.list_namespace().items]


def test_watch_from_resource_version(server: Server, core: Any) -> None:
    from kubernetes import watch

    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "w1", "labels": {"t": "w"}}})
    core.patch_namespaced_config_map("w1", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w1", "default")
    seen = []
    for ev in watch.Watch().stream(
        core.list_namespaced_config_map,
        "default",
        label_selector="t=w",
        resource_version=rv,
        timeout_seconds=1,
    ):
        seen.append((ev["type"], ev["object"].metadata.name, (ev["object"].data or {}).get("k")))
    assert seen == [("ADDED", "w1", None), ("MODIFIED", "w1", "v"), ("DELETED", "w1", "v")]


def test_patch_kinds(server: Server, core: Any) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "p1"}, "data": {"a": "1", "b": "2"}})
    code, body = _raw(
        server,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/p1",
        body={"data": {"a": None}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert code == 200 and body["data"] == {"b": "2"}
    code, body = _raw(
        server,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/p1",
        body=[{"op": "add", "path": "/data/c", "value": "3"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert code == 200 and body["data"] == {"b": "2", "c": "3"}


def test_json_patch_follows_rfc_6902(server: Server, core: Any) -> None:
    """An `add` under a missing parent is refused (RFC 6902 4.1: the parent must exist; the hand-written
    patch of old created it), a failed `test` too, both 422 and the object unchanged; `-` appends."""
    core.create_namespaced_config_map("default", {"metadata": {"name": "p2"}, "data": {"a": "1"}})
    path = "/api/v1/namespaces/default/configmaps/p2"
    headers = {"Content-Type": "application/json-patch+json"}
    code, body = _raw(
        server, "PATCH", path, body=[{"op": "add", "path": "/spec/x/y", "value": 1}], headers=headers
    )
    assert code == 422 and "does not apply" in body["message"], body
    ops = [
        {"op": "test", "path": "/data/a", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "3"},
    ]
    code, body = _raw(server, "PATCH", path, body=ops, headers=headers)
    assert code == 422 and "test operation failed" in body["message"], body
    assert core.read_namespaced_config_map("p2", "default").data == {"a": "1"}
    appends: list[dict[str, Any]] = [
        {"op": "add", "path": "/metadata/finalizers", "value": []},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/x"},
    ]
    code, body = _raw(server, "PATCH", path, body=appends, headers=headers)
    assert code == 200 and body["metadata"]["finalizers"] == ["example.com/x"], body


def test_table_output(server: Server) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    code, table = _raw(server, "GET", "/api/v1/nodes", headers={"Accept": accept})
    assert code == 200 and table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:5] == ["Name", "Status", "Roles", "Age", "Version"] and "Internal-IP" in names
    first = table["rows"][0]
    assert first["cells"][:3] == ["node-1", "Ready", "control-plane"]
    assert first["object"]["kind"] == "PartialObjectMetadata"


def test_request_counters_are_exact(server: Server) -> None:
    before = server.call(server.api.counters.snapshot)
    for _ in range(3):
        _raw(server, "GET", "/api/v1/namespaces/default/configmaps")
    _raw(server, "GET", "/api/v1/namespaces/default/configmaps/nope")
    after = server.call(server.api.counters.snapshot)
    assert (
        after["requests"]["list"]["configmaps"] - before["requests"].get("list", {}).get("configmaps", 0) == 3
    )
    assert (
        after["requests"]["get"]["configmaps"] - before["requests"].get("get", {}).get("configmaps", 0) == 1
    )
    assert after["requests_total"] - before["requests_total"] == 4


def test_concurrent_burst_is_served(server: Server) -> None:
    """Dozens of concurrent requests: the event loop never blocks, every answer is right."""
    results: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        code, _ = _raw(server, "GET", "/api/v1/nodes")
        with lock:
            results.append(code)

    threads = [threading.Thread(target=one) for _ in range(40)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert results == [200] * 40
    assert time.monotonic() - started < 10


# ------------------------------------------------------------------ bad-input admission and conditions
def _pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "x", "command": ["sleep", "1"], **spec.pop("container", {})}
    return {"metadata": {"name": name}, "spec": {"nodeName": "node-2", "containers": [container], **spec}}


def _forbidden(fn: Any, *args: Any) -> str:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as err:
        fn(*args)
    code, body = _status_of(err.value)
    assert (code, body["reason"], body["kind"]) == (403, "Forbidden", "Status"), body
    return str(body["message"])


def test_pod_security_baseline_from_the_namespace_label(core: Any) -> None:
    labels = {"pod-security.kubernetes.io/enforce": "baseline"}
    core.create_namespace({"metadata": {"name": "psa-baseline", "labels": labels}})
    create = core.create_namespaced_pod
    assert _forbidden(create, "psa-baseline", _pod("hn", hostNetwork=True)) == (
        'pods "hn" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'
    )
    both = _pod("hp", hostPID=True, hostNetwork=True, container={"securityContext": {"privileged": True}})
    assert _forbidden(create, "psa-baseline", both) == (
        'pods "hp" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, '
        'hostPID=true), privileged (container "c" must not set securityContext.privileged=true)'
    )
    caps = _pod("cap", container={"securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}})
    assert 'non-default capabilities (container "c" must not include "NET_ADMIN"' in _forbidden(
        create, "psa-baseline", caps
    )
    # what baseline allows is created; restricted-only rules do not apply
    assert create("psa-baseline", _pod("plain")).metadata.name == "plain"
    # a namespace without the label (or `privileged`) allows host namespaces
    core.create_namespace({"metadata": {"name": "psa-none"}})
    assert create("psa-none", _pod("hn", hostNetwork=True)).spec.host_network is True
    core.patch_namespace(
        "psa-none", {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}
    )
    assert "host namespaces (hostNetwork=true)" in _forbidden(
        create, "psa-none", _pod("hn2", hostNetwork=True)
    )


def test_pod_security_restricted_and_unknown_level(core: Any) -> None:
    for name, level in (("psa-restricted", "restricted"), ("psa-typo", "restrictd")):
        labels = {
            "pod-security.kubernetes.io/enforce": level,
            "pod-security.kubernetes.io/enforce-version": "v1.31",
        }
        core.create_namespace({"metadata": {"name": name, "labels": labels}})
        message = _forbidden(core.create_namespaced_pod, name, _pod("loose"))
        assert message.startswith('pods "loose" is forbidden: violates PodSecurity "restricted:v1.31": '), (
            message
        )
        for rule in (
            "allowPrivilegeEscalation != false",
            "unrestricted capabilities",
            "runAsNonRoot != true",
        ):
            assert rule in message
    hardened = _pod(
        "tight",
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        container={"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}},
    )
    assert core.create_namespaced_pod("psa-restricted", hardened).metadata.name == "tight"


def test_deny_host_network_condition_is_a_webhook_everywhere(server: Server, core: Any) -> None:
    core.create_namespace(
        {"metadata": {"name": "psa-priv", "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
    )
    assert server.call(server.conditions.add, "deny-host-network").endswith("active on all namespaces")
    try:
        for ns in ("default", "psa-priv"):
            assert _forbidden(core.create_namespaced_pod, ns, _pod("hn-denied", hostNetwork=True)) == (
                'admission webhook "policy.lab.netconform.io" denied the request: hostNetwork is not allowed'
            )
        assert core.create_namespaced_pod("psa-priv", _pod("pod-net")).metadata.name == "pod-net"
    finally:
        assert server.call(server.conditions.clear, "deny-host-network") == "deny-host-network: cleared"
    assert core.create_namespaced_pod("psa-priv", _pod("hn-ok", hostNetwork=True)).spec.host_network


def test_namespace_stuck_condition_keeps_it_terminating_until_cleared(server: Server, core: Any) -> None:
    server.call(server.conditions.add, "namespace-stuck")
    try:
        for name in ("stuck", "forced"):
            core.create_namespace({"metadata": {"name": name}})
            core.create_namespaced_config_map(name, {"metadata": {"name": "cm"}})
            core.delete_namespace(name)
        server.settle()
        ns = core.read_namespace("stuck")
        assert ns.status.phase == "Terminating" and ns.spec.finalizers == ["kubernetes"]
        conditions = {c.type: (c.status, c.reason) for c in ns.status.conditions}
        assert conditions["NamespaceDeletionContentFailure"] == ("True", "ContentDeletionFailed")
        assert conditions["NamespaceContentRemaining"] == ("False", "ContentRemoved")
        assert conditions["NamespaceFinalizersRemaining"] == ("False", "ContentHasNoFinalizers")
        assert core.list_namespaced_config_map("stuck").items == [], "the content itself is deleted"
        # what a user forces as a last resort: drop the finalizer through /finalize
        forced = core.read_namespace("forced")
        forced.spec.finalizers = []
        core.replace_namespace_finalize("forced", forced)
        server.settle()
        names = [n.metadata.name for n in core.list_namespace().items]
        assert "forced" not in names and "stuck" in names
    finally:
        server.call(server.conditions.clear, "namespace-stuck")
    server.settle()
    assert "stuck" not in [n.metadata.name for n in core.list_namespace().items]


def test_lab_manifests_render_and_refuse_a_missing_value() -> None:
    """The lab's kube-system objects come from YAML templates (netconform/lab/manifests/)."""
    from netconform.lab import manifests

    system = manifests.render(
        "system.yaml",
        KUBERNETES_SERVICE_IP="10.96.0.1",
        KUBERNETES_ENDPOINT_PORT=6443,
        CONTROL_PLANE_VIP="10.89.0.2",
        KUBE_DNS_IP="10.96.0.10",
    )
    assert [(o["kind"], o["metadata"]["name"]) for o in system] == [
        ("Service", "kubernetes"),
        ("Endpoints", "kubernetes"),
        ("EndpointSlice", "kubernetes"),
        ("Service", "kube-dns"),
        ("ConfigMap", "coredns"),
    ]
    assert system[0]["spec"]["ports"][0]["targetPort"] == 6443  # a number, as the API wants
    assert "kubernetes cluster.local" in system[4]["data"]["Corefile"]
    with pytest.raises(ValueError, match=r"apiserver-pod.yaml: no value for \$\{PORT\}"):
        manifests.render("apiserver-pod.yaml", NODE="node-1", CONTROL_PLANE_VIP="x", PYTHON="p", AGENT="a")
