"""NetworkPolicy (networking.k8s.io/v1) in the lab: compiled from the API state, enforced per node.

Two pure steps, like the service rules of `iptrules.py`:

1. `compile_policies(pods, namespaces, policies, nodes)` resolves every policy against the pods and
   namespaces now in the API (podSelector / namespaceSelector with matchLabels and matchExpressions,
   ipBlock with except, numeric and named ports, protocol TCP/UDP/SCTP, endPort) into, per node, one
   entry per *local* pod that some policy isolates: its IP and the allowed peers and ports for ingress
   and/or egress (JSON, kept in the data plane's state so a CLI process sees it too).
2. `render(entries)` turns one node's entries into the lab's own filter chains: `NC-POLICY`, jumped to
   from FORWARD, lets replies through (conntrack ESTABLISHED,RELATED), then sends traffic from a local
   isolated pod to its egress chain (`NC-PE-*`) and traffic towards one to its ingress chain
   (`NC-PI-*`). An allowed flow sets a mark bit (0x10000 egress, 0x20000 ingress); a flow that leaves a
   pod chain without its bit is dropped silently (as most CNIs do); the bits are cleared again at the
   end of NC-POLICY, so the service rules and the masquerade mark see the packet as before. ipBlock
   `except` ranges get a small chain of their own (`NC-PX-*`: excepts RETURN first).

Semantics as in the Kubernetes API: a pod is isolated for a direction when a policy selecting it has
that policyType (Ingress always unless only Egress is listed; Egress when listed or when the policy has
egress rules); policies are additive (the union of their rules); an empty rule list denies all; a rule
without `from`/`to` allows every peer, without `ports` every port. A peer `podSelector` alone selects
pods of the policy's namespace, `namespaceSelector` alone every pod of the matching namespaces, both
together the matching pods of the matching namespaces. hostNetwork pods are never selected and are not
pod peers (only ipBlock can name their node addresses). Enforcement is in the FORWARD path only: the
node itself (kubelet, hostNetwork pods on that node) always reaches its own pods, as with Calico/Cilium
defaults.

The faults `netpol-not-enforced` (the node renders no policy rules) and `netpol-stale` (the node keeps
the entries it had when the fault was added) are node flags read by `netplane.py`.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from netconform.lab.net.iptrules import Jump, OwnedRules

Obj = dict[str, Any]

FLAG_NOT_ENFORCED = "netpol-not-enforced"  # the node ignores every policy
FLAG_STALE = "netpol-stale"  # the node stops updating its policy rules
FLAGS = (FLAG_NOT_ENFORCED, FLAG_STALE)

EGRESS_BIT = "0x10000"
INGRESS_BIT = "0x20000"
BITS = "0x30000"
PROTOCOLS = ("TCP", "UDP", "SCTP")
POLICY_CHAIN = "NC-POLICY"


# ------------------------------------------------------------------------------------ selectors
def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions); `{}` matches everything."""
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def validate(policy: Obj) -> list[tuple[str, str]]:
    """The API's validation of a NetworkPolicy: (field, message) causes; empty when valid."""
    causes: list[tuple[str, str]] = []
    spec = policy.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    for i, ptype in enumerate(spec.get("policyTypes") or []):
        if ptype not in ("Ingress", "Egress"):
            causes.append(
                (
                    f"spec.policyTypes[{i}]",
                    f'Unsupported value: "{ptype}": supported values: "Egress", "Ingress"',
                )
            )
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            where = f"spec.{direction}[{i}]"
            for j, port in enumerate(rule.get("ports") or []):
                proto = port.get("protocol", "TCP")
                if proto not in PROTOCOLS:
                    causes.append(
                        (
                            f"{where}.ports[{j}].protocol",
                            f'Unsupported value: "{proto}": supported values: "SCTP", "TCP", "UDP"',
                        )
                    )
                number, end = port.get("port"), port.get("endPort")
                if isinstance(number, int) and not 1 <= number <= 65535:
                    causes.append((f"{where}.ports[{j}].port", f"Invalid value: {number}: must be 1..65535"))
                if end is not None:
                    if not isinstance(number, int):
                        causes.append(
                            (
                                f"{where}.ports[{j}].endPort",
                                "Invalid value: may not be specified when port is not specified "
                                "or is a named port",
                            )
                        )
                    elif not isinstance(end, int) or not number <= end <= 65535:
                        causes.append(
                            (
                                f"{where}.ports[{j}].endPort",
                                f"Invalid value: {end}: must be >= port and <= 65535",
                            )
                        )
            for j, peer in enumerate(rule.get(peers_key) or []):
                block = peer.get("ipBlock")
                if block is None:
                    continue
                if peer.get("podSelector") is not None or peer.get("namespaceSelector") is not None:
                    causes.append(
                        (
                            f"{where}.{peers_key}[{j}]",
                            "Forbidden: may not specify more than 1 peer type when ipBlock is set",
                        )
                    )
                try:
                    net = ipaddress.ip_network(str(block.get("cidr", "")), strict=False)
                except ValueError:
                    causes.append(
                        (f"{where}.{peers_key}[{j}].ipBlock.cidr", f"Invalid value: {block.get('cidr')!r}")
                    )
                    continue
                for k, exc in enumerate(block.get("except") or []):
                    try:
                        inner = ipaddress.ip_network(str(exc), strict=False)
                    except ValueError:
                        inner = None
                    if inner is None or inner.version != net.version or not inner.subnet_of(net):  # type: ignore[arg-type]
                        causes.append(
                            (
                                f"{where}.{peers_key}[{j}].ipBlock.except[{k}]",
                                f"Invalid value: {exc!r}: must be a strict subset of `cidr`",
                            )
                        )
    return causes


