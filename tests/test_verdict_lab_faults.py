"""Hand-made faults on a private lab: plain iptables rules inside the lab's node namespaces (not
`lab fault`), each of a different shape, and the verdict must name the right scope and contrast and no
false suspect.

One lab for the module, one short `netconform run --lab` per fault (`--probe-timeout 1 --attempts 2`).
Every rule is inserted with `iptables -I` and removed with the same spec and `-D` in a finally.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab
from tests.can_run import needs
from tests.lab_helpers import lab_name, own_lab

pytestmark = [needs("lab"), pytest.mark.xdist_group("verdict-lab-faults")]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def vlab() -> Iterator[Lab]:
    yield from own_lab(lab_name("vf"))


def _ns(lab: Lab, node: str) -> str:
    return f"nc-{lab.name}-{node}"


def _iptables(lab: Lab, node: str, op: str, rule: str) -> None:
    """`rule` is a chain and its match, optionally after `-t TABLE`: "-t mangle FORWARD -p tcp -j DROP"."""
    words = rule.split()
    table = words[:2] if words[0] == "-t" else []
    argv = ["ip", "netns", "exec", _ns(lab, node), "iptables", *table, op, *words[len(table) :]]
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=10)


def run_suite(lab: Lab, out: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "netconform.cli.main", "run", "--lab", lab.name, "--out", str(out),
         "--probe-timeout", "1", "--attempts", "2", "--no-html"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    path = out / "results.json"
    assert path.exists(), (proc.returncode, (proc.stdout + proc.stderr)[-3000:])
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["test"].split("[", 1)[-1].rstrip("]"): c for c in doc["cells"]}


@dataclass
class HandFault:
    rules: list[tuple[str, str]]  # (node, iptables rule spec for -I / -D)
    fail: list[str]  # cells that must fail (or be flaky when `flaky`)
    passes: list[str]
    words: list[str]  # in the verdict's text
    not_words: list[str] = field(default_factory=list)
    component: str | None = None  # the first scope's first suspect
    flaky: bool = False


ALL = ("node-1", "node-2", "node-3")


def faults(coredns_1: str) -> dict[str, HandFault]:
    return {
        # protocol-only on one node: forwarded ICMP dropped on node-1
        "icmp-node-1": HandFault(
            [("node-1", "FORWARD -p icmp -j DROP")],
            [
                "pod@node-1->pod@node-2/L3-icmp",
                "pod@node-2->pod@node-1/L3-icmp",
                "pod@node-1->outside/L3-icmp",
            ],
            [
                "pod@node-1->pod@node-2/L4-tcp",
                "pod@node-1->pod@node-2/L4-udp",
                "pod@node-1->outside/L4-tcp",
                "pod@node-2->pod@node-3/L3-icmp",
                "host@node-1->node@node-2/L3-icmp",
            ],
            [
                "ICMP (ping) only",
                "node-1",
                "TCP",
                "on the same paths work",
                "ICMP filter",
                "the only explanation consistent with the matrix",
            ],
            ["tunnel", "cut off", "unreachable even from their own node", "egress route", "Suspect SNAT"],
            "ICMP filter",
        ),
        # protocol-only everywhere: DNS over UDP dropped on every node (TCP 53 works)
        "dns-udp-everywhere": HandFault(
            [(n, "FORWARD -p udp --dport 53 -j DROP") for n in ALL],
            [
                "pod@node-1->coredns@node-1/DNS-udp",
                "pod@node-3->coredns@node-2/DNS-udp",
                "pod@node-2->dns-internal/DNS-udp",
            ],
            [
                "pod@node-1->dns-internal/DNS-tcp",
                "pod@node-1->clusterip/L4-udp",
                "pod@node-1->pod@node-2/L4-udp",
            ],
            ["DNS over UDP", "DNS over TCP", "UDP port 53"],
            ["does not answer from any subject", "tunnel", "cut off", "service NAT"],
            "DNS over UDP",
        ),
        # one pair: the overlay between node-1 and node-3 only (each still reaches node-2)
        "pair-1-3": HandFault(
            [
                ("node-1", "INPUT -p udp --dport 6081 -s 10.89.0.13 -j DROP"),
                ("node-1", "OUTPUT -p udp --dport 6081 -d 10.89.0.13 -j DROP"),
            ],
            ["pod@node-1->pod@node-3/L4-tcp", "pod@node-3->pod@node-1/L4-tcp"],
            [
                "pod@node-1->pod@node-2/L4-tcp",
                "pod@node-3->pod@node-2/L4-tcp",
                "host@node-1->node@node-3/L3-icmp",
            ],
            [
                "only between node-1 and node-3 (both directions)",
                "each still reaches node-2",
                "tunnel",
                "same-node traffic works",
            ],
            ["node-1 is cut off", "node-3 is cut off", "node network", "partitioned"],
            "tunnel",
        ),
        # one direction: new connections from node-1's pods to node-2's pods dropped on node-1
        "one-way-1-to-2": HandFault(
            [("node-1", "FORWARD -s 10.244.1.0/24 -d 10.244.2.0/24 -m conntrack --ctstate NEW -j DROP")],
            ["pod@node-1->pod@node-2/L4-tcp", "pod@node-1->pod@node-2/L3-icmp"],
            [
                "pod@node-2->pod@node-1/L4-tcp",
                "pod@node-1->pod@node-3/L4-tcp",
                "host@node-1->pod@node-2/L4-tcp",
            ],
            [
                "from pods on node-1",
                "pod IPs on node-2",
                "fails only from node-1 to node-2",
                "one-way filter",
            ],
            ["cut off", "node network", "ICMP filter", "partitioned", "Suspect tunnel"],
        ),
        # one destination: the CoreDNS pod on node-1, from node-3's pods only
        "coredns-1-from-node-3": HandFault(
            [("node-3", f"FORWARD -s 10.244.3.0/24 -d {coredns_1} -j DROP")],
            ["pod@node-3->coredns@node-1/DNS-udp"],
            [
                "pod@node-1->coredns@node-1/DNS-udp",
                "pod@node-2->coredns@node-1/DNS-udp",
                "pod@node-3->coredns@node-2/DNS-udp",
                "pod@node-3->pod@node-1/L4-tcp",
            ],
            [
                "from pods on node-3",
                "the CoreDNS pods directly on node-1",
                "path to the DNS server",
                "the same checks from node-1 and node-2 work",
            ],
            ["does not answer from any subject", "tunnel", "cut off"],
            "path to the DNS server",
        ),
        # size-dependent: large forwarded packets dropped on node-1
        "large-packets-node-1": HandFault(
            [("node-1", "FORWARD -m length --length 1300:65535 -j DROP")],
            ["pod@node-1->pod@node-2/L3-mtu", "pod@node-2->pod@node-1/L3-mtu"],
            [
                "pod@node-1->pod@node-2/L4-tcp",
                "pod@node-1->pod@node-2/L3-icmp",
                "pod@node-2->pod@node-3/L3-mtu",
            ],
            ["large packets with DF set (MTU) only", "node-1", "MTU", "FM-31"],
            ["tunnel", "cut off", "ICMP filter"],
            "MTU",
        ),
        # outside-only: node-2's pods cannot reach the outside echo (the internet and node-2 itself can)
        "outside-from-node-2": HandFault(
            [("node-2", "FORWARD -s 10.244.2.0/24 -d 203.0.113.10 -j DROP")],
            ["pod@node-2->outside/L4-tcp", "pod@node-2->outside/L3-icmp"],
            ["host@node-2->outside/L4-tcp", "pod@node-1->outside/L4-tcp", "pod@node-2->internet/L7-http"],
            [
                "from pods",
                "to the outside",
                "through node-2",
                "the same targets answer from the nodes",
                "egress",
            ],
            ["tunnel", "cut off", "ICMP filter", "service NAT"],
            "egress",
        ),
        # one node: node-3 drops everything that arrives over the overlay for its pods
        "node-3-overlay-in": HandFault(
            [("node-3", "FORWARD -i vx0 -j DROP")],
            ["pod@node-1->pod@node-3/L4-tcp", "pod@node-2->pod@node-3/L4-tcp"],
            [
                "pod@node-3->pod@node-3/L4-tcp",
                "host@node-1->node@node-3/L3-icmp",
                "pod@node-1->pod@node-2/L4-tcp",
            ],
            ["node-3", "same-node traffic works", "tunnel"],
            ["node network", "ICMP filter"],
            "tunnel",
        ),
        # one port on one node, in another table: HTTP (TCP 8080) forwarded through node-3, mangle table
        "http-port-node-3-mangle": HandFault(
            [("node-3", "-t mangle FORWARD -p tcp --dport 8080 -j DROP")],
            [
                "pod@node-1->pod@node-3/L7-http",
                "pod@node-3->pod@node-2/L7-http",
                "pod@node-3->pod@node-3/L7-http",
            ],
            [
                "pod@node-1->pod@node-3/L4-tcp",
                "pod@node-1->pod@node-3/L3-icmp",
                "pod@node-3->pod@node-2/L4-udp",
                "pod@node-1->pod@node-2/L7-http",
            ],
            [
                "HTTP only",
                "through node-3",
                "port filter",
                "HTTP (TCP port 8080) on node-3",
                "tunnel deliver",
            ],
            ["Suspect tunnel", "first broken hop", "cut off", "service NAT", "path MTU", "FM-31"],
            "port filter",
        ),
        # UDP to the echo port dropped on node-2: small UDP and the MTU check's large datagrams (the same
        # port) fail together, which is a port, not a path MTU
        "udp-port-node-2": HandFault(
            [("node-2", "FORWARD -p udp --dport 9001 -j DROP")],
            [
                "pod@node-1->pod@node-2/L4-udp",
                "pod@node-2->pod@node-3/L4-udp",
                "pod@node-1->pod@node-2/L3-mtu",
            ],
            [
                "pod@node-1->pod@node-2/L4-tcp",
                "pod@node-1->pod@node-3/L4-udp",
                "pod@node-1->dns-internal/DNS-udp",
            ],
            ["through node-2", "port filter", "UDP port 9001 on node-2"],
            ["path MTU", "FM-31", "Suspect tunnel", "cut off", "first broken hop"],
            "port filter",
        ),
        # intermittent: half of node-2's incoming overlay packets dropped
        "loss-node-2": HandFault(
            [("node-2", "INPUT -p udp --dport 6081 -m statistic --mode random --probability 0.5 -j DROP")],
            [],
            [
                "pod@node-1->pod@node-3/L4-tcp",
                "pod@node-1->pod@node-1/L4-tcp",
                "host@node-1->node@node-2/L3-icmp",
            ],
            ["node-2", "packet loss"],
            ["node-1 is cut off", "node-3 is cut off", "service NAT"],
            flaky=True,
        ),
    }


@pytest.fixture(scope="module")
def healthy(vlab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_suite(vlab, tmp_path_factory.mktemp("healthy"))


def test_healthy_lab_verdict_is_healthy(healthy: dict[str, Any]) -> None:
    assert healthy["verdict"]["status"] == "healthy", healthy["verdict"]["text"]


def _coredns_ip(doc: dict[str, Any], node: str) -> str:
    cell = by_id(doc)[f"pod@node-3->coredns@{node}/DNS-udp"]
    return str(cell["evidence"]["checks"][0]["server"])


NAMES = sorted(faults("10.244.1.2"))


@pytest.mark.parametrize("name", NAMES)
def test_hand_made_fault_verdict(name: str, vlab: Lab, healthy: dict[str, Any], tmp_path: Path) -> None:
    fault = faults(_coredns_ip(healthy, "node-1"))[name]
    added: list[tuple[str, str]] = []
    try:
        for node, rule in fault.rules:
            _iptables(vlab, node, "-I", rule)
            added.append((node, rule))
        doc = run_suite(vlab, tmp_path)
    finally:
        for node, rule in reversed(added):
            _iptables(vlab, node, "-D", rule)
    cells = by_id(doc)
    verdict = doc["verdict"]
    text = verdict["text"]
    print(f"\n[{name}] {text}")
    bad_outcomes = {"flaky", "failed"} if fault.flaky else {"failed"}
    for cid in fault.fail:
        assert cells[cid]["outcome"] in bad_outcomes, (cid, cells[cid]["outcome"], cells[cid]["reason"])
    for cid in fault.passes:
        assert cells[cid]["outcome"] == "passed", (cid, cells[cid]["outcome"], cells[cid]["reason"])
    assert not [c for c in doc["cells"] if c["outcome"] == "error"], (
        "a hand-made fault is no measurement error"
    )
    for words in fault.words:
        assert words in text, (words, text)
    for words in fault.not_words:
        assert words not in text, (words, text)
    scopes = verdict["intermittent"] if fault.flaky and not verdict["scopes"] else verdict["scopes"]
    assert scopes, text
    if fault.component:
        assert scopes[0]["suspects"][0]["component"] == fault.component, text
    if fault.flaky:
        noticed = [c for c in doc["cells"] if c["outcome"] in ("flaky", "failed")]
        assert noticed, "50% loss on node-2's overlay made nothing fail or flicker"
        # every path that noticed the loss goes through node-2 (its pods, its node, or a Service/DNS backend)
        through = [c for c in noticed if "node-2" in c["subject"] + c["target"]]
        assert len(through) >= len(noticed) / 2, [(c["subject"], c["target"]) for c in noticed]


def test_a_frozen_api_is_reported_as_unmeasured_not_as_a_network_fault(vlab: Lab, tmp_path: Path) -> None:
    """The API server (the lab's supervisor) stops for 25 s right after the kit is Ready, longer than an
    exec's deadline (2 attempts x 1 s + 1 s + 15 s of overhead): every exec of the first phase fails. The
    verdict says so first, with the time, and names no network cause."""
    import os
    import signal

    pid = vlab.supervisor_pid()
    assert pid
    env = {**os.environ, "NC_TEST_FREEZE_PID": str(pid), "NC_TEST_FREEZE_S": "25"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "netconform.cli.main", "run", "--lab", vlab.name, "--out", str(tmp_path),
             "--probe-timeout", "1", "--attempts", "2", "--no-html",
             "--", "-p", "tests.lab_freeze_plugin", "-k", "pod_to_pod_tcp or clusterip_tcp or egress_tcp"],
            capture_output=True, text=True, timeout=180, cwd=ROOT, env=env, check=False,
        )  # fmt: skip
    finally:
        os.kill(pid, signal.SIGCONT)
    doc = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    cells = doc["cells"]
    assert cells and all(c["outcome"] == "error" for c in cells), [(c["test"], c["outcome"]) for c in cells]
    verdict = doc["verdict"]
    text = verdict["text"]
    assert text.startswith(f"{len(cells)} cells were not measured"), text
    assert verdict["scopes"] == [] and verdict["intermittent"] == [], verdict
    for false_cause in ("tunnel", "partition", "SNAT", "route", "cut off", "service NAT", "DNS"):
        assert false_cause not in text, (false_cause, text)
    assert any(g["at"] for g in verdict["unmeasured"]["groups"]), verdict["unmeasured"]
    assert "(from 20" in text, text  # the time the measurements failed
    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-2000:]


def test_a_stale_neighbour_entry_made_with_ip_neigh_is_named_with_its_fix(
    vlab: Lab, healthy: dict[str, Any], tmp_path: Path
) -> None:
    """Not an iptables rule: node-1's neighbour cache gets a PERMANENT entry with a wrong MAC for node-2.
    Both directions between the two nodes break (node-1's replies go to the old MAC too); the verdict names
    the entry and its fix once, and no filter, tunnel or partition."""
    show = ["ip", "-n", _ns(vlab, "node-2"), "-4", "-o", "addr", "show", "dev", "eth0"]
    out = subprocess.run(show, check=True, capture_output=True, text=True, timeout=10).stdout
    node_2 = out.split(" inet ", 1)[1].split("/", 1)[0]
    neigh = ["ip", "-n", _ns(vlab, "node-1"), "neigh"]
    subprocess.run(
        [*neigh, "replace", node_2, "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "permanent"],
        check=True, capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    try:
        doc = run_suite(vlab, tmp_path)
    finally:
        subprocess.run([*neigh, "del", node_2, "dev", "eth0"], check=True, capture_output=True, timeout=10)
    cells, text = by_id(doc), doc["verdict"]["text"]
    print(f"\n[stale-neighbour] {text}")
    arp = cells["host@node-1->node@node-2/L2-arp"]
    assert arp["outcome"] == "failed" and arp["classified_fm"] == "FM-28", arp["reason"]
    assert "02:00:00:00:00:99 (PERMANENT)" in arp["reason"], arp["reason"]
    for cid in ("host@node-1->node@node-2/L3-icmp", "host@node-2->node@node-1/L3-icmp"):
        assert cells[cid]["outcome"] == "failed", (cid, cells[cid]["reason"])
    for cid in (
        "host@node-1->node@node-3/L3-icmp",
        "pod@node-2->pod@node-3/L4-tcp",
        "host@node-2->node@node-1/L2-arp",
    ):
        assert cells[cid]["outcome"] == "passed", (cid, cells[cid]["reason"])
    scopes = doc["verdict"]["scopes"]
    assert [s["suspects"][0]["component"] for s in scopes] == ["stale neighbour entry"], text
    assert f"fix: ip neigh del {node_2} dev eth0" in text and text.count("Suspect ") == 1, text
    for false_cause in ("one-way filter", "port filter", "Suspect tunnel", "partitioned", "cut off"):
        assert false_cause not in text, (false_cause, text)
