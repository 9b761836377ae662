"""iptables rule sets of the lab, rendered as whole `iptables-restore` documents.

Pure functions: a node's `nat` and `filter` tables are a function of the Services (with their ready
backends) and the node's fault flags, so a resync is one atomic `iptables-restore` per node and
clearing a fault is "render again without the flag", which restores exactly the healthy rules.

The shape follows kube-proxy's iptables mode, with `NC-` instead of `KUBE-` chains:
NC-SERVICES (ClusterIP and LB ingress IP portals, NodePorts for local destinations) → NC-SVC-*
(random balancing with the statistic module) → NC-SEP-* (DNAT to one backend); traffic that needs
masquerading (from outside the pod network to a ClusterIP, everything arriving via NodePort or LB IP,
hairpin) is marked 0x4000 and masqueraded in POSTROUTING. Pod egress to anything outside the pod
network leaves with the node IP (NC-EGRESS), like flannel's ip-masq. Services without ready backends
are REJECTed (connection refused), as kube-proxy does.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from netconform.lab.addressing import MASQ_MARK, OVERLAY_PORT, POD_SUPERNET

PROTOCOLS = ("TCP", "UDP")
FABRIC_UPLINK = "eth0"  # a node's interface on the fabric

# node fault flags understood by render_node_tables
FLAG_NO_SERVICE_NAT = "no-service-nat"  # FM-08
FLAG_NO_EGRESS_SNAT = "no-egress-snat"  # FM-11
FLAG_SNAT_EXHAUSTED = "snat-exhausted"  # FM-30
FLAG_DROP_FRAG_NEEDED = "drop-frag-needed"  # FM-31
NODE_FLAGS = (FLAG_NO_SERVICE_NAT, FLAG_NO_EGRESS_SNAT, FLAG_SNAT_EXHAUSTED, FLAG_DROP_FRAG_NEEDED)

# with FM-30 the masquerade may only use these source ports (held by conntrack entries)
EXHAUSTED_PORTS = (61000, 61003)


@dataclass(frozen=True)
class Backend:
    """One ready endpoint of a Service port: the pod IP and the container port."""

    ip: str
    port: int


@dataclass(frozen=True)
class ServicePort:
    protocol: str  # "TCP" or "UDP"
    port: int
    backends: tuple[Backend, ...] = ()
    node_port: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"service port protocol {self.protocol!r}: use TCP or UDP")
        for number in (self.port, self.node_port or 1, *(b.port for b in self.backends)):
            if not 1 <= number <= 65535:
                raise ValueError(f"service port {number}: must be 1..65535")


@dataclass(frozen=True)
class ServiceNAT:
    """What kube-proxy needs of one Service: its addresses, ports and ready backends."""

    key: str  # "namespace/name"
    cluster_ip: str | None  # None: headless, no NAT at all
    ports: tuple[ServicePort, ...] = ()
    lb_ips: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "cluster_ip": self.cluster_ip,
            "lb_ips": list(self.lb_ips),
            "ports": [
                {
                    "protocol": p.protocol,
                    "port": p.port,
                    "node_port": p.node_port,
                    "name": p.name,
                    "backends": [[b.ip, b.port] for b in p.backends],
                }
                for p in self.ports
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceNAT:
        return cls(
            key=data["key"],
            cluster_ip=data.get("cluster_ip"),
            lb_ips=tuple(data.get("lb_ips") or ()),
            ports=tuple(
                ServicePort(
                    protocol=p["protocol"],
                    port=int(p["port"]),
                    node_port=p.get("node_port"),
                    name=p.get("name", ""),
                    backends=tuple(Backend(ip, int(port)) for ip, port in p.get("backends", [])),
                )
                for p in data.get("ports", [])
            ),
        )


def _chain(kind: str, *parts: object) -> str:
    """kube-proxy style chain name: a stable hash, short enough for iptables (<= 28 chars)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return f"NC-{kind}-" + base64.b32encode(digest).decode()[:16]


