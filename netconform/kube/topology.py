"""Discovers what the suite needs to know about a cluster, into a JSON-serialisable `Topology`.

Taken once per run by the pytest controller and written to a snapshot file, so every xdist worker
parametrizes the tests over exactly the same nodes and components (workers must collect identically).
The number of API requests here is fixed (a handful of list calls), whatever the cluster's size.
"""

from __future__ import annotations

import re
from typing import Any

from netconform.kube.connect import Cluster, KubeError, api_error_line, call, server_version
from netconform.model.sampling import failure_domain
from netconform.model.topology import IngressClassInfo, NodeInfo, PodInfo, Topology

# Dataplane / CNI agents, by the name their pods carry (kube-system, or any namespace for some).
CNI_PATTERNS: dict[str, re.Pattern[str]] = {
    "anetd": re.compile(r"^anetd-"),
    "cilium": re.compile(r"^cilium-(?!operator)"),
    "calico": re.compile(r"^calico-node-"),
    "flannel": re.compile(r"^(kube-)?flannel(-ds)?-"),
    "weave": re.compile(r"^weave-net-"),
    "antrea": re.compile(r"^antrea-agent-"),
    "kube-router": re.compile(r"^kube-router-"),
    "lab-cni": re.compile(r"^lab-cni-"),
}
# Load-balancer controllers (MetalLB, F5 BIG-IP CIS, and the lab's MetalLB-like announcer).
LB_PATTERNS: dict[str, re.Pattern[str]] = {
    "metallb": re.compile(r"metallb"),
    "f5": re.compile(r"^(k8s-bigip-ctlr|load-balancer-f5)"),
    "lab-lb": re.compile(r"^lab-lb"),
}
KUBE_PROXY = re.compile(r"^kube-proxy-")
CLUSTER_DOMAIN_IN_COREFILE = re.compile(r"^\s*kubernetes\s+(\S+)", re.M)


def node_info(obj: dict[str, Any]) -> NodeInfo:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    addresses = {a.get("type", ""): a.get("address", "") for a in status.get("addresses") or []}
    roles = sorted(
        key.split("/", 1)[1] or "control-plane"
        for key in (meta.get("labels") or {})
        if key.startswith("node-role.kubernetes.io/")
    )
    cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
    taints = [
        {"key": t.get("key", ""), "value": t.get("value") or "", "effect": t.get("effect", "")}
        for t in spec.get("taints") or []
    ]
    conditions = {
        c.get("type", ""): {
            "status": c.get("status", ""),
            "reason": c.get("reason") or "",
            "message": (c.get("message") or "")[:300],
        }
        for c in status.get("conditions") or []
    }
    return NodeInfo(
        name=meta.get("name", ""),
        internal_ip=addresses.get("InternalIP"),
        addresses=addresses,
        pod_cidrs=cidrs,
        roles=roles,
        taints=taints,
        conditions=conditions,
        domain=failure_domain(meta.get("labels") or {}),
    )


def pod_info(obj: dict[str, Any]) -> PodInfo:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    statuses = status.get("containerStatuses") or []
    waiting = next((s["state"]["waiting"] for s in statuses if (s.get("state") or {}).get("waiting")), None)
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return PodInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        node=spec.get("nodeName"),
        ip=status.get("podIP"),
        phase=status.get("phase") or "Unknown",
        ready=ready,
        restarts=sum(int(s.get("restartCount") or 0) for s in statuses),
        waiting_reason=(waiting or {}).get("reason"),
        message=((waiting or {}).get("message") or status.get("message") or None),
    )


def _cluster_domain(cluster: Cluster) -> str:
    """CoreDNS's Corefile names the cluster domain (`kubernetes cluster.local ...`); default otherwise."""
    try:
        cm = call(cluster, "read_namespaced_config_map", "coredns", "kube-system")
    except Exception:
        return "cluster.local"
    match = CLUSTER_DOMAIN_IN_COREFILE.search((cm.get("data") or {}).get("Corefile", ""))
    return match.group(1).rstrip(".") if match else "cluster.local"


