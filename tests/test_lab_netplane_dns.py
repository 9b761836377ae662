"""The lab's DNS programs without namespaces: cluster zone answers, forwarding and the upstream's
SERVFAIL switch, over real sockets on loopback (high ports, no root needed)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from netconform.lab.net.clusterdns import ClusterDNS, Zone, first_nameserver
from netconform.lab.net.dnsserver import serve
from netconform.lab.net.upstreamdns import Upstream

ZONE = {
    "domain": "cluster.local",
    "records": {
        "kubernetes.default.svc.cluster.local": {"A": ["10.96.0.1"]},
        "db.default.svc.cluster.local": {"A": ["10.244.1.5", "10.244.2.5"]},
        "_pg._tcp.db.default.svc.cluster.local": {
            "SRV": [{"priority": 0, "weight": 100, "port": 5432, "target": "db.default.svc.cluster.local"}]
        },
        "alias.default.svc.cluster.local": {"CNAME": "kubernetes.default.svc.cluster.local"},
        "ext.default.svc.cluster.local": {"CNAME": "example.test"},
    },
}


def ask(zone: Zone, name: str, rdtype: str = "A") -> tuple[str, list[str], int]:
    response = zone.answer(dns.message.make_query(name, rdtype))
    values = [item.to_text() for rrset in response.answer for item in rrset]
    return dns.rcode.to_text(response.rcode()), values, len(response.authority)


def test_zone_answers_like_coredns() -> None:
    zone = Zone(ZONE)
    assert ask(zone, "kubernetes.default.svc.cluster.local") == ("NOERROR", ["10.96.0.1"], 0)
    assert ask(zone, "KUBERNETES.default.svc.cluster.local.")[1] == ["10.96.0.1"]
    assert sorted(ask(zone, "db.default.svc.cluster.local")[1]) == ["10.244.1.5", "10.244.2.5"]
    assert ask(zone, "_pg._tcp.db.default.svc.cluster.local", "SRV")[1] == [
        "0 100 5432 db.default.svc.cluster.local."
    ]
    assert ask(zone, "alias.default.svc.cluster.local")[1] == [
        "kubernetes.default.svc.cluster.local.",
        "10.96.0.1",
    ]
    assert ask(zone, "10-244-3-7.default.pod.cluster.local")[1] == ["10.244.3.7"]
    assert ask(zone, "kubernetes.default.svc.cluster.local", "AAAA") == ("NOERROR", [], 1)  # NODATA + SOA
    assert ask(zone, "default.svc.cluster.local") == ("NOERROR", [], 1)  # exists: names below it
    assert ask(zone, "nope.default.svc.cluster.local") == ("NXDOMAIN", [], 1)
    assert ask(zone, "cluster.local", "SOA")[0] == "NOERROR" and ask(zone, "cluster.local", "SOA")[1]


def test_resolv_parsing() -> None:
    assert first_nameserver("# x\nsearch a\nnameserver 203.0.113.53\nnameserver 1.2.3.4\n") == "203.0.113.53"
    assert first_nameserver("search a\n") is None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serve_both(tmp_path: Path) -> list[tuple[str, str]]:
    """An upstream and a cluster DNS forwarding to it, both on loopback; returns (question, rcode/answer)."""
    control = tmp_path / "mode"
    up_port, dns_port = _free_port(), _free_port()
    zone_file, resolv = tmp_path / "zone.json", tmp_path / "resolv.conf"
    zone_file.write_text(json.dumps(ZONE))
    resolv.write_text("nameserver 127.0.0.1\n")
    upstream = Upstream(control, servfail=False)
    cluster = ClusterDNS(zone_file, resolv, forward_timeout=1.0, upstream_port=up_port)
    tasks = [
        asyncio.create_task(serve(upstream.answer, "127.0.0.1", up_port, "up")),
        asyncio.create_task(serve(cluster.answer, "127.0.0.1", dns_port, "cluster")),
    ]
    await asyncio.sleep(0.2)  # both servers bind synchronously at their first step
    out = []
    loop = asyncio.get_running_loop()

    def query(name: str, tcp: bool = False) -> str:
        message = dns.message.make_query(name, "A")
        send = dns.query.tcp if tcp else dns.query.udp
        reply = send(message, "127.0.0.1", port=dns_port, timeout=2.0)
        return dns.rcode.to_text(reply.rcode()) + " " + ",".join(i.to_text() for r in reply.answer for i in r)

    try:
        for name in ("example.test", "nothing.test", "kubernetes.default.svc.cluster.local"):
            out.append((name, await loop.run_in_executor(None, query, name)))
        out.append(("tcp", await loop.run_in_executor(None, query, "www.example.test", True)))
        control.write_text("servfail\n")
        out.append(("servfail", await loop.run_in_executor(None, query, "example.test")))
        out.append(
            (
                "internal-during-servfail",
                await loop.run_in_executor(None, query, "alias.default.svc.cluster.local"),
            )
        )
    finally:
        for task in tasks:
            task.cancel()
    return out


def test_forwarding_and_upstream_servfail(tmp_path: Path) -> None:
    answers = dict(asyncio.run(asyncio.wait_for(_serve_both(tmp_path), 20)))
    assert answers["example.test"] == "NOERROR 203.0.113.10"
    assert answers["nothing.test"] == "NXDOMAIN "
    assert answers["kubernetes.default.svc.cluster.local"] == "NOERROR 10.96.0.1"
    assert answers["tcp"] == "NOERROR 203.0.113.10"
    assert answers["servfail"] == "SERVFAIL "
    assert answers["internal-during-servfail"] == "NOERROR kubernetes.default.svc.cluster.local.,10.96.0.1"
