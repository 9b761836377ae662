"""Units of the real-control-plane lab that need no binaries: the node bridge's protocol over a real
unix socket, the Endpoints the lab's proxy reads built from EndpointSlices, the PKI's certificates."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from netconform.lab.api.store import ApiError, Store
from netconform.lab.control.nodebridge import NodeBridge, terminated
from netconform.lab.control.realcp import LabCA
from netconform.lab.control.realmirror import bootstrap_objects, endpoints_from_slices


class StubKubelet:
    """Only what the bridge asks a kubelet beyond the store (exec argv, log path, liveness, netns)."""

    async def exec_argv(self, namespace: str, pod: str, container: str | None, command: list[str]) -> Any:
        if container == "missing":
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {pod}")
        return ["echo", *command], {"LANG": "C.UTF-8"}

    def log_file(self, namespace: str, pod: str, container: str | None, previous: bool) -> Path:
        return Path(f"/tmp/{namespace}_{pod}/{container}.log")

    def container_alive(self, namespace: str, pod: str, container: str | None) -> bool:
        return True

    def pod_netns(self, namespace: str, pod: str) -> str | None:
        return "nc-x-p-0000abcd"


def pod(name: str, node: str, uid: str = "u-1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": uid},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Always",
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/x"}],
                }
            ],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": []}}],
        },
        "status": {"phase": "Pending"},
    }


async def call(sock: Path, req: dict[str, Any]) -> dict[str, Any]:
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(sock)), 5)
    writer.write(json.dumps(req).encode() + b"\n")
    line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    answer: dict[str, Any] = json.loads(line)
    return answer


def test_bridge_protocol(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store()
        sock = tmp_path / "nodes.sock"
        bridge = NodeBridge(store, StubKubelet(), sock)  # type: ignore[arg-type]
        await bridge.start()
        try:
            # a status stream for node-2, opened before the pod arrives
            reader, writer = await asyncio.open_unix_connection(str(sock))
            writer.write(b'{"op": "watch", "node": "node-2"}\n')
            await writer.drain()
            await asyncio.sleep(0.05)  # let the bridge register the follower; the assertions below poll
            assert (await call(sock, {"op": "create", "node": "node-2", "pod": pod("a", "node-2")}))["ok"]
            local = store.get("pods", "ns", "a")
            assert local["metadata"]["uid"] == "u-1"  # the real API's uid, not a new one
            assert local["spec"]["volumes"] == [] and "volumeMounts" not in local["spec"]["containers"][0]
            first = json.loads(await asyncio.wait_for(reader.readline(), 5))
            assert first["pod"]["metadata"]["name"] == "a"
            # a pod bound to another node is refused, and invisible to this node
            wrong = await call(sock, {"op": "create", "node": "node-3", "pod": pod("b", "node-2")})
            assert wrong == {"ok": False, "code": 400, "message": "pod b is not bound to node-3"}
            missing = await call(sock, {"op": "get", "node": "node-3", "namespace": "ns", "name": "a"})
            assert missing["ok"] is False and missing["code"] == 404
            listed = await call(sock, {"op": "list", "node": "node-2"})
            assert [p["metadata"]["name"] for p in listed["pods"]] == ["a"]
            ex = await call(
                sock, {"op": "exec", "node": "node-2", "namespace": "ns", "name": "a", "command": ["hi"]}
            )
            assert ex["argv"] == ["echo", "hi"] and ex["env"] == {"LANG": "C.UTF-8"}
            bad = await call(
                sock,
                {"op": "exec", "node": "node-2", "namespace": "ns", "name": "a", "container": "missing"},
            )
            assert bad["code"] == 400 and "not valid" in bad["message"]
            ns = await call(sock, {"op": "netns", "node": "node-2", "namespace": "ns", "name": "a"})
            assert ns["netns"] == "/run/netns/nc-x-p-0000abcd"
            # delete marks the pod; the kubelet (absent here) would stop it; removal is streamed terminated
            delete = {"op": "delete", "node": "node-2", "namespace": "ns", "name": "a", "grace": 3}
            assert (await call(sock, delete))["ok"]
            assert store.get("pods", "ns", "a")["metadata"]["deletionGracePeriodSeconds"] == 3
            store.delete("pods", "ns", "a")
            seen = []
            for _ in range(10):  # the marked pod, then the terminated one (heartbeats only every 5 s)
                msg = json.loads(await asyncio.wait_for(reader.readline(), 10))
                seen.append(msg)
                cstats = (msg.get("pod") or {}).get("status", {}).get("containerStatuses") or [{}]
                if "terminated" in cstats[0].get("state", {}):
                    break
            else:
                raise AssertionError(f"no terminated pod in the stream: {seen}")
            assert msg["pod"]["status"]["phase"] == "Failed"  # restartPolicy Always, stopped from outside
            writer.close()
        finally:
            await bridge.close()

    asyncio.run(scenario())


def test_terminated_keeps_restart_counts() -> None:
    p = pod("a", "node-1")
    p["spec"]["restartPolicy"] = "Never"
    p["status"]["containerStatuses"] = [{"name": "c", "restartCount": 2, "state": {"running": {}}}]
    out = terminated(p)
    cs = out["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 2 and cs["state"]["terminated"]["exitCode"] == 0
    assert out["status"]["phase"] == "Succeeded"
    assert p["status"]["containerStatuses"][0]["state"] == {"running": {}}  # the input is not changed


def test_endpoints_from_slices_ready_and_not_ready() -> None:
    svc = {"metadata": {"name": "web", "namespace": "ns"}}
    slices = [
        {
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.2.5"], "conditions": {"ready": True}, "nodeName": "node-2"},
                {"addresses": ["10.244.3.7"], "conditions": {"ready": False}},
                {"addresses": ["10.244.3.8"], "conditions": {}},  # unknown readiness counts as ready
            ],
        },
        {"addressType": "IPv6", "ports": [{"port": 80}], "endpoints": [{"addresses": ["fd00::1"]}]},
        {"addressType": "IPv4", "ports": [], "endpoints": [{"addresses": ["10.244.1.1"]}]},
    ]
    ep = endpoints_from_slices(svc, slices)
    assert ep["metadata"] == {"name": "web", "namespace": "ns"}
    assert ep["subsets"] == [
        {
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "addresses": [{"ip": "10.244.2.5", "nodeName": "node-2"}, {"ip": "10.244.3.8"}],
            "notReadyAddresses": [{"ip": "10.244.3.7"}],
        }
    ]
    assert endpoints_from_slices(svc, [])["subsets"] == []


def test_bootstrap_objects_leave_allocation_to_the_real_api() -> None:
    store = Store()
    store.create(
        "services",
        {"metadata": {"name": "kube-dns", "namespace": "kube-system"}, "spec": {"clusterIP": "10.96.0.99"}},
        namespaced=True,
    )
    store.create(
        "services",
        {
            "metadata": {"name": "web", "namespace": "kube-system"},
            "spec": {"clusterIP": "10.96.5.5", "ports": [{"port": 80, "nodePort": 30080}]},
            "status": {"loadBalancer": {}},
        },
        namespaced=True,
    )
    store.create(
        "services",
        {"metadata": {"name": "kubernetes", "namespace": "default"}, "spec": {}},
        namespaced=True,
    )
    out = dict(((r, o["metadata"]["name"]), o) for r, o in bootstrap_objects(store))
    assert ("services", "kubernetes") not in out  # the API server's own
    assert out[("services", "kube-dns")]["spec"]["clusterIP"] == "10.96.0.10"
    web = out[("services", "web")]
    assert "clusterIP" not in web["spec"] and "nodePort" not in web["spec"]["ports"][0]
    assert "status" not in web and "uid" not in web["metadata"]
    assert out[("endpointslices", "kubernetes")]["endpoints"][0]["addresses"] == ["10.89.0.2"]


def test_lab_ca_issues_client_and_serving_certificates(tmp_path: Path) -> None:
    ca = LabCA(tmp_path, "x")
    crt, key = ca.issue("node-node-1", "system:node:node-1", orgs=("system:nodes",), client=True)
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    assert cert.subject.rfc4514_string() == "O=system:nodes,CN=system:node:node-1"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    srv, srv_key = ca.issue("kubelet-node-1", "node-1", server=True, dns=("localhost",), ips=("127.0.0.1",))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(srv, srv_key)  # the key matches the certificate
    verify = ssl.create_default_context(cafile=str(ca.ca_path))
    assert verify.get_ca_certs()[0]["subject"][0][0] == ("commonName", "netconform-lab-x-ca")


@pytest.mark.parametrize(
    "args, env, needle",
    [
        (["--control-plane", "bogus"], {}, "invalid choice: 'bogus'"),
        (
            ["--control-plane", "real"],
            {"NETCONFORM_CONTROL_PLANE_CACHE": "/nonexistent/netconform-cp"},
            "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, nodeagent in "
            "/nonexistent/netconform-cp/bin: run `make control-plane`",
        ),
    ],
)
def test_up_control_plane_bad_input_is_one_line(args: list[str], env: dict[str, str], needle: str) -> None:
    argv = [sys.executable, "-m", "netconform.cli.main", "lab", "up", "--name", "realcp-bad", *args]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env={**os.environ, **env}, check=False
    )
    assert proc.returncode != 0
    assert needle in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not Path("/run/netconform/lab/realcp-bad").exists()


def _audit(audit_id: str, stage: str, verb: str, resource: str | None = None, sub: str | None = None) -> str:
    event: dict[str, Any] = {
        "auditID": audit_id,
        "stage": stage,
        "verb": verb,
        "requestURI": "/api?timeout=5s",
    }
    if resource:
        event["objectRef"] = {"resource": resource, **({"subresource": sub} if sub else {})}
    return json.dumps(event) + "\n"


def test_audit_counters_count_each_request_once_and_open_sessions(tmp_path: Path) -> None:
    from netconform.lab.control.realaudit import AuditCounters

    log = tmp_path / "audit.log"
    log.write_text(
        _audit("a", "ResponseComplete", "list", "pods")
        + _audit("b", "ResponseStarted", "get", "pods", "exec")  # a WebSocket exec: counted as create
        + _audit("c", "ResponseStarted", "watch", "services")
        + _audit("d", "ResponseComplete", "get")
        + _audit("e", "ResponseComplete", "get", "pods", "exec")  # refused before it streamed: no session
        + '{"auditID": "f", "stage": "ResponseCompl'  # still being written
    )
    counters = AuditCounters(log)
    first = counters.snapshot()
    assert first["requests"] == {"create": {"pods/exec": 2}, "get": {"/api": 1}, "list": {"pods": 1},
                                 "watch": {"services": 1}}  # fmt: skip
    assert (first["requests_total"], first["exec_sessions"], first["exec_active"]) == (5, 1, 1)
    assert first["watches_active"] == 1
    with log.open("a") as f:
        f.write('ete", "verb": "delete", "objectRef": {"resource": "pods"}}\n')
        f.write(_audit("b", "ResponseComplete", "get", "pods", "exec"))
        f.write(_audit("c", "ResponseComplete", "watch", "services"))
    second = counters.snapshot()
    assert second["requests"]["delete"] == {"pods": 1}, "the line finished later is read whole"
    assert (second["requests_total"], second["exec_sessions"], second["exec_active"]) == (6, 1, 0)
    assert second["watches_active"] == 0


def test_gateway_api_bundle_is_the_standard_channel_crds_first() -> None:
    from netconform.lab.control.realcp import GATEWAY_API_VERSION, gateway_api_dir
    from netconform.lab.control.realingress import gateway_api_documents

    directory = gateway_api_dir()
    if not (directory / ".done").exists():
        pytest.skip(f"no Gateway API CRDs in {directory} (make control-plane)")
    docs = gateway_api_documents(directory)
    kinds = [d["kind"] for d in docs]
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert kinds[: len(crds)] == ["CustomResourceDefinition"] * len(crds)  # before their policy
    names = {d["metadata"]["name"] for d in crds}
    assert {"gatewayclasses", "gateways", "httproutes"} <= {n.split(".")[0] for n in names}, names
    for crd in crds:
        notes = crd["metadata"]["annotations"]
        assert notes["gateway.networking.k8s.io/channel"] == "standard"
        assert notes["gateway.networking.k8s.io/bundle-version"] == GATEWAY_API_VERSION


def test_ingress_cluster_role_grants_reads_and_status_writes_only() -> None:
    """Every API path the controller's source reads has a read rule, and nothing is writable but status."""
    import re

    from netconform.lab.control import ingress
    from netconform.lab.control.realingress import ingress_rbac_objects

    objects = {obj["kind"]: obj for _, obj in ingress_rbac_objects()}
    rules = objects["ClusterRole"]["rules"]
    grants = {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    source = Path(ingress.__file__).read_text()
    read = set(re.findall(r'_get\("/api/v1/(\w+)"\)', source))
    read |= set(re.findall(r'_get\("/apis/([\w.]+)/v1/(\w+)"\)', source))
    read |= {(ingress.GATEWAY_GROUP, r) for r in re.findall(r'_get\(f"\{base\}/(\w+)"\)', source)}
    assert len(read) >= 8, read
    for item in read:
        group, resource = ("", item) if isinstance(item, str) else item
        assert (group, resource, "list") in grants, (group, resource)
    writes = {(g, r, v) for g, r, v in grants if v not in ("get", "list", "watch")}
    assert writes and all(r.endswith("/status") and v in ("update", "patch") for _, r, v in writes), writes
    assert objects["ClusterRoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "lab-ingress-controller", "namespace": "kube-system"}
    ]


def test_api_proxy_passes_the_callers_token_over_tls_verified_with_the_lab_ca(tmp_path: Path) -> None:
    """api.sock to an HTTPS upstream with a certificate of the lab CA: the caller's bearer token and the
    body arrive unchanged, the answer comes back; an upstream the lab CA did not sign is a 502."""
    from aiohttp import web

    from netconform.lab.control.realingress import ApiProxy

    ca = LabCA(tmp_path / "pki", "x")
    crt, key = ca.issue("apiserver", "kube-apiserver", server=True, ips=("127.0.0.1",))
    other = LabCA(tmp_path / "other", "y")
    bad_crt, bad_key = other.issue("apiserver", "kube-apiserver", server=True, ips=("127.0.0.1",))
    seen: list[tuple[str, str, str, bytes]] = []

    async def upstream(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.method, str(request.rel_url), request.headers.get("Authorization", ""), body))
        return web.json_response({"kind": "Status", "code": 403, "message": "forbidden"}, status=403)

    async def serve(cert: Path, keyf: Path) -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", upstream)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, keyf)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def ask(sock: Path, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(sock)), 5)
        head = f"{method} {path} HTTP/1.0\r\nHost: lab\r\nAuthorization: Bearer t0k\r\n"
        head += f"Content-Type: application/merge-patch+json\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        status_line, _, rest = data.partition(b"\r\n")
        return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]

    async def scenario() -> None:
        good, good_port = await serve(crt, key)
        bad, bad_port = await serve(bad_crt, bad_key)
        proxies = [
            ApiProxy(f"https://127.0.0.1:{port}", ca.ca_path, tmp_path / f"{name}.sock")
            for name, port in (("good", good_port), ("bad", bad_port))
        ]
        try:
            for p in proxies:
                await p.start()
            assert oct((tmp_path / "good.sock").stat().st_mode & 0o777) == "0o600"
            status, body = await ask(
                tmp_path / "good.sock", "PATCH", "/apis/x/v1/things/a/status?x=1", b'{"a":1}'
            )
            assert status == 403 and json.loads(body)["message"] == "forbidden", (status, body)
            assert seen == [("PATCH", "/apis/x/v1/things/a/status?x=1", "Bearer t0k", b'{"a":1}')]
            status, body = await ask(tmp_path / "bad.sock", "GET", "/api/v1/pods", b"")
            assert status == 502 and b"certificate verify failed" in body.lower(), (status, body)
            assert len(seen) == 1 and proxies[1].errors == 1
        finally:
            for p in proxies:
                await p.close()
            await good.cleanup()
            await bad.cleanup()

    asyncio.run(scenario())
