"""Agent checks as hashable values, and the few wire formats the orchestrator owns (DNS messages).

A `Probe` is one agent check run from one subject. Probes are values: two cells that need the same
check from the same subject share one probe, so a plan never runs the same packet twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, TypedDict

import dns.message
import dns.rcode
import dns.rdatatype

TCP_PAYLOAD = b"netconform-echo\n"
UDP_PAYLOAD = b"netconform-echo"


class HttpEcho(TypedDict, total=False):
    """What the echo backend (`agent serve`) reflects: who called it, and who answered."""

    client_ip: str
    client_port: int
    forwarded_for: str | None
    hostname: str
    node: str
    pod: str


class Snapshot(TypedDict, total=False):
    """One `iptables-save -c` / `ip6tables-save -c` pair of the FM-19 probe."""

    at: float
    iptables: str
    ip6tables: str
    truncated: bool


class Attempt(TypedDict, total=False):
    """One attempt of one agent check (`netconform.agent.probe_agent`); kind-specific fields are optional."""

    ok: bool
    error: str | None  # a stable code: timeout, refused, reset, no-route, dns-rcode, http-status ...
    errno: int | None
    message: str | None
    elapsed_ms: float
    # tcp / udp / http / icmp
    status: int  # http
    echo: HttpEcho  # http to an echo backend
    rtt_ms: float
    # dns / resolve
    answer_b64: str | None
    addresses: list[str]
    # arp
    macs: list[str]
    # read
    content: str
    # mtu
    largest_ok: int | None
    sizes_ok: list[int]
    sizes_lost: list[int]
    sizes_too_big: list[int]
    sizes_failed: list[int]
    too_big_by: dict[str, str]
    send_errors: dict[str, str]
    # iptables
    snapshots: list[Snapshot]
    warnings: list[str]


class ProbeResult(Attempt, total=False):
    """The result of one check: the last attempt's fields, every attempt, and the engine's marks.

    `exec_error` is set by the engine when the batch could not run (exec or API failure): such a result
    is never evidence about the network; `at` is when that was seen.
    """

    id: str
    kind: str
    total_ms: float
    attempts: list[Attempt]
    exec_error: bool
    at: str


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, order=True)
class Probe:
    """One agent check (`spec`, canonical JSON without id/timeout) from one subject, in one phase."""

    subject: str
    spec: str
    phase: int = 1

    @classmethod
    def make(cls, subject: str, phase: int = 1, **spec: Any) -> Probe:
        return cls(subject, json.dumps(spec, sort_keys=True, separators=(",", ":")), phase)

    @property
    def fields(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.spec)
        return data

    @property
    def kind(self) -> str:
        return str(self.fields["kind"])

    @property
    def id(self) -> str:
        digest = hashlib.sha1(f"{self.subject}|{self.spec}".encode()).hexdigest()[:10]
        return f"{self.kind}-{digest}"

    def describe(self) -> str:
        f = self.fields
        kind = self.kind
        if kind in ("tcp", "udp", "mtu"):
            return f"{kind} {f['host']}:{f['port']}"
        if kind == "http":
            return f"http {f['url']}" + (f" (Host: {f['host_header']})" if f.get("host_header") else "")
        if kind == "icmp":
            return f"icmp {f['host']}"
        if kind == "arp":
            return f"arp who-has {f['ip']}"
        if kind == "dns":
            return f"dns {f.get('name', '?')} @{f['server']} ({f.get('transport', 'udp')})"
        if kind == "resolve":
            return f"resolve {f['name']}"
        if kind == "read":
            return f"read {f['path']}"
        if kind == "iptables":
            return f"iptables-save -c twice, {f.get('interval', 0):g} s apart"
        return kind


def tcp(subject: str, host: str, port: int, echo: bool = True, phase: int = 1) -> Probe:
    if echo:
        return Probe.make(
            subject,
            phase,
            kind="tcp",
            host=host,
            port=port,
            send_b64=b64(TCP_PAYLOAD),
            expect_b64=b64(TCP_PAYLOAD),
        )
    return Probe.make(subject, phase, kind="tcp", host=host, port=port)


def udp(subject: str, host: str, port: int, phase: int = 1) -> Probe:
    return Probe.make(subject, phase, kind="udp", host=host, port=port, payload_b64=b64(UDP_PAYLOAD))


def http(
    subject: str, url: str, phase: int = 1, host_header: str | None = None, ca_b64: str | None = None
) -> Probe:
    """An http(s) check; `host_header` is also the TLS SNI name, `ca_b64` the only CA trusted (base64 PEM)."""
    extra: dict[str, str] = {}
    if host_header is not None:
        extra["host_header"] = host_header
    if ca_b64 is not None:
        extra["ca_b64"] = ca_b64
    return Probe.make(subject, phase, kind="http", url=url, **extra)


def icmp(subject: str, host: str, phase: int = 1) -> Probe:
    return Probe.make(subject, phase, kind="icmp", host=host, count=1)


def arp(subject: str, ip: str, window: float, phase: int = 1) -> Probe:
    return Probe.make(subject, phase, kind="arp", ip=ip, window=window)


def mtu(subject: str, host: str, port: int, sizes: list[int], phase: int = 1) -> Probe:
    return Probe.make(subject, phase, kind="mtu", host=host, port=port, sizes=sizes)


def read(subject: str, path: str, max_bytes: int = 262144, phase: int = 1) -> Probe:
    return Probe.make(subject, phase, kind="read", path=path, max_bytes=max_bytes)


def iptables(subject: str, window: float, save_budget: float = 20.0, phase: int = 1) -> Probe:
    """The node's rules with counters, twice `window` apart, in one check (one attempt: a snapshot
    pair, not a retry); its timeout covers the window and both saves."""
    return Probe.make(
        subject,
        phase,
        kind="iptables",
        interval=window,
        ipv6=True,
        timeout=window + save_budget,
        attempts=1,
    )


def resolve(subject: str, name: str, phase: int = 1) -> Probe:
    return Probe.make(subject, phase, kind="resolve", name=name, family="inet")


def dns_query(subject: str, server: str, name: str, transport: str = "udp", phase: int = 1) -> Probe:
    """A DNS A query built here (dnspython), moved as bytes by the agent; `name` kept for humans."""
    return Probe.make(
        subject,
        phase,
        kind="dns",
        server=server,
        port=53,
        transport=transport,
        name=name,
        query_b64=b64(dns_wire(name)),
    )


def dns_wire(name: str) -> bytes:
    """A deterministic query (the id derives from the name) so equal probes stay equal."""
    query = dns.message.make_query(name if name.endswith(".") else name + ".", dns.rdatatype.A)
    query.id = int(hashlib.sha1(name.encode()).hexdigest()[:4], 16)
    wire: bytes = query.to_wire()
    return wire


@dataclass
class DnsAnswer:
    rcode: str
    addresses: list[str] = field(default_factory=list)


def parse_dns(answer_b64: str | None) -> DnsAnswer | None:
    """rcode name and A addresses of an agent `dns` answer; None when it is not a DNS message."""
    if not answer_b64:
        return None
    try:
        msg = dns.message.from_wire(base64.b64decode(answer_b64))
    except Exception:  # dnspython raises many exception types for malformed wire data
        return None
    addresses = [item.address for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for item in rrset]
    return DnsAnswer(dns.rcode.to_text(msg.rcode()), addresses)


def result_summary(result: ProbeResult) -> dict[str, Any]:
    """The evidence kept for one check: ok, error, message, timing and each attempt's outcome."""
    keep = {k: v for k, v in result.items() if k not in ("attempts", "content", "snapshots")}
    keep["attempts"] = [
        {
            k: v
            for k, v in a.items()
            if k
            in (
                "ok",
                "error",
                "message",
                "elapsed_ms",
                "status",
                "macs",
                "requests",
                "queue_drops",
                "peer",
                "local",
                "largest_ok",
                "sizes_lost",
                "sizes_too_big",
                "too_big_by",
                "send_errors",
                "rtt_ms",
            )
        }
        for a in result.get("attempts", [])
    ]
    return keep
