"""iptables rule sets of the lab: its own chains and the jumps into them, like kube-proxy.

Pure functions: what the lab owns in a node's `nat` and `filter` tables is a function of the Services
(with their ready backends) and the node's fault flags, so a resync is one atomic
`iptables-restore --noflush` per node and clearing a fault is "render again without the flag", which
restores exactly the healthy rules. Like kube-proxy, the lab writes only its own `NC-*` chains (declaring
a chain in a `--noflush` restore flushes just that chain) and makes sure each jump into them exists in
the built-in chains; it never flushes or rewrites a built-in chain, never sets a policy and never touches
a table it owns nothing in, so a firewall rule somebody else adds to a lab node stays and takes effect:

>>> owned = render_node_tables([])
>>> doc = restore_document(owned, saved="")
>>> "--noflush" in RESTORE_ARGS and ":FORWARD" not in doc and "-I PREROUTING 1" in doc
True

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
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netconform.lab.net.addressing import MASQ_MARK, OVERLAY_PORT, POD_SUPERNET

PROTOCOLS = ("TCP", "UDP")
FABRIC_UPLINK = "eth0"  # a node's interface on the fabric

# node fault flags understood by render_node_tables
FLAG_NO_SERVICE_NAT = "no-service-nat"  # FM-08
FLAG_NO_EGRESS_SNAT = "no-egress-snat"  # FM-11
FLAG_SNAT_EXHAUSTED = "snat-exhausted"  # FM-30
FLAG_DROP_FRAG_NEEDED = "drop-frag-needed"  # FM-31
NODE_FLAGS = (FLAG_NO_SERVICE_NAT, FLAG_NO_EGRESS_SNAT, FLAG_SNAT_EXHAUSTED, FLAG_DROP_FRAG_NEEDED)

# every chain the lab owns starts with this; any other chain belongs to somebody else
OWN_PREFIX = "NC-"
BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
RESTORE_ARGS = ("--noflush",)

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


def render_node_tables(services: Iterable[ServiceNAT], flags: Iterable[str] = ()) -> OwnedRules:
    """What the lab owns in one node namespace's `nat` and `filter` tables."""
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
    nat_chains: dict[str, list[str]] = {
        "NC-SERVICES": [],
        "NC-NODEPORTS": [],
        "NC-MARK-MASQ": [f"-j MARK --set-xmark {MASQ_MARK}"],
        "NC-POSTROUTING": [f"-m mark --mark {MASQ_MARK} -j MASQUERADE", "-j NC-EGRESS"],
        "NC-EGRESS": [],
    }
    nat_chains.update({c: [] for c in chains})
    _add_rules(nat_chains, egress + nat_rules)
    nat_chains["NC-SERVICES"].append("-m addrtype --dst-type LOCAL -j NC-NODEPORTS")
    filter_chains: dict[str, list[str]] = {"NC-SERVICES": [], "NC-FAULTS": []}
    if FLAG_DROP_FRAG_NEEDED in flag_set:
        filter_chains["NC-FAULTS"].append("-p icmp -m icmp --icmp-type fragmentation-needed -j DROP")
    _add_rules(filter_chains, reject_rules)
    portals = '-m comment --comment "service portals"'
    new = "-m conntrack --ctstate NEW"
    return OwnedRules(
        chains={"nat": nat_chains, "filter": filter_chains},
        jumps=(
            Jump("nat", "PREROUTING", f"{portals} -j NC-SERVICES"),
            Jump("nat", "OUTPUT", f"{portals} -j NC-SERVICES"),
            Jump("nat", "POSTROUTING", "-j NC-POSTROUTING"),
            Jump("filter", "INPUT", f"{new} -j NC-SERVICES"),
            Jump("filter", "FORWARD", f"{new} -j NC-SERVICES"),
            Jump("filter", "OUTPUT", f"{new} -j NC-SERVICES"),
            Jump("filter", "OUTPUT", "-j NC-FAULTS"),
        ),
    )


def _add_rules(chains: dict[str, list[str]], rules: Iterable[str]) -> None:
    """Sort `-A CHAIN spec` lines into their chains (each chain keeps the order given)."""
    for rule in rules:
        _, chain, spec = rule.split(" ", 2)
        chains[chain].append(spec)