# ------------------------------------------------------------------------------------ compile
class _PodView:
    """What compilation needs of one running pod."""

    def __init__(self, pod: Obj) -> None:
        meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        self.namespace: str = meta.get("namespace", "")
        self.name: str = meta["name"]
        self.key = f"{self.namespace}/{self.name}"
        self.labels: dict[str, str] = dict(meta.get("labels") or {})
        self.node: str = spec.get("nodeName", "")
        self.ip: str = status.get("podIP", "")
        self.ports: dict[str, tuple[str, int]] = {}
        for c in spec.get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") and isinstance(p.get("containerPort"), int):
                    self.ports[p["name"]] = (p.get("protocol", "TCP"), p["containerPort"])


def _candidate(pod: Obj) -> bool:
    spec, status = pod.get("spec", {}), pod.get("status", {})
    return (
        bool(status.get("podIP"))
        and bool(spec.get("nodeName"))
        and not spec.get("hostNetwork")
        and status.get("phase") not in ("Succeeded", "Failed")
    )


def _policy_types(spec: Obj) -> set[str]:
    listed = spec.get("policyTypes")
    if listed:
        return set(listed)
    return {"Ingress", "Egress"} if spec.get("egress") else {"Ingress"}


Allow = dict[
    str, Any
]  # {"cidr": str | None, "except": [str], "protocol": str | None, "port": int | None, "end": int | None}


def _ports_for(
    port_specs: Sequence[Obj] | None, named_on: _PodView | None
) -> list[tuple[str | None, int | None, int | None]] | None:
    """(protocol, port, endPort) matches of a rule's ports; None: every port. A named port resolves on
    `named_on` (the destination pod) and matches nothing where that pod has no such port."""
    if not port_specs:
        return None
    out: list[tuple[str | None, int | None, int | None]] = []
    for spec in port_specs:
        proto = spec.get("protocol", "TCP")
        port = spec.get("port")
        if port is None:
            out.append((proto, None, None))
        elif isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            out.append((proto, int(port), spec.get("endPort")))
        elif named_on is not None and port in named_on.ports:
            pproto, number = named_on.ports[port]
            if pproto == proto:
                out.append((proto, number, None))
    return out


def _has_named(port_specs: Sequence[Obj] | None) -> bool:
    return any(isinstance(p.get("port"), str) and not str(p["port"]).isdigit() for p in port_specs or [])


def _peer_pods(
    peer: Obj, policy_ns: str, pods: Sequence[_PodView], ns_labels: Mapping[str, Mapping[str, str]]
) -> list[_PodView]:
    pod_sel, ns_sel = peer.get("podSelector"), peer.get("namespaceSelector")
    out = []
    for p in pods:
        if ns_sel is None:
            if p.namespace != policy_ns:
                continue
        elif not selector_matches(ns_sel, ns_labels.get(p.namespace)):
            continue
        if pod_sel is not None and not selector_matches(pod_sel, p.labels):
            continue
        out.append(p)
    return out