def discover(cluster: Cluster, version: str | None = None) -> Topology:
    """Read nodes, kube-system pods, the kube-dns Service and the API endpoints (fixed request count);
    `version`: the server's version when the caller has read it already."""
    version = version if version is not None else server_version(cluster)
    try:
        nodes = [node_info(n) for n in call(cluster, "list_node").get("items") or []]
        system_pods = [
            pod_info(p) for p in call(cluster, "list_namespaced_pod", "kube-system").get("items") or []
        ]
    except Exception as exc:
        raise KubeError(api_error_line(exc, "discovering nodes and kube-system pods")) from None
    if not nodes:
        raise KubeError(f"the cluster at {cluster.server} has no nodes")
    dns_ip: str | None = None
    dns_ports: list[dict[str, Any]] = []
    try:
        spec = call(cluster, "read_namespaced_service", "kube-dns", "kube-system").get("spec", {})
        dns_ip = spec.get("clusterIP")
        dns_ports = [
            {"name": p.get("name"), "port": p.get("port"), "protocol": p.get("protocol")}
            for p in spec.get("ports") or []
        ]
    except Exception:
        dns_ip = None
    endpoints: list[str] = []
    endpoint_port: int | None = None
    try:
        ep = call(cluster, "read_namespaced_endpoints", "kubernetes", "default")
        endpoints = sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or [])
        ports = [p for s in ep.get("subsets") or [] for p in s.get("ports") or [] if p.get("port")]
        chosen = next((p for p in ports if p.get("name") == "https"), ports[0] if ports else None)
        endpoint_port = int(chosen["port"]) if chosen else None
    except Exception:
        endpoints = []
    coredns = sorted(
        (p for p in system_pods if p.name.startswith("coredns") or p.name.startswith("kube-dns")),
        key=lambda p: p.name,
    )
    cni: dict[str, list[PodInfo]] = {}
    lbs: dict[str, list[PodInfo]] = {}
    for pod in system_pods:
        for name, pattern in CNI_PATTERNS.items():
            if pattern.search(pod.name):
                cni.setdefault(name, []).append(pod)
        for name, pattern in LB_PATTERNS.items():
            if pattern.search(pod.name):
                lbs.setdefault(name, []).append(pod)
    ingress = discover_ingress(cluster)
    return Topology(
        server=cluster.server,
        version=version,
        context=cluster.context,
        nodes=sorted(nodes, key=lambda n: n.name),
        cluster_domain=_cluster_domain(cluster),
        dns_service_ip=dns_ip,
        dns_ports=dns_ports,
        coredns=coredns,
        cni=cni,
        lb_controllers=lbs,
        kube_proxy=[p for p in system_pods if KUBE_PROXY.search(p.name)],
        api_endpoints=endpoints,
        api_endpoint_port=endpoint_port,
        **ingress,
    )


DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
ISTIO_GATEWAY_LABEL = "istio=ingressgateway"


def _lb_address(obj: dict[str, Any]) -> str | None:
    lb = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return next((x.get("ip") or x.get("hostname") for x in lb if x.get("ip") or x.get("hostname")), None)


