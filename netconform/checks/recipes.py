"""What each cell measures (its probes) and how the measurements become a verdict.

This is where the seed's expectations live: a ClusterIP that does not answer ping is not a failure when
VIP:port answers; a node resolver that does not know `cluster.local` is expected (FM-24); exactly one MAC
must answer ARP for an address (FM-06/16); egress must carry the node's address (FM-11); an MTU problem is
a size that vanishes while smaller ones pass (FM-31). Every failed probe is classified (FM-01..04).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from netconform.checks import probes as P
from netconform.checks.parsers import iptables_save as ipt
from netconform.checks.probes import Probe
from netconform.kube.kit import Kit
from netconform.kube.topology import Topology
from netconform.model.cell import Cell
from netconform.model.classify import classify
from netconform.model.options import SuiteOptions

# the classic VXLAN/Geneve pod MTU is 1450: DF packets up to it must cross nodes (FM-31)
MTU_SIZES = [576, 1200, 1400, 1450]
SNAT_PORT_BUDGET = 32767  # 32768-65535 per protocol and destination (FM-30)
CONNTRACK_WARN = 0.9
RESOLV = "/etc/resolv.conf"
RESOLV_SYSTEMD = "/run/systemd/resolve/resolv.conf"
Results = Mapping[Probe, dict[str, Any]]


class Skip(Exception):
    """The cell cannot be measured on this cluster; the message names what is missing."""


NO_OUTSIDE_CLIENT = (
    "no outside client: pass --external-client local to probe from this machine, or --external-runner CMD "
    "to run the probes elsewhere (--lab NAME sets it for a lab)"
)


@dataclass
class Context:
    topo: Topology
    kit: Kit
    opts: SuiteOptions

    # -- addresses ------------------------------------------------------------------------------
    def echo_ip(self, node: str) -> str:
        if f"echo@{node}" in self.kit.unavailable_pods:
            raise Skip(self.kit.unavailable_pods[f"echo@{node}"])
        ip = self.kit.ip(f"echo@{node}")
        if not ip:
            raise Skip(f"the echo pod on {node} has no IP")
        return ip

    def node_ip(self, node: str) -> str:
        ip = self.topo.node(node).internal_ip
        if not ip:
            raise Skip(f"node {node} has no InternalIP address")
        return ip

    def runner(self, subject: str) -> str:
        """The agent runner for a subject; raises Skip when that kind of probe could not be deployed."""
        if subject == "external":
            if self.opts.outside_client is None:
                raise Skip(NO_OUTSIDE_CLIENT)
            return "external"
        role, node = subject.split("@", 1)
        kit_role = "probe" if role == "pod" else role
        if kit_role in self.kit.unavailable:
            raise Skip(self.kit.unavailable[kit_role])
        ref = f"{kit_role}@{node}"
        if ref in self.kit.unavailable_pods:
            raise Skip(self.kit.unavailable_pods[ref])
        if ref not in self.kit.pods:
            raise Skip(f"no {kit_role} pod on {node}")
        return subject

    @property
    def iptables_window(self) -> float:
        """FM-19's counting window: as long as the phase's probes take, within 2-30 s."""
        return max(2.0, min(30.0, self.opts.probe_timeout * self.opts.attempts))

    @property
    def arp_window(self) -> float:
        return max(0.2, min(1.0, self.opts.probe_timeout * 0.8))

    def dns_server(self) -> str:
        if not self.topo.dns_service_ip:
            raise Skip("no kube-dns Service in kube-system")
        return self.topo.dns_service_ip

    @property
    def internal_name(self) -> str:
        return f"kubernetes.default.svc.{self.topo.cluster_domain}"

    def external_name(self) -> str:
        if not self.opts.external_name:
            raise Skip("no external name configured (--external-name)")
        return self.opts.external_name

    def external_url(self) -> str:
        if not self.opts.external_url:
            raise Skip(
                "no external echo URL configured (--external-url, an echo that reflects the caller's address)"
            )
        return self.opts.external_url

    def ingress(self, ingress_class: str) -> dict[str, Any]:
        """The kit's Ingress of a class with the address to send it to; Skip with the reason if none."""
        if ingress_class in self.kit.ingress_unavailable:
            raise Skip(self.kit.ingress_unavailable[ingress_class])
        entry = self.kit.ingresses.get(ingress_class)
        if not entry or not entry.get("address"):
            raise Skip(f"no Ingress of class {ingress_class} was deployed")
        return entry

    def gateway(self, ref: str) -> dict[str, Any]:
        """The kit's HTTPRoute on Gateway `ref` ("ns/name") with the Gateway's address; Skip if none."""
        if ref in self.kit.gateway_unavailable:
            raise Skip(self.kit.gateway_unavailable[ref])
        entry = self.kit.gateways.get(ref)
        if not entry or not entry.get("address"):
            raise Skip(f"no HTTPRoute was attached to Gateway {ref}")
        return entry

    def ingress_ca(self, ingress_class: str) -> str:
        """The run's CA (base64 PEM) of the class's TLS Secret; Skip with the reason if there is none."""
        if ingress_class in self.kit.ingress_tls_unavailable:
            raise Skip(self.kit.ingress_tls_unavailable[ingress_class])
        tls = self.kit.ingress_tls.get(ingress_class)
        if not tls:
            raise Skip(f"no TLS Secret for the Ingress of class {ingress_class} (pass --ingress-tls)")
        return str(tls["ca_b64"])

    def lb_ip(self) -> str:
        if not self.kit.lb_ip:
            raise Skip(self.kit.lb_reason or "the LoadBalancer Service got no address")
        return self.kit.lb_ip

    def coredns_ips(self, node: str) -> list[str]:
        return sorted(p.ip for p in self.topo.coredns if p.node == node and p.ip)

    def control_plane_vip(self) -> str:
        """The control-plane VIP (FM-28): --control-plane-vip, or an API endpoint that is no node's IP."""
        if self.opts.control_plane_vip:
            return self.opts.control_plane_vip
        node_ips = {n.internal_ip for n in self.topo.nodes}
        for ip in self.topo.api_endpoints:
            if ip not in node_ips and any(_same_subnet(ip, n) for n in node_ips if n):
                return ip
        raise Skip(
            "no control-plane VIP on the node network (kubernetes endpoints are node addresses or "
            "off-subnet); pass --control-plane-vip to check it"
        )


