"""Helpers for tests on a whole lab (API + data plane): waiting, pods, the CLI as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab, LabError
from netconform.lab.net.outside import AGENT

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 30.0


def lab_name(prefix: str = "t") -> str:
    """A lab name unique per xdist worker and process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    return f"{prefix}{worker.replace('gw', '')}-{os.getpid() % 100000}"


def own_lab(
    name: str, nodes: int = 3, dataplane: str = "lab", lb_kind: str = "lab", *, ingress: bool = True
) -> Iterator[Lab]:
    """A module's private lab (for modules whose faults must not touch the shared one): up, yield,
    down even when tests fail. A lab that cannot come up fails the tests that need it, with the lab's
    reason: the module's own `missing(...)` check has already skipped machines that lack what a lab needs,
    so a failed `lab up` here is a bug, never a reason to pass over them in silence. It is tried twice, and
    a first failure is a warning in the run's summary (seen, not hidden, and not fatal on a loaded host).
    `dataplane="cilium"`, `lb_kind="metallb"|"f5"` add the optional components."""
    handle = Lab(name)
    for attempt in (1, 2):
        try:
            handle.up(nodes=nodes, lb=True, dataplane=dataplane, lb_kind=lb_kind, ingress=ingress)
            break
        except LabError as exc:
            handle.down()
            if attempt == 2:
                pytest.fail(f"lab {name} did not come up, twice; the second time: {exc}")
            warnings.warn(f"lab {name} did not come up ({exc}); bringing it up once more", stacklevel=2)
    try:
        yield handle
    finally:
        handle.down()


def skip_unless_condition_possible(lab: Lab, condition: str) -> None:
    """Skip, with the lab's own reason, a test of a condition this lab's control plane cannot have (e.g.
    `ephemeral-containers-disabled` on the real v1.34 API server, which always serves the subresource)."""
    from netconform.lab.control.realwebhook import ConditionWebhook

    if (lab.state() or {}).get("control_plane") == "real" and (why := ConditionWebhook.refusal(condition)):
        pytest.skip(why)


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)  # polling the lab API for `what`, bounded by the deadline
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def echo_pod(name: str, node: str, namespace: str) -> dict[str, Any]:
    """An echo backend pod like the suite's (HTTP 8080, TCP 9000, UDP 9001) pinned to `node`."""
    serve = [sys.executable, str(AGENT), "serve", "--http", "8080", "--tcp", "9000", "--udp", "9001"]
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"netconform.io/role": "echo"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,  # the real namespace controller waits out the grace
            "nodeName": node,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "echo",
                    "image": "python:3-slim",
                    "command": serve,
                    "ports": [
                        {"name": "http", "containerPort": 8080},
                        {"name": "tcp", "containerPort": 9000},
                    ],
                }
            ],
        },
    }


def pod_state(core: Any, namespace: str, name: str) -> dict[str, Any] | None:
    from kubernetes.client import ApiException

    try:
        pod = core.read_namespaced_pod(name, namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    return {"ready": ready, "ip": pod.status.pod_ip, "uid": pod.metadata.uid}


def start(lab: Lab, core: Any, manifest: dict[str, Any]) -> tuple[str, str]:
    """Create a pod and wait until it is Ready; returns (pod IP, its network namespace)."""
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    core.create_namespaced_pod(namespace, manifest)
    state = wait_for(
        f"pod {name} Ready", lambda: (s := pod_state(core, namespace, name)) and s["ready"] and s
    )
    netns = next(p["netns"] for p in lab.status()["pods"] if (p["namespace"], p["name"]) == (namespace, name))
    return state["ip"], netns


def remove(core: Any, namespace: str, name: str) -> None:
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=1)
    wait_for(f"pod {name} gone", lambda: pod_state(core, namespace, name) is None)


def cli(
    *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`netconform ARGS...` in a child, as a user runs it (this virtualenv first on PATH, `env` added).

    >>> cli("run", "--lab", "t1", "--out", "/tmp/o", "--no-html", timeout=180).returncode  # doctest: +SKIP
    0
    """
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    full = {**os.environ, "PATH": path, **(env or {})}
    argv = [sys.executable, "-m", "netconform.cli.main", *args]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=full, check=False
    )


def namespace_api(lab_api: Any, namespace: str) -> Iterator[Any]:
    """CoreV1Api with `namespace` created for a module; the namespace goes at the end, pass or fail."""
    from kubernetes import client

    api: Any = client.CoreV1Api(lab_api)
    api.create_namespace({"metadata": {"name": namespace}})
    try:
        yield api
    finally:
        api.delete_namespace(namespace)
        wait_for(
            f"namespace {namespace} to go",
            lambda: namespace not in {n.metadata.name for n in api.list_namespace().items},
        )


def run_lab_suite(name: str, out: Path, *extra: str, subset: str) -> tuple[int, dict[str, Any], str]:
    """`netconform run --lab NAME` with short probes on the `-k subset`: (exit code, results.json, output)."""
    argv = ["run", "--lab", name, "--probe-timeout", "1", "--attempts", "2", "--ready-timeout", "40"]
    argv += ["--lb-timeout", "10", "--out", str(out), "--no-html", *extra, "--", "-k", subset]
    proc = cli(*argv, timeout=180)
    output = proc.stdout + proc.stderr
    path = out / "results.json"
    assert path.exists(), output[-3000:]
    return proc.returncode, json.loads(path.read_text()), output
