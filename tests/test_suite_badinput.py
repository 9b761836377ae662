"""Bad input end to end (issue 4): `netconform run` against a lab that reproduces each case.

Each case must end with one clear line, a bounded run time, the right exit status and nothing of the
run left in the cluster: a probe image that cannot be pulled (the lab fails `registry.invalid/...` like a
kubelet), host-network probes refused by a policy webhook (lab condition `deny-host-network`: the host
cells skip with the webhook's words, the rest of the run passes), a namespace stuck Terminating (lab
condition `namespace-stuck`), and an API that refuses, never answers, rejects the token, or a context that
does not exist. The lab is the per-process shared one (tests/conftest.py; its own xdist group, so
usually its own lab); conditions are cleared in `finally` so other modules on the same lab never see them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from netconform.lab.cluster import Lab
from tests.can_run import needs

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_WORDS = 'admission webhook "policy.lab.netconform.io" denied the request: hostNetwork is not allowed'
pytestmark = [needs("lab"), pytest.mark.xdist_group("lab-badinput"), pytest.mark.lab, pytest.mark.slow]


def run_suite(handle: Lab, out: Path, *args: str, timeout: float = 120.0) -> tuple[int, list[str], float]:
    """`netconform run --lab` with short timeouts; returns (exit status, non-empty output lines, seconds)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    argv = [
        *(sys.executable, "-m", "netconform.cli.main", "run", "--lab", handle.name, "--no-html"),
        *("--probe-timeout", "1", "--attempts", "1", "--ready-timeout", "40", "--lb-timeout", "10"),
        *("--out", str(out), *args),
    ]
    started = time.monotonic()
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output[-3000:]
    return proc.returncode, [ln for ln in output.splitlines() if ln.strip()], time.monotonic() - started


