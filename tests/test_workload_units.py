"""Workload subjects without a cluster: parsing `--subject`, the stable subject ids, which pods are
chosen, the cells the pod checks get from them and the skip reasons a check sees."""

from __future__ import annotations

import argparse
import doctest
import json

import pytest

from netconform.checks import policy_derive, policy_table
from netconform.checks.api import Subjects
from netconform.checks.catalogue.pods import POD_POD_TCP
from netconform.checks.context import Skip
from netconform.kube import workloads as kube_workloads
from netconform.model import refs, workload
from netconform.model.cell import Cell
from netconform.model.options import workload_subject
from netconform.model.workload import WorkloadInfo, WorkloadPod, choose_pods, parse_subject
from netconform.report import layout, policy_grid
from tests import suite_helpers


def test_doctests() -> None:
    for module in (workload, refs, layout, kube_workloads, policy_table, policy_grid, policy_derive):
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


TABLE = """policy_table:
  workloads: [deployment/a/w1, deployment/b/w1]
  addresses: [{cidr: 198.51.100.0/24, probe: 198.51.100.10}]
  ports: [9000, udp/53]
  default: deny
  rules:
    - {from: {namespace: a}, to: {cidr: 198.51.100.0/24}, ports: [9000], expect: allow}
    - {from: {namespaceLabels: {team: b}}, to: {workload: deployment/a/w1}, expect: allow}
"""


def test_truth_table_first_matching_rule_decides() -> None:
    table = policy_table.parse_text(TABLE, "t.yaml")
    table["namespace_labels"] = {"a": {"team": "a"}, "b": {"team": "b"}}
    assert policy_table.expected(table, "deployment/a/w1", None, "198.51.100.10", 9000) == ("allow", 7)
    assert policy_table.expected(table, "deployment/a/w1", None, "198.51.100.10", 53) == ("deny", None)
    assert policy_table.expected(table, "deployment/b/w1", "deployment/a/w1", "10.0.0.1", 53) == ("allow", 8)
    assert policy_table.expected(table, "deployment/a/w1", "deployment/b/w1", "10.0.0.2", 9000) == (
        "deny",
        None,
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("checks: []\n", "t.yaml:1: the file must hold one key, 'policy_table:'"),
        ("policy_table:\n  ports: [80]\n", "t.yaml:2: 'policy_table:' needs 'workloads:'"),
        (
            "policy_table:\n  workloads: [deployment/a/w]\n  ports: [80]\n  colour: red\n",
            "t.yaml:4: unknown key",
        ),
        ("policy_table:\n  workloads: [deployment/a/w]\n  ports: []\n", "t.yaml:3: 'ports:' is empty"),
        (
            "policy_table:\n  workloads: [deployment/a/w]\n  ports: [80]\n  rules:\n"
            "    - {from: {cidr: 10.0.0.0/8}, expect: deny}\n",
            "t.yaml:5: 'cidr' is for 'to:'",
        ),
        (
            "policy_table:\n  workloads: [deployment/a/w]\n  ports: [80]\n  rules:\n"
            "    - {ports: [81], expect: deny}\n",
            "t.yaml:5: port 81 is not in the table's 'ports:'",
        ),
        ("policy_table: [\n", "t.yaml:2: not valid YAML"),
    ],
)
def test_malformed_tables_are_one_line(text: str, words: str) -> None:
    with pytest.raises(policy_table.PolicyTableError) as info:
        policy_table.parse_text(text, "t.yaml")
    assert words in str(info.value) and "\n" not in str(info.value)


def test_policy_check_evaluates_policies_as_the_api_defines_them() -> None:
    E = policy_derive.Endpoint
    web, db, other = (
        E("a", {"app": "web"}, "10.0.1.1"),
        E("a", {"app": "db"}, "10.0.1.2"),
        E("b", {}, "10.0.2.1"),
    )
    labels = {"a": {"team": "x"}, "b": {"team": "y"}}

    def pol(name: str, ns: str, spec: dict[str, object]) -> dict[str, object]:
        return {"metadata": {"namespace": ns, "name": name}, "spec": spec}

    web_only = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}
    rule = {"from": [{"podSelector": web_only}], "ports": [{"port": 5432, "endPort": 5433}]}
    db_from_web = pol("db", "a", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [rule]})
    block = {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.2.0/24"]}}
    no_egress = pol(
        "out",
        "a",
        {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [block]}],
        },
    )
    decide = policy_derive.decide
    assert decide([db_from_web], labels, db, web, "tcp", 5433)[0] == "allow"
    assert decide([db_from_web], labels, db, web, "tcp", 5434) == ("deny", "denied by a/db (ingress)")
    assert decide([db_from_web], labels, db, other, "tcp", 5432)[0] == "deny"  # another namespace
    assert decide([db_from_web], labels, db, web, "udp", 5432)[0] == "deny"
    assert decide([db_from_web, no_egress], labels, db, web, "tcp", 5432)[0] == "allow"
    assert decide([no_egress], labels, other, web, "tcp", 80) == ("deny", "denied by a/out (egress)")
    assert decide([no_egress], labels, other, db, "tcp", 80) == ("allow", "no policy isolates either pod")
    assert policy_derive.numeric_ports([db_from_web]) == [{"protocol": "tcp", "port": 5432}]


def test_a_yaml_check_from_workloads_runs_from_the_runs_workload_pods_only() -> None:
    from netconform.checks.api import WORKLOAD_PODS
    from netconform.checks.yaml_checks import ChecksFileError, load_text

    (check,) = load_text(
        "checks:\n  - name: w\n    from: workloads\n    to: db:5432\n    expect: blocked\n", "w.yaml"
    )
    assert check.subjects == (WORKLOAD_PODS,) and check.expect.name == "blocked"
    try:
        load_text(
            "checks:\n  - name: w\n    from: everyone\n    to: db:5432\n    expect: blocked\n", "w.yaml"
        )
    except ChecksFileError as exc:
        assert str(exc).startswith("w.yaml:3: from must be pods, hosts, outside or workloads")
    else:
        raise AssertionError("an unknown 'from' was accepted")