def _in_block(ip: str, block: Obj) -> bool:
    addr = ipaddress.ip_address(ip)
    if addr not in ipaddress.ip_network(block["cidr"], strict=False):
        return False
    return not any(addr in ipaddress.ip_network(e, strict=False) for e in block.get("except") or [])


def _rule_allows(
    rule: Obj,
    peers_key: str,
    policy_ns: str,
    local: _PodView,
    pods: Sequence[_PodView],
    ns_labels: Mapping[str, Mapping[str, str]],
    egress: bool,
) -> list[Allow]:
    """The allow entries of one ingress/egress rule for the isolated pod `local`."""
    peers = rule.get(peers_key)
    port_specs = rule.get("ports")
    out: list[Allow] = []

    def add(
        cidr: str | None,
        excepts: Sequence[str],
        ports: list[tuple[str | None, int | None, int | None]] | None,
    ) -> None:
        if ports is None:
            out.append({"cidr": cidr, "except": list(excepts), "protocol": None, "port": None, "end": None})
            return
        for proto, port, end in ports:
            out.append({"cidr": cidr, "except": list(excepts), "protocol": proto, "port": port, "end": end})

    named_by_peer = egress and _has_named(port_specs)
    if not peers:
        if named_by_peer:  # egress to a named port: every pod that has it
            for p in pods:
                add(f"{p.ip}/32", (), _ports_for(port_specs, p))
        else:
            add(None, (), _ports_for(port_specs, None if egress else local))
        return out
    for peer in peers:
        block = peer.get("ipBlock")
        if block is not None:
            if named_by_peer:
                for p in pods:
                    if _in_block(p.ip, block):
                        add(f"{p.ip}/32", (), _ports_for(port_specs, p))
            else:
                net = str(ipaddress.ip_network(block["cidr"], strict=False))
                excepts = [str(ipaddress.ip_network(e, strict=False)) for e in block.get("except") or []]
                add(net, excepts, _ports_for(port_specs, None if egress else local))
            continue
        for p in _peer_pods(peer, policy_ns, pods, ns_labels):
            add(f"{p.ip}/32", (), _ports_for(port_specs, p if egress else local))
    return out


