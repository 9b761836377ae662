"""`--policy-check`: the truth table derived from the NetworkPolicies themselves, for the run's workloads.

For every pair of the `--subject` workloads' chosen pods and every numeric port the policies name, the
flow is allowed exactly when the destination's ingress and the source's egress allow it as the API
defines NetworkPolicy (a pod selected by no policy of a direction is not isolated in it; policies are
additive; podSelector and namespaceSelector with matchLabels and matchExpressions, ipBlock with except,
ports with protocol and endPort). Named ports are not resolved (a rule that only names ports matches no
numeric port here). The result is a `--policy-table` (checks/policy_table.py) whose expectations are
computed, each naming the policies that decided it, so the grids and the per-policy counts follow.

>>> pol = {"metadata": {"namespace": "a", "name": "deny"}, "spec": {"podSelector": {}}}
>>> pods = {"deployment/a/w@n1": Endpoint("a", {"app": "w"}, "10.0.0.1")}
>>> decide([pol], {"a": {}}, pods["deployment/a/w@n1"], Endpoint("a", {"app": "x"}, "10.0.0.2"), "tcp", 80)
('deny', 'denied by a/deny (ingress)')
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from netconform.model.topology import Topology


@dataclass(frozen=True)
class Endpoint:
    namespace: str
    labels: dict[str, str]
    ip: str | None


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(str(op), False)
        if not ok:
            return False
    return True


def _peer(
    peer: dict[str, Any], policy_ns: str, other: Endpoint, ns_labels: dict[str, dict[str, str]]
) -> bool:
    block = peer.get("ipBlock")
    if block is not None:
        if not other.ip:
            return False
        ip = ipaddress.ip_address(other.ip)
        return ip in ipaddress.ip_network(block["cidr"], strict=False) and not any(
            ip in ipaddress.ip_network(e, strict=False) for e in block.get("except") or []
        )
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    ns_ok = (
        other.namespace == policy_ns
        if ns_sel is None
        else selects(ns_sel, ns_labels.get(other.namespace, {}))
    )
    return ns_ok and selects(pod_sel, other.labels)


def _port(ports: list[dict[str, Any]] | None, protocol: str, port: int) -> bool:
    if not ports:
        return True
    for p in ports:
        if str(p.get("protocol") or "TCP").lower() != protocol:
            continue
        number = p.get("port")
        if number is None:
            return True
        if isinstance(number, int) and number <= port <= int(p.get("endPort") or number):
            return True
    return False


def _types(policy: dict[str, Any]) -> list[str]:
    spec = policy.get("spec") or {}
    return list(spec.get("policyTypes") or (["Ingress"] + (["Egress"] if spec.get("egress") else [])))


def _direction(
    policies: list[dict[str, Any]],
    ns_labels: dict[str, dict[str, str]],
    pod: Endpoint,
    other: Endpoint,
    protocol: str,
    port: int,
    kind: str,
) -> tuple[bool, list[str]]:
    """(allowed, the policies that decided) for `pod`'s ingress (kind Ingress: other is the source) or
    egress (kind Egress: other is the destination)."""
    isolating = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and kind in _types(p)
        and selects((p.get("spec") or {}).get("podSelector") or {}, pod.labels)
    ]
    if not isolating:
        return True, []
    key, peers = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    allowing = [
        p
        for p in isolating
        for rule in (p.get("spec") or {}).get(key) or []
        if _port(rule.get("ports"), protocol, port)
        and (not rule.get(peers) or any(_peer(x, pod.namespace, other, ns_labels) for x in rule[peers]))
    ]
    names = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in (allowing or isolating)]
    return bool(allowing), sorted(set(names))


def decide(
    policies: list[dict[str, Any]],
    ns_labels: dict[str, dict[str, str]],
    dst: Endpoint,
    src: Endpoint,
    protocol: str,
    port: int,
) -> tuple[str, str]:
    """("allow"|"deny", why: which policies decided)."""
    ingress, by_in = _direction(policies, ns_labels, dst, src, protocol, port, "Ingress")
    egress, by_out = _direction(policies, ns_labels, src, dst, protocol, port, "Egress")
    if not ingress:
        return "deny", f"denied by {', '.join(by_in)} (ingress)"
    if not egress:
        return "deny", f"denied by {', '.join(by_out)} (egress)"
    by = by_in + by_out
    return "allow", (f"allowed by {', '.join(sorted(set(by)))}" if by else "no policy isolates either pod")


def numeric_ports(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: set[tuple[str, int]] = set()
    for p in policies:
        spec = p.get("spec") or {}
        for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
            for port in rule.get("ports") or []:
                proto = str(port.get("protocol") or "TCP").lower()
                if isinstance(port.get("port"), int) and proto in ("tcp", "udp"):
                    found.add((proto, int(port["port"])))
    return [
        {"protocol": proto, "port": number} for proto, number in sorted(found, key=lambda x: (x[1], x[0]))
    ]


def derive(
    topo: Topology, policies: list[dict[str, Any]], ns_labels: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """The table of `--policy-check` (ports: every numeric port the policies name; ValueError if none)."""
    ports = numeric_ports(policies)
    if not ports:
        raise ValueError(
            "--policy-check: the NetworkPolicies of the workloads' namespaces name no numeric port to "
            "check (give the flows with --policy-table)"
        )
    ends: dict[str, Endpoint] = {}
    for w in topo.workloads:
        for pod in w.pods:
            ends[w.subject(pod.node)] = Endpoint(w.namespace, w.labels.get(pod.name, {}), pod.ip)
    computed: dict[str, list[str]] = {}
    for s, src in ends.items():
        for d, dst in ends.items():
            if s == d:
                continue
            for port in ports:
                want, why = decide(policies, ns_labels, dst, src, port["protocol"], port["port"])
                computed[f"{s}|{d}|{port['protocol']}/{port['port']}"] = [want, why]
    return {
        "file": "--policy-check",
        "workloads": [w.ref for w in topo.workloads],
        "addresses": [],
        "ports": ports,
        "default": "allow",
        "rules": [],
        "namespace_labels": ns_labels,
        "computed": computed,
        "policies": sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in policies),
    }
