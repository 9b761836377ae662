"""Shared builders for the suite's unit tests: a topology and a kit without a cluster."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from netconform.checks.api import REGISTRY
from netconform.checks.context import Context
from netconform.checks.judging import Results, evidence
from netconform.checks.probes import Probe, ProbeResult
from netconform.model.cell import Cell
from netconform.model.kit import Kit
from netconform.model.options import SuiteOptions
from netconform.model.topology import NodeInfo, PodInfo, Topology
from netconform.model.verdict import Verdict


def topology(nodes: int = 3, coredns_on: tuple[int, ...] = (1, 2)) -> Topology:
    infos = [
        NodeInfo(
            name=f"node-{i}",
            internal_ip=f"10.89.0.{10 + i}",
            addresses={"InternalIP": f"10.89.0.{10 + i}"},
            pod_cidrs=[f"10.244.{i}.0/24"],
            roles=[],
            taints=[],
            conditions={"Ready": {"status": "True", "reason": "KubeletReady", "message": ""}},
        )
        for i in range(1, nodes + 1)
    ]
    coredns = [
        PodInfo(
            name=f"coredns-{i}",
            namespace="kube-system",
            node=f"node-{i}",
            ip=f"10.244.{i}.53",
            phase="Running",
            ready=True,
            restarts=0,
            waiting_reason=None,
        )
        for i in coredns_on
    ]
    return Topology(
        server="https://127.0.0.1:6443",
        version="v1.31.0",
        context=None,
        nodes=infos,
        dns_service_ip="10.96.0.10",
        coredns=coredns,
        api_endpoints=["10.89.0.2"],
    )


def kit(topo: Topology, echo_ip: dict[str, str] | None = None) -> Kit:
    k = Kit(
        namespace="netconform-test",
        run_id="test",
        clusterip="10.96.0.20",
        lb_ip="10.89.0.200",
        nodeports={"http": 30080, "tcp": 30900, "udp": 30901},
    )
    for i, n in enumerate(topo.node_names, start=1):
        k.pods[f"probe@{n}"] = {"name": f"probe-{n}", "node": n, "ip": f"10.244.{i}.10"}
        k.pods[f"echo@{n}"] = {"name": f"echo-{n}", "node": n, "ip": (echo_ip or {}).get(n, f"10.244.{i}.11")}
        k.pods[f"host@{n}"] = {"name": f"host-{n}", "node": n, "ip": f"10.89.0.{10 + i}"}
    return k


def context(nodes: int = 3, **opts: Any) -> Context:
    topo = topology(nodes)
    base = SuiteOptions(
        external_name="example.test",
        external_url="http://203.0.113.10/",
        external_ip="203.0.113.10",
        external_client="local",
    )
    # replace() refuses a name SuiteOptions does not have (TypeError), as the constructor did
    return Context(topo, kit(topo), dataclasses.replace(base, **opts))


def agent_result(fields: Mapping[str, Any]) -> ProbeResult:
    """`fields` as the engine reads the agent's JSON: a ProbeResult (agent output is not validated either)."""
    return cast(ProbeResult, dict(fields))


def probes_for(cell: Cell, ctx: Context) -> list[Probe]:
    """The phase-1 probes the cell's check plans (raises Skip like the engine sees it)."""
    check = REGISTRY.check_for(cell)
    assert check is not None and check.probe.plan is not None, f"no agent-measured check covers {cell.id}"
    return check.probe.plan(cell, ctx)


def judge(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """The cell's verdict by its check's expectation, with the evidence, as the engine records it."""
    check = REGISTRY.check_for(cell)
    assert check is not None, f"no check covers {cell.id}"
    verdict = check.expect.judge(cell, ctx, probes, results)
    verdict.checks = evidence(probes, results)
    return verdict
