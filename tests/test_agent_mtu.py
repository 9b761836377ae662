"""The agent's `mtu` kind on real sockets: too big (said so) versus lost (said nothing, FM-31).

Topology (namespaces of this module only):

    client eth0 (MTU 1500) ---- (MTU 1450) eth0 router eth1 ---- eth0 server 10.72.2.2, 10.72.2.3
    10.72.1.2                     10.72.1.1        10.72.2.1

- The veth ends disagree on the MTU, like a pod whose eth0 kept 1500 while its host side has the
  overlay's 1450: a 1500-byte frame leaves the client's stack and the veth drops it on delivery, so
  send() fails with ENOBUFS (the socket has IP_RECVERR). That size is too big, the others go on.
- Sizes above the client's own 1500 fail with EMSGSIZE before anything leaves.
- The router drops forwarded packets of 1301 bytes or more to 10.72.2.3 without an ICMP
  (`-m length --length 1301:65535 -j DROP`): an MTU black hole. Those sizes are lost.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netconform.agent import SOURCE as AGENT_FILE
from netconform.checks.probes import ProbeResult
from netconform.model.cell import Cell
from tests.can_run import needs
from tests.netns import Netns
from tests.suite_helpers import context, judge, probes_for

ROOT = Path(__file__).resolve().parent.parent
AGENT = str(AGENT_FILE)
SERVER, BLACK_HOLE = "10.72.2.2", "10.72.2.3"

pytestmark = [
    pytest.mark.root,
    needs("netns"),
    pytest.mark.xdist_group("agent-mtu"),
]


class MtuLab:
    def __init__(self, net: Netns, client: str, port: int) -> None:
        self.net, self.client, self.port = net, client, port

    def mtu(self, host: str, sizes: list[int], timeout: float = 1.0) -> ProbeResult:
        check = {"id": "m", "kind": "mtu", "host": host, "port": self.port, "sizes": sizes}
        plan = {"checks": [check], "timeout": timeout}
        out = self.net.run(self.client, ["python3", AGENT, "run"], input=json.dumps(plan) + "\n", timeout=30)
        result: ProbeResult = json.loads(out)["results"][0]
        return result


@pytest.fixture(scope="module")
def lab() -> Iterator[MtuLab]:
    with Netns("agm") as net:
        client, router, server = net.add("c"), net.add("r"), net.add("s")
        net.veth(client, "eth0", router, "eth0")
        net.sh(router, "ip link set eth0 mtu 1450")  # the client's end keeps 1500
        net.veth(router, "eth1", server, "eth0")
        net.sysctl(router, "net.ipv4.ip_forward", "1")
        net.sh(client, "ip addr add 10.72.1.2/24 dev eth0", "ip route add 10.72.2.0/24 via 10.72.1.1")
        net.sh(
            router,
            "ip addr add 10.72.1.1/24 dev eth0",
            "ip addr add 10.72.2.1/24 dev eth1",
            f"iptables -A FORWARD -d {BLACK_HOLE} -m length --length 1301:65535 -j DROP",
        )
        net.sh(
            server,
            f"ip addr add {SERVER}/24 dev eth0",
            f"ip addr add {BLACK_HOLE}/24 dev eth0",
            "ip route add 10.72.1.0/24 via 10.72.2.1",
        )
        proc = net.popen(
            server,
            ["python3", AGENT, "serve", "--http", "0", "--tcp", "0", "--udp", "0"],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        port = int(json.loads(proc.stdout.readline())["serving"]["udp"])  # printed once bound
        yield MtuLab(net, client, port)


def test_enobufs_and_emsgsize_are_too_big_for_that_size_only(lab: MtuLab) -> None:
    result = lab.mtu(SERVER, [576, 1400, 1450, 1500, 1600])
    print(
        "agent result (ENOBUFS/EMSGSIZE path):",
        json.dumps({k: v for k, v in result.items() if k != "attempts"}),
    )
    assert result["ok"] is True and result["error"] is None
    assert result["largest_ok"] == 1450 and result["sizes_ok"] == [576, 1400, 1450]
    assert result["sizes_too_big"] == [1500, 1600] and result["sizes_lost"] == []
    assert result["too_big_by"] == {"1500": "enobufs", "1600": "emsgsize"}
    assert result["sizes_failed"] == [] and result["send_errors"] == {}


def test_only_too_big_sizes_is_not_a_timeout(lab: MtuLab) -> None:
    result = lab.mtu(SERVER, [1600])
    assert result["ok"] is False and result["error"] == "other" and result["errno"] == 90  # EMSGSIZE
    assert result["sizes_too_big"] == [1600] and "too big" in (result["message"] or "")


def test_black_hole_sizes_are_lost_not_too_big(lab: MtuLab) -> None:
    result = lab.mtu(BLACK_HOLE, [576, 1200, 1300, 1400, 1450, 1500])
    print("agent result (black hole):", json.dumps({k: v for k, v in result.items() if k != "attempts"}))
    assert result["ok"] is True
    assert result["largest_ok"] == 1300 and result["sizes_ok"] == [576, 1200, 1300]
    assert result["sizes_lost"] == [1400, 1450]  # left the client, dropped without a word
    assert result["too_big_by"] == {"1500": "enobufs"}
    assert 900 <= result["elapsed_ms"] < 3000  # the lost sizes cost one timeout, no more


def test_the_suite_names_the_black_hole_and_passes_the_signalled_limit(lab: MtuLab) -> None:
    cell = Cell("pod@node-1", "pod@node-2", "L3", "mtu")
    ctx = context()
    probe = probes_for(cell, ctx)[0]
    black_hole = lab.mtu(BLACK_HOLE, probe.fields["sizes"] + [1500])
    verdict = judge(cell, ctx, [probe], {probe: black_hole})
    assert verdict.outcome == "failed" and verdict.classified_fm == "FM-31", verdict.reason
    assert "black hole" in verdict.reason and "1400, 1450" in verdict.reason
    signalled = lab.mtu(SERVER, probe.fields["sizes"] + [1500])
    verdict = judge(cell, ctx, [probe], {probe: signalled})
    assert verdict.outcome == "passed" and "1500" in verdict.reason, verdict.reason
