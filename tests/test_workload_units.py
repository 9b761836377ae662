"""Workload subjects without a cluster: parsing `--subject`, the stable subject ids, which pods are
chosen, the cells the pod checks get from them and the skip reasons a check sees."""

from __future__ import annotations

import argparse
import doctest
import json

import pytest

from netconform.checks.api import Subjects
from netconform.checks.catalogue.pods import POD_POD_TCP
from netconform.checks.context import Skip
from netconform.kube import workloads as kube_workloads
from netconform.model import refs, workload
from netconform.model.cell import Cell
from netconform.model.options import workload_subject
from netconform.model.workload import WorkloadInfo, WorkloadPod, choose_pods, parse_subject
from netconform.report import layout
from tests import suite_helpers


def test_doctests() -> None:
    for module in (workload, refs, layout, kube_workloads):
        assert doctest.testmod(module).failed == 0, module.__name__


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("replicaset/a/b", "the kind must be one of"),
        ("deployment/A_B/x", "is not a namespace name"),
        ("deployment/shop/", "is not a deployment name"),
        ("pods/shop/", "give a label selector"),
        ("pods/shop/a@b", "give a label selector"),
    ],
)
def test_bad_subjects_are_one_line(text: str, words: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=words):
        workload_subject(text)


def test_subject_ids_are_stable_and_typed() -> None:
    cell = Cell.parse("statefulset/db/pg@node-3->pod@node-1/L4-tcp")
    assert (cell.source.head, cell.source.name, cell.subject_node) == (
        "workload",
        "statefulset/db/pg",
        "node-3",
    )
    assert cell.subject_kind == "S-POD-WORKLOAD" and cell.cross_node
    assert Cell.parse("pod@node-1->pod@node-2/L4-tcp").subject_kind == "S-POD-NODE"  # unchanged
    assert str(parse_subject(" daemonset/kube-system/agent ")) == "daemonset/kube-system/agent"


def test_one_pod_per_node_at_most_k() -> None:
    pods = [WorkloadPod(f"p{i}", f"node-{i % 3 + 1}") for i in range(7)]
    assert [(p.name, p.node) for p in choose_pods(pods, None)] == [
        ("p0", "node-1"),
        ("p1", "node-2"),
        ("p2", "node-3"),
    ]
    assert [p.node for p in choose_pods(pods, 2)] == ["node-1", "node-2"]


def test_pod_checks_get_workload_rows_and_skips_name_the_reason() -> None:
    ctx = suite_helpers.context(3)
    info = WorkloadInfo(
        "deployment/shop/checkout", "shop", [WorkloadPod("c-1", "node-1"), WorkloadPod("c-2", "node-2")]
    )
    info.unavailable["node-2"] = kube_workloads.NOT_ALLOWED.format(pod="shop/c-2")
    ctx.topo.workloads = [info]
    subjects = {c.subject for c in POD_POD_TCP.cells(ctx.topo)}
    assert {"deployment/shop/checkout@node-1", "deployment/shop/checkout@node-2"} <= subjects
    assert "deployment/shop/checkout@node-3" not in subjects
    assert Subjects("pod", nodes=("node-1",)).refs(ctx.topo) == [
        "pod@node-1"
    ]  # an explicit node list: kit only
    assert POD_POD_TCP.covers(Cell.parse("deployment/shop/checkout@node-1->pod@node-3/L4-tcp"))
    probes = suite_helpers.probes_for(Cell.parse("deployment/shop/checkout@node-1->pod@node-3/L4-tcp"), ctx)
    assert [p.subject for p in probes] == ["deployment/shop/checkout@node-1"]
    with pytest.raises(Skip, match="pass --allow-ephemeral"):
        ctx.sender("deployment/shop/checkout@node-2")
    with pytest.raises(Skip, match="no pod of deployment/shop/checkout was chosen on node-3"):
        ctx.sender("deployment/shop/checkout@node-3")
    again = type(ctx.topo).from_dict(json.loads(ctx.topo.to_json()))
    assert again.workloads == [info]  # the snapshot the xdist workers read keeps the workloads


def test_agent_travels_on_stdin_before_the_plan() -> None:
    head = kube_workloads.agent_stdin()
    size = int(head[:10])
    assert len(head[10:].encode()) == size and "def cmd_run" in head[10:]
    assert "os.read(0" in kube_workloads.BOOTSTRAP  # unbuffered: the plan line stays for the agent
