"""The agent's `iptables` kind and the FM-19 cell on a real kernel, in a throwaway namespace.

The namespace `n` has INPUT rules for UDP to 127.0.0.1: port 9999 DROP, 9998 REJECT, 9997 DROP (never
hit), 9996 ACCEPT. A bounded sender (at most 150 rounds, 20 ms apart, one datagram per port) runs while
the agent takes its two snapshots; only the rules it hits and that drop may show growth.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netconform.agent import SOURCE as AGENT_FILE
from netconform.agent import probe_agent as agent
from netconform.checks.parsers.iptables_save import drop_growth, parse
from netconform.engine.run import Engine
from netconform.kube.exec import run_local
from netconform.model.cell import Cell
from tests.can_run import needs
from tests.netns import Netns
from tests.suite_helpers import context

ROOT = Path(__file__).resolve().parent.parent
AGENT = str(AGENT_FILE)
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(150):  # bounded: at most 150 rounds, 3 s
    for port in (9999, 9998, 9996):
        s.sendto(b"fm19", ("127.0.0.1", port))
    time.sleep(0.02)  # pacing the traffic, not waiting for anything
"""
CELL = Cell("host@node-1", "component:iptables", "L3", "drops")

F = Callable[..., None]


def root_only(test: F) -> F:
    """Needs root, namespaces and iptables; the in-process tests below need none of them."""
    for mark in (
        pytest.mark.root,
        needs("netns", "iptables-save"),
        pytest.mark.xdist_group("agent-iptables"),
    ):
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def ns() -> Iterator[tuple[Netns, str]]:
    with Netns("agi") as net:
        name = net.add("n")
        net.sh(
            name,
            "iptables -A INPUT -p udp --dport 9999 -j DROP",
            "iptables -A INPUT -p udp --dport 9998 -j REJECT",
            "iptables -A INPUT -p udp --dport 9997 -j DROP",
            "iptables -A INPUT -p udp --dport 9996 -j ACCEPT",
        )
        yield net, name


def sending(net: Netns, name: str) -> subprocess.Popen[bytes]:
    return net.popen(name, [sys.executable, "-c", SENDER])


def run_agent(net: Netns, name: str, check: dict[str, Any], traffic: bool) -> dict[str, Any]:
    sender = sending(net, name) if traffic else None
    try:
        out = net.run(
            name, ["python3", AGENT, "run"], input=json.dumps({"checks": [check]}) + "\n", timeout=30
        )
    finally:
        if sender is not None:
            sender.terminate()
            sender.wait(timeout=5)
    result: dict[str, Any] = json.loads(out)["results"][0]
    return result


@root_only
@pytest.mark.parametrize("traffic", [True, False], ids=["traffic", "quiet"])
def test_two_snapshots_show_exactly_the_hit_drop_rules(ns: tuple[Netns, str], traffic: bool) -> None:
    net, name = ns
    check = {"id": "i", "kind": "iptables", "interval": 1.0, "ipv6": True, "timeout": 10.0}
    result = run_agent(net, name, check, traffic)
    assert result["ok"] is True, result
    assert result["binary"].endswith("iptables-save") and result["binary6"].endswith("ip6tables-save")
    first, second = result["snapshots"]
    assert 0.9 <= second["at"] - first["at"] < 3.0
    assert "--dport 9999 -j DROP" in first["iptables"] and first["ip6tables"] is not None
    grown = {g.rule.text: g.packets for g in drop_growth(parse(first["iptables"]), parse(second["iptables"]))}
    if not traffic:
        assert grown == {}
        return
    assert set(grown) == {
        "-A INPUT -p udp -m udp --dport 9999 -j DROP",
        "-A INPUT -p udp -m udp --dport 9998 -j REJECT --reject-with icmp-port-unreachable",
    }, grown
    assert all(10 <= n <= 150 for n in grown.values()), grown  # about 1 s of 50 datagrams/s


@root_only
def test_without_cap_net_admin_is_permission(ns: tuple[Netns, str]) -> None:
    net, name = ns
    python = "/usr/bin/python3"  # not a per-user shim the unprivileged user cannot read
    if shutil.which("setpriv") is None or not os.access(python, os.X_OK):
        pytest.skip("needs setpriv (util-linux) and /usr/bin/python3 to drop privileges")
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        copy = Path(folder) / "agent.py"
        shutil.copy(AGENT, copy)
        copy.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
        plan = {"checks": [{"id": "i", "kind": "iptables", "timeout": 5.0}]}
        out = net.run(name, [*argv, python, str(copy), "run"], input=json.dumps(plan) + "\n")
    result = json.loads(out)["results"][0]
    assert (result["error"], result["errno"]) == ("permission", 1), result
    assert "CAP_NET_ADMIN" in result["message"] and "\n" not in result["message"]


