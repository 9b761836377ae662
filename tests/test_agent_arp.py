"""The agent's `arp` kind on a real bridge: an IP conflict (two MACs) is seen, silence is a timeout.

client 10.72.0.1 --+
twin-a 10.72.0.5 --+-- bridge "sw0" in namespace "sw" (an L2 switch)
twin-b 10.72.0.5 --+   (two hosts claim one address: FM-16's IP conflict)
solo   10.72.0.6 --+
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from netconform.agent import SOURCE as AGENT_FILE
from netconform.checks.parsers.oui import vendor
from netconform.model.classify import classify
from tests.can_run import needs
from tests.netns import Netns

AGENT = str(AGENT_FILE)

pytestmark = [
    pytest.mark.root,
    needs("netns"),
    pytest.mark.xdist_group("agent-arp"),
]

# locally administered MACs, fixed so the test knows who answered
MACS = {"twin-a": "02:00:00:72:00:0a", "twin-b": "52:54:00:72:00:0b", "solo": "00:50:56:72:00:06"}


# bounded ARP storm from one namespace of the test segment: who-has 10.72.0.200 (nobody), broadcast
STORM = """
import socket, struct, sys, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
sock.bind(("eth0", 0x0806))
mac = sock.getsockname()[4][:6]
frame = (b"\\xff" * 6 + mac + struct.pack("!H", 0x0806) + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
         + mac + socket.inet_aton("10.72.0.5") + b"\\0" * 6 + socket.inet_aton("10.72.0.200"))
end = time.monotonic() + float(sys.argv[1])
for _ in range(int(sys.argv[2])):
    if time.monotonic() > end:
        break
    sock.send(frame)
"""


class Segment:
    def __init__(self, net: Netns, client: str, names: dict[str, str]) -> None:
        self.net, self.client, self.names = net, client, names

    def run(self, plan: dict[str, Any]) -> list[dict[str, Any]]:
        out = self.net.run(self.client, ["python3", AGENT, "run"], input=json.dumps(plan) + "\n")
        results: list[dict[str, Any]] = json.loads(out)["results"]
        return results

    def arp(self, **check: Any) -> dict[str, Any]:
        return self.run({"checks": [{"id": "a", "kind": "arp", **check}], "timeout": 2.0})[0]

    def rx_packets(self) -> int:
        return int(self.net.run(self.client, ["cat", "/sys/class/net/eth0/statistics/rx_packets"]))


@pytest.fixture(scope="module")
def segment() -> Iterator[Segment]:
    with Netns("arp") as net:
        switch = net.add("sw")
        net.bridge(switch, "sw0")
        hosts = {
            "client": "10.72.0.1/24",
            "twin-a": "10.72.0.5/24",
            "twin-b": "10.72.0.5/24",
            "solo": "10.72.0.6/24",
        }
        names = {}
        for index, (host, cidr) in enumerate(hosts.items()):
            ns = names[host] = net.add(host.replace("-", ""))
            net.veth(ns, "eth0", switch, f"p{index}")
            net.attach(switch, f"p{index}", "sw0")
            if host in MACS:
                net.sh(ns, f"ip link set eth0 address {MACS[host]}")
            net.sh(ns, f"ip addr add {cidr} dev eth0")
        yield Segment(net, names["client"], names)


def test_two_hosts_answering_one_ip_are_both_reported(segment: Segment) -> None:
    result = segment.arp(ip="10.72.0.5", window=0.6)
    assert result["ok"], result
    assert sorted(result["macs"]) == sorted([MACS["twin-a"], MACS["twin-b"]])
    assert result["interface"] == "eth0"  # found through the route to 10.72.0.5
    assert {vendor(mac) for mac in result["macs"]} == {"locally administered", "QEMU/KVM"}


def test_one_host_one_mac(segment: Segment) -> None:
    result = segment.arp(ip="10.72.0.6", interface="eth0", window=0.3)
    assert result["macs"] == [MACS["solo"]] and vendor(result["macs"][0]) == "VMware"


def test_silence_is_a_layer2_timeout(segment: Segment) -> None:
    result = segment.arp(ip="10.72.0.9", window=0.3)
    assert result["error"] == "timeout" and result["macs"] == [] and not result["ok"]
    assert 250 <= result["elapsed_ms"] < 1000
    assert classify(result["error"], "arp").layer == "L2"


def test_bad_interface_and_ip_are_reported_not_raised(segment: Segment) -> None:
    assert segment.arp(ip="10.72.0.5", interface="nope0")["error"] == "other"
    assert segment.arp(ip="not-an-ip")["error"] == "bad-plan"
    no_route = segment.arp(ip="192.0.2.1")
    assert no_route["error"] == "net-unreachable", no_route


def test_replies_are_seen_through_an_arp_storm(segment: Segment) -> None:
    """Issue 15: with every node asking for its peers at once, each listening check's socket got every
    ARP frame on the wire, its queue overflowed and its thread read the reply too late: flaky FM-06/FM-16
    cells at 20 nodes under load. The kernel now queues only the target's replies (a BPF filter), and
    what was queued within the window is read after it."""
    storm = segment.net.popen(
        segment.names["twin-a"], ["python3", "-c", STORM, "6", "400000"], stdout=subprocess.DEVNULL
    )
    try:
        before = segment.rx_packets()
        checks = [{"id": f"a{i}", "kind": "arp", "ip": "10.72.0.6", "window": 0.5} for i in range(24)]
        results = segment.run({"checks": checks, "attempts": 2, "attempt_gap": 0.0})
        storm_frames = segment.rx_packets() - before
    finally:
        storm.kill()
        storm.wait(10)
    assert storm_frames > 2000, storm_frames  # the storm reached the listening interface
    for result in results:
        assert result["ok"] and result["macs"] == [MACS["solo"]], result
        assert all(a["ok"] for a in result["attempts"]), result
        assert result["filtered"] is True and result["queue_drops"] == 0, result
