"""Checks, before anything is deployed, that the caller holds every permission in docs/rbac.yaml.

One SelfSubjectAccessReview per (resource, verb) of the least ClusterRole; the first denial becomes
one line naming the verb and resource, so a 403 never surfaces half-way through a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client

from netconform.kube.connect import Cluster, KubeError, api_error_line, call
from netconform.kube.parallel import in_parallel


@dataclass(frozen=True)
class Permission:
    resource: str
    verb: str
    group: str = ""

    def describe(self) -> str:
        resource, _, sub = self.resource.partition("/")
        name = f"{resource}/{sub}" if sub else resource
        return f"{self.verb} {name}{'.' + self.group if self.group else ''}"


# Exactly the rules of docs/rbac.yaml (a test keeps the two equal): (API group, resource, verbs).
RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "nodes", ("get", "list")),
    ("", "namespaces", ("get", "list", "create", "delete")),
    ("", "pods", ("get", "list", "create", "delete")),
    ("", "pods/exec", ("create", "get")),
    ("", "pods/log", ("get",)),
    ("", "configmaps", ("get", "list", "create")),
    ("", "services", ("get", "list", "create")),
    ("", "endpoints", ("get",)),
    ("networking.k8s.io", "ingresses", ("get", "list", "create")),
    ("networking.k8s.io", "ingressclasses", ("list",)),
)
CLUSTER_SCOPED = {"nodes", "namespaces", "ingressclasses"}


def required_permissions() -> list[Permission]:
    return [Permission(resource, verb, group) for group, resource, verbs in RULES for verb in verbs]


def check_permissions(cluster: Cluster, namespace: str) -> list[Permission]:
    """Return the permissions of docs/rbac.yaml that the caller does not hold (empty: all held).

    The reviews are independent: they are asked MAX_IN_FLIGHT at a time (24 round trips one after the
    other were ~0.3 s of a 3-node run's start, more under load; issue 15), the answer keeps the order."""
    api: Any = client.AuthorizationV1Api(cluster.api_client)
    perms = required_permissions()
    allowed: dict[Permission, bool] = {}

    def review(perm: Permission) -> None:
        resource, _, sub = perm.resource.partition("/")
        attrs: dict[str, str] = {"verb": perm.verb, "resource": resource, "group": perm.group}
        if sub:
            attrs["subresource"] = sub
        if resource not in CLUSTER_SCOPED:
            attrs["namespace"] = namespace
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        answer = call(cluster, "create_self_subject_access_review", body, api=api)
        allowed[perm] = bool((answer.get("status") or {}).get("allowed"))

    for error in in_parallel(review, [(perm,) for perm in perms]):
        if error is not None:
            raise KubeError(api_error_line(error, "checking permissions (SelfSubjectAccessReview)")) from None
    return [perm for perm in perms if not allowed[perm]]


def preflight(cluster: Cluster, namespace: str) -> None:
    """Raise KubeError naming every missing permission (in the order of docs/rbac.yaml)."""
    missing = check_permissions(cluster, namespace)
    if missing:
        names = ", ".join(p.describe() for p in missing)
        raise KubeError(
            f"missing permission{'s' if len(missing) > 1 else ''}: {names} "
            f"(the least ClusterRole the suite needs is docs/rbac.yaml)"
        )
