"""Policy truth tables end to end on the lab (`netconform run --policy-table FILE.yaml`, docs/policy.md).

3 namespaces x 3 Deployments of the user's (each serving TCP 9000 and 8080) under a default deny plus
allow policies: every cell as the table expects on a healthy lab; under `netpol-not-enforced --node
node-2` exactly the denied flows towards node-2's pods are wrong, shown in the grids with the command
that reproduces each (and that command does reproduce it); a malformed table ends in one line (exit 4).
The module has a lab of its own (it adds a data-plane fault).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab
from netconform.lab.net.outside import AGENT
from tests.can_run import needs
from tests.lab_helpers import lab_name, own_lab, wait_for

ROOT = Path(__file__).resolve().parent.parent
NAMESPACES = ("ns-a", "ns-b", "ns-c")
WORKLOADS = ("w1", "w2", "w3")
PORTS = (9000, 8080)
pytestmark = [needs("lab", "kubectl"), pytest.mark.xdist_group("lab-policy"), pytest.mark.lab]

POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-namespace-9000}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}}], ports: [{port: 9000, protocol: TCP}]}]
"""
FROM_A_TO_B_W1 = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-ns-a-to-w1}
spec:
  podSelector: {matchLabels: {app: w1}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: ns-a}}}]}]
"""
REFS = ", ".join(f"deployment/{ns}/{w}" for ns in NAMESPACES for w in WORKLOADS)
TABLE = (
    """
policy_table:
  workloads: [REFS]
  ports: [9000, tcp/8080]
  default: deny
  rules:
    - {from: {namespace: ns-a}, to: {workload: deployment/ns-b/w1}, expect: allow}
    - {from: {namespace: ns-a}, to: {namespace: ns-a}, ports: [9000], expect: allow}
    - {from: {namespace: ns-b}, to: {namespace: ns-b}, ports: [9000], expect: allow}
    - {from: {namespaceLabels: {team: ns-c}}, to: {namespace: ns-c}, ports: [9000], expect: allow}