def run_raw(*args: str, timeout: float = 60.0) -> tuple[int, list[str], float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "netconform.cli.main", "run", "--no-html", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output[-3000:]
    return proc.returncode, [ln for ln in output.splitlines() if ln.strip()], time.monotonic() - started


def run_namespaces(handle: Lab) -> dict[str, str]:
    """The suite's namespaces still in the cluster, name -> phase."""
    from netconform.kube.connect import call, connect
    from netconform.kube.kit import MANAGED_SELECTOR

    cluster = connect(str(handle.kubeconfig))
    try:
        items = call(cluster, "list_namespace", label_selector=MANAGED_SELECTOR).get("items") or []
    finally:
        cluster.close()
    return {i["metadata"]["name"]: (i.get("status") or {}).get("phase", "") for i in items}


def namespace_labels(handle: Lab, namespace: str) -> dict[str, str]:
    from netconform.kube.connect import call, connect

    cluster = connect(str(handle.kubeconfig))
    try:
        return dict(call(cluster, "read_namespace", namespace)["metadata"].get("labels") or {})
    finally:
        cluster.close()


@pytest.fixture
def condition(lab: Lab) -> Iterator[Any]:
    """Adds lab conditions for one test and always clears them again."""
    added: list[str] = []

    def add(name: str) -> None:
        lab.fault_add(name)
        added.append(name)

    try:
        yield add
    finally:
        for name in added:
            lab.fault_clear(name)


def test_unpullable_probe_image_is_one_line_and_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    image = "registry.invalid/python:3.12"
    rc, lines, elapsed = run_suite(lab, tmp_path, "--probe-image", image, "--delete-timeout", "30")
    assert rc == 4 and elapsed < 45, (rc, elapsed, lines[-5:])
    assert len(lines) == 1, lines
    line = lines[0]
    assert image in line and ("ErrImagePull" in line or "ImagePullBackOff" in line), line
    assert "no such host" in line and "--probe-image" in line, line
    assert run_namespaces(lab) == {}


def test_host_network_refused_skips_host_cells_and_the_run_passes(
    lab: Lab,
    condition: Any,
    tmp_path: Path,
) -> None:
    condition("deny-host-network")
    rc, lines, elapsed = run_suite(
        lab, tmp_path, "--delete-timeout", "30", "--", "-k", "own_pods or node_ping or pod_to_pod_tcp"
    )
    results = json.loads((tmp_path / "results.json").read_text())
    cells = results["cells"]
    host = [c for c in cells if c["subject"].startswith("host@")]
    pods = [c for c in cells if c["subject"].startswith("pod@")]
    assert len(host) >= 9 and len(pods) >= 9, [c["test"] for c in cells]
    assert all(c["outcome"] == "skipped" and WEBHOOK_WORDS in c["reason"] for c in host), host[:2]
    assert all(c["outcome"] == "passed" for c in pods), [(c["test"], c["reason"]) for c in pods]
    assert rc == 0, lines[-10:]  # skips are not failures
    assert elapsed < 60
    assert run_namespaces(lab) == {}


def test_namespace_stuck_terminating_is_named_then_goes_when_cleared(
    lab: Lab,
    condition: Any,
    tmp_path: Path,
) -> None:
    condition("namespace-stuck")
    # the real namespace controller writes its conditions 3-6 s after the deletion (its first pass over
    # every resource type), the emulated one at once: the suite reports what it sees at its deadline
    delete_timeout = "12" if (lab.state() or {}).get("control_plane") == "real" else "4"
    rc, lines, elapsed = run_suite(
        lab, tmp_path, "--delete-timeout", delete_timeout, "--", "-k", "pod_to_pod_tcp"
    )
    results = json.loads((tmp_path / "results.json").read_text())
    namespace = results["run"]["options"]["namespace"]
    stuck = [ln for ln in lines if ln.startswith(f"netconform: namespace {namespace} ")]
    assert rc == 1 and elapsed < 45, (rc, elapsed, lines[-10:])
    assert len(stuck) == 1, lines[-15:]
    for words in (
        "phase Terminating",
        "finalizers: kubernetes",
        "NamespaceDeletionContentFailure",
        f"kubectl get namespace {namespace} -o yaml",
        f"/api/v1/namespaces/{namespace}/finalize",
    ):
        assert words in stuck[0], (words, stuck[0])
    bad = [(c["test"], c["reason"]) for c in results["cells"] if c["outcome"] != "passed"]
    assert not bad, bad
    assert run_namespaces(lab) == {namespace: "Terminating"}
    labels = namespace_labels(lab, namespace)
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged", "host probes need it under baseline"
    lab.fault_clear("namespace-stuck")
    deadline = time.monotonic() + 15
    while run_namespaces(lab):  # polling the API for the namespace to go, bounded by the deadline
        assert time.monotonic() < deadline, run_namespaces(lab)
        time.sleep(0.2)


@contextlib.contextmanager
def silent_api() -> Iterator[int]:
    """A TCP port on loopback that completes handshakes and then never says a word (a hung API)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # never accepted: the kernel completes the handshake, nobody answers TLS
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_unreachable_hung_unauthorized_api_and_bad_context_fail_fast(
    lab: Lab,
    tmp_path: Path,
) -> None:
    config = yaml.safe_load(lab.kubeconfig.read_text())

    def variant(name: str, server: str | None = None, token: str | None = None) -> str:
        data = json.loads(json.dumps(config))
        if server:
            data["clusters"][0]["cluster"]["server"] = server
        if token:
            for user in data["users"]:
                user["user"]["token"] = token
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return str(path)

    with silent_api() as port:
        cases = [
            (
                ["--kubeconfig", variant("refused", server="https://127.0.0.1:9")],
                "cannot be reached (connection refused)",
                15,
            ),
            (
                ["--kubeconfig", variant("hung", server=f"https://127.0.0.1:{port}"), "--probe-timeout", "1"],
                "cannot be reached (it accepted the connection but sent no answer within 5 s)",
                20,
            ),
            (["--kubeconfig", variant("token", token="not-a-token")], "401 Unauthorized", 15),
            (["--kubeconfig", str(lab.kubeconfig), "--context", "nope"], "context 'nope' not found", 15),
        ]
        for args, words, bound in cases:
            rc, lines, elapsed = run_raw(*args, "--out", str(tmp_path / "out"))
            assert rc == 4 and elapsed < bound, (args, rc, elapsed, lines)
            assert len(lines) == 1 and words in lines[0], (args, lines)
    assert run_namespaces(lab) == {}
