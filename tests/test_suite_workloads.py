"""Workload subjects end to end on the lab: `netconform run --subject deployment/NS/NAME` probes from a
user's Deployment (created with `kubectl create deployment ... -- sleep 3600`) through the ephemeral
container `netconform-probe`, one pod per node, as extra rows; a second run reuses the containers; and
bad input ends in one line (exit 4) with nothing of the run left behind but the documented container.

The module has a lab of its own (it adds the `ephemeral-containers-disabled` condition).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab
from tests.can_run import needs
from tests.lab_helpers import lab_name, own_lab, skip_unless_condition_possible, wait_for

ROOT = Path(__file__).resolve().parent.parent
NS = "shop"
PROBE = "netconform-probe"
# the kit's pod->pod TCP and ClusterIP cells (and the workloads' rows of them): enough to show the rows
SELECT = ("-k", "test_pod_to_pod_tcp or test_clusterip")
pytestmark = [needs("lab", "kubectl"), pytest.mark.xdist_group("lab-workloads"), pytest.mark.lab]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from own_lab(lab_name("wl"))


def kubectl(handle: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    binary = str(venv_kubectl) if venv_kubectl.exists() else "kubectl"
    env = {**os.environ, "KUBECONFIG": str(handle.kubeconfig)}
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30, env=env, check=check)


def pods(handle: Lab, app: str) -> list[dict[str, Any]]:
    out = kubectl(handle, "-n", NS, "get", "pods", "-l", f"app={app}", "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def deployment(handle: Lab, app: str, replicas: int) -> list[dict[str, Any]]:
    """`kubectl create deployment APP --replicas N -- sleep 3600`, waited for until every pod runs."""
    image = "--image=python:3.12-slim"
    kubectl(
        handle, "-n", NS, "create", "deployment", app, f"--replicas={replicas}", image, "--", "sleep", "3600"
    )
    if replicas == 0:
        return []
    return list(
        wait_for(
            f"{replicas} running pods of {app}",
            lambda: (
                found
                if len(found := pods(handle, app)) == replicas
                and all(p["status"].get("phase") == "Running" for p in found)
                else None
            ),
        )
    )


@pytest.fixture(scope="module")
def shop(lab: Lab) -> Iterator[Lab]:
    kubectl(lab, "create", "namespace", NS)
    try:
        yield lab
    finally:
        kubectl(lab, "delete", "namespace", NS, "--wait=false", check=False)


def run_suite(handle: Lab, out: Path, *args: str) -> tuple[int, list[str]]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    argv = [
        *(sys.executable, "-m", "netconform.cli.main", "run", "--lab", handle.name, "--no-html"),
        *("--probe-timeout", "1", "--attempts", "1", "--ready-timeout", "40", "--lb-timeout", "10"),
        *("--out", str(out), *args),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=ROOT, env=env, check=False)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output[-3000:]
    return proc.returncode, [ln for ln in output.splitlines() if ln.strip()]


def results(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return data


def run_namespaces(handle: Lab) -> list[str]:
    names = kubectl(handle, "get", "namespaces", "-o", "name").stdout.split()
    return [n for n in names if n.startswith("namespace/netconform-")]


def ephemeral(pod: dict[str, Any]) -> list[str]:
    return [str(c["name"]) for c in pod["spec"].get("ephemeralContainers") or []]


def test_deployment_rows_through_ephemeral_containers_reused(shop: Lab, tmp_path: Path) -> None:
    made = deployment(shop, "checkout", 6)
    nodes = sorted({p["spec"]["nodeName"] for p in made})
    assert len(nodes) >= 2, f"the scheduler should spread 6 pods over the nodes: {nodes}"
    subject = f"deployment/{NS}/checkout"

    # not opted in: the workload's cells skip naming the flag, nothing is added to the pods
    code, lines = run_suite(shop, tmp_path / "a", "--subject", subject, "--", *SELECT)
    assert code == 0, lines[-20:]
    doc = results(tmp_path / "a")
    rows = [c for c in doc["cells"] if c["subject"].startswith(subject + "@")]
    assert rows and {c["outcome"] for c in rows} == {"skipped"}, rows[:2]
    assert all("--allow-ephemeral" in c["reason"] for c in rows), rows[0]["reason"]
    assert all(ephemeral(p) == [] for p in pods(shop, "checkout"))
    kit = [c for c in doc["cells"] if c["subject"].startswith("pod@")]
    assert kit and {c["outcome"] for c in kit} == {"passed"}

    # opted in: one pod per node the Deployment runs on, each through netconform-probe, all passing
    code, lines = run_suite(shop, tmp_path / "b", "--subject", subject, "--allow-ephemeral", "--", *SELECT)
    assert code == 0, lines[-20:]
    doc = results(tmp_path / "b")
    (workload,) = doc["run"]["workloads"]
    assert workload["ref"] == subject and workload["running"] == 6
    assert sorted(p["node"] for p in workload["pods"]) == nodes
    assert sorted(workload["added"]) == nodes and workload["unavailable"] == {}
    rows = [c for c in doc["cells"] if c["subject"].startswith(subject + "@")]
    assert {c["subject"] for c in rows} == {f"{subject}@{n}" for n in nodes}
    assert {c["subject_kind"] for c in rows} == {"S-POD-WORKLOAD"}
    assert {c["outcome"] for c in rows} == {"passed"}, [c for c in rows if c["outcome"] != "passed"][:2]
    # every node's echo pod and the ClusterIP, from each workload pod
    assert {c["target"] for c in rows} == {"clusterip", *(f"pod@{n}" for n in doc["run"]["cluster"]["nodes"])}
    said = [ln for ln in lines if ln.startswith(f"netconform: workload {subject}:")]
    assert said and f"{len(nodes)} added, 0 reused" in said[0], said
    assert all(f"{p['name']} ({p['node']})" in said[0] for p in workload["pods"])
    chosen = {p["name"] for p in workload["pods"]}
    by_name = {p["metadata"]["name"]: p for p in pods(shop, "checkout")}
    assert all(ephemeral(by_name[n]) == [PROBE] for n in chosen)
    assert all(ephemeral(p) == [] for name, p in by_name.items() if name not in chosen)
    assert run_namespaces(shop) == []

    # again: the same pods, the containers reused (none added), still one each
    code, lines = run_suite(shop, tmp_path / "c", "--subject", subject, "--allow-ephemeral", "--", *SELECT)
    assert code == 0, lines[-20:]
    (again,) = results(tmp_path / "c")["run"]["workloads"]
    assert again["pods"] == workload["pods"] and again["added"] == []
    assert any(f"0 added, {len(nodes)} reused" in ln for ln in lines), lines[-10:]
    assert all(ephemeral(p) == [PROBE] for p in pods(shop, "checkout") if p["metadata"]["name"] in chosen)


def test_workload_pods_limit_and_selector_subject(shop: Lab, tmp_path: Path) -> None:
    if not pods(shop, "checkout"):
        deployment(shop, "checkout", 6)
    code, lines = run_suite(
        shop, tmp_path, "--subject", f"pods/{NS}/app=checkout", "--workload-pods", "1", "--allow-ephemeral",
        "--", "-k", "test_pod_to_pod_tcp",
    )  # fmt: skip
    assert code == 0, lines[-20:]
    (workload,) = results(tmp_path)["run"]["workloads"]
    assert len(workload["pods"]) == 1 and workload["running"] == 6
    rows = [c for c in results(tmp_path)["cells"] if c["subject"].startswith(f"pods/{NS}/app=checkout@")]
    assert len({c["subject"] for c in rows}) == 1 and {c["outcome"] for c in rows} == {"passed"}


def test_bad_workloads_one_line_each(shop: Lab, tmp_path: Path) -> None:
    deployment(shop, "idle", 0)
    cases = [
        (f"deployment/{NS}/nope", f"--subject deployment/{NS}/nope: no Deployment nope in namespace {NS}"),
        (f"deployment/{NS}/idle", f"--subject deployment/{NS}/idle: no running pod to probe from (no pod "
                                  "matches its selector)"),
        (f"pods/{NS}/app=ghost", f"--subject pods/{NS}/app=ghost: no running pod to probe from"),
        ("replicaset/shop/x", "the kind must be one of deployment, daemonset, statefulset, pods"),
    ]  # fmt: skip
    for i, (subject, words) in enumerate(cases):
        started = time.monotonic()
        code, lines = run_suite(shop, tmp_path / str(i), "--subject", subject, "--allow-ephemeral")
        assert code == 4, lines
        assert len(lines) == 1 and words in lines[0], lines
        assert time.monotonic() - started < 60
        assert run_namespaces(shop) == []


def test_refused_ephemeral_containers_skip_with_the_reason(shop: Lab, tmp_path: Path) -> None:
    skip_unless_condition_possible(shop, "ephemeral-containers-disabled")
    deployment(shop, "legacy", 2)
    shop.fault_add("ephemeral-containers-disabled")
    try:
        code, lines = run_suite(
            shop, tmp_path, "--subject", f"deployment/{NS}/legacy", "--allow-ephemeral", "--", *SELECT
        )
    finally:
        shop.fault_clear("ephemeral-containers-disabled")
    assert code == 0, lines[-20:]
    doc = results(tmp_path)
    rows = [c for c in doc["cells"] if c["subject"].startswith(f"deployment/{NS}/legacy@")]
    assert rows and {c["outcome"] for c in rows} == {"skipped"}
    assert all(c["reason"].startswith("ephemeral containers are disabled on this cluster") for c in rows)
    assert all(ephemeral(p) == [] for p in pods(shop, "legacy"))
    assert any("skipped: ephemeral containers are disabled" in ln for ln in lines)
    assert run_namespaces(shop) == []


def test_node_sets_limit_subjects_and_node_targets(shop: Lab, tmp_path: Path) -> None:
    if not pods(shop, "checkout"):
        deployment(shop, "checkout", 6)
    subject = f"deployment/{NS}/checkout"
    select = ("-k", "test_pod_to_pod_tcp or test_clusterip or test_each_coredns_pod or test_node_ping")
    code, lines = run_suite(shop, tmp_path / "a", "--nodes", "node-2", "--subject", subject, "--", *select)
    assert code == 0, lines[-20:]
    doc = results(tmp_path / "a")
    assert doc["run"]["node_set"] == {
        "by": "--nodes node-2",
        "selected": ["node-2"],
        "excluded": ["node-1", "node-3"],
    }
    assert "netconform: node set (--nodes node-2): 1 of 3 nodes: node-2" in lines
    cells = doc["cells"]
    subjects = {c["subject"] for c in cells}
    assert subjects - {"external", "cluster"} <= {"pod@node-2", "host@node-2", f"{subject}@node-2"}
    assert {"pod@node-2", f"{subject}@node-2"} <= subjects
    node_targets = {
        c["target"] for c in cells if "@" in c["target"] and not c["target"].startswith("coredns@")
    }
    assert node_targets and all(t.endswith("@node-2") for t in node_targets), node_targets
    # DNS is still reached where it runs: the CoreDNS pod on node-1 is a target of node-2's pods
    assert any(c["target"] == "coredns@node-1" and c["outcome"] == "passed" for c in cells)
    assert any(c["target"] == "clusterip" and c["outcome"] == "passed" for c in cells)
    assert {c["outcome"] for c in cells if c["subject"] != "cluster"} <= {"passed", "skipped"}

    code, lines = run_suite(
        shop, tmp_path / "b", "--node-selector", "kubernetes.io/hostname=node-3", "--", *select
    )
    assert code == 0, lines[-20:]
    assert results(tmp_path / "b")["run"]["node_set"]["selected"] == ["node-3"]

    code, lines = run_suite(shop, tmp_path / "c", "--nodes", "node-2,node-9")
    assert code == 4 and len(lines) == 1 and "--nodes: no node node-9 in the cluster" in lines[0], lines
    code, lines = run_suite(shop, tmp_path / "d", "--node-selector", "rack=none")
    assert code == 4 and len(lines) == 1 and "--node-selector rack=none: no node is selected" in lines[0], (
        lines
    )
    assert run_namespaces(shop) == []
