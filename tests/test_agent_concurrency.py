"""The agent's cap on checks at once (MAX_CONCURRENT threads/open sockets): a plan bigger than the cap
runs in waves and every check still gets its own result, within the agent's watchdog (issue 15)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from netconform.agent import probe_agent as agent
from tests.can_run import needs
from tests.netns import Netns

pytestmark = [needs("netns"), pytest.mark.root]
AGENT = Path(agent.__file__)


def test_more_checks_than_the_cap_run_in_waves() -> None:
    timeout = 0.4
    count = 2 * agent.MAX_CONCURRENT + 10  # three waves
    # UDP to a port nobody listens on, on a lo that drops everything: each check waits its timeout
    checks = [
        {
            "id": f"u{i}",
            "kind": "udp",
            "host": "10.77.0.1",
            "port": 9,
            "payload_b64": "eA==",
            "timeout": timeout,
        }
        for i in range(count)
    ]
    plan = json.dumps({"checks": checks, "attempts": 1}) + "\n"
    with Netns("acc") as net:
        ns = net.add("a")
        for line in ("ip link set lo up", "ip addr add 10.77.0.1/32 dev lo", "iptables -I INPUT -j DROP"):
            net.sh(ns, line)
        started = time.monotonic()
        out = net.run(ns, [sys.executable, str(AGENT), "run"], input=plan, timeout=60)
        elapsed = time.monotonic() - started
    doc = json.loads(out)
    assert [r["id"] for r in doc["results"]] == [c["id"] for c in checks]
    assert {r["error"] for r in doc["results"]} == {"timeout"}
    assert not any("watchdog" in r["message"] for r in doc["results"])  # each ran its own timeout
    assert elapsed >= 3 * timeout  # 3 waves of at most MAX_CONCURRENT, not all at once
    assert elapsed < 3 * (timeout + 1.0) + 5.0


def test_a_plan_within_the_cap_runs_at_once() -> None:
    timeout = 0.5
    checks = [
        {
            "id": f"u{i}",
            "kind": "udp",
            "host": "10.77.0.1",
            "port": 9,
            "payload_b64": "eA==",
            "timeout": timeout,
        }
        for i in range(agent.MAX_CONCURRENT)
    ]
    plan = json.dumps({"checks": checks, "attempts": 1}) + "\n"
    with Netns("acc") as net:
        ns = net.add("a")
        for line in ("ip link set lo up", "ip addr add 10.77.0.1/32 dev lo", "iptables -I INPUT -j DROP"):
            net.sh(ns, line)
        started = time.monotonic()
        doc = json.loads(net.run(ns, [sys.executable, str(AGENT), "run"], input=plan, timeout=60))
        elapsed = time.monotonic() - started
    assert len(doc["results"]) == agent.MAX_CONCURRENT
    assert elapsed < 2 * timeout + 1.5  # one wave (plus interpreter start)