def _probability(remaining: int) -> str:
    return f"{1.0 / remaining:.10f}"


def _service_rules(services: Iterable[ServiceNAT]) -> tuple[list[str], list[str], list[str]]:
    """(chain declarations, nat rules, filter REJECT rules) for all services."""
    chains: list[str] = []
    nat: list[str] = []
    nodeports: list[str] = []
    reject: list[str] = []
    for svc in sorted(services, key=lambda s: s.key):
        if not svc.cluster_ip:
            continue  # headless: DNS hands out pod IPs, nothing to translate
        for sp in svc.ports:
            proto = sp.protocol.lower()
            match = f"-p {proto} -m {proto}"
            comment = f'-m comment --comment "{svc.key}:{sp.name or sp.port}/{sp.protocol}"'
            portals = [f"-d {svc.cluster_ip}/32 {match} --dport {sp.port}"]
            external = [f"-d {ip}/32 {match} --dport {sp.port}" for ip in svc.lb_ips]
            if not sp.backends:
                reject += [f"-A NC-SERVICES {comment} {p} -j REJECT" for p in portals + external]
                if sp.node_port:
                    reject.append(
                        f"-A NC-SERVICES {comment} -m addrtype --dst-type LOCAL {match} "
                        f"--dport {sp.node_port} -j REJECT"
                    )
                continue
            svc_chain = _chain("SVC", svc.key, sp.protocol, sp.port)
            chains.append(svc_chain)
            nat.append(f"-A NC-SERVICES {comment} {portals[0]} -j {svc_chain}")
            nat.append(f"-A {svc_chain} ! -s {POD_SUPERNET} {portals[0]} -j NC-MARK-MASQ")
            if external or sp.node_port:
                ext_chain = _chain("EXT", svc.key, sp.protocol, sp.port)
                chains.append(ext_chain)
                nat += [f"-A NC-SERVICES {comment} {p} -j {ext_chain}" for p in external]
                if sp.node_port:
                    nodeports.append(
                        f"-A NC-NODEPORTS {comment} {match} --dport {sp.node_port} -j {ext_chain}"
                    )
                nat += [f"-A {ext_chain} -j NC-MARK-MASQ", f"-A {ext_chain} -j {svc_chain}"]
            backends = sorted(set(sp.backends), key=lambda b: (b.ip, b.port))
            for index, backend in enumerate(backends):
                sep_chain = _chain("SEP", svc.key, sp.protocol, sp.port, backend.ip, backend.port)
                chains.append(sep_chain)
                remaining = len(backends) - index
                pick = (
                    ""
                    if remaining == 1
                    else f"-m statistic --mode random --probability {_probability(remaining)} "
                )
                nat.append(f"-A {svc_chain} {comment} {pick}-j {sep_chain}")
                nat.append(f"-A {sep_chain} -s {backend.ip}/32 -j NC-MARK-MASQ")
                nat.append(f"-A {sep_chain} {match} -j DNAT --to-destination {backend.ip}:{backend.port}")
    return chains, nat + nodeports, reject