def plan_result(check: dict[str, Any]) -> dict[str, Any]:
    document, code = agent.execute_plan(json.dumps({"checks": [check]}))
    assert code == 0
    result: dict[str, Any] = document["results"][0]
    return result


def fake_tool(folder: Path, script: str) -> None:
    tool = folder / "iptables-save"
    tool.write_text("#!/bin/sh\n" + script + "\n")
    tool.chmod(0o755)


def test_missing_binary_is_other_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(agent, "IPTABLES_DIRS", ())
    result = plan_result({"id": "i", "kind": "iptables"})
    assert (result["error"], result["errno"]) == ("other", 2)
    assert result["message"].startswith("iptables-save not found in the probe image")
    assert "use an image with iptables" in result["message"]


def test_a_hanging_tool_is_a_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_tool(tmp_path, "exec /bin/sleep 5")
    monkeypatch.setenv("PATH", str(tmp_path))
    result = plan_result({"id": "i", "kind": "iptables", "timeout": 0.5})
    assert result["error"] == "timeout" and result["elapsed_ms"] < 2000, result


def test_a_failing_tool_is_other_with_its_first_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_tool(tmp_path, 'echo "iptables-save: broken table" >&2; echo second line >&2; exit 3')
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(agent, "_has_capability", lambda bit: True)
    result = plan_result({"id": "i", "kind": "iptables"})
    assert result["error"] == "other" and result["message"].endswith("exited 3: iptables-save: broken table")
    monkeypatch.setattr(agent, "_has_capability", lambda bit: False)
    assert plan_result({"id": "i", "kind": "iptables"})["error"] == "permission"


def test_bad_fields_are_bad_plan() -> None:
    assert plan_result({"id": "i", "kind": "iptables", "interval": -1})["error"] == "bad-plan"
    assert plan_result({"id": "i", "kind": "iptables", "ipv6": "yes"})["error"] == "bad-plan"
    too_long = plan_result({"id": "i", "kind": "iptables", "interval": 3, "timeout": 2})
    assert too_long["error"] == "bad-plan" and "shorter than the check's timeout" in too_long["message"]


# -- the FM-19 cell through the engine: one exec per host subject carries both snapshots ------------


def engine_for(name: str, calls: list[str], **opts: Any) -> Engine:
    ctx = context(probe_timeout=1.0, attempts=1, **opts)

    def runner(subject: str, plan: dict[str, Any], deadline: float) -> dict[str, Any]:
        calls.append(subject)
        return run_local(f"ip netns exec {name}", plan, deadline)

    return Engine(ctx, runner)


@root_only
def test_fm19_cell_fails_on_growing_drops_in_one_exec(ns: tuple[Netns, str]) -> None:
    net, name = ns
    calls: list[str] = []
    engine = engine_for(name, calls, allow_privileged=True)
    sender = sending(net, name)
    try:
        report = engine.run([CELL])
    finally:
        sender.terminate()
        sender.wait(timeout=5)
    verdict = report.verdicts[CELL.id]
    assert calls == ["host@node-1"] and len(report.phases) == 1  # the pair rode in one exec
    assert verdict.outcome == "failed" and verdict.classified_fm == "FM-19", verdict.reason
    assert (
        "2 DROP/REJECT rule(s) counted packets" in verdict.reason
        and "--dport 9999 -j DROP: +" in verdict.reason
    )
    listed = [json.loads(n) for n in verdict.notes if n.startswith("{")]
    assert {d["target"] for d in listed} == {"DROP", "REJECT"} and all(d["packets"] > 0 for d in listed)
    assert "snapshots" not in verdict.checks[0]  # the raw rule sets stay out of results.json
    quiet = engine_for(name, [], allow_privileged=True).run([CELL]).verdicts[CELL.id]
    assert quiet.outcome == "passed" and "no DROP/REJECT counter grew" in quiet.reason, quiet.reason


def test_fm19_skips_without_allow_privileged() -> None:
    calls: list[str] = []
    verdict = engine_for("unused", calls).run([CELL]).verdicts[CELL.id]
    assert verdict.outcome == "skipped" and "--allow-privileged" in verdict.reason and calls == []
