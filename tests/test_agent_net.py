"""The probe agent on real sockets: every error code produced by a real kernel in real namespaces.

Topology (one per module, shared by all tests; the agent runs as a subprocess in `client`):

    client 10.71.1.2 --- 10.71.1.1 router 10.71.2.1 ===(MTU 1400)=== 10.71.2.2 server
    routes in client: 10.71.2.0/24 and 203.0.113.0/24 via router (router has no route for the
    latter: router FORWARD REJECT icmp-net-unreachable); nothing else (198.51.100.1 -> ENETUNREACH).
    router FORWARD: 10.71.2.77 -> REJECT icmp-host-unreachable, 10.71.2.78 -> DROP.
    server INPUT: tcp 9100 DROP, 9101 SYN -> RST, 9103 data -> RST, 9104 -> icmp-host-unreachable,
    9107 every non-SYN segment -> RST (the lab's tcp-reset fault: the RST answers the handshake's last
    ACK), udp 9106 DROP; nothing listens on tcp 9102 / udp 9105.
    server runs `agent.py serve` (http 8080, tcp 9000, udp 9001; tcp 9103; tcp 9107; https 8443 when
    openssl exists) and tests/agent_dns_server.py on port 53.
"""

from __future__ import annotations

import base64
import errno
import json
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netconform.agent import SOURCE as AGENT_FILE
from netconform.agent.probe_agent import ERROR_CODES, ConnectionLost, error_of
from netconform.model.classify import classify, dns_outcome
from tests.agent_dns_server import echo_address
from tests.can_run import needs
from tests.netns import Netns

ROOT = Path(__file__).resolve().parent.parent
AGENT = str(AGENT_FILE)
DNS_SERVER = str(ROOT / "tests" / "agent_dns_server.py")
SERVER = "10.71.2.2"
CLIENT = "10.71.1.2"
SERVER6 = "fd00:71:2::2"
CLIENT6 = "fd00:71:1::2"

pytestmark = [
    pytest.mark.root,
    needs("netns"),
    pytest.mark.xdist_group("agent-netns"),
]


def wait_ready(proc: subprocess.Popen[bytes], what: str, seconds: float = 10.0) -> bytes:
    """The first stdout line of a server process: it prints one when its sockets are bound."""
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], seconds)
    line = proc.stdout.readline() if readable else b""
    if not line:
        raise RuntimeError(f"{what} did not report ready within {seconds} s (exit {proc.poll()})")
    return line


