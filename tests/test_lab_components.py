"""The optional lab components end to end: `netconform run --lab NAME` against a lab with a
Cilium-style dataplane and MetalLB, and one with F5 (`lab up --dataplane cilium --lb metallb`,
`lab up --lb f5`).

The suite finds the components as on a real cluster (anetd pods, `app=metallb` pods, F5 pods and
ConfigMaps) and parses the real tools' formats. Healthy: every component cell runs and passes. Each
fault fails exactly its FM cells, with the meaning of that FM; `clear` brings the healthy answer back.
Across the lab configurations no FM ID of the catalogue is skipped everywhere.
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
from netconform.report.catalogue import CATALOGUE
from tests.can_run import needs
from tests.lab_helpers import own_lab

ROOT = Path(__file__).resolve().parent.parent
LAB_CM = f"nccm{os.getpid() % 10000}"
LAB_F5 = f"ncf5{os.getpid() % 10000}"
NODES = ("node-1", "node-2", "node-3")
COMPONENT_K = "cilium or ebpf or drop_monitor or metallb or lb_vip_arp or cni_ready"
pytestmark = [
    needs("lab"),
    pytest.mark.xdist_group("lab-components"),
    pytest.mark.lab,
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def cm_lab() -> Iterator[Lab]:
    yield from own_lab(LAB_CM, dataplane="cilium", lb_kind="metallb")


@pytest.fixture(scope="module")
def f5_lab() -> Iterator[Lab]:
    yield from own_lab(LAB_F5, lb_kind="f5")


def run(lab: Lab, out: Path, k: str | None = None) -> dict[str, dict[str, Any]]:
    """One bounded suite run (privileged, so FM-26 runs): cell id -> cell of results.json."""
    argv = [sys.executable, "-m", "netconform.cli.main", "run", "--lab", lab.name, "--allow-privileged"]
    argv += ["--probe-timeout", "1", "--attempts", "2", "--out", str(out), "--no-html", "--"]
    argv += ["-k", k] if k else []
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False, env=env)
    path = out / "results.json"
    assert path.exists(), (proc.stdout + proc.stderr)[-3000:]
    cells = json.loads(path.read_text())["cells"]
    return {f"{c['subject']}->{c['target']}/{c['layer']}-{c['protocol']}": c for c in cells}


def verdict_text(out: Path) -> str:
    """The verdict paragraph the run stored in results.json."""
    return str(json.loads((out / "results.json").read_text())["verdict"]["text"])


def failed(cells: dict[str, dict[str, Any]]) -> set[str]:
    return {k for k, c in cells.items() if c["outcome"] in ("failed", "error", "flaky")}


def ran_fms(cells: dict[str, dict[str, Any]]) -> set[str]:
    return {fm for c in cells.values() if c["outcome"] != "skipped" for fm in c["fm"]}


HEALTH = "cluster->component:cilium-health/L3-health"
RATE = "cluster->component:cilium-api/L7-rate-limit"
MAPS = "cluster->component:ebpf-maps/L3-map-fill"
DROPS = "cluster->component:drop-monitor/L3-drops"
METALLB = "cluster->component:metallb/L2-announce"
F5 = "cluster->component:f5/L4-config"
LB_ARP = {f"host@{n}->lb-vip/L2-arp" for n in NODES}


@pytest.fixture(scope="module")
def healthy_cm(cm_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return run(cm_lab, tmp_path_factory.mktemp("cm-healthy"))


@pytest.fixture(scope="module")
def healthy_f5(f5_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return run(f5_lab, tmp_path_factory.mktemp("f5-healthy"), "f5 or lb")


def test_cilium_metallb_lab_healthy_full_run_passes(healthy_cm: dict[str, dict[str, Any]]) -> None:
    bad = [(k, c["reason"]) for k, c in healthy_cm.items() if k in failed(healthy_cm)]
    assert not bad, bad[:10]
    for key in (HEALTH, RATE, MAPS, DROPS, METALLB, *LB_ARP):
        assert healthy_cm[key]["outcome"] == "passed", (key, healthy_cm[key]["reason"])
    assert "3/3" in healthy_cm[HEALTH]["reason"]
    assert healthy_cm[RATE]["reason"].startswith("0 rate-limited")  # 2 pod-network pods per node: < 4
    assert "cilium_lb4_services_v2" in healthy_cm[MAPS]["reason"] and "/4096" in healthy_cm[MAPS]["reason"]
    assert "announced by node-" in healthy_cm[METALLB]["reason"]
    cni = [c for k, c in healthy_cm.items() if k.endswith("/L3-cni-ready")]
    assert len(cni) == 3 and all("anetd-" in c["reason"] for c in cni)
    assert healthy_cm[F5]["outcome"] == "skipped" and "F5" in healthy_cm[F5]["reason"]


@pytest.mark.parametrize(
    ("fault", "node", "expect_failed", "fm", "words"),
    [
        ("cilium-health-down", "node-3", {HEALTH}, "FM-14", "unreachable: node-3"),
        ("node-partition", "node-3", {HEALTH}, "FM-14", "unreachable: node-3"),
        ("ebpf-map-full", None, {MAPS}, "FM-26", "3891/4096 (95 %)"),
        ("metallb-speaker-down", None, {METALLB, *LB_ARP}, "FM-06", "no MetalLB speaker announces"),
    ],
)
def test_cilium_metallb_fault_fails_exactly_its_cells(
    cm_lab: Lab,
    healthy_cm: dict[str, dict[str, Any]],
    tmp_path: Path,
    fault: str,
    node: str | None,
    expect_failed: set[str],
    fm: str,
    words: str,
) -> None:
    cm_lab.fault_add(fault, node)
    try:
        # node-partition also fails every packet cell crossing the cut: only the health cell is asked
        cells = run(cm_lab, tmp_path, "cilium_health" if fault == "node-partition" else COMPONENT_K)
    finally:
        cm_lab.fault_clear(fault)
    assert failed(cells) == expect_failed, {k: cells[k]["reason"] for k in failed(cells)}
    main = next(iter(expect_failed & {HEALTH, MAPS, METALLB}))
    assert words in cells[main]["reason"] and fm in cells[main]["meaning"], cells[main]
    verdict = verdict_text(tmp_path)
    assert fm in verdict and main.split(":", 1)[1].split("/", 1)[0] in verdict, verdict
    assert not any(w in verdict for w in ("tunnel", "service NAT", "not measured —")), verdict
    if fault == "metallb-speaker-down":
        wait_speakers_ready(cm_lab)
    heal_k = {HEALTH: "cilium_health", MAPS: "ebpf", METALLB: "metallb or lb_vip_arp"}[main]
    healed = run(cm_lab, tmp_path / "cleared", heal_k)
    assert not failed(healed), {k: healed[k]["reason"] for k in failed(healed)}


def wait_speakers_ready(lab: Lab, timeout: float = 40.0) -> None:
    """After clear the crash-looping speakers come back within the kubelet's back-off (<= 10 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = [p for p in lab.status()["pods"] if p["name"].startswith("metallb-speaker")]
        if pods and all(p["ready"] and not p["reason"] for p in pods):
            return
        time.sleep(0.5)  # polling the kubelet's restart, bounded by the deadline
    raise AssertionError(f"speakers not Ready within {timeout} s")