def ingress_addresses(
    classes: list[dict[str, Any]], ingresses: list[dict[str, Any]], services: list[dict[str, Any]]
) -> list[IngressClassInfo]:
    """Each IngressClass with the address its controller exposes (pure, from listed objects).

    First choice: the address the controller published in the status of an Ingress of that class (an
    Ingress without class counts for the default class). Else a LoadBalancer Service labelled
    `app.kubernetes.io/component=controller` whose `app.kubernetes.io/name` is the last part of the
    class's controller name (`k8s.io/ingress-nginx` -> `ingress-nginx`), as the common charts label them.

    >>> cls = {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}
    >>> svc = {"metadata": {"name": "c", "namespace": "n", "labels": {
    ...     "app.kubernetes.io/component": "controller", "app.kubernetes.io/name": "ingress-nginx"}},
    ...     "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}}
    >>> ingress_addresses([cls], [], [svc])[0].address
    '192.0.2.7'
    """
    out: list[IngressClassInfo] = []
    for c in classes:
        name = c["metadata"]["name"]
        controller = (c.get("spec") or {}).get("controller", "")
        default = (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
        info = IngressClassInfo(name, controller, default)
        for ing in sorted(
            ingresses, key=lambda i: (i["metadata"].get("namespace", ""), i["metadata"]["name"])
        ):
            wanted = (ing.get("spec") or {}).get("ingressClassName")
            if (wanted == name or (wanted is None and default)) and (address := _lb_address(ing)):
                meta = ing["metadata"]
                info.address, info.address_source = address, f"ingress {meta.get('namespace')}/{meta['name']}"
                break
        if info.address is None:
            short = controller.rstrip("/").rsplit("/", 1)[-1]
            for svc in services:
                labels = svc["metadata"].get("labels") or {}
                if labels.get("app.kubernetes.io/name") != short:
                    continue
                if (svc.get("spec") or {}).get("type") == "LoadBalancer" and (address := _lb_address(svc)):
                    meta = svc["metadata"]
                    info.address, info.address_source = (
                        address,
                        f"service {meta.get('namespace')}/{meta['name']}",
                    )
                    break
        out.append(info)
    return sorted(out, key=lambda i: i.name)


def discover_ingress(cluster: Cluster) -> dict[str, Any]:
    """IngressClasses (with addresses), Gateway API classes and gateways, Istio ingress gateways.

    A cluster without these APIs (404) or a caller without permission (403) gives empty lists and a
    note saying which; never an error: the ingress cells then skip with that reason.
    """
    from kubernetes import client

    net: Any = client.NetworkingV1Api(cluster.api_client)
    custom: Any = client.CustomObjectsApi(cluster.api_client)
    result: dict[str, Any] = {
        "ingress_classes": [],
        "gateway_classes": [],
        "gateways": [],
        "istio_gateways": [],
    }
    notes: list[str] = []
    try:
        classes = call(cluster, "list_ingress_class", api=net).get("items") or []
        ingresses = (
            call(cluster, "list_ingress_for_all_namespaces", api=net).get("items") or [] if classes else []
        )
        services = (
            call(
                cluster,
                "list_service_for_all_namespaces",
                label_selector="app.kubernetes.io/component=controller",
            ).get("items")
            or []
            if classes
            else []
        )
        result["ingress_classes"] = ingress_addresses(classes, ingresses, services)
    except Exception as exc:
        notes.append(api_error_line(exc, "listing IngressClasses"))
    try:
        gw_classes = (
            call(
                cluster,
                "list_cluster_custom_object",
                "gateway.networking.k8s.io",
                "v1",
                "gatewayclasses",
                api=custom,
            ).get("items")
            or []
        )
        result["gateway_classes"] = sorted(c["metadata"]["name"] for c in gw_classes)
        if gw_classes:
            gws = (
                call(
                    cluster,
                    "list_cluster_custom_object",
                    "gateway.networking.k8s.io",
                    "v1",
                    "gateways",
                    api=custom,
                ).get("items")
                or []
            )
            result["gateways"] = sorted(f"{g['metadata']['namespace']}/{g['metadata']['name']}" for g in gws)
    except Exception:
        pass  # no Gateway API in this cluster: nothing to say unless the user asks for --gateway
    try:
        istio = call(cluster, "list_service_for_all_namespaces", label_selector=ISTIO_GATEWAY_LABEL).get(
            "items"
        )
        result["istio_gateways"] = sorted(
            f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in istio or []
        )
    except Exception:
        pass
    if notes:
        result["ingress_note"] = "; ".join(notes)
    return result