class Lab:
    """The module's namespaces plus a way to run the agent in the client."""

    def __init__(self, net: Netns, client: str, https: bool) -> None:
        self.net, self.client, self.https = net, client, https

    def agent(self, plan: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        out = self.net.run(
            self.client, ["python3", AGENT, "run"], input=json.dumps(plan) + "\n", timeout=timeout
        )
        doc: dict[str, Any] = json.loads(out)
        return doc

    def results(self, plan: dict[str, Any], timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.agent(plan, timeout)["results"]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Netns("agt") as net:
        client, router, server = net.add("c"), net.add("r"), net.add("s")
        net.veth(client, "eth0", router, "eth0")
        net.veth(router, "eth1", server, "eth0", mtu=1400)
        net.sysctl(client, "net.ipv4.ping_group_range", "0 2147483647")  # unprivileged ICMP for root
        net.sysctl(router, "net.ipv4.ip_forward", "1")
        net.sysctl(router, "net.ipv6.conf.all.forwarding", "1")
        for ns in (router, server):  # every ICMP error must come back, however many tests ask at once
            net.sysctl(ns, "net.ipv4.icmp_ratelimit", "0")
            net.sysctl(ns, "net.ipv6.icmp.ratelimit", "0")
        net.sh(
            client,
            "ip addr add 10.71.1.2/24 dev eth0",
            "ip route add 10.71.2.0/24 via 10.71.1.1",
            "ip route add 203.0.113.0/24 via 10.71.1.1",
            "ip -6 addr add fd00:71:1::2/64 dev eth0 nodad",
            "ip -6 route add fd00:71:2::/64 via fd00:71:1::1",
        )
        net.sh(
            router,
            "ip addr add 10.71.1.1/24 dev eth0",
            "ip addr add 10.71.2.1/24 dev eth1",
            "ip -6 addr add fd00:71:1::1/64 dev eth0 nodad",
            "ip -6 addr add fd00:71:2::1/64 dev eth1 nodad",
            "iptables -A FORWARD -d 10.71.2.77 -j REJECT --reject-with icmp-host-unreachable",
            "iptables -A FORWARD -d 10.71.2.78 -j DROP",
            # not "no route": the kernel's no-route ICMP shares a rate limit that icmp_ratelimit=0 empties
            "ip route add 203.0.113.0/24 dev eth1",
            "iptables -A FORWARD -d 203.0.113.0/24 -j REJECT --reject-with icmp-net-unreachable",
        )
        net.sh(
            server,
            "ip addr add 10.71.2.2/24 dev eth0",
            "ip route add 10.71.1.0/24 via 10.71.2.1",
            "ip -6 addr add fd00:71:2::2/64 dev eth0 nodad",
            "ip -6 route add fd00:71:1::/64 via fd00:71:2::1",
            "iptables -A INPUT -p tcp --dport 9100 -j DROP",
            "iptables -A INPUT -p tcp --dport 9101 --syn -j REJECT --reject-with tcp-reset",
            "iptables -A INPUT -p tcp --dport 9103 --tcp-flags PSH PSH -j REJECT --reject-with tcp-reset",
            "iptables -A INPUT -p tcp --dport 9104 -j REJECT --reject-with icmp-host-unreachable",
            "iptables -A INPUT -p tcp --dport 9107 ! --syn -j REJECT --reject-with tcp-reset",
            "iptables -A INPUT -p udp --dport 9106 -j DROP",
        )
        net.resolv_conf(client, "nameserver 10.71.2.2\noptions timeout:1 attempts:1\n")
        env_argv = ["env", "NODE_NAME=node-7", "POD_NAME=echo-7"]
        serve = ["python3", AGENT, "serve", "--http", "8080", "--tcp", "9000", "--udp", "9001"]
        https = shutil.which("openssl") is not None
        if https:
            folder = tmp_path_factory.mktemp("tls")
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=echo.test",
                    "-keyout",
                    str(folder / "key.pem"),
                    "-out",
                    str(folder / "cert.pem"),
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )
            serve += ["--https", "8443", "--cert", str(folder / "cert.pem"), "--key", str(folder / "key.pem")]
        procs = [
            ("echo server", net.popen(server, env_argv + serve, stdout=subprocess.PIPE)),
            (
                "reset server",
                net.popen(server, ["python3", AGENT, "serve", "--tcp", "9103"], stdout=subprocess.PIPE),
            ),
            (
                "handshake reset server",
                net.popen(server, ["python3", AGENT, "serve", "--tcp", "9107"], stdout=subprocess.PIPE),
            ),
            (
                "dns server",
                net.popen(server, [sys.executable, DNS_SERVER, "--port", "53"], stdout=subprocess.PIPE),
            ),
        ]
        for what, proc in procs:
            wait_ready(proc, what)
        yield Lab(net, client, https)


def dnsq(name: str, rdtype: str = "A") -> str:
    return base64.b64encode(dns.message.make_query(name, rdtype).to_wire()).decode()


B64 = base64.b64encode

# (check, expected error code): one plan, run once, every case checked separately below
CASES: list[tuple[dict[str, Any], str | None]] = [
    ({"id": "tcp-ok", "kind": "tcp", "host": SERVER, "port": 9000}, None),
    (
        {
            "id": "tcp-echo",
            "kind": "tcp",
            "host": SERVER,
            "port": 9000,
            "send_b64": B64(b"ping\n").decode(),
            "expect_b64": B64(b"ping\n").decode(),
        },
        None,
    ),
    ({"id": "tcp-drop", "kind": "tcp", "host": SERVER, "port": 9100}, "timeout"),
    ({"id": "tcp-rst-syn", "kind": "tcp", "host": SERVER, "port": 9101}, "refused"),
    ({"id": "tcp-closed", "kind": "tcp", "host": SERVER, "port": 9102}, "refused"),
    (
        {
            "id": "tcp-rst-data",
            "kind": "tcp",
            "host": SERVER,
            "port": 9103,
            "send_b64": B64(b"hello").decode(),
        },
        "reset",
    ),
    (
        {
            "id": "tcp-rst-after-handshake",
            "kind": "tcp",
            "host": SERVER,
            "port": 9107,
            "send_b64": B64(b"ping\n").decode(),
            "expect_b64": B64(b"ping\n").decode(),
        },
        "reset",
    ),
    ({"id": "http-rst-after-handshake", "kind": "http", "url": f"http://{SERVER}:9107/"}, "reset"),
    ({"id": "tcp-icmp-host", "kind": "tcp", "host": SERVER, "port": 9104}, "host-unreachable"),
    ({"id": "tcp-router-host", "kind": "tcp", "host": "10.71.2.77", "port": 80}, "host-unreachable"),
    ({"id": "tcp-router-drop", "kind": "tcp", "host": "10.71.2.78", "port": 80}, "timeout"),
    ({"id": "tcp-no-route", "kind": "tcp", "host": "198.51.100.1", "port": 80}, "net-unreachable"),
    ({"id": "tcp-router-net", "kind": "tcp", "host": "203.0.113.9", "port": 80}, "net-unreachable"),
    (
        {
            "id": "tcp-expect-mismatch",
            "kind": "tcp",
            "host": SERVER,
            "port": 9000,
            "send_b64": B64(b"ping").decode(),
            "expect_b64": B64(b"pong").decode(),
        },
        "protocol",
    ),
    ({"id": "tcp-bad-name", "kind": "tcp", "host": "nx.test", "port": 80}, "name-not-found"),
    ({"id": "http-ok", "kind": "http", "url": f"http://{SERVER}:8080/"}, None),
    ({"id": "http-503", "kind": "http", "url": f"http://{SERVER}:8080/status/503"}, "http-status"),
    ({"id": "http-tls-to-plain", "kind": "http", "url": f"https://{SERVER}:8080/"}, "tls"),
    ({"id": "http-drop", "kind": "http", "url": f"http://{SERVER}:9100/"}, "timeout"),
    ({"id": "http-bad-name", "kind": "http", "url": "http://nx.test:8080/"}, "name-not-found"),
    (
        {"id": "udp-ok", "kind": "udp", "host": SERVER, "port": 9001, "payload_b64": B64(b"hello").decode()},
        None,
    ),
    ({"id": "udp-closed", "kind": "udp", "host": SERVER, "port": 9105, "payload_b64": "eA=="}, "refused"),
    ({"id": "udp-drop", "kind": "udp", "host": SERVER, "port": 9106, "payload_b64": "eA=="}, "timeout"),
    (
        {"id": "udp-router-host", "kind": "udp", "host": "10.71.2.77", "port": 9, "payload_b64": "eA=="},
        "host-unreachable",
    ),
    ({"id": "icmp-raw", "kind": "icmp", "host": SERVER, "count": 2, "interval": 0.05, "socket": "raw"}, None),
    ({"id": "icmp-dgram", "kind": "icmp", "host": SERVER, "socket": "dgram"}, None),
    ({"id": "icmp-raw-host", "kind": "icmp", "host": "10.71.2.77", "socket": "raw"}, "host-unreachable"),
    ({"id": "icmp-dgram-host", "kind": "icmp", "host": "10.71.2.77", "socket": "dgram"}, "host-unreachable"),
    ({"id": "icmp-raw-drop", "kind": "icmp", "host": "10.71.2.78", "socket": "raw"}, "timeout"),
    ({"id": "icmp-no-route", "kind": "icmp", "host": "198.51.100.1"}, "net-unreachable"),
    ({"id": "icmp-router-net", "kind": "icmp", "host": "203.0.113.9", "socket": "raw"}, "net-unreachable"),
    ({"id": "mtu", "kind": "mtu", "host": SERVER, "port": 9001, "sizes": [576, 1400, 1401, 1500]}, None),
    ({"id": "mtu-drop", "kind": "mtu", "host": SERVER, "port": 9106, "sizes": [576]}, "timeout"),
    ({"id": "mtu-closed", "kind": "mtu", "host": SERVER, "port": 9105, "sizes": [576]}, "refused"),
    ({"id": "resolve-ok", "kind": "resolve", "name": "a.test", "family": "inet"}, None),
    ({"id": "resolve-nx", "kind": "resolve", "name": "nx.test"}, "name-not-found"),
    ({"id": "resolve-servfail", "kind": "resolve", "name": "fail.test", "timeout": 4.0}, "resolver-failure"),
    ({"id": "resolve-silent", "kind": "resolve", "name": "silent.test", "timeout": 6.0}, "resolver-failure"),
    ({"id": "tcp6-ok", "kind": "tcp", "host": SERVER6, "port": 9000}, None),
    ({"id": "tcp6-closed", "kind": "tcp", "host": SERVER6, "port": 9102}, "refused"),
    ({"id": "http6-ok", "kind": "http", "url": f"http://[{SERVER6}]:8080/"}, None),
    ({"id": "udp6-ok", "kind": "udp", "host": SERVER6, "port": 9001, "payload_b64": "eA=="}, None),
    ({"id": "icmp6-raw", "kind": "icmp", "host": SERVER6, "socket": "raw"}, None),
    ({"id": "icmp6-dgram", "kind": "icmp", "host": SERVER6, "socket": "dgram"}, None),
    ({"id": "mtu6", "kind": "mtu", "host": SERVER6, "port": 9001, "sizes": [1280, 1400, 1500]}, None),
    ({"id": "read-route", "kind": "read", "path": "/proc/net/route"}, None),
    ({"id": "read-missing", "kind": "read", "path": "/nonexistent/file"}, "other"),
    ({"id": "bad-kind", "kind": "smoke-signal"}, "bad-plan"),
    ({"id": "bad-port", "kind": "tcp", "host": SERVER, "port": 70000}, "bad-plan"),
]
for _name in ("a.test", "nx.test", "fail.test", "refuse.test", "silent.test"):
    for _transport in ("udp", "tcp"):
        CASES.append(
            (
                {
                    "id": f"dns-{_transport}-{_name}",
                    "kind": "dns",
                    "server": SERVER,
                    "transport": _transport,
                    "query_b64": dnsq(_name),
                },
                "timeout" if _name == "silent.test" else None,
            )
        )
CASES.append(
    (
        {"id": "dns-closed", "kind": "dns", "server": SERVER, "port": 5353, "query_b64": dnsq("a.test")},
        "refused",
    )
)


@pytest.fixture(scope="module")
def results(lab: Lab) -> dict[str, dict[str, Any]]:
    checks = [dict(check) for check, _ in CASES]
    if lab.https:
        checks.append(
            {"id": "https-insecure", "kind": "http", "url": f"https://{SERVER}:8443/", "insecure": True}
        )
        checks.append({"id": "https-verify", "kind": "http", "url": f"https://{SERVER}:8443/"})
    started = time.monotonic()
    out = lab.results({"checks": checks, "timeout": 1.0})
    # concurrent: the whole plan costs about its longest check (6 s), not the sum (~40 s)
    assert time.monotonic() - started < 10.0
    return out


@pytest.mark.parametrize(("check", "expected"), CASES, ids=[c["id"] for c, _ in CASES])
def test_error_code_on_real_sockets(
    results: dict[str, dict[str, Any]], check: dict[str, Any], expected: str | None
) -> None:
    result = results[check["id"]]
    assert result["error"] == expected, json.dumps(result)
    assert result["ok"] is (expected is None)
    assert result["error"] is None or result["error"] in ERROR_CODES
    assert result["kind"] == check["kind"]
    assert len(result["attempts"]) == 1 and result["attempts"][0]["error"] == expected


def test_errno_is_reported_with_the_code(results: dict[str, dict[str, Any]]) -> None:
    assert results["tcp-closed"]["errno"] == 111  # ECONNREFUSED
    assert results["tcp-rst-data"]["errno"] == 104  # ECONNRESET
    assert results["tcp-router-host"]["errno"] == 113  # EHOSTUNREACH
    assert results["tcp-no-route"]["errno"] == 101  # ENETUNREACH
    assert results["mtu-closed"]["errno"] == 111 and results["mtu-drop"]["errno"] == 110


def test_http_echo_reflects_the_client(results: dict[str, dict[str, Any]]) -> None:
    ok = results["http-ok"]
    assert ok["status"] == 200
    echo = ok["echo"]
    assert echo["client_ip"] == CLIENT and echo["server_ip"] == SERVER
    assert isinstance(echo["client_port"], int) and f"{CLIENT}:{echo['client_port']}" == ok["local"]
    assert echo["node"] == "node-7" and echo["pod"] == "echo-7"
    assert echo["NODE_NAME"] == "node-7" and echo["POD_NAME"] == "echo-7"
    assert echo["hostname"]
    assert json.loads(ok["body_prefix"]) == echo
    status = results["http-503"]
    assert status["status"] == 503 and status["echo"] == {"status": 503}


def test_https_insecure_switch(lab: Lab, results: dict[str, dict[str, Any]]) -> None:
    if not lab.https:
        pytest.skip("openssl is not installed: no self-signed certificate for the https echo")
    assert results["https-insecure"]["ok"] and results["https-insecure"]["echo"]["client_ip"] == CLIENT
    assert results["https-insecure"]["tls_version"].startswith("TLS")
    assert results["https-verify"]["error"] == "tls"  # self-signed: verification fails


def test_udp_and_tcp_echo(results: dict[str, dict[str, Any]]) -> None:
    reply = json.loads(base64.b64decode(results["udp-ok"]["reply_b64"]))
    assert reply["client_ip"] == CLIENT and reply["bytes"] == 5 and reply["node"] == "node-7"
    assert reply["server_ip"] == SERVER and reply["server_port"] == 9001
    assert f"{CLIENT}:{reply['client_port']}" == results["udp-ok"]["local"]
    assert base64.b64decode(results["tcp-echo"]["reply_b64"]) == b"ping\n"
    assert results["tcp-ok"]["peer"] == f"{SERVER}:9000"


def test_icmp_both_socket_kinds(results: dict[str, dict[str, Any]]) -> None:
    assert results["icmp-raw"]["socket"] == "raw" and results["icmp-raw"]["replies"] == 2
    assert results["icmp-dgram"]["socket"] == "dgram" and results["icmp-dgram"]["replies"] == 1
    assert 0 < results["icmp-raw"]["rtt_ms"] < 1000


def test_mtu_finds_the_largest_df_size(results: dict[str, dict[str, Any]]) -> None:
    mtu = results["mtu"]
    assert mtu["largest_ok"] == 1400
    assert mtu["sizes_ok"] == [576, 1400]
    assert mtu["sizes_too_big"] == [1401, 1500]  # the router's "fragmentation needed", not a loss
    assert mtu["sizes_lost"] == []
    assert mtu["path_mtu"] == 1400
    # the ICMP may also arrive before the next send, which then fails locally with EMSGSIZE
    assert set(mtu["too_big_by"]) == {"1401", "1500"}
    assert set(mtu["too_big_by"].values()) <= {"frag-needed", "emsgsize"}


def test_mtu_known_path_mtu_fails_locally(lab: Lab, results: dict[str, dict[str, Any]]) -> None:
    """Once the kernel learned the path MTU, a too-big send fails at once with EMSGSIZE."""
    again = lab.results(
        {"checks": [{"id": "m", "kind": "mtu", "host": SERVER, "port": 9001, "sizes": [1400, 1472]}]}
    )
    assert again["m"]["sizes_too_big"] == [1472] and again["m"]["largest_ok"] == 1400


def test_ipv6_paths(results: dict[str, dict[str, Any]]) -> None:
    assert results["tcp6-ok"]["peer"] == f"[{SERVER6}]:9000"
    assert results["http6-ok"]["echo"]["client_ip"] == CLIENT6
    reply6 = json.loads(base64.b64decode(results["udp6-ok"]["reply_b64"]))
    assert (reply6["client_ip"], reply6["server_ip"]) == (CLIENT6, SERVER6)
    assert results["icmp6-raw"]["socket"] == "raw" and results["icmp6-dgram"]["socket"] == "dgram"
    mtu6 = results["mtu6"]
    assert (mtu6["largest_ok"], mtu6["sizes_too_big"], mtu6["path_mtu"]) == (1400, [1500], 1400), mtu6


def test_resolve_uses_the_system_resolver(results: dict[str, dict[str, Any]]) -> None:
    assert results["resolve-ok"]["addresses"] == ["192.0.2.1"]


def test_read_is_bounded(lab: Lab, results: dict[str, dict[str, Any]]) -> None:
    assert "eth0" in results["read-route"]["content"]
    small = lab.results({"checks": [{"id": "r", "kind": "read", "path": "/proc/net/route", "max_bytes": 10}]})
    assert len(small["r"]["content"]) == 10 and small["r"]["truncated"] is True


DNS_EXPECT = {
    "a.test": (None, "NOERROR"),
    "nx.test": ("name-not-found", "NXDOMAIN"),
    "fail.test": ("resolver-failure", "SERVFAIL"),
    "refuse.test": ("resolver-failure", "REFUSED"),
    "silent.test": ("timeout", None),
}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("name", sorted(DNS_EXPECT))
def test_dns_outcomes_classified(results: dict[str, dict[str, Any]], name: str, transport: str) -> None:
    result = results[f"dns-{transport}-{name}"]
    assert result.get("transport", transport) == transport
    wire = base64.b64decode(result["answer_b64"]) if result["ok"] else None
    code, rcode = dns_outcome(wire, result["error"])
    assert (code, rcode) == DNS_EXPECT[name]
    verdict = classify(code, "dns", dns_rcode=rcode)
    assert verdict.fm == ("FM-04" if code else "")
    if name == "a.test":
        assert wire is not None
        answer = dns.message.from_wire(wire)
        assert [rr.to_text() for rr in answer.answer[0]] == ["192.0.2.1"]
    elif name == "silent.test":
        assert verdict.layer == "L3"  # no answer: connectivity to the server, not DNS itself
    else:
        assert verdict.layer == "DNS"


# Runs in the client namespace: the agent with a connect() that, once the handshake succeeded, has
# the connection reset before returning (one byte to port 9103, whose firewall answers data with a
# RST) and waits until the RST arrived: the agent's next step (getpeername, the first send) meets
# it every time. "consumed": the pending ECONNRESET was already read (SO_ERROR), so the kernel says
# only ENOTCONN or EPIPE.
RESET_FIRST = r"""
import importlib.util, json, select, socket, sys

spec = importlib.util.spec_from_file_location("agent", sys.argv[1])
agent = importlib.util.module_from_spec(spec)
spec.loader.exec_module(agent)
consume = sys.argv[3] == "consumed"


class ResetAfterConnect(socket.socket):
    def connect(self, address):
        super().connect(address)
        socket.socket.send(self, b"\0")
        if not select.select([self], [], [], 3.0)[0]:  # a reset socket is readable
            raise SystemExit("no RST within 3 s after the handshake")
        if consume:
            self.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


new_socket = agent._new_socket


def instrumented(family, kind, proto=0):
    sock = new_socket(family, kind, proto)
    if kind != socket.SOCK_STREAM:
        return sock
    return ResetAfterConnect(family, kind, proto, fileno=sock.detach())


agent._new_socket = instrumented
document, _ = agent.execute_plan(sys.argv[2])
print(json.dumps(document))
"""


@pytest.mark.parametrize("pending", ["pending", "consumed"])
def test_reset_right_after_the_handshake_is_reset(lab: Lab, pending: str) -> None:
    """Not `other` (ENOTCONN): whichever call after a successful connect() meets the RST, it is a
    reset; errno says what the kernel reported (ECONNRESET while pending, else ENOTCONN or EPIPE)."""
    payload = B64(b"ping\n").decode()
    checks: list[dict[str, Any]] = [
        {"id": "tcp", "kind": "tcp", "host": SERVER, "port": 9103},
        {"id": "tcp-echo", "kind": "tcp", "host": SERVER, "port": 9103, "send_b64": payload},
        {"id": "http", "kind": "http", "url": f"http://{SERVER}:9103/"},
        {"id": "dns-tcp", "kind": "dns", "server": SERVER, "port": 9103, "transport": "tcp",
         "query_b64": dnsq("a.test")},
    ]  # fmt: skip
    plan = json.dumps({"checks": checks, "timeout": 2.0})
    out = lab.net.run(lab.client, ["python3", "-c", RESET_FIRST, AGENT, plan, pending], timeout=30)
    results = {r["id"]: r for r in json.loads(out)["results"]}
    got = {k: (r["error"], r["errno"], r["message"]) for k, r in results.items()}
    assert all(r["error"] == "reset" for r in results.values()), got
    allowed = {104} if pending == "pending" else {107, 32}  # ECONNRESET; ENOTCONN, EPIPE
    assert {r["errno"] for r in results.values()} <= allowed, got


def test_enotconn_is_a_reset_only_after_a_successful_connect() -> None:
    """The mapping is by type: ConnectionLost (raised only on an established socket) is a reset; a
    bare ENOTCONN (a socket that never connected: a local mistake) is not a network verdict."""
    assert error_of(ConnectionLost(errno.ENOTCONN, "x"))[:2] == ("reset", errno.ENOTCONN)
    assert error_of(ConnectionLost(errno.EPIPE, "x"))[:2] == ("reset", errno.EPIPE)
    assert error_of(OSError(errno.ENOTCONN, "x"))[:2] == ("other", errno.ENOTCONN)


def test_attempts_are_all_kept(lab: Lab) -> None:
    plan = {
        "attempts": 3,
        "attempt_gap": 0.05,
        "timeout": 0.3,
        "checks": [
            {"id": "drop", "kind": "tcp", "host": "10.71.2.78", "port": 80},
            {"id": "ok", "kind": "tcp", "host": SERVER, "port": 9000, "attempts": 2},
        ],
    }
    res = lab.results(plan)
    assert [a["error"] for a in res["drop"]["attempts"]] == ["timeout"] * 3
    assert all(250 <= a["elapsed_ms"] < 900 for a in res["drop"]["attempts"])
    assert res["drop"]["total_ms"] >= 900
    assert [a["ok"] for a in res["ok"]["attempts"]] == [True, True] and res["ok"]["ok"]


def test_200_checks_cost_one_timeout(lab: Lab) -> None:
    timeout = 1.0
    checks = [{"id": f"c{i}", "kind": "tcp", "host": "10.71.2.78", "port": 1000 + i} for i in range(200)]
    started = time.monotonic()
    doc = lab.agent({"checks": checks, "timeout": timeout})
    wall = time.monotonic() - started
    assert [r["error"] for r in doc["results"]] == ["timeout"] * 200
    assert [r["id"] for r in doc["results"]] == [c["id"] for c in checks]
    assert wall < 3 * timeout, f"200 dropped checks took {wall:.2f} s (serial would be 200 s)"


def test_agent_watchdog_reports_stuck_resolver_as_timeout(lab: Lab) -> None:
    """getaddrinfo has no timeout: the agent stops waiting at the check's deadline anyway."""
    started = time.monotonic()
    res = lab.results({"checks": [{"id": "slow", "kind": "resolve", "name": "silent.test", "timeout": 0.5}]})
    assert res["slow"]["error"] == "timeout"
    assert time.monotonic() - started < 3.0


qnames = st.lists(st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True), min_size=1, max_size=3).map(
    lambda labels: ".".join(labels) + ".echo.test"
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    queries=st.lists(
        st.tuples(qnames, st.sampled_from(["A", "TXT"]), st.sampled_from(["udp", "tcp"])),
        min_size=1,
        max_size=12,
    )
)
def test_dns_wire_round_trip(lab: Lab, queries: list[tuple[str, str, str]]) -> None:
    """dnspython query -> agent `dns` (bytes only) -> dnspython parse: same question, expected answer."""
    messages = [dns.message.make_query(name, rdtype) for name, rdtype, _ in queries]
    checks = [
        {
            "id": f"q{i}",
            "kind": "dns",
            "server": SERVER,
            "transport": transport,
            "query_b64": base64.b64encode(msg.to_wire()).decode(),
        }
        for i, (msg, (_, _, transport)) in enumerate(zip(messages, queries, strict=True))
    ]
    res = lab.results({"checks": checks, "timeout": 2.0})
    for i, (msg, (name, rdtype, _)) in enumerate(zip(messages, queries, strict=True)):
        result = res[f"q{i}"]
        assert result["ok"], result
        answer = dns.message.from_wire(base64.b64decode(result["answer_b64"]))
        assert answer.id == msg.id and answer.question == msg.question
        assert answer.rcode() == dns.rcode.NOERROR
        texts = [rr.to_text() for rr in answer.answer[0]]
        assert texts == ([echo_address(name + ".")] if rdtype == "A" else [f'"{name}."'])