def _same_subnet(a: str, b: str, prefix: int = 24) -> bool:
    try:
        return ipaddress.ip_network(f"{a}/{prefix}", strict=False) == ipaddress.ip_network(
            f"{b}/{prefix}", strict=False
        )
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------------
# verdicts


@dataclass
class Verdict:
    outcome: str
    reason: str
    error: str | None = None
    classified_layer: str | None = None
    meaning: str | None = None
    classified_fm: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    diagnosis: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "error": self.error,
            "classified_layer": self.classified_layer,
            "meaning": self.meaning,
            "classified_fm": self.classified_fm,
            "checks": self.checks,
            "notes": self.notes,
            "diagnosis": self.diagnosis,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(**data)


def attempt_outcome(result: dict[str, Any]) -> str:
    """passed (every attempt ok), flaky (some ok), failed (none ok), error (could not run)."""
    if result.get("exec_error"):
        return "error"
    attempts = result.get("attempts") or [result]
    oks = [bool(a.get("ok")) for a in attempts]
    if all(oks):
        return "passed"
    return "flaky" if any(oks) else "failed"


def _dns_rcode(result: dict[str, Any]) -> str | None:
    parsed = P.parse_dns(result.get("answer_b64"))
    return parsed.rcode if parsed else None


def failure(
    probe: Probe,
    result: dict[str, Any],
    reason: str | None = None,
    *,
    error: str | None = None,
    layer: str | None = None,
    meaning: str | None = None,
    fm: str | None = None,
) -> Verdict:
    """A failed verdict classified by the seed's rules (FM-01..04) unless the recipe knows better."""
    code = error or result.get("error") or "other"
    cls = classify(code, probe.kind, dns_rcode=_dns_rcode(result), http_status=result.get("status"))
    attempts = result.get("attempts") or []
    msg = result.get("message") or code
    text = reason or f"{probe.describe()}: {msg} ({len(attempts)} attempt{'s' if len(attempts) != 1 else ''})"
    return Verdict(
        outcome="error" if result.get("exec_error") else "failed",
        reason=text,
        error=code,
        classified_layer=layer or cls.layer,
        meaning=meaning or cls.meaning,
        classified_fm=fm or cls.fm,
    )


def evidence(probes: list[Probe], results: Results) -> list[dict[str, Any]]:
    out = []
    for probe in probes:
        item: dict[str, Any] = {"id": probe.id, "subject": probe.subject, **probe.fields}
        item.pop("query_b64", None)
        item.pop("send_b64", None)
        item.pop("expect_b64", None)
        item.pop("payload_b64", None)
        result = results.get(probe)
        if result is not None:
            item.update(P.result_summary(result))
        out.append(item)
    return out


def all_pass(probes: list[Probe], results: Results, what: str) -> Verdict:
    """The default rule: every probe passes; any failure fails the cell, intermittent ones are flaky."""
    flaky: list[str] = []
    for probe in probes:
        result = results.get(probe)
        if result is None:
            return Verdict("error", f"{probe.describe()}: no result (the batch did not run)", error="other")
        outcome = attempt_outcome(result)
        if outcome in ("failed", "error"):
            return failure(probe, result)
        if outcome == "flaky":
            ok = sum(1 for a in result.get("attempts", []) if a.get("ok"))
            flaky.append(f"{probe.describe()}: {ok}/{len(result.get('attempts', []))} attempts passed")
    if flaky:
        return Verdict("flaky", "intermittent: " + "; ".join(flaky))
    return Verdict("passed", f"{what}: ok")


# ---------------------------------------------------------------------------------------------------
# recipes: cell -> probes (phase 1), follow-ups (phase 2), verdict

Plan = Callable[[Cell, Context], list[Probe]]
Judge = Callable[[Cell, Context, list[Probe], Results], Verdict]