"""
).replace("REFS", REFS)


def allowed(src: str, dst: str, port: int) -> bool:
    """What the policies above allow (written out on its own, not with the suite's code)."""
    (sns, _), (dns, dw) = src.split("/")[1:3], dst.split("/")[1:3]
    if sns == "ns-a" and (dns, dw.split("@")[0]) == ("ns-b", "w1"):
        return True
    return sns == dns and port == 9000


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from own_lab(lab_name("wp"))


def kubectl(handle: Lab, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    binary = str(venv_kubectl) if venv_kubectl.exists() else "kubectl"
    env = {**os.environ, "KUBECONFIG": str(handle.kubeconfig)}
    return subprocess.run(
        [binary, *args], input=stdin, capture_output=True, text=True, timeout=30, env=env, check=True
    )


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The 9 Deployments and the policies; yields {workload ref: node of its pod}."""
    serve = ["python3", str(AGENT), "serve", "--http", "8080", "--tcp", "9000", "--udp", "9001"]
    for ns in NAMESPACES:
        kubectl(lab, "create", "namespace", ns)
        kubectl(lab, "label", "namespace", ns, f"team={ns}")
        for w in WORKLOADS:
            kubectl(lab, "-n", ns, "create", "deployment", w, "--image=python:3.12-slim", "--", *serve)
        kubectl(lab, "-n", ns, "apply", "--validate=false", "-f", "-", stdin=POLICIES)
    kubectl(lab, "-n", "ns-b", "apply", "--validate=false", "-f", "-", stdin=FROM_A_TO_B_W1)

    def placed() -> dict[str, str] | None:
        found: dict[str, str] = {}
        for ns in NAMESPACES:
            items = json.loads(kubectl(lab, "-n", ns, "get", "pods", "-o", "json").stdout)["items"]
            for p in items:
                if p["status"].get("phase") == "Running" and p["status"].get("podIP"):
                    found[f"deployment/{ns}/{p['metadata']['labels']['app']}"] = p["spec"]["nodeName"]
        return found if len(found) == 9 else None

    nodes: dict[str, str] = wait_for("the 9 workloads' pods running", placed)
    path = tmp_path_factory.mktemp("table") / "table.yaml"
    path.write_text(TABLE, encoding="utf-8")
    yield {**nodes, "table": str(path)}  # the namespaces go with the module's lab


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


def table_of(out: Path) -> dict[str, Any]:
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    table: dict[str, Any] = doc["run"]["policy_table"]
    return table


def flows(nodes: dict[str, str]) -> list[tuple[str, str, int]]:
    refs = [r for r in nodes if r.startswith("deployment/")]
    return [(f"{s}@{nodes[s]}", f"{d}@{nodes[d]}", p) for s in refs for d in refs if s != d for p in PORTS]


def test_healthy_lab_every_cell_as_expected(lab: Lab, world: dict[str, str], tmp_path: Path) -> None:
    args = ("--policy-table", world["table"], "--allow-ephemeral", "--", "-k", "policy")
    code, lines = run_suite(lab, tmp_path, *args)
    assert code == 0, lines[-30:]
    table = table_of(tmp_path)
    assert table["counts"] == {"as_expected": 144, "wrong": 0, "unmeasured": 0}, table["counts"]
    marks = {g["port"]: g["rows"] for g in table["grids"]}
    for src, dst, port in flows(world):
        assert marks[f"tcp/{port}"][src][dst] == ("a" if allowed(src, dst, port) else "d"), (src, dst, port)
    assert any(ln.startswith("policy table ") and "144 as expected, 0 wrong" in ln for ln in lines)
    assert "tcp/9000" in " ".join(lines) and not any(ln.startswith("wrong:") for ln in lines)


def test_not_enforced_on_node2_exactly_its_denied_flows_wrong(
    lab: Lab, world: dict[str, str], tmp_path: Path
) -> None:
    assert "node-2" in world.values() and set(world.values()) - {"node-2"} - {world["table"]}, world
    lab.fault_add("netpol-not-enforced", node="node-2")
    try:
        code, lines = run_suite(lab, tmp_path, "--policy-table", world["table"], "--", "-k", "policy")
        table = table_of(tmp_path)
        wrong = {(w["from"], w["to"], int(w["port"].split("/")[1])) for w in table["wrong"]}
        expected_wrong = {
            (s, d, p) for s, d, p in flows(world) if not allowed(s, d, p) and d.endswith("@node-2")
        }
        assert code == 1, lines[-30:]
        assert wrong == expected_wrong, (
            sorted(wrong - expected_wrong)[:5],
            sorted(expected_wrong - wrong)[:5],
        )
        assert table["counts"]["unmeasured"] == 0 and table["counts"]["wrong"] == len(expected_wrong)
        assert all(w["expected"] == "deny" and w["observed"] == "allow" for w in table["wrong"])
        marks = {g["port"]: g["rows"] for g in table["grids"]}
        assert all(marks[f"tcp/{p}"][s][d] == "X" for s, d, p in expected_wrong)
        said = [ln for ln in lines if ln.startswith("wrong: ")]
        assert len(said) == len(expected_wrong) and all("reproduce: kubectl -n ns-" in ln for ln in said)
        # the command reproduces the wrong cell: it connects while the fault is on
        argv = shlex.split(table["wrong"][0]["command"])
        assert argv[:2] == ["kubectl", "-n"] and "netconform-probe" in argv
        assert kubectl(lab, *argv[1:]).stdout.strip() == "connected"
    finally:
        lab.fault_clear("netpol-not-enforced")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("policy_table:\n  workloads: [deployment/ns-a/w1]\n  ports: [9000]\n  default: block\n",
         "table.yaml:4: default must be allow or deny, not 'block'"),
        ("policy_table:\n  workloads: [deployment/ns-a/w1]\n  ports: [http]\n",
         "table.yaml:3: port 'http': use PORT or tcp/PORT or udp/PORT"),
        ("policy_table:\n  workloads: [deployment/ns-a/w1]\n  ports: [9000]\n  rules:\n"
         "    - {to: {cidr: x}, expect: deny}\n",
         "table.yaml:5: 'x' is not a CIDR"),
        ("policy_table:\n  workloads: [deployment/ns-a/nope]\n  ports: [9000]\n",
         "table.yaml: workload deployment/ns-a/nope: no Deployment nope in namespace ns-a"),
    ],
)  # fmt: skip
def test_bad_tables_one_line(lab: Lab, world: dict[str, str], tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "table.yaml"
    path.write_text(text, encoding="utf-8")
    code, lines = run_suite(lab, tmp_path / "out", "--policy-table", str(path), "--allow-ephemeral")
    assert code == 4 and len(lines) == 1 and words in lines[0], lines
    names = kubectl(lab, "get", "namespaces", "-o", "name").stdout.split()
    assert not [n for n in names if n.startswith("namespace/netconform-")]


def test_policy_check_derives_the_flows_from_the_policies(
    lab: Lab, world: dict[str, str], tmp_path: Path
) -> None:
    """--policy-check: the same world without a table: the flows come from the policies (the only numeric
    port they name is 9000), all as expected on the healthy lab, counted per policy; under the fault,
    exactly the flows the policies deny towards node-2's pods are wrong."""
    subjects = [a for ref in REFS.split(", ") for a in ("--subject", ref)]
    args = ("--policy-check", *subjects, "--allow-ephemeral", "--", "-k", "policy")
    code, lines = run_suite(lab, tmp_path / "a", *args)
    assert code == 0, lines[-30:]
    table = table_of(tmp_path / "a")
    assert table["file"] == "--policy-check" and [g["port"] for g in table["grids"]] == ["tcp/9000"]
    assert table["counts"] == {"as_expected": 72, "wrong": 0, "unmeasured": 0}, table["counts"]
    marks = table["grids"][0]["rows"]
    for src, dst, port in flows(world):
        if port == 9000:
            assert marks[src][dst] == ("a" if allowed(src, dst, port) else "d"), (src, dst)
    assert set(table["by_policy"]) == {
        f"{ns}/{n}" for ns in NAMESPACES for n in ("default-deny", "same-namespace-9000")
    } | {"ns-b/from-ns-a-to-w1"}
    assert all(t["wrong"] == 0 and t["as_expected"] > 0 for t in table["by_policy"].values())
    assert any(ln.startswith("  policy ns-b/from-ns-a-to-w1: ") for ln in lines)

    lab.fault_add("netpol-not-enforced", node="node-2")
    try:
        code, lines = run_suite(lab, tmp_path / "b", *args)
    finally:
        lab.fault_clear("netpol-not-enforced")
    table = table_of(tmp_path / "b")
    wrong = {(w["from"], w["to"]) for w in table["wrong"]}
    want = {
        (s, d) for s, d, p in flows(world) if p == 9000 and not allowed(s, d, p) and d.endswith("@node-2")
    }
    assert code == 1 and wrong == want, (sorted(wrong ^ want)[:5], lines[-10:])
    assert all(w["rule"].startswith("denied by ") and "(ingress)" in w["rule"] for w in table["wrong"])
