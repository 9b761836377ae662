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
- it publishes its Service's LoadBalancer address in the status of every Ingress it serves;
- with `--https-port` it also terminates TLS: the certificate is chosen by SNI from the
  `kubernetes.io/tls` Secrets named in the `tls` section of the Ingresses it serves (an unknown name
  gets a self-signed "fake" certificate, as ingress-nginx does), then the request is routed as above.

It is also the lab's Gateway API implementation (`--gateway-controller`): for every Gateway of a
GatewayClass with that controllerName it publishes the Service's address (`status.addresses`) and the
Accepted/Programmed conditions, and every HTTPRoute whose `parentRefs` name such a Gateway is checked
against the listeners (`allowedRoutes`, hostnames, section name) and its backendRefs against the
Services; an accepted route's hostnames x path matches (PathPrefix, Exact) x backendRefs become routes
of the same proxy, and each route gets `status.parents[]` (Accepted, ResolvedRefs, observedGeneration,
parentRef, controllerName), as a real Gateway controller writes them.

Faults are read from the `--control` file at every sync (JSON, written by `netconform lab fault`):
`ignore_created_after` (ingress-no-route: Ingresses and HTTPRoutes created later are neither routed nor
published, their TLS certificates not loaded),
`dead_port` (ingress-backend-down: every request goes to a port nothing listens on) and `down`
(ingress-down: the proxy stops listening on both ports, so connections are refused).

Run as ``python -m netconform.lab.control.ingress --socket S --token-file T --control C --service NS/NAME``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("netconform.lab.control.ingress")

CLASS_NAME = "lab"
CONTROLLER = "netconform.io/lab-ingress"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
DEAD_PORT = 9  # discard: nothing listens there in a lab pod (ingress-backend-down)
SERVER = "lab-ingress"
API_TIMEOUT = 5.0
BACKEND_CONNECT_TIMEOUT = 2.0
BACKEND_TIMEOUT = 5.0
# the longest a request without a ready endpoint waits for a fresh sync: well inside a probe's 1 s
RESYNC_ON_MISS_S = 0.5
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_CLASS = "lab"
GATEWAY_CONTROLLER = "netconform.io/lab-gateway"
GATEWAY_NAME = "lab-gateway"  # in kube-system, listener "http" on port 80, routes from all namespaces
HTTPS_PORT = 8443
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "host"}


@dataclass(frozen=True)
class Route:
    """One path of one Ingress rule: where matching requests go."""

    ingress: str  # namespace/name (an HTTPRoute: "httproute namespace/name")
    host: str  # "" matches any host, "*.example.test" any name below example.test
    path: str  # prefix (or the whole path when `exact`)
    service: str  # namespace/name
    port: int | str  # the Service port (number or name)
    exact: bool = False


def host_matches(pattern: str, host: str) -> bool:
    """A route's host against a request's: equal, any (""), or a `*.` wildcard one label or more deep.

    >>> host_matches("*.lab.test", "a.lab.test"), host_matches("*.lab.test", "lab.test")
    (True, False)
    >>> host_matches("", "any.test")
    True
    """
    if not pattern or pattern == host:
        return True
    return pattern.startswith("*.") and host.endswith(pattern[1:]) and len(host) > len(pattern) - 1


@dataclass
class Table:
    """What the proxy knows: routes, and the ready endpoints per (service, service port)."""

    routes: list[Route] = field(default_factory=list)
    endpoints: dict[tuple[str, int | str], list[tuple[str, int]]] = field(default_factory=dict)

    def match(self, host: str, path: str) -> Route | None:
        """The rule for host and path: exact host before any-host, then the longest path prefix.

        An exact path match wins over a prefix of the same length (the Gateway API's precedence).

        >>> t = Table([Route("a/x", "", "/", "a/s", 80), Route("a/y", "h.test", "/api", "a/t", 80)])
        >>> t.match("h.test", "/api/v1").ingress, t.match("other.test", "/api").ingress
        ('a/y', 'a/x')
        >>> t.routes.append(Route("a/z", "*.test", "/api", "a/u", 80, exact=True))
        >>> t.match("w.test", "/api").ingress, t.match("w.test", "/api/v1").ingress
        ('a/z', 'a/x')
        """
        candidates = [
            r
            for r in self.routes
            if host_matches(r.host, host) and (path == r.path if r.exact else path.startswith(r.path))
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda r: (r.host == host, r.host.startswith("*"), len(r.path), r.exact))


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
    extra: list[Route] | None = None,
) -> Table:
    """Routes of the given Ingresses (and `extra` ones, an HTTPRoute's) and the ready endpoints of
    their backends (pure)."""
    table = Table(list(extra or []))
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