def render_fabric_table(
    tunnel_blocked: Iterable[str], partitioned: Iterable[str], node_ips: dict[str, str], ports: dict[str, str]
) -> OwnedRules:
    """What the lab owns in the fabric switch's `filter` table (bridged IPv4 passes it: br_netfilter).

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
    chains: dict[str, list[str]] = {"NC-FABRIC": []}
    _add_rules(chains, rules)
    return OwnedRules(chains={"filter": chains}, jumps=(Jump("filter", "FORWARD", "-j NC-FABRIC"),))


# ------------------------------------------------------------------------ owned rules and restores
@dataclass(frozen=True)
class Jump:
    """A rule in a built-in chain that jumps into one of the lab's chains (kube-proxy's jump rules)."""

    table: str
    chain: str  # a built-in chain
    spec: str  # match and `-j NC-...`

    @property
    def target(self) -> str:
        return self.spec.rsplit("-j ", 1)[1].split()[0]


@dataclass(frozen=True)
class OwnedRules:
    """Everything the lab owns in one namespace: its chains (table → chain → rule specs) and jumps.

    `str()` gives a readable listing (`-A CHAIN spec` lines per table) for tests and `lab status`.
    """

    chains: Mapping[str, Mapping[str, list[str]]]
    jumps: tuple[Jump, ...] = ()

    def __str__(self) -> str:
        lines: list[str] = []
        for table, chains in self.chains.items():
            lines.append(f"*{table}")
            lines += [f":{c} - [0:0]" for c in chains]
            lines += [f"-I {j.chain} 1 {j.spec}" for j in self.jumps if j.table == table]
            lines += [f"-A {c} {spec}" for c, specs in chains.items() for spec in specs]
            lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    def digest(self) -> str:
        return hashlib.sha256(str(self).encode()).hexdigest()


_SAVED_CHAIN = re.compile(r"^:(\S+) ")
_SAVED_RULE = re.compile(r"^(?:\[\d+:\d+\] )?-A (\S+) (.*)$")


_Saved = tuple[set[str], dict[str, dict[str, str]]]


def _saved_tables(saved: str) -> dict[str, _Saved]:
    """`iptables-save` text → table → (chain names, chain → {jump target: the rule's spec as saved})."""
    tables: dict[str, _Saved] = {}
    current: _Saved | None = None
    for line in saved.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), (set(), {}))
        elif current is None:
            continue
        elif match := _SAVED_CHAIN.match(line):
            current[0].add(match.group(1))
        elif match := _SAVED_RULE.match(line):
            jump = re.search(r"(?:^| )-[jg] (\S+)", match.group(2))
            if jump:
                current[1].setdefault(match.group(1), {}).setdefault(jump.group(1), match.group(2))
    return tables


def restore_document(owned: OwnedRules, saved: str) -> str:
    r"""The `iptables-restore --noflush` input that makes the namespace's lab rules exactly `owned`.

    `saved` is the namespace's current `iptables-save`: lab chains no longer wanted are flushed and
    deleted, missing jumps are inserted at the top of their built-in chain (as kube-proxy prepends its
    own), jumps already there stay where they are, and nothing else of any table is touched.

    >>> owned = OwnedRules({"filter": {"NC-A": ["-j DROP"]}}, (Jump("filter", "FORWARD", "-j NC-A"),))
    >>> saved = "*filter\n:FORWARD ACCEPT [0:0]\n:NC-OLD - [0:0]\n-A FORWARD -s 10.1.0.0/16 -j DROP\nCOMMIT\n"
    >>> doc = restore_document(owned, saved)
    >>> print(doc, end="")
    *filter
    :NC-A - [0:0]
    :NC-OLD - [0:0]
    -X NC-OLD
    -A NC-A -j DROP
    -I FORWARD 1 -j NC-A
    COMMIT
    """
    current = _saved_tables(saved)
    tables = list(owned.chains) + sorted(
        t for t, (chains, _) in current.items() if t not in owned.chains and _own(chains)
    )
    lines: list[str] = []
    for table in tables:
        wanted = owned.chains.get(table, {})
        chains, jumps_now = current.get(table, (set(), {}))
        stale = sorted(c for c in _own(chains) if c not in wanted)
        stale_jumps = [
            (chain, spec)
            for chain, targets in jumps_now.items()
            if chain in BUILTIN_CHAINS.get(table, ())
            for target, spec in targets.items()
            if target in stale
        ]
        lines.append(f"*{table}")
        lines += [f":{c} - [0:0]" for c in [*wanted, *stale]]
        # a jump into a lab chain about to go is removed first (only the lab's own jumps look like this)
        lines += [f"-D {chain} {spec}" for chain, spec in stale_jumps]
        lines += [f"-X {c}" for c in stale]
        lines += [f"-A {c} {spec}" for c, specs in wanted.items() for spec in specs]
        # inserted last to first, so jumps the lab adds together keep the order they are listed in
        for jump in reversed(owned.jumps):
            if jump.table == table and jump.target not in jumps_now.get(jump.chain, {}):
                lines.append(f"-I {jump.chain} 1 {jump.spec}")
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _own(chains: Iterable[str]) -> set[str]:
    return {c for c in chains if c.startswith(OWN_PREFIX)}
