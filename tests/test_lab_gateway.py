"""Gateway API and TLS-with-SNI ingress cells end to end on a private lab.

Healthy: through the lab's Gateway `kube-system/lab-gateway` (the kit's HTTPRoute, Accepted by the lab's
controller) and over HTTPS with SNI (the kit's certificate from a throwaway CA, verified by the probes)
the echo pods answer from outside, from every node's pods and from every node; `kubectl get
gateway,httproute -A` shows the Gateway programmed with its address and the kit's route. Each ingress
fault fails the gateway and https cells with the ingress cells' classification (FM-34 404 / TLS, FM-35
502, FM-36 refused). A --gateway naming a missing Gateway skips with a reason naming it; a route the
Gateway refuses skips with the controller's reason; `--gateway nonsense` is one line and exit 4.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.can_run import needs
from tests.lab_helpers import own_lab, run_lab_suite
from tests.test_lab_ingress import kubectl

LAB = f"ncgw{os.getpid() % 10000}"
ROOT = Path(__file__).resolve().parent.parent
GATEWAY = "kube-system/lab-gateway"
pytestmark = [
    needs("lab"),
    pytest.mark.xdist_group("lab-gateway"),
    pytest.mark.lab,
    pytest.mark.slow,
]
SUBJECTS = ["external"] + [f"{r}@node-{i}" for r in ("host", "pod") for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def lab() -> Iterator[Any]:
    yield from own_lab(LAB)


def run(
    name: str, out: Path, *extra: str, subset: str = "ingress or gateway"
) -> tuple[int, dict[str, Any], str]:
    return run_lab_suite(name, out, *extra, subset=subset)


def by_kind(results: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in results["cells"]:
        if c["target_kind"] == "T-INGRESS-L7":
            out.setdefault((c["target"], c["protocol"]), []).append(c)
    return out


def test_healthy_gateway_and_https_cells_pass_everywhere(lab: Any, tmp_path: Path) -> None:
    rc, results, output = run(lab.name, tmp_path, "--keep", "--gateway", GATEWAY, "--ingress-tls")
    namespace = f"netconform-{results['run']['id']}"
    try:
        cells = by_kind(results)
        assert sorted(cells) == [
            (f"gateway:{GATEWAY}", "http"),
            ("ingress:lab", "http"),
            ("ingress:lab", "https"),
        ], sorted(cells)
        for key in ((f"gateway:{GATEWAY}", "http"), ("ingress:lab", "https")):
            assert sorted(c["subject"] for c in cells[key]) == SUBJECTS
            for cell in cells[key]:
                assert cell["outcome"] == "passed", (cell["test"], cell["reason"])
                assert cell["test"].endswith(f"[{cell['subject']}->{cell['target']}/L7-{cell['protocol']}]")
        https = cells[("ingress:lab", "https")][0]["evidence"]["checks"][0]
        assert https["url"].startswith("https://10.89.0.") and https["ca_b64"], https
        assert not https.get("insecure"), https  # verified against the run's CA, with SNI = the host
        assert rc == 0, output[-2000:]
        table = kubectl(lab.kubeconfig, "get", "gateway,httproute", "-A", "--no-headers")
        rows = [line.split() for line in table.splitlines()]
        gw = next(r for r in rows if r[1].endswith("/lab-gateway"))
        assert (
            gw[0] == "kube-system" and gw[2] == "lab" and gw[3].startswith("10.89.0.") and gw[4] == "True"
        ), gw
        route = next(r for r in rows if r[0] == namespace)
        assert f'["echo.lab-gateway.kube-system.{results["run"]["id"]}.netconform.test"]' == route[2], route
        status = json.loads(
            kubectl(
                lab.kubeconfig, "get", "httproute", "-n", namespace, route[1].split("/")[-1], "-o", "json"
            )
        )["status"]["parents"][0]
        conditions = {c["type"]: (c["status"], c["observedGeneration"]) for c in status["conditions"]}
        assert conditions == {"Accepted": ("True", 1), "ResolvedRefs": ("True", 1)}, status
        assert status["controllerName"] == "netconform.io/lab-gateway"
        assert status["parentRef"]["name"] == "lab-gateway", status
    finally:
        kubectl(lab.kubeconfig, "delete", "namespace", namespace, "--wait=false")


@pytest.mark.parametrize(
    ("fault", "fm", "words"),
    [
        (
            "ingress-no-route",
            "FM-34",
            {"http": "HTTP 404: the proxy (lab-ingress)", "https": "CERTIFICATE_VERIFY"},
        ),
        ("ingress-backend-down", "FM-35", {"http": "HTTP 502", "https": "HTTP 502"}),
        ("ingress-down", "FM-36", {"http": "Connection refused", "https": "Connection refused"}),
    ],
)
def test_ingress_faults_fail_gateway_and_https_cells_like_the_ingress_cells(
    lab: Any, tmp_path: Path, fault: str, fm: str, words: dict[str, str]
) -> None:
    lab.fault_add(fault)
    try:
        rc, results, output = run(lab.name, tmp_path, "--gateway", GATEWAY, "--ingress-tls")
    finally:
        lab.fault_clear(fault)
    cells = by_kind(results)
    assert len(cells) == 3, sorted(cells)
    reference = {(c["classified_layer"], c["classified_fm"]) for c in cells[("ingress:lab", "http")]}
    assert len(reference) == 1 and next(iter(reference))[1] == fm, reference
    for (target, protocol), group in cells.items():
        assert len(group) == 7, (target, protocol)
        for cell in group:
            assert cell["outcome"] == "failed", (cell["test"], cell["reason"])
            assert cell["classified_fm"] == fm, (cell["test"], cell["classified_fm"], cell["reason"])
            assert cell["classified_layer"] == ("L4" if fm == "FM-36" else "L7"), cell["test"]
            assert words[protocol] in cell["reason"], cell["reason"]
            hop = (cell["diagnosis"] or {}).get("hop", "")
            assert ("Gateway" if target.startswith("gateway:") else "ingress") in hop, cell["diagnosis"]
    assert rc == 1, output[-2000:]


def test_missing_and_refusing_gateways_skip_with_the_reason(lab: Any, tmp_path: Path) -> None:
    strict = "nc-same-ns"  # a Gateway that admits routes from its own namespace only
    manifest = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": strict, "namespace": "kube-system"},
        "spec": {
            "gatewayClassName": "lab",
            "listeners": [
                {
                    "name": "http",
                    "port": 80,
                    "protocol": "HTTP",
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }
            ],
        },
    }
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(manifest))
    kubectl(lab.kubeconfig, "create", "--validate=false", "-f", str(path))
    try:
        rc, results, output = run(
            lab.name, tmp_path, "--gateway", f"kube-system/nope,kube-system/{strict}", subset="gateway"
        )
    finally:
        kubectl(lab.kubeconfig, "delete", "gateway", "-n", "kube-system", strict)
    cells = by_kind(results)
    missing = cells[("gateway:kube-system/nope", "http")]
    assert len(missing) == 7 and all(c["outcome"] == "skipped" for c in missing)
    assert "--gateway kube-system/nope: no such Gateway" in missing[0]["reason"], missing[0]["reason"]
    refused = cells[(f"gateway:kube-system/{strict}", "http")]
    assert len(refused) == 7 and all(c["outcome"] == "skipped" for c in refused)
    assert f"Gateway kube-system/{strict} refused HTTPRoute" in refused[0]["reason"]
    assert "NotAllowedByListeners" in refused[0]["reason"], refused[0]["reason"]
    assert rc == 0, output[-2000:]


def test_a_malformed_gateway_is_one_line_and_exit_4(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "netconform.cli.main", "run", "--lab", "whatever", "--gateway", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 4, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "'nonsense' is not NAMESPACE/NAME of a Gateway" in lines[0], proc.stderr
