"""Deploys the probe kit (docs/contracts.md §4), waits for it with deadlines, and removes it.

Per node: `probe-<node>` (pod network), `host-<node>` (hostNetwork, dnsPolicy Default) and
`echo-<node>` (the agent's echo backend), all pinned with `nodeName` and tolerating every taint; the
agent itself comes from a ConfigMap. Failures become one-line reasons: an image that cannot be pulled
or pods that never become Ready abort the run; host probes refused by admission (PodSecurity) only
make the host-network tests skip with the admission's own words.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from netconform.agent import SOURCE as AGENT_FILE
from netconform.kube.connect import Cluster, KubeError, api_error_line, call
from netconform.kube.parallel import in_parallel
from netconform.kube.topology import pod_info
from netconform.model.kit import ECHO_PORTS, SERVICE_PORTS, Kit
from netconform.model.topology import Topology

MANAGED_BY = {"app.kubernetes.io/managed-by": "netconform"}
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=netconform"
CREATED_ANNOTATION = "netconform.io/created"
ROLE_LABEL = "netconform.io/role"
AGENT_MOUNT = "/opt/netconform"
AGENT_SOURCE = AGENT_FILE
# Pods idle in a python loop (the image only needs python3, not coreutils' sleep).
IDLE = ["python3", "-c", "import time\nwhile True:\n    time.sleep(3600)"]
PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CRASH_FAILURES = {
    "CrashLoopBackOff",
    "CreateContainerError",
    "CreateContainerConfigError",
    "RunContainerError",
}


@dataclass
class KitOptions:
    image: str = "docker.io/library/python:3.12-slim"
    privileged: bool = False
    ready_timeout: float = 120.0
    lb_timeout: float = 30.0
    delete_timeout: float = 60.0
    stale_ttl: float = 3600.0
    gateways: list[str] = field(default_factory=list)  # "ns/name" of Gateways to route through
    ingress_tls: bool = False


INGRESS_PUBLISH_WAIT_S = 10.0
ENDPOINTS_WAIT_S = 10.0  # the longest the kit waits for the echo Service's endpoints after its pods


def ingress_manifest(name: str, ingress_class: str, host: str) -> dict[str, Any]:
    """The kit's Ingress for one class: `host` / (Prefix) -> Service echo, port 80 (HTTP).

    >>> ingress_manifest("echo-lab", "lab", "echo.lab.abc.netconform.test")["spec"]["rules"][0]["host"]
    'echo.lab.abc.netconform.test'
    """
    backend = {"service": {"name": "echo", "port": {"number": SERVICE_PORTS["http"]}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
        "spec": {
            "ingressClassName": ingress_class,
            "rules": [
                {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
            ],
        },
    }


GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"


def httproute_manifest(name: str, gateway: str, host: str) -> dict[str, Any]:
    """The kit's HTTPRoute for one Gateway ("ns/name"): `host` / (PathPrefix) -> Service echo, port 80.

    >>> r = httproute_manifest("echo-gw", "kube-system/lab-gateway", "echo.h.test")
    >>> r["spec"]["parentRefs"][0]["name"], r["spec"]["hostnames"], r["spec"]["rules"][0]["backendRefs"]
    ('lab-gateway', ['echo.h.test'], [{'kind': 'Service', 'name': 'echo', 'port': 80}])
    """
    ns, gw_name = gateway.split("/", 1)
    return {
        "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
        "spec": {
            "parentRefs": [{"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": ns, "name": gw_name}],
            "hostnames": [host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"kind": "Service", "name": "echo", "port": SERVICE_PORTS["http"]}],
                }
            ],
        },
    }


def route_acceptance(route: dict[str, Any], gateway: str) -> tuple[bool, str] | None:
    """The Accepted condition the Gateway's controller wrote for `route` (ok, "Reason: message"), or None.

    >>> st = {"status": {"parents": [{"parentRef": {"namespace": "a", "name": "gw"}, "conditions": [
    ...     {"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners", "message": "no"}]}]}}
    >>> route_acceptance(st, "a/gw"), route_acceptance(st, "b/gw")
    ((False, 'NotAllowedByListeners: no'), None)
    """
    route_ns = (route.get("metadata") or {}).get("namespace")
    for parent in (route.get("status") or {}).get("parents") or []:
        ref = parent.get("parentRef") or {}
        if f"{ref.get('namespace') or route_ns}/{ref.get('name')}" != gateway:
            continue
        for c in parent.get("conditions") or []:
            if c.get("type") == "Accepted":
                return c.get("status") == "True", f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")
    return None


def new_run_id() -> str:
    return secrets.token_hex(3)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod_manifest(name: str, node: str, role: str, opts: KitOptions, command: list[str]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": role,
        "image": opts.image,
        "command": command,
        "volumeMounts": [{"name": "agent", "mountPath": AGENT_MOUNT, "readOnly": True}],
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
    }
    spec: dict[str, Any] = {
        "nodeName": node,
        "tolerations": [{"operator": "Exists"}],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 1,
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": [{"name": "agent", "configMap": {"name": "netconform-agent"}}],
    }
    if role == "host":
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "Default"
        if opts.privileged:
            container["securityContext"] = {"privileged": True}
    if role == "echo":
        container["ports"] = [
            {"containerPort": ECHO_PORTS["http"], "protocol": "TCP", "name": "http"},
            {"containerPort": ECHO_PORTS["tcp"], "protocol": "TCP", "name": "tcp"},
            {"containerPort": ECHO_PORTS["udp"], "protocol": "UDP", "name": "udp"},
        ]
    labels = {**MANAGED_BY, ROLE_LABEL: role, "netconform.io/node": node}
    if role == "echo":
        labels["app"] = "netconform-echo"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}


def _service(name: str, svc_type: str, udp: bool = True) -> dict[str, Any]:
    ports = [
        {"name": "http", "port": SERVICE_PORTS["http"], "targetPort": ECHO_PORTS["http"], "protocol": "TCP"},
        {"name": "tcp", "port": SERVICE_PORTS["tcp"], "targetPort": ECHO_PORTS["tcp"], "protocol": "TCP"},
    ]
    if udp:
        ports.append(
            {"name": "udp", "port": SERVICE_PORTS["udp"], "targetPort": ECHO_PORTS["udp"], "protocol": "UDP"}
        )
    spec: dict[str, Any] = {"selector": {"app": "netconform-echo"}, "ports": ports}
    if svc_type == "Headless":
        spec["clusterIP"] = "None"
    else:
        spec["type"] = svc_type
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
        "spec": spec,
    }


def _admission_reason(exc: ApiException, what: str) -> str:
    return api_error_line(exc, f"{what} rejected by the cluster").replace(
        " rejected by the cluster: HTTP 403 Forbidden", " rejected by admission"
    )


def _state_of(name: str, pods: dict[str, Any]) -> str:
    if name not in pods:
        return "absent"
    info = pods[name]
    return f"{info.phase}{'/' + info.waiting_reason if info.waiting_reason else ''}"


SLOW_AFTER_S = 1.0  # a longer wait polls every `2 * interval`: a slow cluster gets half the requests


def _wait(what: str, deadline_s: float, probe: Callable[[], Any], interval: float = 0.25) -> Any:
    """Poll `probe` until it returns a truthy value or the deadline passes (then raise KubeError).

    Every `interval` for the first second (the lab's pods are Ready in well under it), then every
    `2 * interval`: on a real control plane pods take seconds, and the API requests grow with that time.
    """
    start = time.monotonic()
    end = start + deadline_s
    stop = threading.Event()
    while True:
        value = probe()
        if value:
            return value
        now = time.monotonic()
        if now >= end:
            raise KubeError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        step = interval if now - start < SLOW_AFTER_S else 2 * interval
        stop.wait(min(step, max(0.0, end - now)))


class KitDeployer:
    """Creates, waits for and deletes one run's namespace and everything in it."""

    def __init__(self, cluster: Cluster, topo: Topology, opts: KitOptions, run_id: str | None = None) -> None:
        self.cluster = cluster
        self.topo = topo
        self.opts = opts
        self.run_id = run_id or new_run_id()
        self.namespace = f"netconform-{self.run_id}"
        self.created = False
        self.kit = Kit(namespace=self.namespace, run_id=self.run_id)

    # -- deploy -----------------------------------------------------------------------------------
    def deploy(self) -> Kit:
        if not AGENT_SOURCE.is_file():
            raise KubeError(f"the probe agent {AGENT_SOURCE} is missing from this installation")
        # host-network probes break Pod Security "baseline", the default of many clusters: the run's own
        # namespace asks for "privileged" (a policy that still refuses them makes those cells skip, named)
        labels = {**MANAGED_BY, "pod-security.kubernetes.io/enforce": "privileged"}
        ns = {
            "metadata": {
                "name": self.namespace,
                "labels": labels,
                "annotations": {CREATED_ANNOTATION: _now()},
            }
        }
        try:
            call(self.cluster, "create_namespace", ns)
            self.created = True
            cm = {
                "metadata": {"name": "netconform-agent", "labels": dict(MANAGED_BY)},
                "data": {"agent.py": AGENT_SOURCE.read_text(encoding="utf-8")},
            }
            call(self.cluster, "create_namespaced_config_map", self.namespace, cm)
        except ApiException as exc:
            raise KubeError(api_error_line(exc, f"creating namespace {self.namespace}")) from None
        except Exception as exc:
            raise KubeError(api_error_line(exc, f"creating namespace {self.namespace}")) from None
        echo_cmd = [
            "python3",
            f"{AGENT_MOUNT}/agent.py",
            "serve",
            "--http",
            "8080",
            "--tcp",
            "9000",
            "--udp",
            "9001",
        ]
        # the Services first: the cluster's service proxy programs them (a NodePort on every node) while
        # the pods start, so only the endpoints are still on their way when the probes begin (a 100-node
        # lab programmed its last node's NodePort 7.6 s after its first, 4 s into the probes: "refused")
        services = [
            ("echo", "ClusterIP", True),
            ("echo-np", "NodePort", True),
            ("echo-headless", "Headless", True),
            ("echo-lb", "LoadBalancer", False),
        ]
        for error in in_parallel(self._create_service, services):
            if error is not None:
                raise error
        pods = [
            (f"{role}-{node}", node, role, command)
            for node in self.topo.node_names
            for role, command in (("echo", echo_cmd), ("probe", IDLE), ("host", IDLE))
        ]
        # the first node's pods one by one (one refused host pod stands for every node: the other host
        # pods are not even tried), then the others at once (docs/scale.md: 300 pods at 100 nodes)
        for name, node, role, command in pods[:3]:
            self._create_pod(name, node, role, command)
        rest = [p for p in pods[3:] if p[2] not in self.kit.unavailable]
        for name, error in zip([p[0] for p in rest], in_parallel(self._create_pod, rest), strict=True):
            if error is not None:
                if isinstance(error, KubeError):
                    raise error
                raise KubeError(api_error_line(error, f"creating pod {name}")) from None
        ingress_created = time.monotonic()
        self._create_ingresses()
        self._create_routes()
        self._wait_pods()
        self._wait_endpoints()
        self._read_services()
        self._read_ingresses(ingress_created)
        self._read_routes(ingress_created)
        return self.kit

    def _create_pod(self, name: str, node: str, role: str, command: list[str]) -> None:
        if role in self.kit.unavailable:
            return
        try:
            call(
                self.cluster,
                "create_namespaced_pod",
                self.namespace,
                _pod_manifest(name, node, role, self.opts, command),
            )
        except ApiException as exc:
            if exc.status in (400, 403, 422) and role == "host":
                # the first refusal is the one named (later ones, from pods already in flight, agree)
                what = f"host-network probe pods (hostNetwork: true, first {name})"
                self.kit.unavailable.setdefault("host", _admission_reason(exc, what))
                return
            raise KubeError(api_error_line(exc, f"creating pod {name}")) from None

    # -- L7 ingress -------------------------------------------------------------------------------
    def ingress_host(self, ingress_class: str) -> str:
        """The per-run host name of the kit's Ingress (`.test` is reserved: it never resolves)."""
        return f"echo.{ingress_class}.{self.run_id}.netconform.test"

    def _create_ingresses(self) -> None:
        """One Ingress per IngressClass, routing a per-run host to the echo Service's HTTP port."""
        from kubernetes import client

        net: Any = client.NetworkingV1Api(self.cluster.api_client)
        for info in self.topo.ingress_classes:
            name = f"echo-{info.name}"[:63]
            host = self.ingress_host(info.name)
            body = ingress_manifest(name, info.name, host)
            if self.opts.ingress_tls and (secret := self._tls_secret(info.name, host)):
                body["spec"]["tls"] = [{"hosts": [host], "secretName": secret}]
            try:
                call(self.cluster, "create_namespaced_ingress", self.namespace, body, api=net)
            except Exception as exc:
                self.kit.ingress_unavailable[info.name] = api_error_line(exc, f"creating Ingress {name}")
                continue
            self.kit.ingresses[info.name] = {"name": name, "host": host, "address": None, "source": None}

    def _tls_secret(self, ingress_class: str, host: str) -> str | None:
        """A kubernetes.io/tls Secret for the class's host, signed by a CA made for this run (its PEM is
        kept for the probes); None, with the reason for the https cells, when it cannot be created."""
        import base64

        from netconform.pki import serving_certificate

        name = f"echo-{ingress_class}-tls"[:63]
        # a CA for this run only: its certificate goes to the probes, its key is never written anywhere
        pair = serving_certificate(f"netconform run {self.run_id} ingress CA", host, dns=[host])
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": name, "labels": dict(MANAGED_BY)},
            "data": {
                "tls.crt": base64.b64encode(pair.cert_pem).decode(),
                "tls.key": base64.b64encode(pair.key_pem).decode(),
            },
        }
        try:
            call(self.cluster, "create_namespaced_secret", self.namespace, body)
        except Exception as exc:
            line = api_error_line(exc, f"creating TLS Secret {name}")
            if isinstance(exc, ApiException) and exc.status == 403:
                line += " (--ingress-tls needs RBAC: create secrets in the run's namespace, docs/rbac.yaml)"
            self.kit.ingress_tls_unavailable[ingress_class] = line
            return None
        self.kit.ingress_tls[ingress_class] = {
            "secret": name,
            "ca_b64": base64.b64encode(pair.ca_pem).decode(),
        }
        return name

    # -- Gateway API ------------------------------------------------------------------------------
    def gateway_host(self, gateway: str) -> str:
        """The per-run host name of the kit's HTTPRoute for a Gateway ("ns/name")."""
        ns, name = gateway.split("/", 1)
        return f"echo.{name}.{ns}.{self.run_id}.netconform.test"

    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.cluster.api_client)

    def _gateway_missing(self, exc: Exception, gateway: str) -> str:
        """Why a Gateway cannot be used, from the error of reading it (404: no API or no such Gateway)."""
        if isinstance(exc, ApiException) and exc.status == 404:
            try:
                details = (json.loads(exc.body or "{}").get("details") or {}) if exc.body else {}
            except ValueError:
                details = {}
            if not details.get("name") and not self.topo.gateway_classes:
                return (
                    f"--gateway {gateway}: this cluster serves no Gateway API "
                    f"({GATEWAY_GROUP}/{GATEWAY_VERSION} is not installed)"
                )
            known = ", ".join(self.topo.gateways) or "none"
            return f"--gateway {gateway}: no such Gateway (the cluster has: {known})"
        if isinstance(exc, ApiException) and exc.status == 403:
            return api_error_line(exc, f"--gateway {gateway}: reading the Gateway") + (
                " (needs RBAC: get gateways.gateway.networking.k8s.io, docs/rbac.yaml)"
            )
        return api_error_line(exc, f"--gateway {gateway}: reading the Gateway")

    def _read_gateway(self, custom: Any, namespace: str, name: str) -> dict[str, Any]:
        return call(
            self.cluster,
            "get_namespaced_custom_object",
            GATEWAY_GROUP,
            GATEWAY_VERSION,
            namespace,
            "gateways",
            name,
            api=custom,
        )

    def _create_routes(self) -> None:
        """One HTTPRoute per --gateway, attached to it, routing a per-run host to the echo Service."""
        custom = self._custom()
        for gateway in self.opts.gateways:
            ns, gw_name = gateway.split("/", 1)
            try:
                self._read_gateway(custom, ns, gw_name)
            except Exception as exc:
                self.kit.gateway_unavailable[gateway] = self._gateway_missing(exc, gateway)
                continue
            name = f"echo-{ns}-{gw_name}"[:63].rstrip("-.")
            host = self.gateway_host(gateway)
            try:
                call(
                    self.cluster,
                    "create_namespaced_custom_object",
                    GATEWAY_GROUP,
                    GATEWAY_VERSION,
                    self.namespace,
                    "httproutes",
                    httproute_manifest(name, gateway, host),
                    api=custom,
                )
            except Exception as exc:
                line = api_error_line(exc, f"creating HTTPRoute {name} for Gateway {gateway}")
                if isinstance(exc, ApiException) and exc.status == 403:
                    line += (
                        " (--gateway needs RBAC: create httproutes.gateway.networking.k8s.io in the run's "
                        "namespace, docs/rbac.yaml)"
                    )
                self.kit.gateway_unavailable[gateway] = line
                continue
            self.kit.gateways[gateway] = {"name": name, "host": host, "address": None, "source": None}

    def _read_routes(self, created: float) -> None:
        """Wait (bounded like the Ingress's) for each Gateway's verdict on the kit's HTTPRoute and read
        the Gateway's address; a refused route skips its cells with the controller's reason."""
        custom = self._custom()
        window = min(self.opts.lb_timeout, INGRESS_PUBLISH_WAIT_S)
        for gateway, entry in list(self.kit.gateways.items()):
            ns, gw_name = gateway.split("/", 1)

            def verdict(name: str = entry["name"], gw: str = gateway) -> tuple[bool, str] | None:
                try:
                    route = call(
                        self.cluster,
                        "get_namespaced_custom_object",
                        GATEWAY_GROUP,
                        GATEWAY_VERSION,
                        self.namespace,
                        "httproutes",
                        name,
                        api=custom,
                    )
                except Exception as exc:
                    raise KubeError(api_error_line(exc, f"reading HTTPRoute {name}")) from None
                return route_acceptance(route, gw)

            left = max(0.0, created + window - time.monotonic())
            try:
                accepted: tuple[bool, str] | None = _wait(
                    f"Gateway {gateway} to accept HTTPRoute", left, verdict
                )
            except KubeError as exc:
                if "timed out" not in str(exc):
                    self.kit.gateway_unavailable[gateway] = str(exc)
                    del self.kit.gateways[gateway]
                    continue
                accepted = None
            if accepted is not None and not accepted[0]:
                self.kit.gateway_unavailable[gateway] = (
                    f"Gateway {gateway} refused HTTPRoute {entry['name']} (Accepted False, {accepted[1]})"
                )
                del self.kit.gateways[gateway]
                continue
            try:
                gw_obj = self._read_gateway(custom, ns, gw_name)
            except Exception as exc:
                self.kit.gateway_unavailable[gateway] = self._gateway_missing(exc, gateway)
                del self.kit.gateways[gateway]
                continue
            addresses = (gw_obj.get("status") or {}).get("addresses") or []
            address = next((a.get("value") for a in addresses if a.get("value")), None)
            if not address:
                self.kit.gateway_unavailable[gateway] = f"Gateway {gateway} has no address in its status"
                del self.kit.gateways[gateway]
                continue
            entry["address"], entry["source"] = address, f"the status of Gateway {gateway}"
            if accepted is None:
                # a controller that ignores the kit's route is a finding: probe the Gateway's address
                entry["note"] = (
                    f"the controller of Gateway {gateway} wrote no status for HTTPRoute {entry['name']} "
                    f"within {window:.0f} s"
                )

    def _read_ingresses(self, created: float) -> None:
        """The address each controller published for the kit's Ingress, else the class's known address.

        Controllers publish within seconds; the wait is bounded by --lb-timeout (at most 10 s, counted
        from the Ingress's creation, so it usually costs nothing after the pods' wait).
        """
        from kubernetes import client

        net: Any = client.NetworkingV1Api(self.cluster.api_client)
        window = min(self.opts.lb_timeout, INGRESS_PUBLISH_WAIT_S)
        by_class = {c.name: c for c in self.topo.ingress_classes}
        for cls, entry in self.kit.ingresses.items():

            def published(name: str = entry["name"]) -> str | None:
                try:
                    ing = call(self.cluster, "read_namespaced_ingress", name, self.namespace, api=net)
                except Exception as exc:
                    raise KubeError(api_error_line(exc, f"reading Ingress {name}")) from None
                lb = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                return next(
                    (x.get("ip") or x.get("hostname") for x in lb if x.get("ip") or x.get("hostname")), None
                )

            left = max(0.0, created + window - time.monotonic())
            try:
                entry["address"] = _wait(f"an address for Ingress {entry['name']}", left, published)
                entry["source"] = f"the status of Ingress {entry['name']}"
                continue
            except KubeError:
                pass
            known = by_class[cls]
            if known.address:
                # a controller that ignores the kit's Ingress is a finding: probe where the class listens
                entry["address"], entry["source"] = known.address, f"{known.address_source} (class {cls})"
                entry["note"] = (
                    f"the controller of class {cls} published no address for Ingress {entry['name']} "
                    f"within {window:.0f} s"
                )
            else:
                self.kit.ingress_unavailable[cls] = (
                    f"no address for IngressClass {cls}: its controller published none for Ingress "
                    f"{entry['name']} within {window:.0f} s and no LoadBalancer Service of it was found"
                )

    def _create_service(self, name: str, svc_type: str, udp: bool = True) -> None:
        try:
            call(self.cluster, "create_namespaced_service", self.namespace, _service(name, svc_type, udp))
        except ApiException as exc:
            if svc_type == "LoadBalancer":
                self.kit.lb_reason = api_error_line(exc, "creating LoadBalancer Service echo-lb")
                return
            raise KubeError(api_error_line(exc, f"creating Service {name}")) from None

    def _pods_state(self) -> list[Any]:
        try:
            return list(call(self.cluster, "list_namespaced_pod", self.namespace).get("items") or [])
        except Exception as exc:
            raise KubeError(api_error_line(exc, f"listing pods of {self.namespace}")) from None

    def _wait_pods(self) -> None:
        expected = {f"{r}-{n}" for n in self.topo.node_names for r in ("echo", "probe", "host")}
        if "host" in self.kit.unavailable:
            expected = {e for e in expected if not e.startswith("host-")}
        last: dict[str, Any] = {}

        def all_ready() -> bool:
            pods = {p["metadata"]["name"]: pod_info(p) for p in self._pods_state()}
            last.clear()
            last.update(pods)
            for info in pods.values():
                if info.waiting_reason in PULL_FAILURES:
                    detail = (info.message or "no detail").splitlines()[0]
                    raise KubeError(
                        f"the probe image {self.opts.image} cannot be pulled on {info.node} "
                        f"({info.waiting_reason}: {detail})"
                        "; mirror it and pass --probe-image"
                    )
                if info.waiting_reason in CRASH_FAILURES and info.restarts >= 2:
                    raise KubeError(f"pod {self.namespace}/{info.name} on {info.node}: {info.waiting_reason}")
            return expected <= set(pods) and all(
                pods[e].phase == "Running" and pods[e].ready for e in expected
            )

        try:
            _wait(
                f"the probe pods in {self.namespace} to be Running and Ready",
                self.opts.ready_timeout,
                all_ready,
            )
        except KubeError as exc:
            if "timed out" not in str(exc):
                raise
            missing = sorted(e for e in expected if e not in last or not last[e].ready)
            if all(m in missing for m in expected if m.startswith("probe-")):
                detail = ", ".join(f"{m} ({_state_of(m, last)})" for m in missing[:6])
                raise KubeError(f"{exc}: not ready: {detail}") from None
            # some nodes are broken (e.g. CNI not ready): probe the rest, name what is missing per pod
            for m in missing:
                role, node = m.split("-", 1)
                self.kit.unavailable_pods[f"{role}@{node}"] = (
                    f"{m} on {node} not Ready after {self.opts.ready_timeout:.0f} s ({_state_of(m, last)})"
                )
        for name, info in last.items():
            if not info.ready:
                continue
            role = name.split("-", 1)[0]
            node = info.node or name.split("-", 1)[1]
            ref = f"{role}@{node}"
            self.kit.pods[ref] = {"name": name, "node": node, "ip": info.ip}

    def _wait_endpoints(self) -> None:
        """Until the echo Service's EndpointSlices list every Ready echo pod as ready, at most
        ENDPOINTS_WAIT_S: the endpoint controller follows the pods a moment later, and a proxy or an
        ingress controller only after it. Past the bound the probes run anyway and say what they see.
        """
        from kubernetes import client

        want = {pod["ip"] for ref, pod in self.kit.pods.items() if ref.startswith("echo@") and pod.get("ip")}
        if not want:
            return
        api: Any = client.DiscoveryV1Api(self.cluster.api_client)

        def listed() -> bool:
            try:
                slices = call(
                    self.cluster,
                    "list_namespaced_endpoint_slice",
                    self.namespace,
                    api=api,
                    label_selector="kubernetes.io/service-name=echo",
                )
            except Exception:
                return True  # an API without discovery/v1, or a refusal: nothing to wait for here
            ready = {
                address
                for item in slices.get("items") or []
                for ep in item.get("endpoints") or []
                if (ep.get("conditions") or {}).get("ready") is not False
                for address in ep.get("addresses") or []
            }
            return want <= ready

        with contextlib.suppress(KubeError):
            _wait("the echo Service's endpoints", ENDPOINTS_WAIT_S, listed)

    def _read_services(self) -> None:
        try:
            svc = call(self.cluster, "read_namespaced_service", "echo", self.namespace)
            self.kit.clusterip = svc.get("spec", {}).get("clusterIP")
            np = call(self.cluster, "read_namespaced_service", "echo-np", self.namespace)
            self.kit.nodeports = {
                p["name"]: int(p["nodePort"])
                for p in np.get("spec", {}).get("ports") or []
                if p.get("nodePort")
            }
        except Exception as exc:
            raise KubeError(api_error_line(exc, "reading the echo Services")) from None
        if self.kit.lb_reason:
            return

        def lb_ingress() -> str | None:
            try:
                lb = call(self.cluster, "read_namespaced_service", "echo-lb", self.namespace)
            except Exception as exc:
                raise KubeError(api_error_line(exc, "reading Service echo-lb")) from None
            ingress = ((lb.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            return next((i["ip"] for i in ingress if i.get("ip")), None)

        try:
            self.kit.lb_ip = _wait(
                "an address for LoadBalancer Service echo-lb", self.opts.lb_timeout, lb_ingress
            )
        except KubeError:
            waited = f"{self.opts.lb_timeout:.0f} s"
            self.kit.lb_reason = (
                f"no LoadBalancer controller assigned an address to Service echo-lb within {waited}"
            )

    # -- cleanup ----------------------------------------------------------------------------------
    def delete(self, wait: bool = True) -> str | None:
        """Delete the namespace; with `wait`, poll until it is gone. Returns a problem line or None."""
        if not self.created:
            return None
        return delete_namespace(self.cluster, self.namespace, self.opts.delete_timeout if wait else 0.0)


def delete_namespace(cluster: Cluster, namespace: str, wait_s: float) -> str | None:
    try:
        call(cluster, "delete_namespace", namespace, propagation_policy="Background", grace_period_seconds=0)
    except ApiException as exc:
        if exc.status != 404:
            return api_error_line(exc, f"deleting namespace {namespace}")
        return None
    except Exception as exc:
        return api_error_line(exc, f"deleting namespace {namespace}")
    if wait_s <= 0:
        return None
    state: dict[str, Any] = {}

    def gone() -> bool:
        try:
            ns = call(cluster, "read_namespace", namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise KubeError(api_error_line(exc, f"reading namespace {namespace}")) from None
        state["phase"] = (ns.get("status") or {}).get("phase") or "unknown"
        state["finalizers"] = list((ns.get("spec") or {}).get("finalizers") or [])
        state["meta_finalizers"] = list(ns.get("metadata", {}).get("finalizers") or [])
        state["conditions"] = [
            f"{c.get('type', '?')}: {c.get('message', '')}"
            for c in (ns.get("status") or {}).get("conditions") or []
            if c.get("status") == "True"
        ]
        return False

    try:
        _wait(f"namespace {namespace} to be deleted", wait_s, gone)
    except KubeError as exc:
        if "timed out" not in str(exc):
            return str(exc)
        return stuck_line(namespace, wait_s, state)
    return None


def stuck_line(namespace: str, wait_s: float, state: dict[str, Any]) -> str:
    """One line for a namespace that outlived the wait: phase, finalizers, why, and what to run."""
    finalizers = state.get("finalizers", []) + state.get("meta_finalizers", [])
    why = "; ".join(state.get("conditions", [])[:2])
    return (
        f"namespace {namespace} is still there {wait_s:.0f} s after deletion (phase "
        f"{state.get('phase', 'unknown')}, finalizers: {', '.join(finalizers) or 'none'}"
        f"{'; ' + why if why else ''}); inspect it with `kubectl get namespace {namespace} -o yaml`, "
        "fix what its conditions name and it goes on its own (last resort: "
        f"`kubectl get namespace {namespace} -o json | jq '.spec.finalizers=[]' | "
        f"kubectl replace --raw /api/v1/namespaces/{namespace}/finalize -f -`)"
    )


def sweep_stale(cluster: Cluster, ttl_s: float, now: datetime | None = None) -> list[str]:
    """Delete `netconform-*` namespaces of earlier runs older than `ttl_s` (without waiting)."""
    now = now or datetime.now(UTC)
    try:
        items = call(cluster, "list_namespace", label_selector=MANAGED_SELECTOR).get("items") or []
    except Exception as exc:
        raise KubeError(api_error_line(exc, "listing netconform namespaces")) from None
    swept: list[str] = []
    for ns in items:
        meta = ns.get("metadata", {})
        name = str(meta.get("name", ""))
        if not name.startswith("netconform-"):
            continue
        created_text = (meta.get("annotations") or {}).get(CREATED_ANNOTATION)
        try:
            created = datetime.strptime(created_text or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            try:
                created = datetime.strptime(
                    meta.get("creationTimestamp") or "", "%Y-%m-%dT%H:%M:%SZ"
                ).replace(tzinfo=UTC)
            except ValueError:
                created = now
        if now - created < timedelta(seconds=ttl_s):
            continue
        if (ns.get("status") or {}).get("phase") == "Terminating":
            swept.append(f"{name} (already Terminating)")
            continue
        delete_namespace(cluster, name, 0.0)
        swept.append(name)
    return swept
