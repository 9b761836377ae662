"""Plans: the agent probes that measure one cell, from the cell's target and the run's context.

Each function is the `plan` of a probe spec (`netconform.checks.api.ProbeSpec`); it raises `Skip` when
the cluster lacks what the cell needs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from netconform.checks import probes as P
from netconform.checks.context import Context, Skip, same_subnet
from netconform.checks.judging import Results
from netconform.checks.parsers.procfs import parse_nameservers
from netconform.checks.probes import Probe
from netconform.model.cell import Cell

MTU_SIZES = [576, 1200, 1400, 1450]

# Every ARP who-has runs in phase 2: after phase 1 has read the neighbour caches (FM-28 compares the
# cached MAC with the one answering, and a reply to our own request may refresh the cache), and all in
# one phase, so a run pays the listening windows (attempts x window) once, not per phase (docs/scale.md).
ARP_PHASE = 2


RESOLV = "/etc/resolv.conf"


RESOLV_SYSTEMD = "/run/systemd/resolve/resolv.conf"


def pod_target(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.sender(cell.subject)
    assert cell.target_node is not None
    ip = ctx.echo_ip(cell.target_node)
    ports = ctx.kit.echo_ports
    return {
        "icmp": lambda: [P.icmp(s, ip)],
        "tcp": lambda: [P.tcp(s, ip, ports["tcp"])],
        "udp": lambda: [P.udp(s, ip, ports["udp"])],
        "http": lambda: [P.http(s, f"http://{ip}:{ports['http']}/")],
        "mtu": lambda: [P.mtu(s, ip, ports["udp"], MTU_SIZES)],
    }[cell.protocol]()


def node_target(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.sender(cell.subject)
    assert cell.target_node is not None
    ip = ctx.node_ip(cell.target_node)
    if cell.protocol == "icmp":
        return [P.icmp(s, ip)]
    if cell.protocol == "arp":
        # the neighbour cache (phase 1, one read per node) against who answers now (phase 2): FM-28 for nodes
        return [P.arp(s, ip, ctx.arp_window, phase=ARP_PHASE), P.read(s, "/proc/net/arp")]
    if cell.protocol == "routes":
        return [P.read(s, "/proc/net/route")]
    if cell.protocol == "conntrack":
        return [
            P.read(s, "/proc/sys/net/netfilter/nf_conntrack_count"),
            P.read(s, "/proc/sys/net/netfilter/nf_conntrack_max"),
        ]
    raise KeyError(cell.protocol)


def service_target(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.sender(cell.subject)
    ports = ctx.kit.service_ports
    if cell.target == "clusterip":
        if not ctx.kit.clusterip:
            raise Skip("Service echo has no ClusterIP")
        ip = ctx.kit.clusterip
    elif cell.target == "lb-vip":
        ip = ctx.lb_ip()
    else:  # nodeport@N
        assert cell.target_node is not None
        ip = ctx.node_ip(cell.target_node)
        ports = ctx.kit.nodeports
        if not ports:
            raise Skip("Service echo-np got no NodePorts")
    if cell.protocol == "icmp":
        return [P.icmp(s, ip), P.tcp(s, ip, ports["tcp"])]
    if cell.protocol == "arp":
        return [
            P.arp(s, ip, ctx.arp_window, phase=ARP_PHASE),
            P.read(s, "/proc/net/fib_trie", max_bytes=1 << 20),
        ]
    return {
        "tcp": lambda: [P.tcp(s, ip, ports["tcp"])],
        "udp": lambda: [P.udp(s, ip, ports["udp"])],
        "http": lambda: [P.http(s, f"http://{ip}:{ports['http']}/")],
    }[cell.protocol]()


def egress(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.sender(cell.subject)
    if cell.target == "internet":
        if not ctx.opts.internet_url:
            raise Skip("no internet endpoint configured (--internet-url)")
        return [P.http(s, ctx.opts.internet_url)]
    if cell.protocol == "icmp":
        if not ctx.opts.external_ip:
            raise Skip("no external address to ping configured (--external-ip)")
        return [P.icmp(s, ctx.opts.external_ip)]
    url = ctx.external_url()
    if cell.protocol == "snat":
        return [P.http(s, url)]
    parts = urlsplit(url)
    return [
        P.tcp(s, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), echo=False)
    ]


def dns(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.sender(cell.subject)
    if cell.protocol == "resolve":
        name = ctx.internal_name if cell.target == "dns-internal" else ctx.external_name()
        return [P.resolve(s, name)]
    if cell.target.startswith("coredns@"):
        assert cell.target_node is not None
        ips = ctx.coredns_ips(cell.target_node)
        if not ips:
            raise Skip(f"no CoreDNS pod with an IP on {cell.target_node}")
        return [P.dns_query(s, ip, ctx.internal_name) for ip in ips]
    if cell.target.startswith("nameserver@"):
        return [P.read(s, RESOLV), P.read(s, RESOLV_SYSTEMD)]
    name = ctx.internal_name if cell.target == "dns-internal" else ctx.external_name()
    return [P.dns_query(s, ctx.dns_server(), name, transport=cell.protocol)]


def nameserver_followups(cell: Cell, ctx: Context, results: Results) -> list[Probe]:
    probes = dns(cell, ctx)
    servers = node_nameservers(probes, results) or []
    name = ctx.opts.external_name or ctx.internal_name
    return [P.dns_query(probes[0].subject, ip, name, phase=2) for ip in servers]


def cluster_nameserver_sets(cell: Cell, ctx: Context) -> list[Probe]:
    out: list[Probe] = []
    for node in ctx.topo.node_names:
        try:
            s = ctx.sender(f"host@{node}")
        except Skip:
            continue
        out += [P.read(s, RESOLV), P.read(s, RESOLV_SYSTEMD)]
    if not out:
        raise Skip(ctx.kit.unavailable.get("host", "no host-network probe could run"))
    return out


def cp_vip_arp(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.sender(cell.subject)
    vip = ctx.control_plane_vip()
    return [
        P.read(s, "/proc/net/arp"),
        P.read(s, "/proc/net/fib_trie", max_bytes=1 << 20),
        P.arp(s, vip, ctx.arp_window, phase=ARP_PHASE),
    ]


def apiserver_tcp(cell: Cell, ctx: Context) -> list[Probe]:
    """FM-28 at L4: connect from the node to every endpoint of the `kubernetes` Service.

    The neighbour cache and an ARP who-has for the endpoints on the node's own subnet ride along, so a
    time-out can be told apart: a cached MAC that is not the one answering now is a stale entry (FM-28).
    """
    s = ctx.sender(cell.subject)
    endpoints, port = ctx.topo.api_endpoints, ctx.topo.api_endpoint_port
    if not endpoints or not port:
        raise Skip("the `kubernetes` Service in `default` lists no endpoint address and port")
    node_ip = ctx.topo.node(cell.subject_node or "").internal_ip or ""
    probes = [P.tcp(s, ip, port, echo=False) for ip in endpoints]
    on_link = [ip for ip in endpoints if node_ip and same_subnet(ip, node_ip)]
    if on_link:
        probes.append(P.read(s, "/proc/net/arp"))
        probes += [P.arp(s, ip, ctx.arp_window, phase=ARP_PHASE) for ip in on_link]
    return probes


def iptables_snapshots(cell: Cell, ctx: Context) -> list[Probe]:
    """FM-19: the node's rules with counters, twice, a window apart, inside the host probe's phase-1 exec.

    The window is the time the phase's probes take (attempts x timeout), so the suite's own packets
    that a rule drops are counted; both snapshots ride in the exec the host probe gets anyway.
    """
    if not ctx.opts.allow_privileged:
        raise Skip(
            "reading iptables DROP counters (FM-19) needs a privileged host probe: pass --allow-privileged"
        )
    s = ctx.sender(cell.subject)
    return [P.iptables(s, ctx.iptables_window)]


def l7_entry(cell: Cell, ctx: Context) -> tuple[dict[str, Any], str]:
    """The kit's object behind an L7 ingress cell, and how to name the entry point in a reason."""
    kind, ref = cell.target.split(":", 1)
    if kind == "gateway":
        return ctx.gateway(ref), f"Gateway {ref}"
    return ctx.ingress(ref), f"the ingress of class {ref}"


def ingress_target(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.sender(cell.subject)
    entry, _ = l7_entry(cell, ctx)
    if cell.protocol == "https":
        ca = ctx.ingress_ca(cell.target.split(":", 1)[1])
        return [P.http(s, f"https://{entry['address']}/", host_header=entry["host"], ca_b64=ca)]
    return [P.http(s, f"http://{entry['address']}/", host_header=entry["host"])]


def node_nameservers(probes: list[Probe], results: Results) -> list[str] | None:
    """The node's upstream nameservers: systemd-resolved's real list when resolv.conf points at the stub."""
    main = results.get(probes[0]) or {}
    if not main.get("ok"):
        return None
    servers = parse_nameservers(main.get("content") or "")
    if any(s.startswith("127.") for s in servers):
        alt = results.get(probes[1]) or {}
        if alt.get("ok"):
            servers = parse_nameservers(alt.get("content") or "")
    return servers
