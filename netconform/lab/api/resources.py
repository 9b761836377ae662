"""The resource types the lab API serves, and the discovery documents kubectl and the client read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GATEWAY_GROUP = "gateway.networking.k8s.io"
READ_VERBS = ["get", "list", "watch"]
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    name: str  # plural, as in the URL
    kind: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


RESOURCES: list[Resource] = [
    Resource(
        "namespaces",
        "Namespace",
        "",
        "v1",
        False,
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("ns",),
        ("status", "finalize"),
    ),
    Resource("nodes", "Node", "", "v1", False, short_names=("no",), subresources=("status",)),
    Resource(
        "pods",
        "Pod",
        "",
        "v1",
        True,
        short_names=("po",),
        subresources=("status", "exec", "log", "attach", "ephemeralcontainers"),
    ),
    Resource(
        "services",
        "Service",
        "",
        "v1",
        True,
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("svc",),
        ("status",),
    ),
    Resource("endpoints", "Endpoints", "", "v1", True, short_names=("ep",)),
    Resource("configmaps", "ConfigMap", "", "v1", True, short_names=("cm",)),
    Resource("events", "Event", "", "v1", True, short_names=("ev",)),
    Resource("serviceaccounts", "ServiceAccount", "", "v1", True, short_names=("sa",)),
    Resource("secrets", "Secret", "", "v1", True),
    Resource("endpointslices", "EndpointSlice", "discovery.k8s.io", "v1", True),
    Resource(
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        "authorization.k8s.io",
        "v1",
        False,
        ("create",),
    ),
    Resource("daemonsets", "DaemonSet", "apps", "v1", True, short_names=("ds",)),
    Resource("deployments", "Deployment", "apps", "v1", True, short_names=("deploy",)),
    Resource(
        "ingresses",
        "Ingress",
        "networking.k8s.io",
        "v1",
        True,
        short_names=("ing",),
        subresources=("status",),
    ),
    Resource("ingressclasses", "IngressClass", "networking.k8s.io", "v1", False),
    Resource("networkpolicies", "NetworkPolicy", "networking.k8s.io", "v1", True, short_names=("netpol",)),
    # Gateway API (served like the installed CRDs of the standard channel, v1)
    Resource(
        "gatewayclasses",
        "GatewayClass",
        GATEWAY_GROUP,
        "v1",
        False,
        short_names=("gc",),
        subresources=("status",),
    ),
    Resource(
        "gateways", "Gateway", GATEWAY_GROUP, "v1", True, short_names=("gtw",), subresources=("status",)
    ),
    Resource("httproutes", "HTTPRoute", GATEWAY_GROUP, "v1", True, subresources=("status",)),
]

GROUP_VERSIONS: dict[str, str] = {
    "discovery.k8s.io": "v1",
    "authorization.k8s.io": "v1",
    "apps": "v1",
    "networking.k8s.io": "v1",
    GATEWAY_GROUP: "v1",
}
# kinds whose metadata.generation counts spec changes (status writers report observedGeneration)
GENERATION_RESOURCES = frozenset(
    {"ingresses", "gatewayclasses", "gateways", "httproutes", "deployments", "daemonsets", "networkpolicies"}
)


def lookup(group: str, version: str, name: str) -> Resource | None:
    for r in RESOURCES:
        if r.group == group and r.version == version and r.name == name:
            return r
    return None


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group_list() -> dict[str, Any]:
    groups = []
    for g, v in GROUP_VERSIONS.items():
        gv = {"groupVersion": f"{g}/{v}", "version": v}
        groups.append({"name": g, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    members = [r for r in RESOURCES if r.group == group and r.version == version]
    if not members:
        return None
    entries: list[dict[str, Any]] = []
    for r in members:
        entry: dict[str, Any] = {
            "name": r.name,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        entries.append(entry)
        for sub in r.subresources:
            verbs = {"exec": ["create", "get"], "attach": ["create", "get"], "log": ["get"]}.get(
                sub, ["get", "patch", "update"]
            )
            entries.append(
                {
                    "name": f"{r.name}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": {"exec": "PodExecOptions", "attach": "PodAttachOptions"}.get(sub, r.kind),
                    "verbs": verbs,
                }
            )
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}