def compile_policies(
    pods: Iterable[Obj], namespaces: Iterable[Obj], policies: Iterable[Obj], nodes: Sequence[str]
) -> dict[str, list[Obj]]:
    """node → entries {"key", "ip", "ingress": [Allow] | None, "egress": [Allow] | None, "policies"}
    for every local pod some policy isolates (None: not isolated in that direction)."""
    views = [_PodView(p) for p in pods if _candidate(p)]
    ns_labels = {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {}) for n in namespaces}
    per_pod: dict[str, Obj] = {}
    for pol in sorted(policies, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        ns, spec = pol["metadata"].get("namespace", ""), pol.get("spec") or {}
        types = _policy_types(spec)
        for local in views:
            if local.namespace != ns or not selector_matches(spec.get("podSelector") or {}, local.labels):
                continue
            entry = per_pod.setdefault(
                local.key,
                {
                    "key": local.key,
                    "ip": local.ip,
                    "node": local.node,
                    "ingress": None,
                    "egress": None,
                    "policies": [],
                },
            )
            entry["policies"].append(f"{ns}/{pol['metadata']['name']}")
            for direction, peers_key, ptype in (("ingress", "from", "Ingress"), ("egress", "to", "Egress")):
                if ptype not in types:
                    continue
                allows = entry[direction] if entry[direction] is not None else []
                for rule in spec.get(direction) or []:
                    allows += _rule_allows(
                        rule, peers_key, ns, local, views, ns_labels, direction == "egress"
                    )
                entry[direction] = allows
    out: dict[str, list[Obj]] = {n: [] for n in nodes}
    for key in sorted(per_pod):
        entry = per_pod[key]
        node = entry.pop("node")
        if node in out:
            out[node].append(entry)
    return out


# ------------------------------------------------------------------------------------ render
def _chain(kind: str, *parts: object) -> str:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return f"NC-{kind}-" + base64.b32encode(digest).decode()[:16]


def _port_match(allow: Allow) -> str:
    proto = allow.get("protocol")
    if proto is None:
        return ""
    p = str(proto).lower()
    port = allow.get("port")
    if port is None:
        return f"-p {p}"
    end = allow.get("end")
    return f"-p {p} -m {p} --dport {port}" + (f":{end}" if end else "")


def _direction_rules(
    chain: str, allows: Sequence[Allow], addr: str, bit: str, chains: dict[str, list[str]]
) -> None:
    """Rules of one pod chain: each allow sets `bit`; leaving without it drops."""
    rules: list[str] = []
    set_bit = f"-j MARK --set-xmark {bit}/{bit}"
    for allow in allows:
        ports = _port_match(allow)
        cidr = allow.get("cidr")
        where = f"{addr} {cidr}" if cidr else ""
        if allow.get("except"):
            sub = _chain("PX", chain, cidr, *allow["except"], ports)
            if sub not in chains:
                chains[sub] = [f"{addr} {e} -j RETURN" for e in allow["except"]]
                chains[sub].append(" ".join(x for x in (where, ports, set_bit) if x))
            rules.append(f"-j {sub}")
        else:
            rules.append(" ".join(x for x in (where, ports, set_bit) if x))
    rules.append(f"-m mark --mark 0x0/{bit} -j DROP")
    chains[chain] = list(dict.fromkeys(rules))


def render(entries: Sequence[Obj]) -> tuple[dict[str, list[str]], tuple[Jump, ...]]:
    """One node's policy chains (filter table) and the jump into them; nothing when no pod is isolated."""
    if not entries:
        return {}, ()
    top = [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        f"-j MARK --set-xmark 0x0/{BITS}",
    ]
    chains: dict[str, list[str]] = {POLICY_CHAIN: top}
    for entry in entries:
        ip = f"{entry['ip']}/32"
        comment = f'-m comment --comment "{entry["key"]}"'
        if entry.get("egress") is not None:
            chain = _chain("PE", entry["key"], entry["ip"])
            top.append(f"-s {ip} {comment} -j {chain}")
            _direction_rules(chain, entry["egress"], "-d", EGRESS_BIT, chains)
        if entry.get("ingress") is not None:
            chain = _chain("PI", entry["key"], entry["ip"])
            top.append(f"-d {ip} {comment} -j {chain}")
            _direction_rules(chain, entry["ingress"], "-s", INGRESS_BIT, chains)
    top.append(f"-j MARK --set-xmark 0x0/{BITS}")
    return chains, (Jump("filter", "FORWARD", f"-j {POLICY_CHAIN}"),)


def with_policies(owned: OwnedRules, entries: Sequence[Obj] | None) -> OwnedRules:
    """`owned` (a node's service rules) plus its policy chains; `entries` None: not enforced."""
    chains, jumps = render(entries or [])
    if not chains:
        return owned
    tables = {table: dict(specs) for table, specs in owned.chains.items()}
    tables.setdefault("filter", {}).update(chains)
    return OwnedRules(chains=tables, jumps=(*owned.jumps, *jumps))


def node_entries(
    node: str, flags: Iterable[str], current: Mapping[str, list[Obj]], frozen: Mapping[str, list[Obj]]
) -> list[Obj] | None:
    """What a node enforces now: nothing under netpol-not-enforced, the snapshot under netpol-stale."""
    flag_set = set(flags)
    if FLAG_NOT_ENFORCED in flag_set:
        return None
    if FLAG_STALE in flag_set and node in frozen:
        return frozen[node]
    return current.get(node, [])


def freeze(
    flags: Mapping[str, list[str]], current: Mapping[str, list[Obj]], frozen: dict[str, list[Obj]]
) -> None:
    """Keep a snapshot of the entries of every node under netpol-stale (taken when the flag came on)."""
    for node in list(frozen):
        if FLAG_STALE not in flags.get(node, []):
            del frozen[node]
    for node, node_flags in flags.items():
        if FLAG_STALE in node_flags and node not in frozen:
            frozen[node] = list(current.get(node, []))
