"""Defaults, validation (422) and synchronous allocation (ClusterIP, NodePort) done when objects are written.

A real API server allocates a Service's ClusterIP and NodePorts inside the create request; so does the lab,
by scanning the stored Services (a few dozen at most) instead of keeping a separate bitmap in step.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from netconform.lab.api import podsecurity as podsecurity
from netconform.lab.api.resources import Resource
from netconform.lab.api.store import ApiError, Obj, Store, invalid
from netconform.lab.faults.conditions import DENY_HOST_NETWORK, LabConditions, webhook_denial
from netconform.lab.net import netpol

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
NODEPORT_RANGE = range(30000, 32768)
# 10.96.0.1 (kubernetes) and 10.96.0.10 (kube-dns) are requested explicitly; dynamic ones start above them.
FIRST_DYNAMIC_CLUSTER_IP = 16

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME_RESOURCES = {"namespaces", "services"}


def validate_name(res: Resource, name: str) -> None:
    if not name:
        return
    if res.name in _LABEL_NAME_RESOURCES:
        ok, limit, what = _DNS1123_LABEL.match(name) is not None, 63, "RFC 1123 label"
    else:
        ok, limit, what = _DNS1123_SUBDOMAIN.match(name) is not None, 253, "RFC 1123 subdomain"
    if not ok or len(name) > limit:
        raise invalid(
            res.kind,
            name,
            [
                (
                    "metadata.name",
                    f"Invalid value: {name!r}: a lowercase {what} must "
                    "consist of lower case alphanumeric characters, '-' or '.'",
                )
            ],
        )


class Admission:
    """Called by the API server for every create and update, before the store is touched.

    Order as in a real API server: defaults, validation (422), then validating admission (403): Pod
    Security from the namespace's labels, and the `deny-host-network` policy webhook when that lab
    condition is on.
    """

    def __init__(self, store: Store, conditions: LabConditions | None = None) -> None:
        self.store = store
        self.conditions = conditions or LabConditions()

    # ------------------------------------------------------------------ entry points
    def on_create(self, res: Resource, obj: Obj) -> None:
        validate_name(res, obj.get("metadata", {}).get("name", ""))
        obj["kind"] = res.kind
        obj["apiVersion"] = res.api_version
        if res.name == "pods":
            self._pod(obj)
        elif res.name == "services":
            self._service(obj, None)
        elif res.name == "namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif res.name == "networkpolicies":
            self._network_policy(obj)
        elif res.name == "configmaps":
            for k, v in (obj.get("data") or {}).items():
                if not isinstance(v, str):
                    raise invalid(
                        "ConfigMap", obj["metadata"].get("name", ""), [(f"data[{k}]", "must be a string")]
                    )

    def on_update(self, res: Resource, old: Obj, new: Obj) -> None:
        new["kind"] = res.kind
        new["apiVersion"] = res.api_version
        if res.name == "services":
            self._service(new, old)
        elif res.name == "pods":
            name = old["metadata"]["name"]
            old_spec, new_spec = old.get("spec", {}), new.get("spec", {})
            for fld in ("containers", "nodeName", "hostNetwork", "volumes", "ephemeralContainers"):
                if fld == "nodeName" and not old_spec.get("nodeName"):
                    continue
                if _strip_images(old_spec.get(fld)) != _strip_images(new_spec.get(fld)):
                    raise invalid(
                        "Pod",
                        name,
                        [
                            (
                                "spec",
                                "Forbidden: pod updates may not change fields other "
                                "than image, activeDeadlineSeconds, tolerations",
                            )
                        ],
                    )
        elif res.name == "namespaces":
            new["status"] = old.get("status", {})
        elif res.name == "networkpolicies":
            self._network_policy(new)

    # ------------------------------------------------------------------ ephemeral containers
    def on_ephemeral_containers(self, old: Obj, new: Obj) -> None:
        """An update of pods/ephemeralcontainers, as the real API validates it: new ephemeral containers
        may be added (defaulted, names unique across all containers, no ports/probes/resources, a
        `targetContainerName` naming a container); existing ones may be neither changed nor removed;
        then Pod Security of the namespace applies to the whole pod, ephemeral containers included."""
        name = old["metadata"]["name"]
        spec = new.setdefault("spec", {})
        ephemeral = spec.get("ephemeralContainers") or []
        if not isinstance(ephemeral, list) or not all(isinstance(c, dict) for c in ephemeral):
            raise invalid(
                "Pod", name, [("spec.ephemeralContainers", "Invalid value: must be a list of objects")]
            )
        regular = [c.get("name") for key in ("initContainers", "containers") for c in spec.get(key) or []]
        causes: list[tuple[str, str]] = []
        seen: set[str] = set()
        for i, c in enumerate(ephemeral):
            where = f"spec.ephemeralContainers[{i}]"
            c.setdefault("imagePullPolicy", "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            cname = c.get("name")
            if not cname:
                causes.append((f"{where}.name", "Required value"))
            elif cname in regular or cname in seen:
                causes.append((f"{where}.name", f'Duplicate value: "{cname}"'))
            seen.add(str(cname))
            if not c.get("image"):
                causes.append((f"{where}.image", "Required value"))
            for fld in ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
                if c.get(fld):
                    causes.append((f"{where}.{fld}", "Forbidden: cannot be set for an Ephemeral Container"))
            if c.get("resources"):
                causes.append((f"{where}.resources", "Forbidden: cannot be set for an Ephemeral Container"))
            target = c.get("targetContainerName")
            if target and target not in regular:
                causes.append((f"{where}.targetContainerName", f'Not found: "{target}"'))
        by_name = {c.get("name"): c for c in ephemeral}
        for before in (old.get("spec") or {}).get("ephemeralContainers") or []:
            after = by_name.get(before.get("name"))
            if after is None:
                causes.append(
                    (
                        "spec.ephemeralContainers",
                        f'Forbidden: existing ephemeral containers "{before.get("name")}" may not be removed',
                    )
                )
            elif after != before:
                causes.append(
                    (
                        "spec.ephemeralContainers",
                        f'Forbidden: existing ephemeral containers "{before.get("name")}" may not be changed',
                    )
                )
        if causes:
            raise invalid("Pod", name, causes)
        namespace = old["metadata"].get("namespace")
        podsecurity.enforce(new, self.store.find("namespaces", "", namespace) if namespace else None)

    # ------------------------------------------------------------------ pods
    def _pod(self, pod: Obj) -> None:
        name = pod["metadata"].get("name") or pod["metadata"].get("generateName", "")
        spec = pod.setdefault("spec", {})
        containers = spec.get("containers") or []
        causes: list[tuple[str, str]] = []
        if not containers:
            causes.append(("spec.containers", "Required value"))
        seen: set[str] = set()
        for i, c in enumerate(containers):
            if not c.get("name"):
                causes.append((f"spec.containers[{i}].name", "Required value"))
            elif c["name"] in seen:
                causes.append((f"spec.containers[{i}].name", f"Duplicate value: {c['name']!r}"))
            seen.add(c.get("name", ""))
            if not c.get("image"):
                causes.append((f"spec.containers[{i}].image", "Required value"))
            for j, p in enumerate(c.get("ports") or []):
                port = p.get("containerPort")
                if not isinstance(port, int) or not 0 < port < 65536:
                    causes.append(
                        (
                            f"spec.containers[{i}].ports[{j}].containerPort",
                            f"Invalid value: {port!r}: must be between 1 and 65535, inclusive",
                        )
                    )
            c.setdefault("imagePullPolicy", "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
        volumes = {v.get("name") for v in spec.get("volumes") or []}
        for i, c in enumerate(containers):
            for j, m in enumerate(c.get("volumeMounts") or []):
                if m.get("name") not in volumes:
                    causes.append(
                        (f"spec.containers[{i}].volumeMounts[{j}].name", f"Not found: {m.get('name')!r}")
                    )
                if not str(m.get("mountPath", "")).startswith("/"):
                    causes.append(
                        (
                            f"spec.containers[{i}].volumeMounts[{j}].mountPath",
                            "Invalid value: must be an absolute path",
                        )
                    )
        if causes:
            raise invalid("Pod", name, causes)
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("securityContext", {})
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("tolerations", [])
        pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        namespace = pod["metadata"].get("namespace")
        podsecurity.enforce(pod, self.store.find("namespaces", "", namespace) if namespace else None)
        if spec.get("hostNetwork") and self.conditions.is_active(DENY_HOST_NETWORK):
            raise ApiError(403, "Forbidden", webhook_denial(), {"name": name, "kind": "pods"})

    @staticmethod
    def _network_policy(policy: Obj) -> None:
        spec = policy.setdefault("spec", {})
        spec.setdefault("podSelector", {})
        if not spec.get("policyTypes"):
            spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
        causes = netpol.validate(policy)
        if causes:
            raise invalid("NetworkPolicy", policy["metadata"].get("name", ""), causes, "networking.k8s.io")

    # ------------------------------------------------------------------ services
    def _service(self, svc: Obj, old: Obj | None) -> None:
        name = svc["metadata"].get("name", "")
        spec = svc.setdefault("spec", {})
        typ = spec.setdefault("type", "ClusterIP")
        causes: list[tuple[str, str]] = []
        if typ not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            causes.append(("spec.type", f"Unsupported value: {typ!r}"))
        ports = spec.get("ports") or []
        headless = spec.get("clusterIP") == "None"
        if not ports and not headless and typ != "ExternalName":
            causes.append(("spec.ports", "Required value"))
        seen: set[tuple[int, str]] = set()
        for i, p in enumerate(ports):
            p.setdefault("protocol", "TCP")
            port = p.get("port")
            if not isinstance(port, int) or not 0 < port < 65536:
                causes.append(
                    (f"spec.ports[{i}].port", f"Invalid value: {port!r}: must be between 1 and 65535")
                )
                continue
            if p["protocol"] not in ("TCP", "UDP", "SCTP"):
                causes.append((f"spec.ports[{i}].protocol", f"Unsupported value: {p['protocol']!r}"))
            if (port, p["protocol"]) in seen:
                causes.append((f"spec.ports[{i}]", f"Duplicate value: {port}/{p['protocol']}"))
            seen.add((port, p["protocol"]))
            if len(ports) > 1 and not p.get("name"):
                causes.append((f"spec.ports[{i}].name", "Required value"))
            p.setdefault("targetPort", port)
            if typ == "ClusterIP" and p.get("nodePort"):
                causes.append(
                    (f"spec.ports[{i}].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")
                )
        if causes:
            raise invalid("Service", name, causes)
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if typ in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if typ == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        self._allocate_cluster_ip(svc, old)
        self._allocate_node_ports(svc, old)
        svc.setdefault("status", {"loadBalancer": {}})
        if old is not None and "status" in old and typ == old.get("spec", {}).get("type"):
            svc["status"] = old["status"]

    def _used(self, exclude: tuple[str, str] | None) -> tuple[set[str], set[int]]:
        ips: set[str] = set()
        ports: set[int] = set()
        for s in self.store.select("services"):
            if exclude and (s["metadata"]["namespace"], s["metadata"]["name"]) == exclude:
                continue
            ip = s.get("spec", {}).get("clusterIP")
            if ip and ip != "None":
                ips.add(ip)
            ports.update(int(p["nodePort"]) for p in s.get("spec", {}).get("ports", []) if p.get("nodePort"))
        return ips, ports

    def _allocate_cluster_ip(self, svc: Obj, old: Obj | None) -> None:
        spec = svc["spec"]
        name = svc["metadata"].get("name", "")
        if spec["type"] == "ExternalName":
            return
        if old is not None:
            old_ip = old.get("spec", {}).get("clusterIP")
            if spec.get("clusterIP") not in (None, "", old_ip):
                raise invalid("Service", name, [("spec.clusterIP", "Invalid value: field is immutable")])
            spec["clusterIP"] = old_ip
            spec["clusterIPs"] = [old_ip]
            return
        used, _ = self._used(None)
        wanted = spec.get("clusterIP")
        if wanted == "None":
            spec["clusterIPs"] = ["None"]
            return
        if wanted:
            try:
                addr = ipaddress.ip_address(wanted)
            except ValueError:
                raise invalid("Service", name, [("spec.clusterIP", f"Invalid value: {wanted!r}")]) from None
            if addr not in SERVICE_CIDR:
                raise invalid(
                    "Service",
                    name,
                    [
                        (
                            "spec.clusterIP",
                            f"Invalid value: {wanted!r}: provided IP is "
                            f"not in the valid range. The range of valid IPs is {SERVICE_CIDR}",
                        )
                    ],
                )
            if wanted in used:
                raise invalid(
                    "Service",
                    name,
                    [("spec.clusterIP", f"Invalid value: {wanted!r}: provided IP is already allocated")],
                )
        else:
            wanted = next(
                (
                    str(SERVICE_CIDR[i])
                    for i in range(FIRST_DYNAMIC_CLUSTER_IP, SERVICE_CIDR.num_addresses - 1)
                    if str(SERVICE_CIDR[i]) not in used
                ),
                None,
            )
            if wanted is None:
                raise ApiError(500, "InternalError", "range is full: no ClusterIP left in 10.96.0.0/16")
        spec["clusterIP"] = wanted
        spec["clusterIPs"] = [wanted]

    def _allocate_node_ports(self, svc: Obj, old: Obj | None) -> None:
        spec = svc["spec"]
        name = svc["metadata"].get("name", "")
        wants_ports = spec["type"] == "NodePort" or (
            spec["type"] == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True)
        )
        if not wants_ports:
            for p in spec.get("ports", []):
                p.pop("nodePort", None)
            return
        key = (svc["metadata"].get("namespace", ""), name)
        _, used = self._used(key if old is not None else None)
        old_ports = {
            (p.get("port"), p.get("protocol")): p.get("nodePort")
            for p in (old or {}).get("spec", {}).get("ports", [])
        }
        for i, p in enumerate(spec.get("ports", [])):
            np = p.get("nodePort") or old_ports.get((p["port"], p["protocol"]))
            if np:
                if not isinstance(np, int) or int(np) not in NODEPORT_RANGE:
                    raise invalid(
                        "Service",
                        name,
                        [
                            (
                                f"spec.ports[{i}].nodePort",
                                f"Invalid value: {np!r}: provided "
                                "port is not in the valid range. The range of valid ports is "
                                "30000-32767",
                            )
                        ],
                    )
                if np in used:
                    raise invalid(
                        "Service",
                        name,
                        [
                            (
                                f"spec.ports[{i}].nodePort",
                                f"Invalid value: {np}: provided port is already allocated",
                            )
                        ],
                    )
            else:
                np = next((n for n in NODEPORT_RANGE if n not in used), None)
                if np is None:
                    raise ApiError(500, "InternalError", "range is full: no NodePort left in 30000-32767")
            p["nodePort"] = np
            used.add(np)


def _strip_images(value: Any) -> Any:
    """Containers compared without their image (the one container field a pod update may change)."""
    if isinstance(value, list):
        return [{k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c for c in value]
    return value