@pytest.mark.parametrize("sock", ["dgram", "raw"])
def test_icmp_errors_about_other_echoes_are_not_ours(lab: Lab, sock: str) -> None:
    """Pings to an address a router answers 'net unreachable' run beside pings to a live host.

    Ping sockets get ICMP errors matched by echo id alone and ids are reused as sockets close, so an
    error about one check's echo could land on another's socket: each check must only report errors
    that quote its own echo (seen in the lab: a pod's ping to a ClusterIP failing a pod-to-pod ping).
    """
    checks = []
    for i in range(40):
        checks.append({"id": f"dead{i}", "kind": "icmp", "host": "203.0.113.5", "socket": sock})
        checks.append({"id": f"live{i}", "kind": "icmp", "host": SERVER, "socket": sock})
    results = lab.results({"checks": checks, "timeout": 1.0, "attempts": 3}, timeout=60)
    wrong = {
        cid: [a["error"] for a in r["attempts"]]
        for cid, r in results.items()
        if (cid.startswith("live") and not all(a["ok"] for a in r["attempts"]))
        # the router's ICMP errors are rate limited: a dead ping may also just time out
        or (
            cid.startswith("dead")
            and any(a["error"] not in ("net-unreachable", "timeout") for a in r["attempts"])
        )
    }
    assert not wrong