def _pod_target(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.runner(cell.subject)
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


TOO_BIG_BY = {
    "emsgsize": "refused by the sender's kernel (EMSGSIZE: route, device or learnt path MTU)",
    "enobufs": "dropped by a device on the way out (ENOBUFS: a link with a smaller MTU)",
    "frag-needed": "a router answered 'fragmentation needed'",
}


def _too_big_text(attempt: dict[str, Any]) -> str:
    """'1500 (dropped by a device ...)' per size, grouped by why the size could not go."""
    by = attempt.get("too_big_by") or {}
    groups: dict[str, list[str]] = {}
    for size in attempt.get("sizes_too_big") or []:
        why = by.get(str(size), "")
        groups.setdefault(TOO_BIG_BY.get(why, why or "too big"), []).append(str(size))
    return "; ".join(f"{', '.join(sizes)} {why}" for why, sizes in groups.items())


def _judge_mtu(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-31: a size that is too big and says so is PMTUD working; a size that vanishes is a black hole."""
    probe = probes[0]
    result = results.get(probe)
    if result is None:
        return Verdict("error", "no result for the MTU probe", error="other")
    if attempt_outcome(result) == "error":
        return failure(probe, result)
    best: dict[str, Any] | None = None
    for attempt in result.get("attempts", []):
        if attempt.get("largest_ok") is not None and (
            best is None or attempt["largest_ok"] > best["largest_ok"]
        ):
            best = attempt
    if best is None:
        return failure(probe, result)
    lost = [s for s in best.get("sizes_lost", []) if s > best["largest_ok"]]
    too_big = _too_big_text(best)
    if lost:
        return Verdict(
            "failed",
            f"path MTU black hole to {probe.fields['host']}: IP packets up to {best['largest_ok']} bytes "
            f"pass, {', '.join(map(str, lost))} with DF set vanish without an ICMP 'fragmentation needed'"
            + (f" (too big and said so: {too_big})" if too_big else ""),
            error="timeout",
            classified_layer="L3",
            meaning="large packets vanish silently: an MTU black hole (FM-31)",
            classified_fm="FM-31",
        )
    note = f"largest DF packet {best['largest_ok']} bytes" + (f"; too big: {too_big}" if too_big else "")
    failed = best.get("send_errors") or {}
    if failed:
        note += "; could not send: " + ", ".join(f"{s} ({e})" for s, e in failed.items())
    return Verdict("passed", note)


def _host_own_pod(cell: Cell, ctx: Context) -> list[Probe]:
    return _pod_target(cell, ctx)


def _node_target(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.runner(cell.subject)
    assert cell.target_node is not None
    ip = ctx.node_ip(cell.target_node)
    if cell.protocol == "icmp":
        return [P.icmp(s, ip)]
    if cell.protocol == "arp":
        return [P.arp(s, ip, ctx.arp_window)]
    if cell.protocol == "routes":
        return [P.read(s, "/proc/net/route")]
    if cell.protocol == "conntrack":
        return [
            P.read(s, "/proc/sys/net/netfilter/nf_conntrack_count"),
            P.read(s, "/proc/sys/net/netfilter/nf_conntrack_max"),
        ]
    raise KeyError(cell.protocol)


def _judge_arp_one_mac(ip_of: Callable[[], str], what: str, local_ok: bool = False) -> Judge:
    """Exactly one MAC must answer (FM-06/16); several = IP conflict with each MAC's vendor."""

    def judge(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
        from netconform.checks.parsers.oui import vendor

        arp_probe = next(p for p in probes if p.kind == "arp")
        result = results.get(arp_probe)
        if result is None:
            return Verdict("error", "no result for the ARP probe", error="other")
        if local_ok:
            trie = next((results.get(p) for p in probes if p.kind == "read"), None)
            if trie and _is_local(ip_of(), trie.get("content") or ""):
                return Verdict("passed", f"{what} {ip_of()} is held by this node itself")
        macs: list[str] = []
        for attempt in result.get("attempts", []):
            for mac in attempt.get("macs") or []:
                if mac not in macs:
                    macs.append(mac)
        if len(macs) > 1:
            listed = ", ".join(f"{m} ({vendor(m) or 'unknown vendor'})" for m in macs)
            return Verdict(
                "failed",
                f"IP conflict: {len(macs)} MACs answer ARP for {what} {ip_of()}: {listed}",
                error="protocol",
                classified_layer="L2",
                meaning="more than one device claims the address: intermittent failures (FM-16)",
                classified_fm="FM-16",
            )
        if not macs:
            return failure(
                arp_probe,
                result,
                f"no ARP reply for {what} {ip_of()} on the node's segment",
                layer="L2",
                meaning="same subnet but no ARP answer: an L2 problem (FM-16)",
                fm="FM-06" if cell.target == "lb-vip" else "FM-16",
            )
        outcome = attempt_outcome(result)
        text = f"{what} {ip_of()} is at {macs[0]} ({vendor(macs[0]) or 'unknown vendor'})"
        if outcome == "flaky":
            return Verdict(
                "flaky", f"ARP answered only in some attempts: {text}", error="timeout", classified_layer="L2"
            )
        return Verdict("passed", text)

    return judge


def _is_local(ip: str, fib_trie: str) -> bool:
    """Whether /proc/net/fib_trie lists `ip` as a LOCAL /32 of this network namespace."""
    lines = fib_trie.splitlines()
    for i, line in enumerate(lines):
        if line.strip().endswith(ip) and line.strip().split()[-1] == ip:
            for follow in lines[i + 1 : i + 3]:
                if "/32 host LOCAL" in follow:
                    return True
    return False


def _route_table(content: str) -> list[tuple[ipaddress.IPv4Network, str, bool]]:
    """(destination network, interface, has gateway) for each /proc/net/route entry."""
    routes = []
    for line in content.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        dest = ipaddress.IPv4Address(bytes.fromhex(cols[1])[::-1])
        mask = ipaddress.IPv4Address(bytes.fromhex(cols[7])[::-1])
        flags = int(cols[3], 16)
        if not flags & 0x1:  # RTF_UP
            continue
        net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        routes.append((net, cols[0], bool(flags & 0x2)))
    return routes


def _judge_routes(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-17/10: every pod of this node has a specific route; every node and pod is routable at all."""
    result = results.get(probes[0])
    if result is None or attempt_outcome(result) in ("failed", "error"):
        return failure(probes[0], result or {"error": "other"})
    routes = _route_table(result.get("content") or "")
    node = cell.subject_node
    problems: list[str] = []
    for ref, pod in sorted(ctx.kit.pods.items()):
        if not pod.get("ip") or ref.startswith("host@"):
            continue
        addr = ipaddress.IPv4Address(pod["ip"])
        matches = [r for r in routes if addr in r[0]]
        specific = [r for r in matches if r[0].prefixlen > 0]
        if pod.get("node") == node and not specific:
            problems.append(f"no route for local pod {pod['name']} {pod['ip']} (only the default route)")
        elif not matches:
            problems.append(f"no route at all for pod {pod['name']} {pod['ip']} on {pod.get('node')}")
    if problems:
        return Verdict(
            "failed",
            f"{node}: " + "; ".join(problems[:4]),
            error="net-unreachable",
            classified_layer="L3",
            meaning="a missing route: the node gets the packet but cannot deliver it (FM-10/17)",
            classified_fm="FM-17",
        )
    return Verdict("passed", f"{node}: {len(routes)} routes; every probe-kit pod is routable")


def _judge_conntrack(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    count_r, max_r = (results.get(p) for p in probes)
    if not count_r or not count_r.get("ok"):
        raise_skip = (count_r or {}).get("error") in ("name-not-found", "other", "permission")
        if raise_skip:
            return Verdict(
                "skipped",
                "conntrack counters are not readable on this node "
                "(nf_conntrack not loaded in the host network namespace)",
            )
        return failure(probes[0], count_r or {"error": "other"})
    try:
        count = int((count_r.get("content") or "0").strip())
        limit = int(((max_r or {}).get("content") or "0").strip() or 0)
    except ValueError:
        return Verdict("error", "conntrack counters are not numbers", error="protocol")
    budget = min(SNAT_PORT_BUDGET, limit) if limit else SNAT_PORT_BUDGET
    use = count / budget
    text = (
        f"{count} conntrack entries, {use:.0%} of the SNAT port budget ({budget}; nf_conntrack_max {limit})"
    )
    if use >= CONNTRACK_WARN:
        return Verdict(
            "failed",
            f"near exhaustion: {text}",
            error="timeout",
            classified_layer="L4",
            meaning="NAT needs a conntrack entry and a source port per connection: new ones are "
            "dropped near the budget (FM-30)",
            classified_fm="FM-30",
        )
    return Verdict("passed", text)


def _service_target(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.runner(cell.subject)
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
        return [P.arp(s, ip, ctx.arp_window), P.read(s, "/proc/net/fib_trie", max_bytes=1 << 20)]
    return {
        "tcp": lambda: [P.tcp(s, ip, ports["tcp"])],
        "udp": lambda: [P.udp(s, ip, ports["udp"])],
        "http": lambda: [P.http(s, f"http://{ip}:{ports['http']}/")],
    }[cell.protocol]()


def _judge_vip_icmp(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-15: a VIP need not answer ping; it must answer on VIP:port. Ping answered is noted."""
    icmp_r, tcp_r = results.get(probes[0]), results.get(probes[1])
    if icmp_r is None or tcp_r is None:
        return Verdict("error", "no result for the VIP probes", error="other")
    pinged = attempt_outcome(icmp_r) == "passed"
    tcp_outcome = attempt_outcome(tcp_r)
    if tcp_outcome in ("failed", "error") and not pinged:
        return failure(
            probes[1],
            tcp_r,
            f"{probes[1].describe()} does not answer (and ping gets no reply): "
            f"{tcp_r.get('message') or tcp_r.get('error')}",
        )
    what = "ClusterIP" if cell.target == "clusterip" else "LB VIP"
    if pinged:
        return Verdict(
            "passed",
            f"{what} answers ping"
            + ("" if tcp_outcome == "passed" else f"; but {probes[1].describe()}: {tcp_r.get('error')}"),
        )
    return Verdict(
        "passed",
        f"{what} does not answer ping and answers on VIP:port: expected, not a failure (FM-15)",
        notes=["no ICMP reply from the VIP is expected for ClusterIP and pure-L4 load balancers"],
    )


def _egress(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.runner(cell.subject)
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


def _judge_snat(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-11: the outside must see the node's address as the source, never the pod's."""
    verdict = all_pass(probes, results, "egress")
    if verdict.outcome != "passed":
        return verdict
    result = results[probes[0]]
    echo = result.get("echo") or {}
    seen = echo.get("client_ip")
    assert cell.subject_node is not None
    node_ip = ctx.node_ip(cell.subject_node)
    if seen is None:
        return Verdict(
            "error",
            f"{probes[0].describe()} is not an echo that reflects the caller's address",
            error="protocol",
            classified_layer="L7",
        )
    if seen != node_ip:
        pod_ip = ctx.kit.ip(f"probe@{cell.subject_node}")
        who = "the pod's own address: not masqueraded" if seen == pod_ip else "neither the node nor the pod"
        return Verdict(
            "failed",
            f"egress from {cell.subject} reached the outside as {seen} ({who}); "
            f"expected the node address {node_ip}",
            error="protocol",
            classified_layer="L3",
            meaning="source NAT (masquerade) to the node address is missing (FM-11)",
            classified_fm="FM-11",
        )
    return Verdict("passed", f"the outside sees {seen}, the address of {cell.subject_node}")


def _dns(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.runner(cell.subject)
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


def _judge_dns_answers(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-04/21/22: the server answers, with NOERROR and at least one address."""
    verdict = all_pass(probes, results, "dns")
    if verdict.outcome in ("failed", "error"):
        return verdict
    answered = []
    for probe in probes:
        result = results[probe]
        parsed = P.parse_dns(result.get("answer_b64"))
        if parsed is None:
            return failure(
                probe, result, f"{probe.describe()}: the answer is not a DNS message", error="protocol"
            )
        if parsed.rcode != "NOERROR" or not parsed.addresses:
            code = "name-not-found" if parsed.rcode in ("NXDOMAIN", "NOERROR") else "resolver-failure"
            return failure(
                probe,
                result,
                f"{probe.describe()}: {parsed.rcode}"
                + (" without an address" if parsed.rcode == "NOERROR" else ""),
                error=code,
            )
        answered.append(f"{probe.fields['server']} -> {', '.join(parsed.addresses)}")
    if verdict.outcome == "flaky":
        return verdict
    return Verdict("passed", "; ".join(answered))


def _judge_host_internal(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-24: the node's resolver does not know cluster.local (expected); it must still answer."""
    result = results.get(probes[0])
    if result is None:
        return Verdict("error", "no result", error="other")
    if result.get("ok"):
        return Verdict(
            "passed",
            f"the node resolver answers {ctx.internal_name} "
            f"({', '.join(result.get('addresses') or [])}): it is configured with cluster DNS",
        )
    if result.get("error") == "name-not-found":
        return Verdict(
            "passed",
            f"{ctx.internal_name} is unknown to the node's nameservers: expected for "
            "host-network pods and nodes, not a failure (FM-24)",
            notes=["hostNetwork pods with dnsPolicy Default use the node's nameservers"],
        )
    return failure(
        probes[0],
        result,
        f"the node's nameservers do not answer for {ctx.internal_name}: "
        f"{result.get('message') or result.get('error')}",
    )


def parse_nameservers(content: str) -> list[str]:
    return [
        line.split()[1]
        for line in content.splitlines()
        if line.strip().startswith("nameserver") and len(line.split()) > 1
    ]


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


def _nameserver_followups(cell: Cell, ctx: Context, results: Results) -> list[Probe]:
    probes = _dns(cell, ctx)
    servers = node_nameservers(probes, results) or []
    name = ctx.opts.external_name or ctx.internal_name
    return [P.dns_query(probes[0].subject, ip, name, phase=2) for ip in servers]


def _judge_nameservers(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-24/23: every nameserver of the node answers when asked on its own."""
    servers = node_nameservers(probes[:2], results)
    if servers is None:
        return failure(
            probes[0], results.get(probes[0]) or {"error": "other"}, f"cannot read {RESOLV} on the node"
        )
    if not servers:
        return Verdict(
            "failed",
            f"{cell.subject_node} has no nameserver in {RESOLV}",
            error="name-not-found",
            classified_layer="DNS",
            meaning="the node has no upstream nameserver (FM-24)",
            classified_fm="FM-24",
        )
    queries = probes[2:]
    if not ctx.opts.external_name:
        verdict = all_pass(queries, results, "nameservers")
    else:
        verdict = _judge_dns_answers(cell, ctx, queries, results)
    if verdict.outcome == "passed":
        verdict.reason = f"{cell.subject_node} nameservers {', '.join(servers)}: each answers"
    return verdict


def _cluster_nameserver_sets(cell: Cell, ctx: Context) -> list[Probe]:
    out: list[Probe] = []
    for node in ctx.topo.node_names:
        try:
            s = ctx.runner(f"host@{node}")
        except Skip:
            continue
        out += [P.read(s, RESOLV), P.read(s, RESOLV_SYSTEMD)]
    if not out:
        raise Skip(ctx.kit.unavailable.get("host", "no host-network probe could run"))
    return out


def _judge_nameserver_sets(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    sets: dict[str, tuple[str, ...]] = {}
    for i in range(0, len(probes), 2):
        node = probes[i].subject.split("@", 1)[1]
        servers = node_nameservers(probes[i : i + 2], results)
        if servers is None:
            return failure(
                probes[i], results.get(probes[i]) or {"error": "other"}, f"cannot read {RESOLV} on {node}"
            )
        sets[node] = tuple(sorted(servers))
    distinct = sorted(set(sets.values()))
    if len(distinct) > 1:
        groups = "; ".join(
            f"{', '.join(sorted(n for n, v in sets.items() if v == d))}: {' '.join(d) or 'none'}"
            for d in distinct
        )
        return Verdict(
            "failed",
            f"nodes use different nameservers ({groups})",
            error="resolver-failure",
            classified_layer="DNS",
            meaning="differing nameserver sets give inconsistent resolution across nodes (FM-24)",
            classified_fm="FM-24",
        )
    return Verdict("passed", f"every node uses {' '.join(distinct[0]) if distinct else 'no'} nameserver(s)")


def _cp_vip_arp(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.runner(cell.subject)
    vip = ctx.control_plane_vip()
    return [
        P.read(s, "/proc/net/arp"),
        P.read(s, "/proc/net/fib_trie", max_bytes=1 << 20),
        P.arp(s, vip, ctx.arp_window, phase=2),
    ]


def _judge_cp_vip(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-28: the cached MAC for the control-plane VIP must be the MAC that answers for it now."""
    vip = ctx.control_plane_vip()
    arp_table, trie, who_has = (results.get(p) or {} for p in probes)
    if _is_local(vip, trie.get("content") or ""):
        return Verdict("passed", f"{cell.subject_node} holds the control-plane VIP {vip}")
    base = _judge_arp_one_mac(lambda: vip, "the control-plane VIP")(cell, ctx, [probes[2]], results)
    if base.outcome != "passed":
        return base
    answered = (who_has.get("macs") or [None])[0]
    cached = None
    for line in (arp_table.get("content") or "").splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 4 and cols[0] == vip and cols[3] != "00:00:00:00:00:00":
            cached = cols[3].lower()
    if cached and answered and cached != answered.lower():
        return Verdict(
            "failed",
            f"stale ARP entry on {cell.subject_node}: the neighbour cache maps {vip} to "
            f"{cached}, but {answered} answers for it now (fix: ip neigh flush {vip})",
            error="timeout",
            classified_layer="L2",
            meaning="connections to the VIP go to an old MAC and time out (FM-28)",
            classified_fm="FM-28",
        )
    return Verdict(
        "passed", f"{vip} is at {answered}" + (f"; cache agrees ({cached})" if cached else "; not cached")
    )


def _apiserver_tcp(cell: Cell, ctx: Context) -> list[Probe]:
    """FM-28 at L4: connect from the node to every endpoint of the `kubernetes` Service.

    The neighbour cache and an ARP who-has for the endpoints on the node's own subnet ride along, so a
    time-out can be told apart: a cached MAC that is not the one answering now is a stale entry (FM-28).
    """
    s = ctx.runner(cell.subject)
    endpoints, port = ctx.topo.api_endpoints, ctx.topo.api_endpoint_port
    if not endpoints or not port:
        raise Skip("the `kubernetes` Service in `default` lists no endpoint address and port")
    node_ip = ctx.topo.node(cell.subject_node or "").internal_ip or ""
    probes = [P.tcp(s, ip, port, echo=False) for ip in endpoints]
    on_link = [ip for ip in endpoints if node_ip and _same_subnet(ip, node_ip)]
    if on_link:
        probes.append(P.read(s, "/proc/net/arp"))
        probes += [P.arp(s, ip, ctx.arp_window, phase=2) for ip in on_link]
    return probes


def _cached_macs(arp_table: str) -> dict[str, tuple[str, str]]:
    """IP -> (MAC, device) of the complete entries of /proc/net/arp."""
    out: dict[str, tuple[str, str]] = {}
    for line in arp_table.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 4 and cols[3] != "00:00:00:00:00:00":
            out[cols[0]] = (cols[3].lower(), cols[5] if len(cols) > 5 else "")
    return out


def _judge_apiserver_tcp(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """Every endpoint must accept the connection; a time-out with a stale neighbour entry names FM-28."""
    base = all_pass([p for p in probes if p.kind == "tcp"], results, "the API server endpoints")
    if base.outcome not in ("failed", "flaky") or base.error != "timeout":
        return base
    table = next((results.get(p) or {} for p in probes if p.kind == "read"), {})
    cached = _cached_macs(table.get("content") or "")
    for probe in (p for p in probes if p.kind == "tcp"):
        ip = str(probe.fields["host"])
        who_has = next((results.get(p) or {} for p in probes if p.kind == "arp" and p.fields["ip"] == ip), {})
        answered = [m.lower() for m in who_has.get("macs") or []]
        mac, dev = cached.get(ip, ("", ""))
        if mac and answered and mac not in answered:
            # `flush` keeps PERMANENT entries; `del` removes any kind
            fix = f"ip neigh del {ip} dev {dev}" if dev else f"ip neigh flush {ip} nud all"
            return Verdict(
                base.outcome,
                f"{base.reason}; stale ARP entry on {cell.subject_node}: its neighbour cache maps {ip} to "
                f"{mac}, but {answered[0]} answers for it now (fix: {fix})",
                error="timeout",
                classified_layer="L2",
                meaning="connections to the control-plane endpoint go to an old MAC and time out (FM-28)",
                classified_fm="FM-28",
            )
    return base


def _iptables_snapshots(cell: Cell, ctx: Context) -> list[Probe]:
    """FM-19: the node's rules with counters, twice, a window apart, inside the host probe's phase-1 exec.

    The window is the time the phase's probes take (attempts x timeout), so the suite's own packets
    that a rule drops are counted; both snapshots ride in the exec the host probe gets anyway.
    """
    if not ctx.opts.allow_privileged:
        raise Skip(
            "reading iptables DROP counters (FM-19) needs a privileged host probe: pass --allow-privileged"
        )
    s = ctx.runner(cell.subject)
    return [P.iptables(s, ctx.iptables_window)]


def _judge_iptables(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-19: fails when a DROP/REJECT rule (or DROP policy) counted packets during the window."""
    result = results.get(probes[0])
    node = cell.subject_node
    if result is None:
        return Verdict("error", "no result for the iptables snapshots", error="other")
    if not result.get("ok"):
        code = result.get("error") or "other"
        text = f"{node}: {result.get('message') or code}"
        if code == "other" and result.get("errno") == 2:  # ENOENT: no iptables-save in the image
            return Verdict("skipped", text)
        return Verdict("error", text, error=code)
    snapshots = result.get("snapshots") or []
    if len(snapshots) < 2:
        return Verdict(
            "error", f"{node}: the agent returned {len(snapshots)} snapshot(s), not 2", error="other"
        )
    first, last = snapshots[0], snapshots[-1]
    try:
        before = ipt.parse(first.get("iptables") or "") + ipt.parse(first.get("ip6tables") or "", "ipv6")
        after = ipt.parse(last.get("iptables") or "") + ipt.parse(last.get("ip6tables") or "", "ipv6")
    except ipt.ParseError as exc:
        return Verdict("error", f"{node}: cannot read iptables-save output: {exc}", error="protocol")
    window = float(last.get("at", 0)) - float(first.get("at", 0))
    grown = ipt.drop_growth(before, after)
    notes = [json.dumps(g.as_dict(), sort_keys=True) for g in grown]
    notes += [f"warning: {w}" for w in result.get("warnings") or []]
    if any(s.get("truncated") for s in snapshots):
        notes.append("warning: iptables-save output was truncated; later rules were not compared")
    drop_rules = sum(1 for r in after if r.drops)
    if grown:
        shown = "; ".join(g.describe() for g in grown[:5]) + (
            f"; +{len(grown) - 5} more" if len(grown) > 5 else ""
        )
        return Verdict(
            "failed",
            f"{node}: {len(grown)} DROP/REJECT rule(s) counted packets in {window:.1f} s: {shown}",
            error="timeout" if any(g.rule.target == "DROP" for g in grown) else "refused",
            classified_layer="L3",
            meaning="a firewall rule on the node is dropping packets right now (FM-19)",
            classified_fm="FM-19",
            notes=notes,
        )
    return Verdict(
        "passed",
        f"{node}: no DROP/REJECT counter grew in {window:.1f} s ({drop_rules} drop rule(s) of {len(after)})",
        notes=notes,
    )


# ------------------------------------------------------------------------------------ L7 ingress
INGRESS_FM = {"route": "FM-34", "backend": "FM-35", "address": "FM-36"}


def _l7_entry(cell: Cell, ctx: Context) -> tuple[dict[str, Any], str]:
    """The kit's object behind an L7 ingress cell, and how to name the entry point in a reason."""
    kind, ref = cell.target.split(":", 1)
    if kind == "gateway":
        return ctx.gateway(ref), f"Gateway {ref}"
    return ctx.ingress(ref), f"the ingress of class {ref}"


def _ingress_target(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.runner(cell.subject)
    entry, _ = _l7_entry(cell, ctx)
    if cell.protocol == "https":
        ca = ctx.ingress_ca(cell.target.split(":", 1)[1])
        return [P.http(s, f"https://{entry['address']}/", host_header=entry["host"], ca_b64=ca)]
    return [P.http(s, f"http://{entry['address']}/", host_header=entry["host"])]


def _judge_ingress(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """HTTP with the kit's host through the ingress reaches an echo pod; else say which part failed.

    The proxy's own answers (404/503/502/504, its Server header) mean L4 to the ingress works and the
    problem is its routing (no route for the host, FM-34) or its backends (FM-35); no answer at all is the
    ingress address (controller down, or the path to its LoadBalancer/NodePort, FM-36).
    """
    entry, via = _l7_entry(cell, ctx)
    probe = probes[0]
    result = results.get(probe)
    if result is None:
        return Verdict("error", f"{probe.describe()}: no result (the batch did not run)", error="other")
    outcome = attempt_outcome(result)
    notes = [f"address from {entry.get('source')}"] + ([entry["note"]] if entry.get("note") else [])
    if outcome == "error":
        return failure(probe, result)
    last = result
    if outcome in ("passed", "flaky"):
        echo = last.get("echo") or next(
            (a.get("echo") for a in last.get("attempts", []) if a.get("echo")), None
        )
        if not echo or "server_ip" not in echo:
            return Verdict(
                "failed",
                f"{probe.describe()}: HTTP {last.get('status')} but not from the echo backend "
                f"(Server: {last.get('server') or 'none'}): the ingress routes the host elsewhere",
                error="protocol",
                classified_layer="L7",
                meaning="the ingress routes the kit's host to something else than its Service (FM-34)",
                classified_fm=INGRESS_FM["route"],
                notes=notes,
            )
        seen = echo.get("forwarded_for") or "none"
        notes.append(
            f"backend {echo.get('server_ip')} ({echo.get('pod') or 'pod'} on {echo.get('node') or '?'}) "
            f"answered; the proxy {echo.get('client_ip')} forwarded for {seen}"
        )
        if outcome == "flaky":
            verdict = all_pass(probes, results, cell.id)
            verdict.notes += notes
            return verdict
        return Verdict("passed", f"{via} routes {entry['host']} to an echo pod", notes=notes)
    status = last.get("status")
    proxy = last.get("server") or "?"
    if last.get("error") == "http-status" and status is not None:
        what = {
            404: (
                "route",
                f"the proxy ({proxy}) has no route for host {entry['host']}: the controller did not "
                f"pick up the kit's {'HTTPRoute' if cell.target.startswith('gateway:') else 'Ingress'} "
                "(class, namespace watched, admission) or the rule does not match",
            ),
            503: (
                "backend",
                f"the proxy ({proxy}) has no healthy backend for the echo Service (no ready endpoint)",
            ),
            502: ("backend", f"the proxy ({proxy}) could not connect to the echo backend (refused or reset)"),
            504: ("backend", f"the proxy ({proxy}) got no answer from the echo backend in time"),
        }.get(int(status))
        if what is None:
            what = ("route", f"the proxy ({proxy}) answered HTTP {status} for {entry['host']}")
        part, text = what
        failing = "its routing fails" if part == "route" else "its backends fail"
        return failure(
            probe,
            result,
            f"{probe.describe()}: HTTP {status}: {text}",
            layer="L7",
            meaning=f"L4 to the ingress works; {failing} ({INGRESS_FM[part]})",
            fm=INGRESS_FM[part],
        )
    if last.get("error") == "tls":
        # L4 to the ingress works, the handshake for the kit's name does not: the controller serves no
        # (or another) certificate for the host, i.e. it did not take the Ingress's TLS section: FM-34
        return failure(
            probe,
            result,
            f"{probe.describe()}: TLS with SNI {entry['host']} failed against the run's CA: "
            f"{last.get('message') or 'handshake failed'}: {via} does not serve the kit's certificate "
            "for the host (Secret not picked up, or the Ingress ignored)",
            layer="L7",
            meaning=f"L4 to the ingress works; its TLS for the host fails ({INGRESS_FM['route']})",
            fm=INGRESS_FM["route"],
        )
    verdict = failure(probe, result)
    verdict.meaning = (
        f"the ingress address {entry['address']} does not answer at L4: the controller is down or the path "
        f"to its LoadBalancer/NodePort is broken ({INGRESS_FM['address']}); {verdict.meaning or ''}"
    ).rstrip("; ")
    verdict.classified_fm = INGRESS_FM["address"]
    verdict.notes += notes
    return verdict


RECIPES: dict[tuple[str, str], tuple[Plan, Judge]] = {}


def _recipe(target: str, protocol: str, plan: Plan, judge: Judge | None = None) -> None:
    RECIPES[(target, protocol)] = (plan, judge or (lambda c, x, p, r: all_pass(p, r, c.id)))


for _proto in ("icmp", "tcp", "udp", "http"):
    _recipe("pod", _proto, _pod_target)
_recipe("pod", "mtu", _pod_target, _judge_mtu)
for _proto in ("icmp", "arp", "routes", "conntrack"):
    _recipe("node", _proto, _node_target)
RECIPES[("node", "arp")] = (_node_target, _judge_arp_one_mac(lambda: "", "the node"))
_recipe("node", "routes", _node_target, _judge_routes)
_recipe("node", "conntrack", _node_target, _judge_conntrack)
for _target in ("clusterip", "lb-vip", "nodeport"):
    for _proto in ("tcp", "udp", "http"):
        _recipe(_target, _proto, _service_target)
    _recipe(_target, "icmp", _service_target, _judge_vip_icmp)
_recipe("lb-vip", "arp", _service_target)  # judged by _judge_arp_one_mac(local_ok=True), see judge()
_recipe("outside", "snat", _egress, _judge_snat)
_recipe("outside", "icmp", _egress)
_recipe("outside", "tcp", _egress)
_recipe("internet", "http", _egress)
for _proto in ("udp", "tcp"):
    _recipe("dns-internal", _proto, _dns, _judge_dns_answers)
    _recipe("dns-external", _proto, _dns, _judge_dns_answers)
_recipe("dns-internal", "resolve", _dns)
_recipe("dns-external", "resolve", _dns)
_recipe("coredns", "udp", _dns, _judge_dns_answers)
_recipe("nameserver", "udp", _dns, _judge_nameservers)
_recipe("component:node-nameservers", "config", _cluster_nameserver_sets, _judge_nameserver_sets)
_recipe("component:control-plane-vip", "arp", _cp_vip_arp, _judge_cp_vip)
_recipe("component:apiserver", "tcp", _apiserver_tcp, _judge_apiserver_tcp)
_recipe("component:iptables", "drops", _iptables_snapshots, _judge_iptables)
_recipe("ingress", "http", _ingress_target, _judge_ingress)
_recipe("ingress", "https", _ingress_target, _judge_ingress)
_recipe("gateway", "http", _ingress_target, _judge_ingress)
FOLLOWUPS: dict[tuple[str, str], Callable[[Cell, Context, Results], list[Probe]]] = {
    ("nameserver", "udp"): _nameserver_followups,
}


def _recipe_key(cell: Cell) -> tuple[str, str]:
    if cell.target.startswith(("ingress:", "gateway:")):
        return cell.target.split(":", 1)[0], cell.protocol
    head = cell.target if cell.target.startswith("component:") else cell.target.split("@", 1)[0]
    return head, cell.protocol


def has_recipe(cell: Cell) -> bool:
    return _recipe_key(cell) in RECIPES


def probes_for(cell: Cell, ctx: Context) -> list[Probe]:
    """Phase-1 (and static phase-2) probes of an agent-measured cell; raises Skip with the reason."""
    plan, _ = RECIPES[_recipe_key(cell)]
    return plan(cell, ctx)


def followups_for(cell: Cell, ctx: Context, results: Results) -> list[Probe]:
    """Phase-2 probes that depend on phase-1 results (e.g. query each nameserver the node lists)."""
    fn = FOLLOWUPS.get(_recipe_key(cell))
    return fn(cell, ctx, results) if fn else []


def judge(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    _, judge_fn = RECIPES[_recipe_key(cell)]
    if cell.target == "lb-vip" and cell.protocol == "arp":
        judge_fn = _judge_arp_one_mac(ctx.lb_ip, "the LB VIP", local_ok=True)
    if cell.target.startswith("node@") and cell.protocol == "arp":
        assert cell.target_node is not None
        node = cell.target_node
        judge_fn = _judge_arp_one_mac(lambda: ctx.node_ip(node), f"node {node}")
    if cell.subject.startswith("host@") and cell.target == "dns-internal" and cell.protocol == "resolve":
        judge_fn = _judge_host_internal
    verdict = judge_fn(cell, ctx, probes, results)
    verdict.checks = evidence(probes, results)
    return verdict


NODE_REF = re.compile(r"@(.+)$")
