"""The troubleshooting flowchart of docs/failure-modes.md, walked over evidence the run already collected.

For a failed cell it compares neighbouring cells (the same target by another path, the same path on one
node, the node underlay, the DNS servers one by one) and names the first broken hop, with the tcpdump
commands (real addresses and ports) that would show the packet disappear at each hop (FM-20).
`evidence_cells` tells the engine which extra cells to measure up front so this never needs a re-run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from netconform.checks.mesh import cell_ok as _ok
from netconform.model.cell import Cell
from netconform.model.channels import POD_CHANNELS, channel_of, channel_words, split_channel
from netconform.model.classify import classify
from netconform.model.partition import join_words
from netconform.model.topology import Topology

Lookup = Callable[[Cell], str | None]  # outcome of a cell, None when it was not measured


@dataclass
class Diagnosis:
    hop: str
    summary: str
    fm: str
    capture: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"hop": self.hop, "summary": self.summary, "fm": self.fm, "capture": self.capture}


@dataclass
class Addresses:
    """The real addresses the capture commands are filled with."""

    node_ip: dict[str, str]
    echo_ip: dict[str, str]
    probe_ip: dict[str, str]
    clusterip: str | None
    lb_ip: str | None
    nodeports: dict[str, int]
    service_ports: dict[str, int]
    echo_ports: dict[str, int]
    dns_ip: str | None
    coredns: dict[str, list[str]]
    external_host: str | None
    external_port: int | None
    # IngressClass or Gateway ("ns/name") -> the address probed
    ingress: dict[str, str] = field(default_factory=dict)


def evidence_cells(cell: Cell, topo: Topology) -> list[Cell]:
    """Cells whose outcome the flowchart needs to diagnose `cell` if it fails."""
    nodes = topo.node_names
    out: list[Cell] = []
    head = cell.dest.head
    s_node = cell.subject_node
    if cell.subject.startswith(("pod@", "host@")) and head in ("clusterip", "lb-vip", "nodeport"):
        proto = "udp" if cell.protocol == "udp" else "tcp"
        out += [Cell(cell.subject, f"pod@{n}", "L4", proto) for n in nodes]
        if cell.protocol == "http":  # the backends over HTTP itself: tells service NAT from a port filter
            out += [Cell(cell.subject, f"pod@{n}", "L7", "http") for n in nodes]
    if head == "lb-vip" or (cell.subject == "external" and head == "nodeport"):
        out += [Cell(f"host@{n}", "lb-vip", "L2", "arp") for n in nodes] if head == "lb-vip" else []
        out += [Cell("external", f"nodeport@{n}", "L4", "tcp") for n in nodes]
        out += [Cell(f"pod@{n}", "clusterip", "L4", "tcp") for n in nodes]
    if head == "pod" and s_node and cell.target_node:
        t = cell.target_node
        out += [
            Cell(f"pod@{t}", f"pod@{t}", "L4", "tcp"),
            Cell(f"host@{t}", f"pod@{t}", "L4", "tcp"),
            Cell(f"pod@{s_node}", f"pod@{s_node}", "L4", "tcp"),
            Cell(f"host@{s_node}", f"pod@{s_node}", "L4", "tcp"),  # replies to the subject pod need it
        ]
        if s_node != t:
            out += [Cell(f"host@{s_node}", f"node@{t}", "L3", "icmp")]
    if head in ("dns-internal", "dns-external", "coredns") and s_node:
        out += [Cell(cell.subject, f"coredns@{n}", "DNS", "udp") for n in topo.coredns_nodes()]
        out += [
            Cell(cell.subject, "dns-internal", "DNS", "udp"),
            Cell(cell.subject, "clusterip", "L4", "udp"),
        ]
        out += [Cell(f"host@{n}", f"nameserver@{n}", "DNS", "udp") for n in topo.coredns_nodes()]
        out += [Cell(cell.subject, f"pod@{n}", "L4", "tcp") for n in topo.coredns_nodes()]
    if head in ("outside", "internet") and s_node:
        out += [Cell(f"host@{s_node}", "outside", "L4", "tcp"), Cell(cell.subject, "outside", "L4", "tcp")]
    if cell.target.startswith(("ingress:", "gateway:")):
        # the same echo pods directly and through the ClusterIP (pods, nodes) or the kit's own
        # LoadBalancer (outside): separates the ingress from the service path
        if s_node:
            out += [Cell(cell.subject, f"pod@{n}", "L7", "http") for n in nodes]
            out += [Cell(cell.subject, "clusterip", "L7", "http")]
        else:
            out += [Cell(cell.subject, "lb-vip", "L7", "http")]
    if cell.target == "component:pod-mesh":
        out += [Cell(f"pod@{a}", f"pod@{b}", "L4", "tcp") for a in nodes for b in nodes]
        out += [Cell(f"host@{a}", f"node@{b}", "L3", "icmp") for a in nodes for b in nodes if a != b]
    return [c for c in out if c != cell]


def _where(node: str | None) -> str:
    return f"on {node}" if node else "on the client"


def same_path_cells(cell: Cell) -> list[Cell]:
    """The same subject and target by the other channels: if one works, routes and tunnel deliver.

    >>> [f"{c.layer} {c.protocol}" for c in same_path_cells(Cell("pod@a", "pod@b", "L7", "http"))]
    ['L3 icmp', 'L3 mtu', 'L4 tcp', 'L4 udp']
    """
    own = channel_of(cell.layer, cell.protocol)
    return [Cell(cell.subject, cell.target, *split_channel(ch)) for ch in POD_CHANNELS if ch != own]


def port_of(cell: Cell, ports: dict[str, int]) -> int:
    """The port `cell` sends to, from the kit's echo or Service ports (HTTP, TCP or UDP).

    >>> port_of(Cell("pod@a", "pod@b", "L7", "http"), {"http": 8080, "tcp": 9000, "udp": 9001})
    8080
    """
    key = (
        "http" if cell.protocol in ("http", "https") else "udp" if cell.protocol in ("udp", "mtu") else "tcp"
    )
    return ports.get(key, 9000)


def _filter_capture(nodes: Iterable[str], flt: str) -> list[str]:
    out: list[str] = []
    for node in dict.fromkeys(n for n in nodes if n):
        out += [
            f"on {node}: tcpdump -ni any '{flt}'",
            f"on {node}: iptables-save -c | grep -E 'DROP|REJECT'; nft list ruleset | grep -E 'drop|reject'",
        ]
    return out


# errors that are an answer from the far end: the network delivered the packet (FM-01/FM-02)
ANSWERED = ("refused", "reset", "http-status", "tls", "protocol")


def diagnose(
    cell: Cell,
    topo: Topology,
    addrs: Addresses,
    lookup: Lookup,
    error: str | None = None,
    *,
    fm: str | None = None,
) -> Diagnosis | None:
    """The first broken hop for a failed `cell` (its agent error code when known), or None when the
    flowchart has nothing to add."""
    head = cell.dest.head
    if head == "pod" and error in ANSWERED:
        return _pod_answered(cell, addrs, error or "")
    if head == "pod":
        return _pod_path(cell, topo, addrs, lookup)
    if head in ("clusterip", "nodeport", "lb-vip"):
        return _service_path(cell, topo, addrs, lookup, error)
    if head in ("dns-internal", "dns-external", "coredns"):
        return _dns_path(cell, topo, addrs, lookup)
    if head in ("outside", "internet"):
        return _egress_path(cell, addrs, lookup)
    if head in ("ingress", "gateway"):
        return _ingress_path(cell, topo, addrs, lookup, error, fm)
    if head == "node" and cell.protocol in ("icmp", "arp"):
        t, s = cell.target_node or "", cell.subject_node or ""
        return Diagnosis(
            f"node network {cell.subject_node} -> {t}",
            f"{cell.subject_node} cannot reach node {t} "
            f"({cell.layer}): the node network (switch, VLAN, firewall) between them",
            "FM-13",
            [
                f"on {cell.subject_node}: tcpdump -ni any 'host {addrs.node_ip.get(t, t)} and (icmp or arp)'",
                f"on {t}: tcpdump -ni any 'host {addrs.node_ip.get(s, '?')} and (icmp or arp)'",
            ],
        )
    return None


def _ingress_path(
    cell: Cell, topo: Topology, addrs: Addresses, lookup: Lookup, error: str | None, fm: str | None
) -> Diagnosis | None:
    """Proxy answered (HTTP status) vs no L4 answer, against the same backends reached without it."""
    kind, cls = cell.target.split(":", 1)
    address = addrs.ingress.get(cls, "?")
    entry = f"Gateway {cls}" if kind == "gateway" else f"ingress controller of class {cls}"
    l4_port = 443 if cell.protocol == "https" else 80
    capture = [f"{_where(cell.subject_node)}: tcpdump -ni any 'host {address} and port {l4_port}'"]
    if cell.subject_node:
        direct = [_ok(lookup, Cell(cell.subject, f"pod@{n}", "L7", "http")) for n in topo.node_names]
        service = _ok(lookup, Cell(cell.subject, "clusterip", "L7", "http"))
        without = "directly and through the ClusterIP" if service else "directly"
        backends_ok = any(d is True for d in direct)
    else:
        service = _ok(lookup, Cell(cell.subject, "lb-vip", "L7", "http"))
        without = "through the kit's own LoadBalancer Service"
        backends_ok = service is True
    port = addrs.echo_ports.get("http", 8080)
    backend_capture = [
        f"on {n}: tcpdump -ni any 'host {addrs.echo_ip.get(n, '?')} and port {port}'" for n in topo.node_names
    ]
    if error in ("http-status", "tls"):
        where = (
            f"the echo pods answer {without}" if backends_ok else "the echo pods were not checked without it"
        )
        return Diagnosis(
            f"{entry} ({address})",
            (
                f"the ingress proxy answers {cell.subject} with an HTTP error while {where}: its routing or "
                "its own path to the backends (the controller's configuration, its view of the endpoints)"
                if error == "http-status"
                else f"the ingress proxy accepts {cell.subject}'s connection but not the TLS handshake for "
                f"the kit's host while {where}: it serves no certificate for it (its Secret or Ingress)"
            ),
            fm or "FM-34",
            capture + backend_capture,
        )
    if backends_ok:
        return Diagnosis(
            f"{'Gateway' if kind == 'gateway' else 'ingress'} address {address}:{l4_port}",
            f"no L4 answer from the ingress address while the echo pods answer {without}: the ingress "
            "controller is down or the path to its LoadBalancer / NodePort is broken",
            "FM-36",
            capture,
        )
    return None


def _pod_answered(cell: Cell, addrs: Addresses, error: str) -> Diagnosis:
    """The target pod (or something on its path) answered: no route or tunnel is at fault."""
    t = cell.target_node or ""
    dst_ip = addrs.echo_ip.get(t, "?")
    port = addrs.echo_ports.get("http" if cell.protocol == "http" else "tcp", 9000)
    what = {
        "refused": "refused the connection: nothing listens on the port, or a firewall rejects it",
        "reset": "reset an established connection: conntrack/NAT state that does not match, or the "
        "application aborting",
        "http-status": "answered with an HTTP error status: L4 works, the application fails",
        "tls": "failed the TLS handshake: L4 works, the TLS configuration does not",
        "protocol": "answered something unexpected: L4 works, the peer speaks another protocol",
    }[error]
    return Diagnosis(
        f"endpoint {dst_ip}:{port} on {t}",
        f"the network delivered the packet: {dst_ip} on {t} {what}",
        classify(error, "http" if cell.protocol == "http" else "tcp").fm or "FM-02",
        [f"on {t}: tcpdump -ni any 'host {dst_ip} and port {port}'", f"on {t}: ss -tanp 'sport = :{port}'"],
    )


def _pod_path(cell: Cell, topo: Topology, addrs: Addresses, lookup: Lookup) -> Diagnosis:
    s, t = cell.subject_node or "", cell.target_node or ""
    src_ip = addrs.probe_ip.get(s) if cell.subject.startswith("pod@") else addrs.node_ip.get(s)
    dst_ip = addrs.echo_ip.get(t, "?")
    port = port_of(cell, addrs.echo_ports)
    flt = f"host {src_ip} and host {dst_ip}" + ("" if cell.protocol == "icmp" else f" and port {port}")
    capture = [f"on {s}: tcpdump -ni any '{flt}'"]
    same_node_ok = _ok(lookup, Cell(f"pod@{t}", f"pod@{t}", "L4", "tcp"))
    node_to_pod_ok = _ok(lookup, Cell(f"host@{t}", f"pod@{t}", "L4", "tcp"))
    working = [
        channel_words(channel_of(c.layer, c.protocol)) for c in same_path_cells(cell) if _ok(lookup, c)
    ]
    small_udp_fails = _ok(lookup, Cell(cell.subject, cell.target, "L4", "udp")) is False
    if cell.protocol == "mtu" and not small_udp_fails:
        return Diagnosis(
            f"path MTU {s} -> {t}",
            "large DF packets are lost between the nodes: the overlay's "
            "encapsulation overhead exceeds the underlay MTU and ICMP 'fragmentation needed' is not "
            "delivered",
            "FM-31",
            [*capture, f"on {s}: tcpdump -ni any 'icmp and icmp[0] == 3 and icmp[1] == 4'"],
        )
    # big TCP/HTTP payloads can die of a path MTU problem too; small UDP and ICMP cannot
    size_explains = (
        cell.protocol in ("tcp", "http")
        and _ok(lookup, Cell(cell.subject, cell.target, "L3", "mtu")) is False
    )
    if working and not size_explains:
        # the MTU probe is UDP to the echo's UDP port: with small UDP lost too, both name one port
        what = "UDP" if cell.protocol == "mtu" else channel_words(channel_of(cell.layer, cell.protocol))
        on_port = "" if cell.protocol == "icmp" else f" to port {port}"
        return Diagnosis(
            f"{what}{on_port} on the path {s} -> {t}",
            f"{join_words(working)} from {cell.subject} to the same pod {dst_ip} "
            f"work{'s' if len(working) == 1 else ''}, so the routes and the tunnel deliver; only "
            f"{what}{on_port} gets no answer: a firewall rule or a network policy that drops it "
            f"(on {s if s == t else s + ', ' + t} or between)",
            "FM-19",
            _filter_capture((s, t), flt),
        )
    if node_to_pod_ok is False or (same_node_ok is False and s == t):
        return Diagnosis(
            f"pod route on {t} -> {dst_ip}",
            f"{t} itself cannot deliver to its pod {dst_ip}: the "
            f"per-pod route / veth on {t} is missing (ip route get {dst_ip} on {t})",
            "FM-10",
            [f"on {t}: ip route get {dst_ip}", f"on {t}: tcpdump -ni any 'host {dst_ip}'"],
        )
    source_route_ok = _ok(lookup, Cell(f"host@{s}", f"pod@{s}", "L4", "tcp"))
    if s != t and cell.subject.startswith("pod@") and source_route_ok is False:
        src = addrs.probe_ip.get(s, "?")
        return Diagnosis(
            f"pod route on {s} -> {src}",
            f"{s} cannot deliver to its own pods either (its node reaches none of them): the replies to "
            f"{src} never arrive; the per-pod route / veth on {s} is missing (ip route get {src} on {s})",
            "FM-10",
            [f"on {s}: ip route get {src}", f"on {s}: tcpdump -ni any 'host {src}'"],
        )
    if s != t:
        underlay_ok = _ok(lookup, Cell(f"host@{s}", f"node@{t}", "L3", "icmp"))
        s_ip, t_ip = addrs.node_ip.get(s, "?"), addrs.node_ip.get(t, "?")
        if underlay_ok is False:
            return Diagnosis(
                f"node network {s} -> {t}",
                f"the nodes themselves do not reach each other "
                f"({s_ip} -> {t_ip}): the physical/virtual network between them",
                "FM-13",
                [
                    *capture,
                    f"on {s}: tcpdump -ni any 'host {t_ip}'",
                    f"on {t}: tcpdump -ni any 'host {s_ip}'",
                ],
            )
        return Diagnosis(
            f"overlay tunnel {s} -> {t} (UDP 6081)",
            f"same-node pod traffic works{' on ' + t if same_node_ok else ''} and the nodes reach each "
            f"other, but pods on {s} do not reach pods on {t}: encapsulated traffic between {s_ip} and "
            f"{t_ip} is dropped "
            "(firewall on UDP 6081, SDN segmentation/anti-spoofing)",
            "FM-09",
            [
                *capture,
                f"on {s}: tcpdump -ni any 'udp port 6081 and host {t_ip}'",
                f"on {t}: tcpdump -ni any 'udp port 6081 and host {s_ip}'",
                f"on {t}: tcpdump -ni any 'host {dst_ip} and port {port}'",
            ],
        )
    return Diagnosis(
        f"local forwarding on {t}",
        f"pod-to-pod traffic on {t} fails while {t} reaches its pod: "
        "the bridge / local forwarding of the dataplane",
        "FM-10",
        capture,
    )


def _service_path(
    cell: Cell, topo: Topology, addrs: Addresses, lookup: Lookup, error: str | None = None
) -> Diagnosis | None:
    head = cell.dest.head
    proto = "udp" if cell.protocol == "udp" else "tcp"
    s = cell.subject_node
    channel = ("L7", "http") if cell.protocol == "http" else ("L4", proto)
    if head == "lb-vip":
        vip, port = addrs.lb_ip or "?", port_of(cell, addrs.service_ports)
    elif head == "clusterip":
        vip, port = addrs.clusterip or "?", port_of(cell, addrs.service_ports)
    else:
        vip, port = addrs.node_ip.get(cell.target_node or "", "?"), addrs.nodeports.get(proto, 0)
    capture = [f"{_where(s)}: tcpdump -ni any 'host {vip} and port {port}'"]
    backends = [_ok(lookup, Cell(cell.subject, f"pod@{n}", *channel)) for n in topo.node_names]
    backend_port = port_of(cell, addrs.echo_ports)
    # a refusal or reset is the VIP's own answer (no translation): only silence can be the path to backends
    silent = error not in ANSWERED
    if silent and backends and all(b is False for b in backends):
        # no backend answers on this channel directly either: if they answer on another one, a port
        for alt in (("L4", "tcp"), ("L3", "icmp")):
            if alt == channel or not any(
                _ok(lookup, Cell(cell.subject, f"pod@{n}", *alt)) for n in topo.node_names
            ):
                continue
            what, alt_what = channel_words(channel_of(*channel)), channel_words(channel_of(*alt))
            alt_port = f" (port {addrs.echo_ports.get('tcp', 9000)})" if alt == ("L4", "tcp") else ""
            return Diagnosis(
                f"{what} to port {backend_port} from {cell.subject}",
                f"{cell.subject} reaches the backend pods over {alt_what}{alt_port} but not over {what} "
                f"(port {backend_port}), neither directly nor through {vip}:{port}: not the service NAT, "
                f"a firewall rule or a network policy that drops port {backend_port}",
                "FM-19",
                capture + _filter_capture([s or "", *topo.node_names], f"port {backend_port}"),
            )
    if head == "lb-vip":
        arps = [_ok(lookup, Cell(f"host@{n}", "lb-vip", "L2", "arp")) for n in topo.node_names]
        if any(a is False for a in arps):
            return Diagnosis(
                f"ARP for LB VIP {vip}",
                f"the LB VIP {vip} is not (or ambiguously) answered by ARP "
                "on the node segment: the announcing speaker (MetalLB) or the L2 network",
                "FM-06",
                ["on any node: tcpdump -ni any arp and host " + vip, *capture],
            )
        nodeports = [_ok(lookup, Cell("external", f"nodeport@{n}", "L4", "tcp")) for n in topo.node_names]
        if cell.subject == "external" and any(nodeports) and True in nodeports:
            return Diagnosis(
                f"LB VIP {vip}:{port} -> backend",
                "NodePorts answer from outside but the VIP does "
                "not: destination NAT of the LB VIP (kube-proxy / dataplane)",
                "FM-08",
                capture,
            )
        if cell.subject == "external" and nodeports and all(n is False for n in nodeports):
            return Diagnosis(
                "client -> cluster network",
                "neither the VIP nor any NodePort answers the outside "
                "client: the packet does not leave the client or the network drops it",
                "FM-05",
                ["on the client: tcpdump -ni any 'host " + vip + "'", *capture],
            )
    unreachable = [n for n, ok in zip(topo.node_names, backends, strict=True) if ok is False]
    if silent and unreachable and any(b is True for b in backends):
        return Diagnosis(
            f"backend pods on {join_words(unreachable)}",
            f"{cell.subject} reaches the backend pods directly except those on {join_words(unreachable)}: "
            "the Service fails whenever it picks one of those, the path to them is broken (not the "
            "service NAT, which reaches the others)",
            "FM-13",
            capture
            + [
                f"on {n}: tcpdump -ni any 'host {addrs.echo_ip.get(n, '?')} and port {backend_port}'"
                for n in unreachable
            ],
        )
    if any(b is True for b in backends):
        backend_capture = [
            f"on {n}: tcpdump -ni any 'host {addrs.echo_ip.get(n, '?')} and port {backend_port}'"
            for n in topo.node_names
        ]
        return Diagnosis(
            f"service NAT {vip}:{port}",
            f"the backend pods answer directly from {cell.subject} but "
            f"{vip}:{port} does not: the Service's destination NAT (kube-proxy / eBPF dataplane) does "
            "not translate the VIP to a backend",
            "FM-08",
            capture + backend_capture,
        )
    if backends and all(b is False for b in backends):
        return Diagnosis(
            f"pod network from {cell.subject}",
            f"{cell.subject} reaches no backend pod directly "
            "either: the problem is before service NAT (pod network)",
            "FM-13",
            capture,
        )
    return None


def _dns_path(cell: Cell, topo: Topology, addrs: Addresses, lookup: Lookup) -> Diagnosis | None:
    s = cell.subject_node
    direct = {n: _ok(lookup, Cell(cell.subject, f"coredns@{n}", "DNS", "udp")) for n in topo.coredns_nodes()}
    working = sorted(n for n, ok in direct.items() if ok)
    failing = sorted(n for n, ok in direct.items() if ok is False)
    dns_capture = [
        f"on {s}: tcpdump -ni any 'port 53 and (host {addrs.dns_ip} or "
        + " or ".join(f"host {ip}" for ips in addrs.coredns.values() for ip in ips)
        + ")'"
    ]
    if cell.target == "dns-external":
        internal_ok = _ok(lookup, Cell(cell.subject, "dns-internal", "DNS", "udp"))
        if internal_ok:
            upstream_bad = [
                n
                for n in topo.coredns_nodes()
                if _ok(lookup, Cell(f"host@{n}", f"nameserver@{n}", "DNS", "udp")) is False
            ]
            where = f" (the nameservers of {', '.join(upstream_bad)} fail)" if upstream_bad else ""
            return Diagnosis(
                "CoreDNS upstream nameservers",
                "internal names resolve but external ones do not: "
                f"CoreDNS forwards them to its node's upstream nameservers{where}",
                "FM-23",
                [
                    f"on {n}: tcpdump -ni any 'port 53 and not host {addrs.dns_ip}'"
                    for n in topo.coredns_nodes()
                ],
            )
    if working and failing:
        return Diagnosis(
            f"in-cluster path {s} -> CoreDNS on {', '.join(failing)}",
            f"CoreDNS pods on {', '.join(working)} answer {cell.subject} but those on "
            f"{', '.join(failing)} do not: an in-cluster connectivity pattern, not DNS itself",
            "FM-22",
            dns_capture,
        )
    if failing and not working:
        pod_ok = [_ok(lookup, Cell(cell.subject, f"pod@{n}", "L4", "tcp")) for n in failing]
        if any(pod_ok):
            return Diagnosis(
                "CoreDNS pods",
                f"no CoreDNS pod answers {cell.subject} although pods on their nodes "
                "are reachable: CoreDNS itself is down or not listening",
                "FM-22",
                dns_capture,
            )
        return Diagnosis(
            f"network {s} -> CoreDNS",
            f"no CoreDNS pod answers and their nodes' pods are unreachable "
            f"from {cell.subject}: pod network problem (FM-13)",
            "FM-13",
            dns_capture,
        )
    if working and not failing and cell.target != "coredns":
        return Diagnosis(
            f"kube-dns Service NAT {addrs.dns_ip}:53",
            "every CoreDNS pod answers directly but the "
            "kube-dns Service IP does not: service NAT for kube-dns",
            "FM-08",
            dns_capture,
        )
    return None


def _egress_path(cell: Cell, addrs: Addresses, lookup: Lookup) -> Diagnosis | None:
    s = cell.subject_node or ""
    node_ok = _ok(lookup, Cell(f"host@{s}", "outside", "L4", "tcp"))
    ext = addrs.external_host or "?"
    capture = [
        f"on {s}: tcpdump -ni any 'host {ext}'",
        f"on {s}: tcpdump -ni any 'host {addrs.probe_ip.get(s, '?')} and host {ext}'",
    ]
    if node_ok and cell.subject.startswith("pod@"):
        return Diagnosis(
            f"egress SNAT on {s}",
            f"{s} itself reaches the outside but its pods do not (or not as "
            f"{addrs.node_ip.get(s, 'the node')}): source NAT / masquerade of pod traffic on {s}",
            "FM-11",
            capture,
        )
    if node_ok is False:
        return Diagnosis(
            f"route {s} -> outside",
            f"{s} itself does not reach {ext}: the node's route to the outside or the network beyond it",
            "FM-12",
            capture,
        )
    return None


def summarise(cells: Iterable[tuple[Cell, str]]) -> str:
    """A one-line count of outcomes for logs."""
    counts: dict[str, int] = {}
    for _, outcome in cells:
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
