"""The engine against the real agent in a throwaway network namespace (no cluster needed).

One namespace plays every subject and every echo pod: 10.50.0.1 serves; 10.50.0.3 maps to a MAC nobody
has, so every packet to it vanishes and probes to it time out. Asserts the cost model:
one batch per subject per phase, verdicts and classification per cell, and a run whose failing cells
cost about one timeout x attempts in total, not one per cell.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from netconform.checks.api import REGISTRY
from netconform.checks.context import Context
from netconform.engine.run import Engine
from netconform.kube.exec import AGENT_LOCAL, run_local
from netconform.model.cell import Cell
from netconform.model.kit import Kit
from netconform.model.options import SuiteOptions
from tests.can_run import needs
from tests.netns import Netns
from tests.suite_helpers import topology

pytestmark = needs("netns")


@pytest.fixture(scope="module")
def lab_ns() -> Iterator[tuple[Netns, str, dict[str, int]]]:
    with Netns("nceng") as net:
        ns = net.add("s")
        # veth0 holds the served addresses; 10.50.0.3 maps to a MAC nobody has: packets vanish
        net.sh(
            ns,
            "ip link set lo up",
            "ip link add veth0 type veth peer name veth1",
            "ip link set veth0 up",
            "ip link set veth1 up",
            "ip addr add 10.50.0.1/24 dev veth0",
            "ip addr add 10.50.0.2/32 dev veth0",
            "ip neigh replace 10.50.0.3 lladdr 02:00:00:00:00:03 dev veth0 nud permanent",
        )
        proc = net.popen(
            ns,
            ["python3", str(AGENT_LOCAL), "serve", "--http", "0", "--tcp", "0", "--udp", "0"],
            stdout=__import__("subprocess").PIPE,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        ports = json.loads(line)["serving"]
        yield net, ns, ports


def make_engine(ns: str, ports: dict[str, int], calls: list[str]) -> Engine:
    topo = topology(3)
    for n in topo.nodes:
        n.internal_ip = "10.50.0.2"
    kit = Kit(
        namespace="netconform-test",
        run_id="t",
        clusterip="10.50.0.2",
        echo_ports={"http": ports["http"], "tcp": ports["tcp"], "udp": ports["udp"]},
        service_ports={"http": 1, "tcp": 2, "udp": 3},
    )
    for name, ip in (("node-1", "10.50.0.1"), ("node-2", "10.50.0.1"), ("node-3", "10.50.0.3")):
        kit.pods[f"probe@{name}"] = {"name": f"probe-{name}", "node": name, "ip": "10.50.0.1"}
        kit.pods[f"echo@{name}"] = {"name": f"echo-{name}", "node": name, "ip": ip}
        kit.pods[f"host@{name}"] = {"name": f"host-{name}", "node": name, "ip": "10.50.0.2"}
    ctx = Context(topo, kit, SuiteOptions(probe_timeout=1.0, attempts=2))

    def runner(subject: str, plan: dict[str, Any], deadline: float) -> dict[str, Any]:
        calls.append(subject)
        return run_local(f"ip netns exec {ns}", plan, deadline)

    return Engine(ctx, runner)


def test_one_batch_per_subject_and_verdicts(lab_ns: tuple[Netns, str, dict[str, int]]) -> None:
    _, ns, ports = lab_ns
    calls: list[str] = []
    engine = make_engine(ns, ports, calls)
    topo = engine.ctx.topo
    selected = REGISTRY.get("pod-pod-tcp").cells(topo) + REGISTRY.get("pod-clusterip-tcp").cells(topo)
    selected += REGISTRY.get("pod-pod-icmp").cells(topo)
    started = time.monotonic()
    report = engine.run(selected)
    elapsed = time.monotonic() - started
    # evidence cells add host subjects (node -> own pod, node underlay); each subject still gets one batch
    assert sorted(calls) == sorted(set(calls)), calls
    assert {"pod@node-1", "pod@node-2", "pod@node-3"} <= set(calls)
    assert len(report.phases) == 1
    v = report.verdicts
    assert v["pod@node-1->pod@node-2/L4-tcp"].outcome == "passed"
    bad = v["pod@node-1->pod@node-3/L4-tcp"]
    assert bad.outcome == "failed" and bad.error == "timeout" and bad.classified_layer in ("L3", "L2")
    assert bad.checks[0]["host"] == "10.50.0.3" and len(bad.checks[0]["attempts"]) == 2
    assert (
        bad.diagnosis is not None and bad.diagnosis["fm"] == "FM-10"
    )  # the node cannot reach its pod either
    vip = v["pod@node-2->clusterip/L4-tcp"]
    assert vip.outcome == "failed" and vip.error == "refused" and vip.classified_layer == "L4"
    assert vip.diagnosis is not None and vip.diagnosis["fm"] == "FM-08"
    assert "host 10.50.0.2 and port 2" in vip.diagnosis["capture"][0]
    # 12 failing cells (6 timeouts) cost about one timeout x attempts, not a sum
    assert elapsed < 2 * 1.0 + 4.0, elapsed


def test_unreachable_subject_is_an_error_not_a_failure(lab_ns: tuple[Netns, str, dict[str, int]]) -> None:
    _, ns, ports = lab_ns
    engine = make_engine(ns, ports, [])

    def broken(subject: str, plan: dict[str, Any], deadline: float) -> dict[str, Any]:
        from netconform.kube.exec import ExecError

        raise ExecError(f"exec in netconform-test/probe-{subject}: HTTP 500 boom")

    engine.runner = broken
    report = engine.run([Cell("pod@node-1", "pod@node-2", "L4", "tcp")])
    verdict = report.verdicts["pod@node-1->pod@node-2/L4-tcp"]
    assert verdict.outcome == "error" and "HTTP 500 boom" in verdict.reason


def test_phase_two_queries_each_nameserver_the_node_lists(lab_ns: tuple[Netns, str, dict[str, int]]) -> None:
    net, ns, ports = lab_ns
    calls: list[str] = []
    engine = make_engine(ns, ports, calls)
    net.resolv_conf(ns, "nameserver 10.50.0.2\nnameserver 10.50.0.3\n")
    report = engine.run([Cell("host@node-1", "nameserver@node-1", "DNS", "udp")])
    assert [p["phase"] for p in report.phases] == [1, 2]
    assert calls == ["host@node-1", "host@node-1"]
    verdict = report.verdicts["host@node-1->nameserver@node-1/DNS-udp"]
    assert verdict.outcome == "failed"  # nothing answers DNS there
    servers = {c.get("server") for c in verdict.checks if c.get("kind") == "dns"}
    assert servers == {"10.50.0.2", "10.50.0.3"}