def test_cilium_rate_limit_is_counted_but_never_fails(cm_lab: Lab, tmp_path: Path) -> None:
    cm_lab.fault_add("cilium-rate-limit")
    try:
        cells = run(cm_lab, tmp_path, COMPONENT_K)
    finally:
        cm_lab.fault_clear("cilium-rate-limit")
    assert not failed(cells), {k: cells[k]["reason"] for k in failed(cells)}
    count = int(cells[RATE]["reason"].split(" ", 1)[0])
    assert count >= 3 and "not a failure (FM-25)" in cells[RATE]["reason"]  # one 429 per node at least


def test_f5_lab_healthy_passes(healthy_f5: dict[str, dict[str, Any]]) -> None:
    assert not failed(healthy_f5), {k: healthy_f5[k]["reason"] for k in failed(healthy_f5)}
    assert healthy_f5[F5]["outcome"] == "passed" and "used by this cluster only" in healthy_f5[F5]["reason"]


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("f5-partition-shared", "other-cluster_web-443-tcp"),
        ("f5-configmap-missing", "port(s) [80, 9000]"),
    ],
)
def test_f5_fault_fails_only_the_f5_cell(
    f5_lab: Lab, healthy_f5: dict[str, dict[str, Any]], tmp_path: Path, fault: str, words: str
) -> None:
    f5_lab.fault_add(fault)
    try:
        cells = run(f5_lab, tmp_path, "f5 or lb")
    finally:
        f5_lab.fault_clear(fault)
    assert failed(cells) == {F5}, {k: cells[k]["reason"] for k in failed(cells)}
    assert words in cells[F5]["reason"] and "FM-07" in cells[F5]["meaning"]
    verdict = verdict_text(tmp_path)
    assert "f5" in verdict and "FM-07" in verdict and "tunnel" not in verdict, verdict
    healed = run(f5_lab, tmp_path / "cleared", "f5")
    assert healed[F5]["outcome"] == "passed", healed[F5]["reason"]


def test_component_faults_refuse_labs_without_the_component(f5_lab: Lab) -> None:
    from netconform.lab.cluster import LabError

    with pytest.raises(LabError, match=r"no cilium dataplane \(lab up --dataplane cilium\)"):
        f5_lab.fault_add("cilium-health-down")
    with pytest.raises(LabError, match=r"no metallb load balancer"):
        f5_lab.fault_add("metallb-speaker-down")


# carried by checks that run only with an input of the user's (a --policy-table of their workloads), so a
# default run skips them; tests/test_suite_workloads.py runs them on the lab (see below)
NEEDS_A_TABLE = {"FM-37", "FM-38"}


def test_no_fm_is_skipped_on_every_lab_configuration(
    healthy_cm: dict[str, dict[str, Any]], healthy_f5: dict[str, dict[str, Any]]
) -> None:
    """The cilium+metallb lab runs every FM but F5's; the F5 lab runs FM-07/29.

    FM-37/38 (NetworkPolicy) are carried by the --policy-table checks, which need the user's table of
    their workloads: tests/test_suite_workloads.py runs them (healthy, and under netpol-not-enforced)."""
    never = set(CATALOGUE) - ran_fms(healthy_cm) - ran_fms(healthy_f5) - NEEDS_A_TABLE
    assert not never, sorted(never)
    assert {"FM-07", "FM-29"} <= ran_fms(healthy_f5) and not {"FM-07", "FM-29"} & ran_fms(healthy_cm)