# ---------------------------------------------------------------------------------------- Gateway API
def _key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    """One metav1.Condition (lastTransitionTime is filled in, or kept, when written)."""
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def parent_refs(route: dict[str, Any], gateways: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The route's parentRefs that name one of `gateways` ("ns/name" -> Gateway), defaults filled in.

    >>> r = {"metadata": {"namespace": "app", "name": "r"}, "spec": {"parentRefs": [
    ...     {"name": "gw", "namespace": "infra"}, {"name": "other"}]}}
    >>> parent_refs(r, {"infra/gw": {}})
    [{'group': 'gateway.networking.k8s.io', 'kind': 'Gateway', 'name': 'gw', 'namespace': 'infra'}]
    """
    out = []
    route_ns = route["metadata"].get("namespace", "default")
    for ref in (route.get("spec") or {}).get("parentRefs") or []:
        if ref.get("group", GATEWAY_GROUP) != GATEWAY_GROUP or ref.get("kind", "Gateway") != "Gateway":
            continue
        full = {"group": GATEWAY_GROUP, "kind": "Gateway", **ref}
        full.setdefault("namespace", route_ns)
        if f"{full['namespace']}/{full.get('name')}" in gateways:
            out.append(full)
    return out


def _hostnames_intersect(listener: str | None, route: list[str]) -> list[str]:
    """The route's hostnames a listener accepts (all of them when the listener has no hostname)."""
    if not listener:
        return list(route)
    if not route:
        return [listener]
    return [h for h in route if host_matches(listener, h) or host_matches(h, listener)]


def admit_route(
    route: dict[str, Any],
    ref: dict[str, Any],
    gateway: dict[str, Any],
    namespace_labels: dict[str, dict[str, str]],
) -> tuple[bool, str, str, list[str]]:
    """Whether a Gateway (one listener, or the one its sectionName names) accepts an HTTPRoute.

    Returns (accepted, reason, message, the hostnames it serves: [""] for any host).

    >>> gw = {"metadata": {"namespace": "kube-system", "name": "gw"}, "spec": {"listeners": [
    ...     {"name": "http", "port": 80, "protocol": "HTTP",
    ...      "allowedRoutes": {"namespaces": {"from": "Same"}}}]}}
    >>> r = {"metadata": {"namespace": "app", "name": "r"}, "spec": {"hostnames": ["a.test"]}}
    >>> admit_route(r, {"name": "gw"}, gw, {})[:2]
    (False, 'NotAllowedByListeners')
    """
    route_ns = route["metadata"].get("namespace", "default")
    gw_ns = gateway["metadata"].get("namespace", "default")
    listeners = (gateway.get("spec") or {}).get("listeners") or []
    section = ref.get("sectionName")
    if section:
        listeners = [x for x in listeners if x.get("name") == section]
        if not listeners:
            return False, "NoMatchingParent", f"the Gateway has no listener named {section!r}", []
    hostnames = list((route.get("spec") or {}).get("hostnames") or [])
    refused: list[str] = []
    for listener in listeners:
        if listener.get("protocol", "HTTP") not in ("HTTP", "HTTPS"):
            refused.append(f"listener {listener.get('name')}: protocol {listener.get('protocol')}")
            continue
        allowed = listener.get("allowedRoutes") or {}
        kinds = [k.get("kind") for k in allowed.get("kinds") or []]
        if kinds and "HTTPRoute" not in kinds:
            refused.append(f"listener {listener.get('name')} allows kinds {', '.join(map(str, kinds))} only")
            continue
        ns_from = (allowed.get("namespaces") or {}).get("from", "Same")
        if ns_from == "Same" and route_ns != gw_ns:
            refused.append(f"listener {listener.get('name')} allows routes from namespace {gw_ns} only")
            continue
        if ns_from == "Selector":
            match = ((allowed.get("namespaces") or {}).get("selector") or {}).get("matchLabels") or {}
            labels = namespace_labels.get(route_ns, {})
            if any(labels.get(k) != v for k, v in match.items()):
                refused.append(f"listener {listener.get('name')}: namespace {route_ns} not selected")
                continue
        served = _hostnames_intersect(listener.get("hostname"), hostnames)
        if not served:
            return (
                False,
                "NoMatchingListenerHostname",
                f"no hostname of the route matches listener {listener.get('name')} "
                f"({listener.get('hostname')})",
                [],
            )
        return True, "Accepted", "Route is accepted", served or [""]
    return False, "NotAllowedByListeners", "; ".join(refused) or "the Gateway has no listener", []


def resolve_backends(
    route: dict[str, Any], services: dict[str, dict[str, Any]]
) -> tuple[bool, str, str, list[tuple[str, int | str]]]:
    """The Services ("ns/name", port) of every rule's backendRefs; ResolvedRefs False when one is missing.

    >>> r = {"metadata": {"namespace": "a", "name": "r"}, "spec": {"rules": [{"backendRefs": [
    ...     {"name": "echo", "port": 80}, {"name": "gone", "port": 80}]}]}}
    >>> resolve_backends(r, {"a/echo": {}})[:3]
    (False, 'BackendNotFound', 'Service a/gone not found')
    """
    route_ns = route["metadata"].get("namespace", "default")
    found: list[tuple[str, int | str]] = []
    problems: list[tuple[str, str]] = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            if ref.get("group", "") != "" or ref.get("kind", "Service") != "Service":
                problems.append(("InvalidKind", f"backendRef kind {ref.get('kind')} is not supported"))
                continue
            ns = ref.get("namespace", route_ns)
            if ns != route_ns:  # needs a ReferenceGrant; the lab serves none
                problems.append(("RefNotPermitted", f"backendRef to namespace {ns} without a ReferenceGrant"))
                continue
            if f"{ns}/{ref.get('name')}" not in services:
                problems.append(("BackendNotFound", f"Service {ns}/{ref.get('name')} not found"))
                continue
            found.append((f"{ns}/{ref['name']}", ref.get("port") or 80))
    if problems:
        return False, problems[0][0], "; ".join(m for _, m in problems), found
    return True, "ResolvedRefs", "all references are resolved", found


def httproute_routes(
    route: dict[str, Any], hostnames: list[str], services: dict[str, dict[str, Any]]
) -> list[Route]:
    """Proxy routes of an accepted HTTPRoute: hostnames x path matches x (resolved) backendRefs.

    >>> r = {"metadata": {"namespace": "a", "name": "r"}, "spec": {"rules": [{
    ...     "matches": [{"path": {"type": "Exact", "value": "/x"}}],
    ...     "backendRefs": [{"name": "echo", "port": 80}]}]}}
    >>> httproute_routes(r, ["h.test"], {"a/echo": {}})
    [Route(ingress='httproute a/r', host='h.test', path='/x', service='a/echo', port=80, exact=True)]
    """
    out: list[Route] = []
    ns = route["metadata"].get("namespace", "default")
    for rule in (route.get("spec") or {}).get("rules") or [{}]:
        matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
        for ref in rule.get("backendRefs") or []:
            service = f"{ref.get('namespace', ns)}/{ref.get('name')}"
            if service not in services or ref.get("kind", "Service") != "Service":
                continue
            for m in matches:
                path = m.get("path") or {"type": "PathPrefix", "value": "/"}
                for host in hostnames:
                    out.append(
                        Route(
                            f"httproute {ns}/{route['metadata']['name']}",
                            host,
                            path.get("value") or "/",
                            service,
                            ref.get("port") or 80,
                            exact=path.get("type") == "Exact",
                        )
                    )
    return out


def route_parents(
    route: dict[str, Any],
    gateways: dict[str, dict[str, Any]],
    services: dict[str, dict[str, Any]],
    namespace_labels: dict[str, dict[str, str]],
    controller: str = GATEWAY_CONTROLLER,
) -> tuple[list[dict[str, Any]], list[Route]]:
    """This controller's `status.parents[]` entries for one HTTPRoute, and its proxy routes (pure)."""
    generation = int(route["metadata"].get("generation") or 1)
    parents: list[dict[str, Any]] = []
    routes: list[Route] = []
    for ref in parent_refs(route, gateways):
        gateway = gateways[f"{ref['namespace']}/{ref['name']}"]
        ok, reason, message, hostnames = admit_route(route, ref, gateway, namespace_labels)
        resolved, r_reason, r_message, _ = resolve_backends(route, services)
        parents.append(
            {
                "parentRef": {
                    k: ref[k] for k in ("group", "kind", "namespace", "name", "sectionName") if k in ref
                },
                "controllerName": controller,
                "conditions": [
                    condition("Accepted", ok, reason, message, generation),
                    condition("ResolvedRefs", resolved, r_reason, r_message, generation),
                ],
            }
        )
        if ok:
            routes += [r for r in httproute_routes(route, hostnames, services) if r not in routes]
    return parents, routes


def gateway_status(gateway: dict[str, Any], address: str | None, attached: dict[str, int]) -> dict[str, Any]:
    """A served Gateway's status: its address, Accepted/Programmed, and per listener the routes attached."""
    generation = int(gateway["metadata"].get("generation") or 1)
    programmed = address is not None
    listeners = []
    for listener in (gateway.get("spec") or {}).get("listeners") or []:
        name = listener.get("name", "")
        listeners.append(
            {
                "name": name,
                "supportedKinds": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
                "attachedRoutes": attached.get(name, 0),
                "conditions": [
                    condition("Accepted", True, "Accepted", "listener is accepted", generation),
                    condition("ResolvedRefs", True, "ResolvedRefs", "references are resolved", generation),
                    condition(
                        "Programmed",
                        programmed,
                        "Programmed" if programmed else "AddressNotAssigned",
                        "listener is programmed" if programmed else "the proxy's Service has no address yet",
                        generation,
                    ),
                ],
            }
        )
    return {
        "addresses": [{"type": "IPAddress", "value": address}] if address else [],
        "conditions": [
            condition("Accepted", True, "Accepted", "Gateway is accepted", generation),
            condition(
                "Programmed",
                programmed,
                "Programmed" if programmed else "AddressNotAssigned",
                f"served by the lab ingress controller at {address}" if programmed else "no address yet",
                generation,
            ),
        ],
        "listeners": listeners,
    }


def stamp(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conditions with lastTransitionTime: kept from `old` when the status did not change, else now."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = {c.get("type"): c for c in old}
    out = []
    for c in new:
        prev = before.get(c["type"])
        same = prev is not None and prev.get("status") == c["status"]
        out.append({**c, "lastTransitionTime": prev.get("lastTransitionTime", now) if same and prev else now})
    return out


def _strip_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_times(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list):
        return [_strip_times(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------- TLS
def _write_private(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS server context for one certificate (ssl loads key pairs from files only: a private temp dir)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="lab-ingress-") as tmp:
        ctx.load_cert_chain(_write_private(tmp, "tls.crt", cert_pem), _write_private(tmp, "tls.key", key_pem))
    return ctx


def fake_certificate() -> tuple[bytes, bytes]:
    """The certificate served for names without a Secret (ingress-nginx's "fake" one): signed by a CA of
    its own, so a client that verifies against the kit's CA rejects it."""
    from netconform.pki import serving_certificate

    bundle = serving_certificate(
        "Lab Ingress Controller Fake Certificate", "ingress.local", dns=["ingress.local"], org="lab ingress"
    )
    return bundle.cert_pem, bundle.key_pem


def tls_hosts(ingresses: list[dict[str, Any]]) -> dict[str, str]:
    """host -> "ns/secret" from the `tls` sections of the served Ingresses (the first Ingress wins).

    >>> tls_hosts([{"metadata": {"namespace": "a", "name": "i"},
    ...             "spec": {"tls": [{"hosts": ["h.test"], "secretName": "s"}]}}])
    {'h.test': 'a/s'}
    """
    out: dict[str, str] = {}
    for ing in sorted(ingresses, key=lambda i: i["metadata"].get("creationTimestamp") or ""):
        ns = ing["metadata"].get("namespace", "default")
        for entry in (ing.get("spec") or {}).get("tls") or []:
            if not entry.get("secretName"):
                continue
            for host in entry.get("hosts") or []:
                out.setdefault(host, f"{ns}/{entry['secretName']}")
    return out


class Controller:
    """Follows the API and serves the proxy; one instance per controller pod."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.table = Table()
        self.address: str | None = None
        self.control: dict[str, Any] = {}
        self.turn = itertools.count()
        self.site: web.TCPSite | None = None
        self.tls_site: web.TCPSite | None = None
        self.runner: web.AppRunner | None = None
        # TLS: the context served for unknown names (its sni_callback picks a host's), host -> context
        self.certs: dict[str, ssl.SSLContext] = {}
        self.cert_versions: dict[str, tuple[str, ssl.SSLContext]] = {}  # "ns/secret" -> (rv, context)
        self.tls_context = server_context(*fake_certificate())
        self.tls_context.sni_callback = self._sni
        self.token = Path(args.token_file).read_text().strip()
        self.api: aiohttp.ClientSession
        self.backends: aiohttp.ClientSession
        self.sync_lock = asyncio.Lock()
        self.last_sync_started = float("-inf")  # monotonic time at which the last finished sync began

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
        own = services.get(self.args.service) or {}
        lb = ((own.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        self.address = next((x.get("ip") for x in lb if x.get("ip")), None)
        extra = await self._gateway_api(services, cutoff)
        self.table = build_table(mine, services, slices, extra)
        await self._load_certificates(mine)
        await self._publish(mine)
        await self._listen(not self.control.get("down"))

    async def _gateway_api(self, services: dict[str, dict[str, Any]], cutoff: Any) -> list[Route]:
        """Serve the Gateways of our GatewayClasses: their status, and the routes of attached HTTPRoutes."""
        if not self.args.gateway_controller:
            return []
        base = f"/apis/{GATEWAY_GROUP}/v1"
        classes = (await self._get(f"{base}/gatewayclasses")).get("items") or []
        ours = [
            c for c in classes if (c.get("spec") or {}).get("controllerName") == self.args.gateway_controller
        ]
        for gc in ours:
            wanted = [condition("Accepted", True, "Accepted", "handled by the lab ingress controller", 1)]
            wanted[0]["observedGeneration"] = int(gc["metadata"].get("generation") or 1)
            await self._write_status(
                f"{base}/gatewayclasses/{gc['metadata']['name']}", gc, {"conditions": wanted}
            )
        names = {c["metadata"]["name"] for c in ours}
        gateways = {
            _key(g): g
            for g in (await self._get(f"{base}/gateways")).get("items") or []
            if (g.get("spec") or {}).get("gatewayClassName") in names
        }
        if not gateways:
            return []
        namespaces = {
            n["metadata"]["name"]: n["metadata"].get("labels") or {}
            for n in (await self._get("/api/v1/namespaces")).get("items") or []
        }
        routes: list[Route] = []
        attached: dict[str, dict[str, int]] = {k: {} for k in gateways}
        for hr in (await self._get(f"{base}/httproutes")).get("items") or []:
            if cutoff is not None and _created(hr) > float(cutoff):
                continue  # ingress-no-route: routes created from now on are ignored, like new Ingresses
            parents, found = route_parents(hr, gateways, services, namespaces, self.args.gateway_controller)
            if not parents:
                continue
            routes += found
            for p in parents:
                if p["conditions"][0]["status"] != "True":
                    continue
                key = f"{p['parentRef']['namespace']}/{p['parentRef']['name']}"
                for listener in (gateways[key].get("spec") or {}).get("listeners") or []:
                    lname = listener.get("name", "")
                    if p["parentRef"].get("sectionName") in (None, lname):
                        attached[key][lname] = attached[key].get(lname, 0) + 1
            old = (hr.get("status") or {}).get("parents") or []
            others = [x for x in old if x.get("controllerName") != self.args.gateway_controller]
            mine_old = {json.dumps(x.get("parentRef"), sort_keys=True): x for x in old if x not in others}
            for p in parents:
                prev = mine_old.get(json.dumps(p["parentRef"], sort_keys=True)) or {}
                p["conditions"] = stamp(p["conditions"], prev.get("conditions") or [])
            ns, name = hr["metadata"].get("namespace", "default"), hr["metadata"]["name"]
            await self._write_status(
                f"{base}/namespaces/{ns}/httproutes/{name}", hr, {"parents": others + parents}
            )
        for key, gw in gateways.items():
            ns, name = key.split("/", 1)
            status = gateway_status(gw, self.address, attached[key])
            old_status = gw.get("status") or {}
            status["conditions"] = stamp(status["conditions"], old_status.get("conditions") or [])
            before = {x.get("name"): x for x in old_status.get("listeners") or []}
            for listener in status["listeners"]:
                prev = before.get(listener["name"]) or {}
                listener["conditions"] = stamp(listener["conditions"], prev.get("conditions") or [])
            await self._write_status(f"{base}/namespaces/{ns}/gateways/{name}", gw, status)
        return routes

    async def _write_status(self, path: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        """Merge `status` into the object's status subresource unless it says that already."""
        now = obj.get("status") or {}
        if all(_strip_times(now.get(k)) == _strip_times(v) for k, v in status.items()):
            return
        stamped = {k: v for k, v in status.items()}
        if "conditions" in stamped and path.split("/")[-2] == "gatewayclasses":
            stamped["conditions"] = stamp(stamped["conditions"], now.get("conditions") or [])
        headers = {**self._auth(), "Content-Type": "application/merge-patch+json"}
        async with self.api.patch(
            f"http://lab{path}/status", json={"status": stamped}, headers=headers
        ) as resp:
            if resp.status >= 400:
                log.warning("status of %s: HTTP %s", path, resp.status)

    async def _load_certificates(self, ingresses: list[dict[str, Any]]) -> None:
        """The certificate of every host in the served Ingresses' `tls` sections, from their Secrets."""
        wanted = tls_hosts(ingresses)
        if not wanted or not self.args.https_port:
            self.certs = {}
            return
        secrets = {_key(x): x for x in (await self._get("/api/v1/secrets")).get("items") or []}
        certs: dict[str, ssl.SSLContext] = {}
        for host, ref in wanted.items():
            secret = secrets.get(ref)
            if secret is None:
                continue  # like ingress-nginx: the fake certificate until the Secret exists
            rv = secret["metadata"].get("resourceVersion", "")
            cached = self.cert_versions.get(ref)
            if cached is None or cached[0] != rv:
                data = secret.get("data") or {}
                try:
                    pair = (
                        base64.b64decode(data.get("tls.crt", "")),
                        base64.b64decode(data.get("tls.key", "")),
                    )
                    cached = (rv, server_context(*pair))
                except (ValueError, ssl.SSLError, OSError) as exc:
                    log.warning("secret %s: not a usable kubernetes.io/tls pair: %s", ref, exc)
                    continue
                self.cert_versions[ref] = cached
            certs[host] = cached[1]
        self.certs = certs

    def _sni(self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        """Switch the handshake to the certificate of the requested name (SNI), if one is known."""
        if not server_name:
            return
        chosen = self.certs.get(server_name) or next(
            (c for h, c in self.certs.items() if h.startswith("*.") and host_matches(h, server_name)), None
        )
        if chosen is not None:
            sslobj.context = chosen

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
                await self._locked_sync()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("sync failed: %s", exc)
            await asyncio.sleep(self.args.interval)  # the resync period, like an informer's

    async def _locked_sync(self, not_before: float | None = None) -> None:
        """One sync at a time; with `not_before`, none if a sync that began after that time finished."""
        async with self.sync_lock:
            if not_before is not None and self.last_sync_started >= not_before:
                return
            started = time.monotonic()
            await self.sync()
            self.last_sync_started = started

    async def _fresh_endpoints(self, route: Route, asked: float) -> list[tuple[str, int]]:
        """The route's ready endpoints as the API has them now: a request that would get a 503 waits for
        one sync (at most RESYNC_ON_MISS_S). Between two polls the table may be one resync period behind
        the API, where an informer-driven controller already has the new endpoints; a 503 is only ever
        the API's answer, not the poll's timing (a kit probed right after its pods became Ready)."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            await asyncio.wait_for(self._locked_sync(not_before=asked), RESYNC_ON_MISS_S)
        return self.table.endpoints.get((route.service, route.port)) or []

    # ------------------------------------------------------------------ the proxy
    async def _listen(self, on: bool) -> None:
        assert self.runner is not None
        if on and self.site is None:
            self.site = web.TCPSite(self.runner, "0.0.0.0", self.args.port, backlog=256)
            await self.site.start()
            print(f"lab-ingress listening on :{self.args.port}", flush=True)
            if self.args.https_port:
                self.tls_site = web.TCPSite(
                    self.runner, "0.0.0.0", self.args.https_port, backlog=256, ssl_context=self.tls_context
                )
                await self.tls_site.start()
                print(f"lab-ingress listening on :{self.args.https_port} (TLS, SNI)", flush=True)
        elif not on and self.site is not None:
            for site in (self.site, self.tls_site):
                if site is not None:
                    await site.stop()
            self.site = self.tls_site = None
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
            endpoints = await self._fresh_endpoints(route, time.monotonic())
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
                "X-Forwarded-Proto": "https" if request.secure else "http",
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
    parser.add_argument("--https-port", type=int, default=0, help="TLS with SNI on this port (0: off)")
    parser.add_argument(
        "--gateway-controller", default="", help="serve the GatewayClasses with this controllerName"
    )
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
    """The IngressClass (the default class), the GatewayClass and Gateway, the controller pod on `node`
    and its LoadBalancer Service (HTTP 80, HTTPS 443).

    >>> [o["metadata"]["name"] for _, o in manifests("node-1", Path("/s"), "python3", Path("/r"))]
    ['lab', 'lab', 'lab-gateway', 'lab-ingress-controller', 'lab-ingress-controller-node-1']
    """
    command = [
        python,
        "-m",
        "netconform.lab.control.ingress",
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
        "--https-port",
        str(HTTPS_PORT),
        "--gateway-controller",
        GATEWAY_CONTROLLER,
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
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": HTTPS_PORT, "protocol": "TCP"},
            ],
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
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "https", "containerPort": HTTPS_PORT, "protocol": "TCP"},
                    ],
                }
            ],
        },
    }
    gateway_class = {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "GatewayClass",
        "metadata": {"name": GATEWAY_CLASS, "labels": dict(LABELS)},
        "spec": {"controllerName": GATEWAY_CONTROLLER, "description": "the lab's ingress controller"},
    }
    gateway = {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "Gateway",
        "metadata": {"name": GATEWAY_NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [
                {
                    "name": "http",
                    "port": 80,
                    "protocol": "HTTP",
                    "allowedRoutes": {"namespaces": {"from": "All"}},
                }
            ],
        },
    }
    return [
        ("ingressclasses", ingress_class),
        ("gatewayclasses", gateway_class),
        ("gateways", gateway),
        ("services", service),
        ("pods", pod),
    ]
