"""The lab's ingress controller: an L7 reverse proxy in a kube-system pod that follows Ingresses through
the Kubernetes API, the way ingress-nginx does.

It lists the Ingresses of its class, their backend Services and the Services' EndpointSlices every
`--interval` seconds (over the API's unix socket: a pod's network namespace cannot reach the host's
loopback), and serves HTTP on `--port` inside its pod:

- a request whose Host and path match a rule goes to one ready endpoint of the backend Service (pod IP
  and target port, not the ClusterIP, as ingress-nginx does), round robin, with `X-Forwarded-For`,
  `X-Real-IP`, `X-Forwarded-Host` and `X-Forwarded-Proto` added;
- no rule for the host or path: 404 from the default backend; a Service without a ready endpoint: 503;
  the endpoint refuses: 502; the endpoint does not answer: 504. Every answer of its own carries
  `Server: lab-ingress`, so a client can tell the proxy's answers from the backend's;
- it publishes its Service's LoadBalancer address in the status of every Ingress it serves.

Faults are read from the `--control` file at every sync (JSON, written by `netconform lab fault`):
`ignore_created_after` (ingress-no-route: Ingresses created later are neither routed nor published),
`dead_port` (ingress-backend-down: every request goes to a port nothing listens on) and `down`
(ingress-down: the proxy stops listening, so connections are refused).

Run as ``python -m netconform.lab.ingress --socket S --token-file T --control C --service NS/NAME``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("netconform.lab.ingress")

CLASS_NAME = "lab"
CONTROLLER = "netconform.io/lab-ingress"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
DEAD_PORT = 9  # discard: nothing listens there in a lab pod (ingress-backend-down)
SERVER = "lab-ingress"
API_TIMEOUT = 5.0
BACKEND_CONNECT_TIMEOUT = 2.0
BACKEND_TIMEOUT = 5.0
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "host"}


@dataclass(frozen=True)
class Route:
    """One path of one Ingress rule: where matching requests go."""

    ingress: str  # namespace/name
    host: str  # "" matches any host
    path: str  # prefix
    service: str  # namespace/name
    port: int | str  # the Service port (number or name)


@dataclass
class Table:
    """What the proxy knows: routes, and the ready endpoints per (service, service port)."""

    routes: list[Route] = field(default_factory=list)
    endpoints: dict[tuple[str, int | str], list[tuple[str, int]]] = field(default_factory=dict)

    def match(self, host: str, path: str) -> Route | None:
        """The rule for host and path: exact host before any-host, then the longest path prefix.

        >>> t = Table([Route("a/x", "", "/", "a/s", 80), Route("a/y", "h.test", "/api", "a/t", 80)])
        >>> t.match("h.test", "/api/v1").ingress, t.match("other.test", "/api").ingress
        ('a/y', 'a/x')
        """
        candidates = [r for r in self.routes if r.host in (host, "") and path.startswith(r.path)]
        if not candidates:
            return None
        return max(candidates, key=lambda r: (r.host == host, len(r.path)))


def _created(obj: dict[str, Any]) -> float:
    text = (obj.get("metadata") or {}).get("creationTimestamp") or ""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def serves(ingress: dict[str, Any], default_class: bool, class_name: str = CLASS_NAME) -> bool:
    """Whether an Ingress is this controller's: its class, or no class while ours is the default."""
    wanted = (ingress.get("spec") or {}).get("ingressClassName")
    return wanted == class_name or (wanted is None and default_class)


def build_table(
    ingresses: list[dict[str, Any]],
    services: dict[str, dict[str, Any]],
    slices: list[dict[str, Any]],
) -> Table:
    """Routes of the given Ingresses and the ready endpoints of their backends (pure)."""
    table = Table()
    for ing in ingresses:
        ns, name = ing["metadata"].get("namespace", "default"), ing["metadata"]["name"]
        spec = ing.get("spec") or {}
        for rule in spec.get("rules") or []:
            for p in ((rule.get("http") or {}).get("paths")) or []:
                backend = (p.get("backend") or {}).get("service") or {}
                port = backend.get("port") or {}
                if not backend.get("name"):
                    continue
                table.routes.append(
                    Route(
                        f"{ns}/{name}",
                        rule.get("host") or "",
                        p.get("path") or "/",
                        f"{ns}/{backend['name']}",
                        port.get("number") or port.get("name") or 80,
                    )
                )
    for route in table.routes:
        svc = services.get(route.service)
        key = (route.service, route.port)
        table.endpoints[key] = [] if svc is None else _endpoints(svc, route.port, slices)
    return table


