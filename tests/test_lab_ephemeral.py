"""Ephemeral containers in the lab: the pods/ephemeralcontainers subresource as the real API serves it,
the kubelet starting them in the pod's network namespace, exec into them, and `kubectl debug`.

Everything is real: the API over HTTPS, kubectl from the project's venv, processes in the pod's network
namespace with the pod's own mount view (its resolv.conf), a TCP echo from the ephemeral container to
another pod of the lab.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab
from netconform.lab.net.outside import AGENT
from tests.can_run import missing, needs
from tests.lab_helpers import echo_pod, own_lab, pod_state, skip_unless_condition_possible, wait_for
from tests.narrow import present

LAB = f"ncep{os.getpid() % 10000}"
NS = "eph"
PSA_NS = "eph-baseline"
PROBE = "netconform-probe"
# the project's kubectl (the venv's), else the one on PATH
_VENV_KUBECTL = Path(sys.executable).parent / "kubectl"
KUBECTL = str(_VENV_KUBECTL) if _VENV_KUBECTL.exists() else (shutil.which("kubectl") or "kubectl")
LAB_MARKS = [
    needs("dataplane"),
    pytest.mark.xdist_group("lab-ephemeral"),
    pytest.mark.lab,
]


def on_lab(fn: Any) -> Any:
    """The marks of the tests that need a whole lab (root, namespaces)."""
    for mark in LAB_MARKS:
        fn = mark(fn)
    return fn


# ------------------------------------------------------------------------------ unit: admission
def _pod_with(*ephemeral: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "x"}], "ephemeralContainers": list(ephemeral)},
    }


def test_admission_of_ephemeral_containers() -> None:
    from netconform.lab.api.admission import Admission
    from netconform.lab.api.store import ApiError, Store

    admission = Admission(Store())
    old = _pod_with()
    new = _pod_with({"name": "dbg", "image": "busybox", "targetContainerName": "app"})
    admission.on_ephemeral_containers(old, new)
    assert new["spec"]["ephemeralContainers"][0]["terminationMessagePolicy"] == "File"  # defaulted
    same = _pod_with({"name": "dbg", "image": "busybox", "targetContainerName": "app"})
    admission.on_ephemeral_containers(new, same)  # sent again unchanged: fine
    cases = [
        (
            _pod_with({"name": "dbg", "image": "other"}),
            'existing ephemeral containers "dbg" may not be changed',
        ),
        (_pod_with(), 'existing ephemeral containers "dbg" may not be removed'),
        (
            _pod_with(same["spec"]["ephemeralContainers"][0], {"name": "app", "image": "x"}),
            'name: Duplicate value: "app"',
        ),
        (
            _pod_with(
                same["spec"]["ephemeralContainers"][0],
                {"name": "t", "image": "x", "targetContainerName": "no"},
            ),
            'targetContainerName: Not found: "no"',
        ),
        (
            _pod_with(
                same["spec"]["ephemeralContainers"][0],
                {"name": "q", "image": "x", "ports": [{"containerPort": 1}]},
            ),
            "ports: Forbidden: cannot be set for an Ephemeral Container",
        ),
    ]
    for pod, message in cases:
        with pytest.raises(ApiError) as err:
            admission.on_ephemeral_containers(same, pod)
        assert err.value.code == 422 and message in err.value.message, err.value.message


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if reason := missing("dataplane"):
        pytest.skip(reason)
    yield from own_lab(LAB, ingress=False)


@pytest.fixture(scope="module")
def core(lab: Lab) -> Iterator[Any]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(lab.kubeconfig))
    api: Any = client.CoreV1Api(api_client)
    api.create_namespace({"metadata": {"name": NS}})
    labels = {"pod-security.kubernetes.io/enforce": "baseline"}
    api.create_namespace({"metadata": {"name": PSA_NS, "labels": labels}})
    for ns, name, node in ((NS, "web", "node-1"), (NS, "peer", "node-2"), (PSA_NS, "web", "node-3")):
        api.create_namespaced_pod(ns, echo_pod(name, node, ns))

    def ready(ns: str, name: str) -> bool:
        state = pod_state(api, ns, name)
        return bool(state and state["ready"])

    for ns, name in ((NS, "web"), (NS, "peer"), (PSA_NS, "web")):
        wait_for(f"{ns}/{name} Ready", functools.partial(ready, ns, name))
    try:
        yield api
    finally:
        api_client.close()


def kubectl(
    lab: Lab, *args: str, stdin: str | None = None, viewer: bool = False
) -> subprocess.CompletedProcess[str]:
    context = f"lab-{lab.name}-viewer" if viewer else f"lab-{lab.name}"
    argv = [
        KUBECTL,
        "--kubeconfig",
        str(lab.kubeconfig),
        "--context",
        context,
        "--request-timeout",
        "20s",
        *args,
    ]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)


def probe_container(command: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": PROBE, "image": "python:3-slim", "command": command, **extra}


def patch_ephemeral(core: Any, ns: str, pod: str, containers: list[dict[str, Any]]) -> Any:
    return core.patch_namespaced_pod_ephemeralcontainers(
        pod, ns, {"spec": {"ephemeralContainers": containers}}
    )


def ephemeral_status(core: Any, ns: str, pod: str, name: str) -> dict[str, Any] | None:
    obj = core.api_client.sanitize_for_serialization(core.read_namespaced_pod(pod, ns))
    return next((s for s in obj["status"].get("ephemeralContainerStatuses") or [] if s["name"] == name), None)


def running(core: Any, ns: str, pod: str, name: str) -> dict[str, Any] | None:
    st = ephemeral_status(core, ns, pod, name)
    return st if st and "running" in st["state"] else None


def api_error(err: Any) -> tuple[int, str]:
    return err.status, json.loads(err.body)["message"]


@on_lab
def test_add_exec_and_reuse(lab: Lab, core: Any) -> None:
    from kubernetes.client import ApiException

    patch_ephemeral(core, NS, "web", [probe_container(["sleep", "3600"])])
    first = wait_for("the probe container running", lambda: running(core, NS, "web", PROBE))
    assert (
        first["ready"] is False and first["restartCount"] == 0 and first["containerID"].startswith("lab://")
    )
    # in the pod's network namespace (its IP on eth0) and with the pod's mount view (cluster resolver)
    pod_ip = core.read_namespaced_pod("web", NS).status.pod_ip
    addr = kubectl(lab, "-n", NS, "exec", "web", "-c", PROBE, "--", "ip", "-4", "-o", "addr", "show", "eth0")
    assert addr.returncode == 0 and f"inet {pod_ip}/32" in addr.stdout, addr
    resolv = kubectl(lab, "-n", NS, "exec", "web", "-c", PROBE, "--", "cat", "/etc/resolv.conf")
    assert "nameserver 10.96.0.10" in resolv.stdout and f"search {NS}.svc.cluster.local" in resolv.stdout, (
        resolv
    )
    # real traffic from the ephemeral container to another pod of the lab
    peer_ip = core.read_namespaced_pod("peer", NS).status.pod_ip
    plan = {"checks": [{"id": "echo", "kind": "tcp", "host": peer_ip, "port": 9000, "timeout": 2.0}]}
    out = kubectl(
        lab,
        "-n",
        NS,
        "exec",
        "-i",
        "web",
        "-c",
        PROBE,
        "--",
        sys.executable,
        str(AGENT),
        "run",
        stdin=json.dumps(plan),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["ok"], out.stdout
    # the same container again: accepted, nothing restarts (the suite reuses it across runs)
    again = patch_ephemeral(core, NS, "web", [probe_container(["sleep", "3600"])])
    assert [c.name for c in again.spec.ephemeral_containers] == [PROBE]
    assert (
        present(running(core, NS, "web", PROBE), "the running probe")["containerID"] == first["containerID"]
    )
    # changing or removing it is refused like the real API does
    with pytest.raises(ApiException) as err:
        patch_ephemeral(core, NS, "web", [probe_container(["sleep", "7200"])])
    code, message = api_error(err.value)
    assert code == 422
    # the real API server appends a diff of the container after this sentence (docs/lab.md)
    assert message.startswith(
        f'Pod "web" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "{PROBE}" '
        "may not be changed"
    ), message
    with pytest.raises(ApiException) as err:
        # a list body is sent as a JSON patch
        core.patch_namespaced_pod_ephemeralcontainers(
            "web", NS, [{"op": "remove", "path": "/spec/ephemeralContainers/0"}]
        )
    assert api_error(err.value)[0] == 422 and "may not be removed" in api_error(err.value)[1]
    # PUT of the subresource (a whole Pod) with the list unchanged is accepted as well
    current = core.read_namespaced_pod_ephemeralcontainers("web", NS)
    replaced = core.replace_namespaced_pod_ephemeralcontainers("web", NS, current)
    assert [c.name for c in replaced.spec.ephemeral_containers] == [PROBE]
    # a name clash with a regular container
    with pytest.raises(ApiException) as err:
        patch_ephemeral(
            core, NS, "web", [{"name": "echo", "image": "python:3-slim", "command": ["sleep", "1"]}]
        )
    assert api_error(err.value) == (
        422,
        'Pod "web" is invalid: spec.ephemeralContainers[0].name: Duplicate value: "echo"',  # new items first
    )
    # the pod itself cannot carry them in a plain update
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod("web", NS, {"spec": {"ephemeralContainers": [probe_container(["true"])]}})
    assert err.value.status == 422


@on_lab
def test_kubectl_debug(lab: Lab, core: Any) -> None:
    made = kubectl(
        lab, "-n", NS, "debug", "peer", "--image=python:3-slim", "-c", PROBE, "--", "sleep", "3600"
    )
    assert made.returncode == 0, made.stderr
    wait_for("kubectl's debug container running", lambda: running(core, NS, "peer", PROBE))
    # interactive, targeting the echo container: stdin to the shell, its output back
    script = "echo hello-from-$HOSTNAME\nexit 0\n"
    talk = kubectl(
        lab,
        "-n",
        NS,
        "debug",
        "-i",
        "peer",
        "--image=busybox",
        "--target=echo",
        "-c",
        "shell",
        "--",
        "sh",
        stdin=script,
    )
    assert talk.returncode == 0, talk.stderr
    assert "hello-from-peer" in talk.stdout, talk
    done = wait_for(
        "the shell container terminated",
        lambda: (s := ephemeral_status(core, NS, "peer", "shell")) and "terminated" in s["state"] and s,
    )
    assert done["state"]["terminated"]["exitCode"] == 0
    # -it from a terminal (script(1) gives kubectl one): the container gets a pseudo-terminal
    if shutil.which("script") is not None:
        base = [KUBECTL, "--kubeconfig", str(lab.kubeconfig), "--context", f"lab-{lab.name}", "-n", NS]
        cmd = shlex.join(
            [*base, "debug", "-it", "peer", "--image=busybox", "--target=echo", "-c", "tty", "--", "sh"]
        )
        term = subprocess.run(
            ["script", "-qec", cmd, "/dev/null"],
            input="tty -s && echo tty-is-$HOSTNAME\nexit 0\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "tty-is-peer" in term.stdout, term
        done = wait_for(
            "the tty container terminated",
            lambda: (s := ephemeral_status(core, NS, "peer", "tty")) and "terminated" in s["state"] and s,
        )
        assert done["state"]["terminated"]["exitCode"] == 0
    names = [c.name for c in core.read_namespaced_pod("peer", NS).spec.ephemeral_containers]
    assert names[:2] == [PROBE, "shell"]
    bad = kubectl(lab, "-n", NS, "debug", "peer", "--image=busybox", "--target=nope", "-c", "x", "--", "true")
    assert bad.returncode != 0 and 'targetContainerName: Not found: "nope"' in bad.stderr, bad.stderr


@on_lab
def test_viewer_needs_the_subresource(lab: Lab, core: Any) -> None:
    can = kubectl(lab, "auth", "can-i", "patch", "pods/ephemeralcontainers", "-n", NS, viewer=True)
    assert can.returncode == 1 and can.stdout.startswith("no"), can
    assert kubectl(lab, "auth", "can-i", "get", "pods", "-n", NS, viewer=True).stdout.strip() == "yes"
    refused = kubectl(lab, "-n", NS, "debug", "web", "--image=busybox", "-c", "v", "--", "true", viewer=True)
    assert refused.returncode != 0
    assert (
        'pods "web" is forbidden: User "viewer" cannot patch resource "pods/ephemeralcontainers" '
        f'in API group "" in the namespace "{NS}"'
    ) in refused.stderr, refused.stderr


@on_lab
def test_pod_security_applies(core: Any) -> None:
    from kubernetes.client import ApiException

    privileged = probe_container(["sleep", "60"], securityContext={"privileged": True})
    privileged["name"] = "priv"
    with pytest.raises(ApiException) as err:
        patch_ephemeral(core, PSA_NS, "web", [privileged])
    assert api_error(err.value) == (
        403,
        'pods "web" is forbidden: violates PodSecurity "baseline:latest": privileged '
        '(container "priv" must not set securityContext.privileged=true)',
    )
    patch_ephemeral(core, PSA_NS, "web", [probe_container(["sleep", "60"])])  # a plain one is fine
    wait_for("the probe running under baseline", lambda: running(core, PSA_NS, "web", PROBE))


@on_lab
def test_disabled_condition_looks_like_an_old_cluster(lab: Lab, core: Any) -> None:
    from kubernetes.client import ApiException

    skip_unless_condition_possible(lab, "ephemeral-containers-disabled")
    lab.fault_add("ephemeral-containers-disabled")
    try:
        with pytest.raises(ApiException) as err:
            patch_ephemeral(core, NS, "peer", [probe_container(["sleep", "1"], name="late")])
        assert err.value.status == 404
        assert json.loads(present(err.value.body, "the error's body"))["details"] == {}
        out = kubectl(lab, "-n", NS, "debug", "peer", "--image=busybox", "-c", "late", "--", "true")
        assert out.returncode != 0
        assert "ephemeral containers are disabled for this cluster" in out.stderr, out.stderr
    finally:
        lab.fault_clear("ephemeral-containers-disabled")
    names = [c.name for c in core.read_namespaced_pod("peer", NS).spec.ephemeral_containers]
    assert names[:2] == [PROBE, "shell"] and "late" not in names