def render_node_tables(services: Iterable[ServiceNAT], flags: Iterable[str] = ()) -> str:
    """The whole `nat` and `filter` tables of one node namespace, for `iptables-restore`."""
    flag_set = set(flags)
    unknown = flag_set - set(NODE_FLAGS)
    if unknown:
        raise ValueError(f"unknown node flags: {', '.join(sorted(unknown))}")
    chains: list[str] = []
    nat_rules: list[str] = []
    reject_rules: list[str] = []
    if FLAG_NO_SERVICE_NAT not in flag_set:
        chains, nat_rules, reject_rules = _service_rules(services)
    egress: list[str] = [f"-A NC-EGRESS -s {POD_SUPERNET} -d {POD_SUPERNET} -j RETURN"]
    if FLAG_NO_EGRESS_SNAT in flag_set:
        pass
    elif FLAG_SNAT_EXHAUSTED in flag_set:
        low, high = EXHAUSTED_PORTS
        egress += [
            f"-A NC-EGRESS -s {POD_SUPERNET} -o {FABRIC_UPLINK} -p {proto} "
            f"-j MASQUERADE --to-ports {low}-{high}"
            for proto in ("tcp", "udp")
        ]
        egress.append(f"-A NC-EGRESS -s {POD_SUPERNET} -o {FABRIC_UPLINK} -j MASQUERADE")
    else:
        egress.append(f"-A NC-EGRESS -s {POD_SUPERNET} -o {FABRIC_UPLINK} -j MASQUERADE")
    nat = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":NC-SERVICES - [0:0]",
        ":NC-NODEPORTS - [0:0]",
        ":NC-MARK-MASQ - [0:0]",
        ":NC-POSTROUTING - [0:0]",
        ":NC-EGRESS - [0:0]",
        *(f":{c} - [0:0]" for c in chains),
        '-A PREROUTING -m comment --comment "service portals" -j NC-SERVICES',
        '-A OUTPUT -m comment --comment "service portals" -j NC-SERVICES',
        "-A POSTROUTING -j NC-POSTROUTING",
        f"-A NC-MARK-MASQ -j MARK --set-xmark {MASQ_MARK}",
        f"-A NC-POSTROUTING -m mark --mark {MASQ_MARK} -j MASQUERADE",
        "-A NC-POSTROUTING -j NC-EGRESS",
        *egress,
        *nat_rules,
        "-A NC-SERVICES -m addrtype --dst-type LOCAL -j NC-NODEPORTS",
        "COMMIT",
    ]
    faults = []
    if FLAG_DROP_FRAG_NEEDED in flag_set:
        faults.append("-A NC-FAULTS -p icmp -m icmp --icmp-type fragmentation-needed -j DROP")
    filt = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":NC-SERVICES - [0:0]",
        ":NC-FAULTS - [0:0]",
        "-A INPUT -m conntrack --ctstate NEW -j NC-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW -j NC-SERVICES",
        "-A OUTPUT -m conntrack --ctstate NEW -j NC-SERVICES",
        "-A OUTPUT -j NC-FAULTS",
        *reject_rules,
        *faults,
        "COMMIT",
    ]
    return "\n".join(nat + filt) + "\n"


def render_fabric_table(
    tunnel_blocked: Iterable[str], partitioned: Iterable[str], node_ips: dict[str, str], ports: dict[str, str]
) -> str:
    """The fabric switch's `filter` table (bridged IPv4 passes it thanks to br_netfilter).

    `tunnel_blocked`: node names whose UDP 6081 is dropped ("*" for all). `partitioned`: node names cut
    from every other node (by bridge port, so the overlay, node IPs and LB VIPs are all cut).
    `ports`: node name → its port on the fabric bridge.
    """
    rules: list[str] = []
    blocked = set(tunnel_blocked)
    if "*" in blocked:
        rules.append(f"-A NC-FABRIC -p udp -m udp --dport {OVERLAY_PORT} -j DROP")
    else:
        for node in sorted(blocked):
            ip = node_ips[node]
            rules.append(f"-A NC-FABRIC -s {ip}/32 -p udp -m udp --dport {OVERLAY_PORT} -j DROP")
            rules.append(f"-A NC-FABRIC -d {ip}/32 -p udp -m udp --dport {OVERLAY_PORT} -j DROP")
    for node in sorted(set(partitioned)):
        for other in sorted(ports):
            if other == node:
                continue
            for src, dst in ((node, other), (other, node)):
                rules.append(
                    f"-A NC-FABRIC -m physdev --physdev-in {ports[src]} --physdev-out {ports[dst]} -j DROP"
                )
    lines = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":NC-FABRIC - [0:0]",
        "-A FORWARD -j NC-FABRIC",
        *rules,
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"