def _endpoints(svc: dict[str, Any], port: int | str, slices: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Ready (pod IP, target port) pairs of one Service port, from its EndpointSlices."""
    ns, name = svc["metadata"].get("namespace", "default"), svc["metadata"]["name"]
    svc_port = next(
        (p for p in (svc.get("spec") or {}).get("ports") or [] if port in (p.get("port"), p.get("name"))),
        None,
    )
    if svc_port is None:
        return []
    out: list[tuple[str, int]] = []
    for sl in slices:
        labels = sl["metadata"].get("labels") or {}
        if sl["metadata"].get("namespace") != ns or labels.get("kubernetes.io/service-name") != name:
            continue
        numbers = [
            p.get("port")
            for p in sl.get("ports") or []
            if p.get("name", "") == svc_port.get("name", "") and p.get("port")
        ]
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            out += [(addr, int(n)) for addr in ep.get("addresses") or [] for n in numbers]
    return sorted(set(out))


class Controller:
    """Follows the API and serves the proxy; one instance per controller pod."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.table = Table()
        self.address: str | None = None
        self.control: dict[str, Any] = {}
        self.turn = itertools.count()
        self.site: web.TCPSite | None = None
        self.runner: web.AppRunner | None = None
        self.token = Path(args.token_file).read_text().strip()
        self.api: aiohttp.ClientSession
        self.backends: aiohttp.ClientSession

    # ------------------------------------------------------------------ following the API
    async def _get(self, path: str) -> dict[str, Any]:
        async with self.api.get(f"http://lab{path}", headers=self._auth()) as resp:
            resp.raise_for_status()
            data: dict[str, Any] = await resp.json()
            return data

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _read_control(self) -> dict[str, Any]:
        try:
            data = json.loads(Path(self.args.control).read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    async def sync(self) -> None:
        self.control = self._read_control()
        classes = (await self._get("/apis/networking.k8s.io/v1/ingressclasses")).get("items") or []
        ours = next((c for c in classes if c["metadata"]["name"] == self.args.ingress_class), None)
        default = bool(
            ours and (ours["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
        )
        items = (await self._get("/apis/networking.k8s.io/v1/ingresses")).get("items") or []
        cutoff = self.control.get("ignore_created_after")
        mine = [
            i
            for i in items
            if ours is not None
            and serves(i, default, self.args.ingress_class)
            and not (cutoff is not None and _created(i) > float(cutoff))
        ]
        services = {
            f"{s['metadata'].get('namespace')}/{s['metadata']['name']}": s
            for s in (await self._get("/api/v1/services")).get("items") or []
        }
        slices = (await self._get("/apis/discovery.k8s.io/v1/endpointslices")).get("items") or []
        self.table = build_table(mine, services, slices)
        own = services.get(self.args.service) or {}
        lb = ((own.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        self.address = next((x.get("ip") for x in lb if x.get("ip")), None)
        await self._publish(mine)
        await self._listen(not self.control.get("down"))

    async def _publish(self, ingresses: list[dict[str, Any]]) -> None:
        """Our address in the status of every Ingress we serve (ingress-nginx's --publish-service)."""
        if not self.address:
            return
        wanted = [{"ip": self.address}]
        for ing in ingresses:
            now = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            if now == wanted:
                continue
            ns, name = ing["metadata"].get("namespace", "default"), ing["metadata"]["name"]
            path = f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{name}/status"
            body = {"status": {"loadBalancer": {"ingress": wanted}}}
            headers = {**self._auth(), "Content-Type": "application/merge-patch+json"}
            async with self.api.patch(f"http://lab{path}", json=body, headers=headers) as resp:
                if resp.status >= 400:
                    log.warning("status of %s/%s: HTTP %s", ns, name, resp.status)

    async def follow(self) -> None:
        while True:
            try:
                await self.sync()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("sync failed: %s", exc)
            await asyncio.sleep(self.args.interval)  # the resync period, like an informer's

    # ------------------------------------------------------------------ the proxy
    async def _listen(self, on: bool) -> None:
        assert self.runner is not None
        if on and self.site is None:
            self.site = web.TCPSite(self.runner, "0.0.0.0", self.args.port, backlog=256)
            await self.site.start()
            print(f"lab-ingress listening on :{self.args.port}", flush=True)
        elif not on and self.site is not None:
            await self.site.stop()
            self.site = None
            print("lab-ingress stopped listening (ingress-down)", flush=True)

    def _own(self, status: int, text: str) -> web.Response:
        return web.Response(status=status, text=text + "\n", headers={"Server": SERVER})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").split(":")[0]
        route = self.table.match(host, request.path)
        if route is None:
            return self._own(404, f"default backend - 404: no rule for host {host!r} path {request.path!r}")
        endpoints = self.table.endpoints.get((route.service, route.port)) or []
        if not endpoints:
            return self._own(503, f"503 Service Temporarily Unavailable: {route.service}: no ready endpoint")
        ip, port = endpoints[next(self.turn) % len(endpoints)]
        if self.control.get("dead_port"):
            port = DEAD_PORT
        peer = request.remote or ""
        forwarded = ", ".join(x for x in (request.headers.get("X-Forwarded-For"), peer) if x)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers.update(
            {
                "Host": request.host or host,
                "X-Forwarded-For": forwarded,
                "X-Real-IP": peer,
                "X-Forwarded-Host": host,
                "X-Forwarded-Proto": "http",
            }
        )
        url = f"http://{ip}:{port}{request.rel_url}"
        try:
            async with self.backends.request(
                request.method, url, headers=headers, data=await request.read(), allow_redirects=False
            ) as resp:
                body = await resp.read()
                skip = HOP_HEADERS | {"content-length"}
                out = {k: v for k, v in resp.headers.items() if k.lower() not in skip}
                return web.Response(status=resp.status, body=body, headers=out)
        except aiohttp.ClientConnectorError as exc:
            return self._own(502, f"502 Bad Gateway: {ip}:{port}: {exc.os_error or exc}")
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return self._own(504, f"504 Gateway Time-out: {ip}:{port} did not answer")
        except aiohttp.ClientError as exc:
            return self._own(502, f"502 Bad Gateway: {ip}:{port}: {exc}")


async def _main(args: argparse.Namespace) -> None:
    controller = Controller(args)
    timeout = aiohttp.ClientTimeout(total=API_TIMEOUT)
    controller.api = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=args.socket), timeout=timeout)
    controller.backends = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=BACKEND_TIMEOUT, sock_connect=BACKEND_CONNECT_TIMEOUT),
        auto_decompress=False,
    )
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", controller.handle)
    controller.runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await controller.runner.setup()
    started = time.monotonic()
    deadline = started + 30.0
    while True:  # the first sync decides whether we listen; the API may still be starting
        try:
            await controller.sync()
            break
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"lab-ingress: the API did not answer within 30 s: {exc}") from None
            await asyncio.sleep(0.2)  # retrying the first list, bounded by the deadline
    try:
        await controller.follow()
    finally:
        with contextlib.suppress(Exception):
            await controller.api.close()
            await controller.backends.close()
            await controller.runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab-ingress", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="the API's unix socket")
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--control", required=True, help="the fault control file (JSON)")
    parser.add_argument("--service", required=True, help="NAMESPACE/NAME of this controller's Service")
    parser.add_argument("--ingress-class", default=CLASS_NAME)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between two syncs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------------------------------- manifests
SERVICE_NAME = "lab-ingress-controller"
NAMESPACE = "kube-system"
CONTROL_FILE = "ingress-control.json"
API_SOCKET = "api.sock"  # in the lab's state folder: the API for in-cluster controllers
INGRESS_TOKEN_FILE = "ingress-token"
LABELS = {"app.kubernetes.io/name": "lab-ingress", "app.kubernetes.io/component": "controller"}


def manifests(node: str, state_dir: Path, python: str, repo_root: Path) -> list[tuple[str, dict[str, Any]]]:
    """The IngressClass (the default class), the controller pod on `node` and its LoadBalancer Service.

    >>> [o["metadata"]["name"] for _, o in manifests("node-1", Path("/s"), "python3", Path("/r"))]
    ['lab', 'lab-ingress-controller', 'lab-ingress-controller-node-1']
    """
    command = [
        python,
        "-m",
        "netconform.lab.ingress",
        "--socket",
        str(state_dir / API_SOCKET),
        "--token-file",
        str(state_dir / INGRESS_TOKEN_FILE),
        "--control",
        str(state_dir / CONTROL_FILE),
        "--service",
        f"{NAMESPACE}/{SERVICE_NAME}",
        "--port",
        "8080",
    ]
    ingress_class = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}, "labels": LABELS},
        "spec": {"controller": CONTROLLER},
    }
    service = {
        "metadata": {"name": SERVICE_NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "type": "LoadBalancer",
            "selector": dict(LABELS),
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }
    pod = {
        "metadata": {"name": f"{SERVICE_NAME}-{node}", "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "nodeName": node,
            "tolerations": [{"operator": "Exists"}],
            "priorityClassName": "system-cluster-critical",
            "containers": [
                {
                    "name": "controller",
                    "image": "registry.k8s.io/ingress-nginx/controller:v1.11.2",
                    "command": command,
                    "env": [{"name": "PYTHONPATH", "value": str(repo_root)}],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                }
            ],
        },
    }
    return [("ingressclasses", ingress_class), ("services", service), ("pods", pod)]
