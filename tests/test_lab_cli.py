"""`netconform lab ...` as a user runs it: up within budget, status, faults, outside-exec, suite-options,
down (also after the supervisor was killed), and one-line errors for bad input.

These tests bring up their own labs (the lifecycle is what they test), so they run in their own xdist group.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab, default_control_plane
from netconform.lab.control import procs
from netconform.lab.net import hostguard
from netconform.lab.net.addressing import EXTERNAL_CLIENT_IP, lab_namespace_pattern
from netconform.lab.net.nsexec import STATE_ROOT, netns_list
from tests.can_run import missing, needs
from tests.lab_helpers import lab_name, wait_for
from tests.narrow import present

CLI = [sys.executable, "-m", "netconform.cli.main", "lab"]
REAL = default_control_plane() == "real"
# the real control plane starts etcd, kube-apiserver, controller-manager, scheduler and a node agent per
# node before kube-system (docs/lab.md: 13-22 s and ~900 MB at load 20 on 2 cores, against 6 s, 163 MB)
UP_BUDGET_S = 45.0 if REAL else 15.0
MEMORY_BUDGET = (2 if REAL else 1) << 30
TIMEOUT = 120


def nc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc


def assert_nothing_left(name: str) -> None:
    pattern = lab_namespace_pattern(name)
    assert [n for n in netns_list() if pattern.match(n)] == []
    assert procs.lab_pids(name) == []
    assert not (STATE_ROOT / name).exists()
    assert not [e for e in Path("/etc/netns").glob(f"nc-{name}-*")]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["up", "--name", "Bad_Name"], "lab name"),
        (["up", "--nodes", "0", "--name", "x1"], "node count 0"),
        (["status", "--name", "absent-lab"], "is not running"),
        (["fault", "add", "tunnel-blocked", "--name", "absent-lab"], "is not running"),
        (["outside-exec", "--name", "absent-lab", "--", "true"], "is not up"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line(args: list[str], needle: str) -> None:
    proc = nc(*args, check=False)
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


pytestmark_lab = [needs("lab"), pytest.mark.xdist_group("lab-cli"), pytest.mark.lab, pytest.mark.root]


@pytest.fixture(scope="module")
def cli_lab() -> Iterator[tuple[str, float, str]]:
    """A 3-node lab brought up through the CLI; yields (name, seconds to up, kubeconfig path)."""
    reason = missing("lab")
    if reason:
        pytest.skip(reason)
    name = lab_name("c")
    started = time.monotonic()
    try:
        proc = nc("up", "--name", name)
        elapsed = time.monotonic() - started
        yield name, elapsed, proc.stdout.strip().splitlines()[-1]
    finally:
        nc("down", "--name", name, check=False)


class TestLifecycle:
    pytestmark = pytestmark_lab

    def test_up_prints_kubeconfig_last_within_budget(
        self, cli_lab: tuple[str, float, str], record_property: Any
    ) -> None:
        name, elapsed, kubeconfig = cli_lab
        record_property("lab_up_seconds", round(elapsed, 2))
        print(f"\n3-node lab up in {elapsed:.2f} s")
        assert kubeconfig == str(STATE_ROOT / name / "kubeconfig") and Path(kubeconfig).exists()
        assert nc("kubeconfig", "--name", name).stdout.strip() == kubeconfig
        assert elapsed < UP_BUDGET_S

    def test_status_memory_and_counters(self, cli_lab: tuple[str, float, str], record_property: Any) -> None:
        name = cli_lab[0]
        status = json.loads(nc("status", "--name", name, "--json").stdout)
        assert [n["name"] for n in status["nodes"]] == ["node-1", "node-2", "node-3"]
        assert all(n["ready"] for n in status["nodes"])
        system = [p for p in status["pods"] if p["namespace"] == "kube-system"]
        assert len(system) == 7 and all(p["ready"] for p in system)  # + the ingress controller
        rss = status["memory"]["rss_bytes"]
        record_property("lab_rss_bytes", rss)
        print(f"\nlab memory: {rss / 1048576:.1f} MiB RSS in {status['memory']['processes']} processes")
        assert 0 < rss < MEMORY_BUDGET
        api = status["api"]
        assert api["exec_sessions"] == 0
        # status itself goes to /lab/v1 and is not counted: asking twice changes nothing
        again = json.loads(nc("status", "--name", name, "--json").stdout)["api"]
        assert again["requests_total"] == api["requests_total"]
        text = nc("status", "--name", name).stdout
        for heading in ("NODES", "PODS", "SERVICES", "FAULTS: none", "exec sessions opened"):
            assert heading in text

    def test_suite_options(self, cli_lab: tuple[str, float, str]) -> None:
        name, _, kubeconfig = cli_lab
        assert nc("suite-options", "--name", name).stdout.splitlines() == [
            f"--kubeconfig={kubeconfig}",
            "--external-url=http://203.0.113.10/",
            "--external-ip=203.0.113.10",
            "--internet-url=http://198.51.100.10/",
            "--external-name=example.test",
            f"--external-runner=netconform lab outside-exec --name {name} --",
        ]

    def test_outside_exec_passes_exit_status(self, cli_lab: tuple[str, float, str]) -> None:
        name = cli_lab[0]
        proc = nc(
            "outside-exec",
            "--name",
            name,
            "--",
            "sh",
            "-c",
            "ip -4 -o addr show dev eth0; exit 42",
            check=False,
        )
        assert proc.returncode == 42
        assert f"inet {EXTERNAL_CLIENT_IP}/" in proc.stdout

    def test_fault_plumbing_and_cni_not_ready(self, cli_lab: tuple[str, float, str]) -> None:
        from kubernetes import client, config

        name, _, kubeconfig = cli_lab
        listed = nc("fault", "list", "--name", name).stdout
        assert "cni-not-ready" in listed and "tunnel-blocked" in listed
        faults_part, _, conditions_part = listed.partition("conditions for bad-input tests:")
        assert faults_part.startswith("faults:") and "stale-arp" in faults_part
        assert "deny-host-network" in conditions_part and "namespace-stuck" in conditions_part
        assert "deny-host-network" not in faults_part
        per_node = nc("fault", "add", "namespace-stuck", "--node", "node-1", "--name", name, check=False)
        assert per_node.returncode == 1 and "applies to the whole cluster" in per_node.stderr
        core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))

        def ready(node: str) -> Any:
            status = present(core.read_node(node).status, f"{node}'s status")
            return next(c for c in status.conditions or [] if c.type == "Ready")

        try:
            nc("fault", "add", "cni-not-ready", "--node", "node-3", "--name", name)
            cond = ready("node-3")
            assert (cond.status, cond.reason) == ("False", "NetworkPluginNotReady")
            assert "cni plugin not initialized" in cond.message
            assert ready("node-2").status == "True"
            nc("fault", "add", "deny-host-network", "--name", name)
            status = json.loads(nc("status", "--name", name, "--json").stdout)
            assert [f["name"] for f in status["faults"]] == ["cni-not-ready", "deny-host-network"]
            dup = nc("fault", "add", "cni-not-ready", "--node", "node-2", "--name", name, check=False)
            assert dup.returncode == 1 and "already active" in dup.stderr
            unknown = nc("fault", "add", "no-such-fault", "--name", name, check=False)
            assert unknown.returncode == 1 and "no fault 'no-such-fault'" in unknown.stderr
        finally:
            cleared = nc("fault", "clear", "--name", name).stdout
        assert "cni-not-ready" in cleared and "deny-host-network" in cleared
        assert ready("node-3").status == "True"
        assert json.loads(nc("status", "--name", name, "--json").stdout)["faults"] == []


class TestDown:
    pytestmark = pytestmark_lab

    def test_no_lb_then_down_after_supervisor_killed(self) -> None:
        from kubernetes import client, config

        name = f"k{uuid.uuid4().hex[:6]}"
        lab = Lab(name)
        try:
            kubeconfig = lab.up(nodes=2, lb=False)
            core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
            for svc, typ in (("lb", "LoadBalancer"), ("after", "ClusterIP")):
                spec = client.V1ServiceSpec(
                    type=typ, selector={"a": "b"}, ports=[client.V1ServicePort(port=80)]
                )
                core.create_namespaced_service(
                    "default", client.V1Service(metadata=client.V1ObjectMeta(name=svc), spec=spec)
                )
            deadline = time.monotonic() + 20
            while (
                time.monotonic() < deadline
            ):  # the controllers reconcile in order: "after" means "lb" was seen
                try:
                    core.read_namespaced_endpoints("after", "default")
                    break
                except client.ApiException:
                    time.sleep(0.1)  # polling the endpoints controller, bounded by the deadline
            lb = core.read_namespaced_service("lb", "default")
            balancer = present(present(lb.status, "lb's status").load_balancer, "lb's load_balancer")
            assert balancer.ingress is None, "--no-lb: a LoadBalancer Service stays pending"
            assert present(present(lb.spec, "lb's spec").ports, "lb's ports")[0].node_port
            pods = [p for p in lab.status()["pods"] if p["namespace"] == "kube-system"]
            # 2 DNS pods (both on the 2 nodes), the API endpoint, a CNI pod per node, the ingress controller
            assert len(pods) == 6
            os.kill(int(present(lab.state(), "the lab's state")["supervisor_pid"]), signal.SIGKILL)
            assert procs.lab_pids(name), "pods and data-plane programs outlive a killed supervisor"
            assert nc("down", "--name", name).returncode == 0
            assert_nothing_left(name)
            assert nc("down", "--name", name).returncode == 0, "down is idempotent"
        finally:
            lab.down()
        assert_nothing_left(name)


def _root_ns_snapshot() -> dict[str, Any]:
    """What a lab must never leave in (or take from) the host's root namespace."""

    def out(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout

    rules = [
        ln
        for ln in out(["iptables-save"]).splitlines()
        if ln and not ln.startswith("#")  # timestamps
    ]
    links = sorted(
        ln.split(":")[1].strip().split("@")[0] for ln in out(["ip", "-o", "link", "show"]).splitlines()
    )
    routes = sorted(out(["ip", "-o", "route", "show", "table", "all"]).splitlines())
    return {"iptables": [re.sub(r"\[\d+:\d+\]", "", r) for r in rules], "links": links, "routes": routes}


DOWN_ALL_ALONE = (
    "`lab down --all` removes every lab on the host; it runs only when NETCONFORM_TEST_DOWN_ALL=1 says this "
    "host's labs are expendable (CI: tox's second command, after the parallel run) and never beside other "
    "xdist workers"
)


@pytest.mark.skipif(
    os.environ.get("NETCONFORM_TEST_DOWN_ALL") != "1" or "PYTEST_XDIST_WORKER" in os.environ,
    reason=DOWN_ALL_ALONE,
)
@pytest.mark.xdist_group("lab-cli")
@needs("lab")
def test_down_all_leaves_nothing() -> None:
    names = [f"a{uuid.uuid4().hex[:6]}" for _ in range(2)]
    before = _root_ns_snapshot()
    try:
        Lab(names[0]).up(nodes=2, lb=True)
        Lab(names[1]).up(nodes=1, lb=False)
        assert all(Lab(n).running() for n in names)
        assert all(procs.lab_pids(n) for n in names), "the labs run processes"
        # while a lab is up the host cannot reach its ranges; one lab going leaves the guard to the other
        guarded = sorted(str(n) for n in hostguard.GUARDED_RANGES)
        assert hostguard.guard_routes() == guarded
        third = Lab(f"a{uuid.uuid4().hex[:6]}")
        names.append(third.name)
        third.up(nodes=1, lb=False)
        third.down()
        assert hostguard.guard_routes() == guarded, "a lab going down removed the guard of the others"
        # a lab whose supervisor died is still removed with everything, the guard too (below)
        supervisor = Lab(names[0]).supervisor_pid()
        assert supervisor
        os.kill(supervisor, signal.SIGKILL)
        wait_for("the killed supervisor to be gone", lambda: not Lab(names[0]).running(), timeout=10)
        pattern = lab_namespace_pattern()
        assert {m.group(1) for n in netns_list() if (m := pattern.match(n))} == set(names[:2])
        proc = nc("down", "--all")
        assert proc.stdout.strip().startswith("removed: ") and all(n in proc.stdout for n in names[:2])
        for n in names:
            assert_nothing_left(n)
        assert [n for n in netns_list() if pattern.match(n)] == []
        etc = Path("/etc/netns")
        assert not etc.is_dir() or [e.name for e in etc.glob("nc-*")] == []
        assert Lab.names() == [], "state directories remain"
        after = _root_ns_snapshot()
        assert after["links"] == before["links"], "the root namespace's links changed (a veth left behind?)"
        assert after["iptables"] == before["iptables"], "the root namespace's iptables rules changed"
        assert hostguard.guard_routes() == [] and after["routes"] == before["routes"], "routes left behind"
        assert nc("down", "--all").stdout.strip() == "removed: nothing"
    finally:
        for n in names:
            Lab(n).down()
