"""The L7 ingress target end to end on a lab with its ingress controller, and on one without.

Healthy: HTTP with the kit's per-run host through the ingress reaches an echo pod from the outside
client, from every node's pods and from every node, and `kubectl get ingress` shows the kit's Ingress
with the address the controller published. Each ingress fault fails exactly the ingress cells, with the
proxy's answer classified (404: routing, FM-34; 502: backends, FM-35; no L4 answer: the address, FM-36),
while the same echo pods answer directly and through the ClusterIP. Without a controller the ingress
cells skip and say what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.can_run import needs
from tests.lab_helpers import own_lab, run_lab_suite

LAB = f"ncing{os.getpid() % 10000}"
BARE = f"ncbare{os.getpid() % 10000}"
ROOT = Path(__file__).resolve().parent.parent
SUBSET = "ingress or clusterip_http or pod_to_pod_http"
pytestmark = [
    needs("lab"),
    pytest.mark.xdist_group("lab-ingress"),
    pytest.mark.lab,
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def lab() -> Iterator[Any]:
    yield from own_lab(LAB)


def run_suite(name: str, out: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    return run_lab_suite(name, out, *extra, subset=SUBSET)


def ingress_cells(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in results["cells"] if c["target_kind"] == "T-INGRESS-L7"]


def others(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The measured non-ingress cells (the gateway/https families without their options are one
    `not-applicable` item each, selected by `-k ingress` too)."""
    return [
        c
        for c in results["cells"]
        if c["target_kind"] != "T-INGRESS-L7" and not c["test"].endswith("[not-applicable]")
    ]


def kubectl(kubeconfig: Path, *args: str) -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed (make test installs it)")
    proc = subprocess.run(
        [path, f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_healthy_ingress_cells_pass_from_outside_pods_and_nodes(lab: Any, tmp_path: Path) -> None:
    rc, results, output = run_suite(lab.name, tmp_path, "--keep")
    namespace = (
        results["run"]["namespace"] if "namespace" in results["run"] else f"netconform-{results['run']['id']}"
    )
    try:
        cells = ingress_cells(results)
        subjects = sorted(c["subject"] for c in cells)
        assert subjects == ["external"] + [f"{r}@node-{i}" for r in ("host", "pod") for i in (1, 2, 3)], (
            subjects
        )
        for cell in cells:
            assert cell["target"] == "ingress:lab" and cell["outcome"] == "passed", (
                cell["test"],
                cell["reason"],
            )
            notes = " ".join(cell["evidence"].get("notes", []))
            assert "answered; the proxy" in notes and "forwarded for" in notes, notes
        assert rc == 0, output[-2000:]
        table = kubectl(lab.kubeconfig, "get", "ingress", "-A", "--no-headers")
        row = next(line.split() for line in table.splitlines() if line.startswith(namespace))
        assert row[1] == "echo-lab" and row[2] == "lab", row  # NAMESPACE NAME CLASS HOSTS ADDRESS
        assert row[3] == f"echo.lab.{results['run']['id']}.netconform.test" and row[4].startswith(
            "10.89.0."
        ), row
        classes = kubectl(lab.kubeconfig, "get", "ingressclass", "--no-headers")
        assert classes.split()[:2] == ["lab", "netconform.io/lab-ingress"], classes
    finally:
        kubectl(lab.kubeconfig, "delete", "namespace", namespace, "--wait=false")


@pytest.mark.parametrize(
    ("fault", "layers", "fm", "words"),
    [
        ("ingress-no-route", {"L7"}, "FM-34", "HTTP 404: the proxy (lab-ingress) has no route for host"),
        ("ingress-backend-down", {"L7"}, "FM-35", "HTTP 502: the proxy (lab-ingress) could not connect"),
        ("ingress-down", {"L3", "L4"}, "FM-36", "Connection refused"),
    ],
)
def test_each_ingress_fault_fails_exactly_the_ingress_cells(
    lab: Any, tmp_path: Path, fault: str, layers: set[str], fm: str, words: str
) -> None:
    lab.fault_add(fault)
    try:
        rc, results, output = run_suite(lab.name, tmp_path)
    finally:
        lab.fault_clear(fault)
    cells = ingress_cells(results)
    assert len(cells) == 7, [c["test"] for c in results["cells"]]
    for cell in cells:
        assert cell["outcome"] == "failed", (cell["test"], cell["outcome"], cell["reason"])
        assert cell["classified_layer"] in layers and cell["classified_fm"] == fm, (cell["test"], cell)
        assert words in cell["reason"], cell["reason"]
        diagnosis = cell["diagnosis"] or {}
        # the same echo pods answer without the ingress: the diagnosis names the ingress, not the pods
        assert "ingress" in diagnosis.get("hop", "") and "answer" in diagnosis.get("summary", ""), diagnosis
    verdict = results["verdict"]["text"]
    assert "ingress controller of class lab" in verdict and fm in verdict, verdict
    assert not any(w in verdict for w in ("tunnel", "service NAT", "partition", "application (L7)")), verdict
    rest = others(results)
    assert len(rest) == 9 + 3 and all(c["outcome"] == "passed" for c in rest), [
        (c["test"], c["outcome"]) for c in rest if c["outcome"] != "passed"
    ]
    assert rc == 1, output[-2000:]


def test_without_an_ingress_controller_the_cells_skip_naming_what_is_missing(tmp_path: Path) -> None:
    for bare in own_lab(BARE, nodes=1, ingress=False):
        rc, results, output = run_suite(bare.name, tmp_path)
        assert ingress_cells(results) == []  # no class: no cell, one skipped item saying why
        assert "no IngressClass in this cluster: no ingress controller" in output, output[-2000:]
        assert rc == 0, output[-2000:]
