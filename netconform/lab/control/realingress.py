"""The lab's ingress controller and the Gateway API on the real control plane (`--control-plane real`).

- `install_gateway_api` applies the Gateway API's standard-channel CRDs (cached by `make control-plane`
  from the Go module sigs.k8s.io/gateway-api, `realcp.gateway_api_dir()`) to the real API server and waits,
  with a deadline, until every CRD is `Established`, before anything creates a Gateway.
- The ingress controller is a controller of the real cluster: the ServiceAccount
  `kube-system/lab-ingress-controller`, bound to the ClusterRole `netconform-lab:ingress-controller`
  (exactly the reads and status writes it makes, `ingress_rbac_objects`), with a token from the
  TokenRequest API (`ingress_token`) in `<state>/ingress-token`.
- `ApiProxy` serves `<state>/api.sock` (the unix socket the controller pod reaches the API through: a
  pod's network namespace cannot reach the host's loopback) as a reverse proxy to the real kube-apiserver,
  over TLS verified with the lab CA. It adds no credentials of its own: each request carries the caller's
  bearer token, so the real authenticator and RBAC decide what the controller may do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from netconform.lab.control import ingress
from netconform.lab.control.realmirror import RealApi, RealApiError

log = logging.getLogger("netconform.lab.control.realingress")

Obj = dict[str, Any]
SERVICE_ACCOUNT = ingress.SERVICE_NAME  # kube-system/lab-ingress-controller
CLUSTER_ROLE = "netconform-lab:ingress-controller"
TOKEN_SECONDS = 30 * 24 * 3600  # as long as the lab CA; the lab is throwaway
PROXY_TIMEOUT_S = 60.0  # longer than any request the controller makes (it lists, it does not watch)
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "host"}
HOP_HEADERS |= {"content-length", "content-encoding"}

# where each kind of the CRD bundle is created
KIND_PATHS = {
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "ValidatingAdmissionPolicy": "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": (
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
    ),
}


def gateway_api_documents(directory: Path) -> list[Obj]:
    """Every object of the cached bundle (CRDs first, then the bundle's admission policy)."""
    docs: list[Obj] = []
    for path in sorted(directory.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and d.get("kind")]
    unknown = sorted({d["kind"] for d in docs} - set(KIND_PATHS))
    if unknown:
        raise RuntimeError(f"{directory}: unexpected kinds {', '.join(unknown)}")
    docs.sort(key=lambda d: d["kind"] != "CustomResourceDefinition")
    return docs


def _established(crd: Obj) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


async def install_gateway_api(api: RealApi, directory: Path, timeout: float) -> list[str]:
    """Create the bundle's objects (409: there already) and wait until every CRD is Established."""
    deadline = time.monotonic() + timeout
    crds: list[str] = []
    for doc in gateway_api_documents(directory):
        try:
            await api.request("POST", KIND_PATHS[doc["kind"]], doc)
        except RealApiError as err:
            if err.status != 409:
                raise
        if doc["kind"] == "CustomResourceDefinition":
            crds.append(doc["metadata"]["name"])
    pending = list(crds)
    while pending:
        crd = await api.request("GET", f"{KIND_PATHS['CustomResourceDefinition']}/{pending[0]}")
        if _established(crd):
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"CRD {pending[0]} not Established within {timeout:.0f} s")
        await asyncio.sleep(0.1)  # polling the CRD's condition, bounded by the deadline
    return crds


def ingress_rbac_objects() -> list[tuple[str, Obj]]:
    """The controller's ServiceAccount and exactly what it needs: list (and get/watch) of what it
    follows, `update`/`patch` of the status subresources it writes."""
    reads = ["get", "list", "watch"]
    rules = [
        {"apiGroups": [""], "resources": ["services", "secrets", "namespaces"], "verbs": reads},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": reads},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": reads},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update", "patch"]},
        {
            "apiGroups": ["gateway.networking.k8s.io"],
            "resources": ["gatewayclasses", "gateways", "httproutes"],
            "verbs": reads,
        },
        {
            "apiGroups": ["gateway.networking.k8s.io"],
            "resources": ["gatewayclasses/status", "gateways/status", "httproutes/status"],
            "verbs": ["update", "patch"],
        },
    ]
    labels = dict(ingress.LABELS)
    return [
        (
            f"/api/v1/namespaces/{ingress.NAMESPACE}/serviceaccounts",
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": SERVICE_ACCOUNT, "namespace": ingress.NAMESPACE, "labels": labels},
            },
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": CLUSTER_ROLE, "labels": labels},
                "rules": rules,
            },
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": CLUSTER_ROLE, "labels": labels},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": CLUSTER_ROLE,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ingress.NAMESPACE}
                ],
            },
        ),
    ]


async def ingress_token(api: RealApi, token_file: Path, timeout: float) -> str:
    """Create the controller's identity, ask the TokenRequest API for its token and write it (0600)."""
    deadline = time.monotonic() + timeout
    for path, obj in ingress_rbac_objects():
        while True:
            try:
                await api.request("POST", path, obj)
                break
            except RealApiError as err:
                if err.status == 409:
                    break
                # 404/403: kube-system not there yet (the namespace controller makes it at start)
                if err.status not in (403, 404, 429, 500, 503) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)  # retrying the create, bounded by the deadline
    answer = await api.request(
        "POST",
        f"/api/v1/namespaces/{ingress.NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": TOKEN_SECONDS},
        },
    )
    token = str(answer["status"]["token"])
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


class ApiProxy:
    """A reverse proxy from a unix socket to the real API server (TLS verified with the lab CA)."""

    def __init__(self, upstream: str, ca_file: Path, socket_path: Path) -> None:
        self.upstream = upstream
        self.ssl = ssl.create_default_context(cafile=str(ca_file))
        self.socket_path = socket_path
        self.session: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.requests = 0
        self.errors = 0

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=20),
            timeout=aiohttp.ClientTimeout(total=PROXY_TIMEOUT_S, sock_connect=5),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self.runner.setup()
        self.socket_path.unlink(missing_ok=True)
        site = web.UnixSite(self.runner, str(self.socket_path))
        await site.start()
        os.chmod(self.socket_path, 0o600)

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        self.requests += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        body = await request.read()
        try:
            async with self.session.request(
                request.method,
                self.upstream + str(request.rel_url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as resp:
                out = web.StreamResponse(
                    status=resp.status,
                    headers={k: v for k, v in resp.headers.items() if k.lower() not in HOP_HEADERS},
                )
                if resp.headers.get("Content-Encoding"):
                    out.headers["Content-Encoding"] = resp.headers["Content-Encoding"]
                await out.prepare(request)
                async for chunk in resp.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out
        except (aiohttp.ClientError, TimeoutError) as err:
            self.errors += 1
            log.warning("api.sock %s %s: %s", request.method, request.rel_url, err)
            return web.json_response(
                {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 502, "message": str(err)},
                status=502,
            )
