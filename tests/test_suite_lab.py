"""The conformance suite end to end against ONE lab: a healthy run, every lab fault, cost bounds, bad input.

Each fault is added as a user would, before `netconform run`: every lab fault is a state of the cluster
that also covers what the run creates afterwards (its pods, its LoadBalancer VIP). The suite runs (a -k
subset that still contains every cell the assertion names), and the fault is cleared. Assertions: the
cells the fault must break fail with the right classified layer, the cells it must not touch pass.
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

from tests.can_run import needs
from tests.lab_helpers import cli, own_lab

LAB = f"ncsuite{os.getpid() % 10000}"
ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 180.0
pytestmark = [
    needs("lab"),
    pytest.mark.xdist_group("lab-suite"),
    pytest.mark.lab,
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def lab() -> Iterator[Any]:
    yield from own_lab(LAB)


def run_suite(
    out: Path,
    *pytest_args: str,
    fault: str | None = None,
    extra: tuple[str, ...] = (),
    timeout: float = RUN_TIMEOUT,
) -> tuple[int, dict[str, Any] | None, str, float]:
    env = {"NC_TEST_LAB": LAB, "NC_TEST_FAULT": fault or ""}
    argv = ["run", "--lab", LAB, "--probe-timeout", "1", "--attempts", "2", "--ready-timeout", "40"]
    argv += ["--lb-timeout", "10", "--delete-timeout", "30", "--out", str(out), "--no-html", *extra]
    argv += ["--", "-p", "tests.lab_fault_plugin", *pytest_args]
    started = time.monotonic()
    proc = cli(*argv, timeout=timeout, env=env)
    elapsed = time.monotonic() - started
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else None
    return proc.returncode, results, proc.stdout + proc.stderr, elapsed


def cells(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """cell id -> cell (the first test item that carries it)."""
    out: dict[str, dict[str, Any]] = {}
    for cell in results["cells"]:
        cid = f"{cell['subject']}->{cell['target']}/{cell['layer']}-{cell['protocol']}"
        out.setdefault(cid, cell)
    return out


def managed_namespaces(lab: Any) -> list[str]:
    from netconform.kube.connect import call, connect
    from netconform.kube.kit import MANAGED_SELECTOR

    cluster = connect(str(lab.kubeconfig))
    try:
        items = call(cluster, "list_namespace", label_selector=MANAGED_SELECTOR).get("items") or []
        return [i["metadata"]["name"] for i in items]
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def healthy(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    before = lab.status()["api"]
    rc, results, output, elapsed = run_suite(tmp_path_factory.mktemp("healthy"))
    after = lab.status()["api"]
    assert results is not None, output[-3000:]
    return {
        "rc": rc,
        "results": results,
        "output": output,
        "elapsed": elapsed,
        "api": after["requests_total"] - before["requests_total"],
        "execs": after["exec_sessions"] - before["exec_sessions"],
    }


def test_healthy_lab_every_fm_nothing_fails_and_namespace_gone(healthy: dict[str, Any], lab: Any) -> None:
    results = healthy["results"]
    bad = [(c["test"], c["reason"]) for c in results["cells"] if c["outcome"] in ("failed", "error", "flaky")]
    assert healthy["rc"] == 0 and not bad, (bad[:10], healthy["output"][-2000:])
    catalogue = ROOT.parent / "shared" / "FAILURE_MODES.md"
    ids = {f"FM-{i:02d}" for i in range(1, 34)}
    if catalogue.exists():
        import re

        ids = set(re.findall(r"^- (FM-\d\d)\b", catalogue.read_text(), flags=re.M))
    carried = {fm for c in results["cells"] for fm in c["fm"]}
    assert ids <= carried, sorted(ids - carried)
    skipped = [c for c in results["cells"] if c["outcome"] == "skipped"]
    assert all(c["reason"] and len(c["reason"]) > 15 for c in skipped), skipped
    assert managed_namespaces(lab) == []


def test_same_cells_and_cost_as_before_checks_were_values(healthy: dict[str, Any]) -> None:
    """The catalogue as Check values makes the cells the scope families made, at the same cost.

    tests/data/healthy_lab_before.json: a default run on a healthy 3-node lab with the code before (cb4cd5e).
    One intended difference: the placeholder of a check with no cell here (`family:NAME`) now carries the
    check's layer (L7 for gateway-http and ingress-https) where it said L3 for every family. One
    addition: the placeholders of the two --policy-table checks (no table in a default run).
    """
    before = json.loads((ROOT / "tests" / "data" / "healthy_lab_before.json").read_text())
    placeholder_layer = {"FM-34|cluster|family:gateway-http|L3|gateway-http": "L7"}
    placeholder_layer["FM-34|cluster|family:ingress-https|L3|ingress-https"] = "L7"
    expected = {
        k.replace("|L3|", f"|{placeholder_layer[k]}|") if k in placeholder_layer else k
        for k in before["keys"]
    }
    # added since: the --policy-table checks, one placeholder each when no table is given
    expected |= {f"FM-37|cluster|family:policy-table-{p}|L4|policy-table-{p}" for p in ("tcp", "udp")}
    keys = {c["key"] for c in healthy["results"]["cells"]}
    assert keys == expected, (sorted(keys - expected)[:10], sorted(expected - keys)[:10])
    stats = healthy["results"]["run"]["stats"]
    assert {k: stats[k] for k in before["stats"]} == before["stats"]


def test_cost_one_exec_per_subject_per_phase_and_api_by_nodes(
    healthy: dict[str, Any], lab: Any, tmp_path: Path
) -> None:
    stats = healthy["results"]["run"]["stats"]
    # pod and host subjects on 3 nodes go through exec; the external subject runs locally
    assert stats["exec_sessions"] <= 6 * stats["phases"], stats
    assert healthy["execs"] == stats["exec_sessions"]
    assert stats["probe_checks"] > 100
    # a run with a fraction of the cells costs about the same API requests: they grow with nodes
    _, subset, output, _ = run_suite(tmp_path, "-k", "tcp")
    assert subset is not None, output[-2000:]
    assert len(subset["cells"]) < len(healthy["results"]["cells"]) / 2
    assert abs(subset["run"]["stats"]["api_requests"] - stats["api_requests"]) <= 15, (
        subset["run"]["stats"],
        stats,
    )
    assert stats["api_requests"] <= 40 + 15 * 3


def test_same_cells_and_cost_with_xdist(healthy: dict[str, Any], lab: Any, tmp_path: Path) -> None:
    """`-n 2` gives the same cells, outcomes, classifications and exec count as the serial run:
    the controller probes once, workers only read verdicts."""
    before = lab.status()["api"]["exec_sessions"]
    rc, parallel, output, _ = run_suite(tmp_path, "-n", "2")
    execs = lab.status()["api"]["exec_sessions"] - before
    assert parallel is not None and rc == healthy["rc"], output[-2000:]

    def summary(results: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
        return {
            c["test"]: (c["key"], c["outcome"], c["classified_layer"], c["error"], tuple(c["fm"]))
            for c in results["cells"]
        }

    assert summary(parallel) == summary(healthy["results"])
    assert execs == healthy["execs"] == parallel["run"]["stats"]["exec_sessions"]


# fault -> (-k expression, cells that must fail with their classified layer, cells that must pass)
FAULTS: dict[str, tuple[str, dict[str, set[str]], list[str]]] = {
    "tunnel-blocked": (
        "pod_to_pod_tcp or node_ping",
        {"pod@node-1->pod@node-2/L4-tcp": {"L3"}, "pod@node-3->pod@node-1/L4-tcp": {"L3"}},
        [
            "pod@node-1->pod@node-1/L4-tcp",
            "pod@node-2->pod@node-2/L4-tcp",
            "host@node-1->node@node-2/L3-icmp",
        ],
    ),
    "node-partition": (
        "pod_to_pod_tcp or node_ping or mesh",
        {
            "host@node-1->node@node-3/L3-icmp": {"L3"},
            "pod@node-1->pod@node-3/L4-tcp": {"L3"},
            "cluster->component:pod-mesh/L3-partition": {"L3"},
        },
        ["host@node-1->node@node-2/L3-icmp", "pod@node-1->pod@node-2/L4-tcp"],
    ),
    "pod-route-missing": (
        "own_pods or pod_to_pod_tcp or routes",
        {"host@node-3->pod@node-3/L4-tcp": {"L3"}, "host@node-3->node@node-3/L3-routes": {"L3"}},
        ["host@node-1->pod@node-1/L4-tcp", "pod@node-1->pod@node-2/L4-tcp"],
    ),
    "service-nat-missing": (
        "clusterip_tcp or pod_to_pod_tcp",
        {"pod@node-1->clusterip/L4-tcp": {"L3", "L4"}},
        ["pod@node-1->pod@node-2/L4-tcp"],
    ),
    "snat-missing": (
        "egress or node_egress",
        {"pod@node-1->outside/L4-snat": {"L3"}},
        ["host@node-1->outside/L4-tcp"],
    ),
    "snat-port-exhaustion": (
        "egress_tcp or node_egress",
        {"pod@node-1->outside/L4-tcp": {"L3"}},
        ["host@node-1->outside/L4-tcp"],
    ),
    "coredns-down": (
        "each_coredns_pod or internal_name",
        {"pod@node-3->coredns@node-1/DNS-udp": {"L3"}},  # a silent server: FM-04 connectivity
        ["pod@node-3->coredns@node-2/DNS-udp"],
    ),
    "upstream-dns-servfail": (
        "internal_name or external_name",
        {"pod@node-1->dns-external/DNS-udp": {"DNS"}},
        ["pod@node-1->dns-internal/DNS-udp"],
    ),
    "node-nameserver-mismatch": (
        "nameserver",
        {
            "cluster->component:node-nameservers/DNS-config": {"DNS"},
            "host@node-3->nameserver@node-3/DNS-udp": {"L3"},
        },
        ["host@node-1->nameserver@node-1/DNS-udp"],
    ),
    "lb-arp-silent": (
        "lb_vip_arp or lb_from_outside_tcp or clusterip_tcp",
        {"external->lb-vip/L4-tcp": {"L3"}},
        ["pod@node-1->clusterip/L4-tcp"],
    ),
    "ip-conflict": (
        "node_arp",
        {"host@node-1->node@node-3/L2-arp": {"L2"}},
        ["host@node-1->node@node-2/L2-arp"],
    ),
    "stale-arp": (
        "control_plane",
        {
            "host@node-2->component:control-plane-vip/L2-arp": {"L2"},
            # the kubernetes endpoint (10.89.0.2:6443 on node-1) answers TCP; only the stale nodes time out
            "host@node-2->component:apiserver/L4-tcp": {"L2", "L3"},
            "host@node-3->component:apiserver/L4-tcp": {"L2", "L3"},
        },
        ["host@node-1->component:control-plane-vip/L2-arp", "host@node-1->component:apiserver/L4-tcp"],
    ),
    "tcp-reset": (
        "pod_to_pod_tcp or pod_to_pod_icmp",
        {"pod@node-1->pod@node-2/L4-tcp": {"L4"}},
        ["pod@node-1->pod@node-2/L3-icmp"],
    ),
    "http-503": (
        "pod_to_pod_http or pod_to_pod_tcp",
        {"pod@node-1->pod@node-2/L7-http": {"L7"}},
        ["pod@node-1->pod@node-2/L4-tcp"],
    ),
    "mtu-blackhole": (
        "mtu or pod_to_pod_tcp",
        {"pod@node-1->pod@node-2/L3-mtu": {"L3"}},
        ["pod@node-1->pod@node-2/L4-tcp"],
    ),
    "cni-not-ready": (
        "cni_ready",
        {"cluster->node@node-3/L3-cni-ready": {"L3"}},
        ["cluster->node@node-1/L3-cni-ready"],
    ),
}
# The verdict of each fault: words its scope/suspect must contain, and false suspects it must not name
# (the node-level faults hit node-3 by default, the DNS pod one node-1).
NO_NETWORK_CUT = ("tunnel", "cut off", "partition", "node network")
VERDICTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cni-not-ready": (("node-3", "CNI", "FM-27"), NO_NETWORK_CUT),
    "coredns-down": (("CoreDNS", "on node-1", "FM-22"), NO_NETWORK_CUT),
    "http-503": (("HTTP only", "TCP on the same paths work", "FM-01"), (*NO_NETWORK_CUT, "service NAT")),
    "ip-conflict": (("node-3", "IP conflict", "FM-16"), NO_NETWORK_CUT),
    "lb-arp-silent": (("ARP", "LB VIP", "FM-06"), NO_NETWORK_CUT),
    "mtu-blackhole": (("MTU", "TCP on the same paths work", "FM-31"), NO_NETWORK_CUT),
    "node-nameserver-mismatch": (("node-3", "nameservers", "FM-24"), NO_NETWORK_CUT),
    "node-partition": (("node-3", "cut off", "node network", "FM-13"), ("tunnel", "service NAT")),
    "pod-route-missing": (("node-3", "pod route", "FM-10"), ("tunnel", "partition", "node network")),
    "service-nat-missing": (("service NAT", "backend pods answer directly", "FM-08"), NO_NETWORK_CUT),
    "snat-missing": (("from pods", "egress", "FM-11"), NO_NETWORK_CUT),
    "snat-port-exhaustion": (("from pods", "egress", "FM-11"), NO_NETWORK_CUT),
    "stale-arp": (("node-2 and node-3", "stale ARP", "FM-28"), NO_NETWORK_CUT),
    "tcp-reset": (("TCP only", "reset", "FM-02"), (*NO_NETWORK_CUT, "service NAT")),
    "tunnel-blocked": (("tunnel", "same-node traffic works", "FM-09"), ("node network", "service NAT")),
    "upstream-dns-servfail": (("external names", "upstream", "FM-23"), NO_NETWORK_CUT),
}
# every fault is added before `netconform run`, as a user does: faults are states (node conditions are
# read in the topology snapshot, pod-scoped faults follow the pods the run creates, lb-arp-silent covers
# the VIP the run's LoadBalancer Service gets)
BEFORE_RUN = set(FAULTS)


def test_every_lab_fault_has_cells_and_a_verdict_here_or_in_its_own_module() -> None:
    """`lab fault list` = these faults + the ingress ones (tests/test_lab_ingress.py) + the components'
    (tests/test_lab_components.py) + the NetworkPolicy ones (tests/test_lab_netpol.py, real traffic
    against a truth table until the suite's policy checks carry them): none is left without
    an end-to-end check of its cells and verdict."""
    from netconform.lab.faults import catalogue as faults

    elsewhere = {*faults.INGRESS_FAULTS, *faults.COMPONENT_FAULTS, *faults.NETPOL_FAULTS}
    assert set(faults.names()) == set(FAULTS) | elsewhere
    assert set(VERDICTS) == set(FAULTS)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_breaks_its_cells_only(fault: str, lab: Any, healthy: dict[str, Any], tmp_path: Path) -> None:
    expr, must_fail, must_pass = FAULTS[fault]
    try:
        if fault in BEFORE_RUN:
            lab.fault_add(fault)
        rc, results, output, elapsed = run_suite(
            tmp_path, "-k", expr, fault=None if fault in BEFORE_RUN else fault
        )
    finally:
        lab.fault_clear()
    assert results is not None, output[-3000:]
    by_id = cells(results)
    for cid, layers in must_fail.items():
        assert cid in by_id, (cid, sorted(by_id)[:20], output[-1500:])
        cell = by_id[cid]
        assert cell["outcome"] == "failed", (cid, cell["outcome"], cell["reason"])
        assert cell["classified_layer"] in layers, (cid, cell["classified_layer"], cell["reason"])
        if fault == "stale-arp":
            assert cell["error"] == "timeout" and "FM-28" in (cell["meaning"] or ""), cell
    for cid in must_pass:
        assert cid in by_id, (cid, sorted(by_id)[:20])
        assert by_id[cid]["outcome"] == "passed", (cid, by_id[cid]["outcome"], by_id[cid]["reason"])
    assert rc == 1
    words, false_suspects = VERDICTS[fault]
    verdict = results["verdict"]["text"]
    for word in words:
        assert word in verdict, (fault, word, verdict)
    for word in false_suspects:
        assert word not in verdict, (fault, word, verdict)
    # a fault that fails many cells adds about one timeout x attempts, not one per cell
    assert elapsed < healthy["elapsed"] + 2 * 1.0 * 2 + 15, (elapsed, healthy["elapsed"])


def run_raw(*args: str, timeout: float = 60.0) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "netconform.cli.main", "run", "--no-html", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def test_unreachable_api_bad_kubeconfig_and_context_fail_fast_in_one_line(lab: Any, tmp_path: Path) -> None:
    import yaml

    config = yaml.safe_load(lab.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    dead = tmp_path / "dead"
    dead.write_text(yaml.safe_dump(config))
    garbage = tmp_path / "garbage"
    garbage.write_text("{{{")
    cases = [
        (["--kubeconfig", str(dead)], "cannot be reached"),
        (["--kubeconfig", str(garbage)], "bad kubeconfig"),
        (["--kubeconfig", str(tmp_path / "missing")], "does not exist"),
        (["--kubeconfig", str(lab.kubeconfig), "--context", "nope"], "context 'nope' not found"),
    ]
    for args, words in cases:
        rc, output, elapsed = run_raw(*args, "--out", str(tmp_path / "out"))
        errors = [ln for ln in output.splitlines() if ln.strip()]
        assert rc == 4 and elapsed < 20, (args, rc, output[-1500:])
        assert len(errors) == 1 and words in errors[0] and "Traceback" not in output, (args, output[-1500:])


def test_missing_permission_is_named_before_deploying(lab: Any, tmp_path: Path) -> None:
    import yaml

    contexts = [c["name"] for c in yaml.safe_load(lab.kubeconfig.read_text())["contexts"]]
    viewer = next(c for c in contexts if c.endswith("-viewer"))
    rc, output, elapsed = run_raw(
        "--kubeconfig", str(lab.kubeconfig), "--context", viewer, "--out", str(tmp_path / "out")
    )
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert rc == 4 and elapsed < 30 and len(lines) == 1, output[-1500:]
    assert "missing permission" in lines[0] and "create namespaces" in lines[0], lines
    assert managed_namespaces(lab) == []


def test_ctrl_c_mid_run_cleans_up(lab: Any, tmp_path: Path) -> None:
    """SIGINT while the run holds at kit-ready (tests/lab_pause_plugin.py): exit 2, namespace gone."""
    import signal

    marker = tmp_path / "kit-ready"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "NC_TEST_PAUSE_MARKER": str(marker),
        "NC_TEST_PAUSE_S": "30",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netconform.cli.main",
            "run",
            "--lab",
            LAB,
            "--probe-timeout",
            "1",
            "--no-html",
            "--out",
            str(tmp_path),
            "--",
            "-p",
            "tests.lab_pause_plugin",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # as from a terminal: a background shell starts its children with SIGINT ignored, and Python then
        # installs no KeyboardInterrupt handler (seen when CI itself was started with `&`)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run never got its kit Ready"
            time.sleep(0.1)  # polling for the plugin's marker (bounded by the deadline)
        assert managed_namespaces(lab) == [marker.read_text()]
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 2, output[-2000:]
    assert "Traceback" not in output
    assert managed_namespaces(lab) == []


def test_timings_say_where_the_wall_went(healthy: dict[str, Any]) -> None:
    """results.json's run.timings: each stage once, in order, none negative, the phases as the engine
    ran them, and together within the session's wall (the reports and the deletion come after)."""
    run = healthy["results"]["run"]
    timings = run["timings"]
    stages = ["setup_s", "kit_s", "collection_s", "probes_s", "tests_s"]
    assert [k for k in timings if k != "phases"] == stages, timings
    assert all(timings[k] >= 0 for k in stages), timings
    assert [p["phase"] for p in timings["phases"]] == list(range(1, run["stats"]["phases"] + 1))
    assert sum(p["checks"] for p in timings["phases"]) == run["stats"]["probe_checks"], timings
    assert sum(p["duration_s"] for p in timings["phases"]) <= timings["probes_s"]
    assert sum(timings[k] for k in stages) <= run["duration_s"] + 0.01, (timings, run["duration_s"])
