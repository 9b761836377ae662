"""Real kubectl (>= 1.30) against the lab: the independent client proves the API is Kubernetes enough."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from netconform.lab.cluster import Lab
from tests.can_run import needs

TIMEOUT = 60

pytestmark = [needs("lab", "kubectl"), pytest.mark.xdist_group("lab-shared"), pytest.mark.lab]


class Kubectl:
    def __init__(self, lab_obj: Lab) -> None:
        self.kubeconfig = str(lab_obj.kubeconfig)
        self.context = f"lab-{lab_obj.name}"

    def __call__(
        self, *args: str, check: bool = True, viewer: bool = False, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        context = self.context + ("-viewer" if viewer else "")
        argv = [
            "kubectl",
            "--kubeconfig",
            self.kubeconfig,
            "--context",
            context,
            "--request-timeout=30s",
            *args,
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, input=stdin)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> {proc.returncode}: {proc.stderr.strip()}")
        return proc


@pytest.fixture(scope="module")
def kubectl(lab: Lab) -> Kubectl:
    return Kubectl(lab)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"kc-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=true", "--timeout=40s", check=False)


def _columns(output: str) -> list[str]:
    return output.splitlines()[0].split()


def test_get_nodes_wide(kubectl: Kubectl) -> None:
    out = kubectl("get", "nodes", "-o", "wide").stdout
    assert _columns(out)[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert "INTERNAL-IP" in _columns(out)
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert sorted(rows) == ["node-1", "node-2", "node-3"]
    assert rows["node-1"][1:3] == ["Ready", "control-plane"]
    assert "10.89.0.12" in rows["node-2"]


def test_get_pods_all_namespaces(kubectl: Kubectl) -> None:
    out = kubectl("get", "pods", "-A", "-o", "wide").stdout
    assert _columns(out)[:6] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    coredns = [line.split() for line in out.splitlines() if " coredns-" in line]
    assert len(coredns) == 2
    assert all(r[0] == "kube-system" and r[2] == "1/1" and r[3] == "Running" for r in coredns)
    assert len({r[7] for r in coredns}) == 2, "the two DNS pods must run on different nodes"


def test_get_services_and_endpointslices(kubectl: Kubectl) -> None:
    svc = kubectl("get", "svc", "-A").stdout
    assert re.search(r"kube-system\s+kube-dns\s+ClusterIP\s+10\.96\.0\.10\s+<none>\s+53/UDP,53/TCP", svc), svc
    assert re.search(r"default\s+kubernetes\s+ClusterIP\s+10\.96\.0\.1\s", svc), svc
    eps = kubectl("get", "endpointslices", "-n", "kube-system").stdout
    assert _columns(eps) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    row = next(line for line in eps.splitlines() if line.startswith("kube-dns-"))
    assert len(row.split()[3].split(",")) == 2


def test_run_wait_logs_exec_describe(kubectl: Kubectl, namespace: str) -> None:
    kubectl("-n", namespace, "run", "sleeper", "--image=any", "--restart=Never", "--", "sleep", "300")
    kubectl(
        "-n",
        namespace,
        "run",
        "talker",
        "--image=any",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "echo hello from $HOSTNAME; sleep 300",
    )
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/sleeper", "pod/talker", "--timeout=30s")
    deadline = time.monotonic() + 10
    logs = ""
    while time.monotonic() < deadline and "hello" not in logs:
        logs = kubectl("-n", namespace, "logs", "talker").stdout
        time.sleep(0.1)  # polling the container log for its first line, bounded by the deadline
    assert logs.strip() == "hello from talker"
    done = kubectl(
        "-n", namespace, "exec", "sleeper", "--", "sh", "-c", "echo out; echo err >&2; exit 7", check=False
    )
    assert done.returncode == 7
    assert done.stdout == "out\n"
    assert "err" in done.stderr
    echoed = kubectl("-n", namespace, "exec", "-i", "sleeper", "--", "cat", stdin="via stdin\n")
    assert echoed.stdout == "via stdin\n"
    # an exec joins the running container: its environment, its resolv.conf (mounted by the launcher)
    view = kubectl(
        "-n", namespace, "exec", "sleeper", "--", "sh", "-c", "echo $HOSTNAME; grep ^search /etc/resolv.conf"
    )
    hostname, search = view.stdout.splitlines()
    assert hostname == "sleeper" and f"{namespace}.svc.cluster.local" in search.split(), view.stdout
    desc = kubectl("-n", namespace, "describe", "pod", "sleeper").stdout
    assert re.search(r"Status:\s+Running", desc)
    assert re.search(r"Node:\s+node-\d/10\.89\.0\.1\d", desc)
    for reason in ("Scheduled", "Pulled", "Started"):
        assert re.search(rf"Normal\s+{reason}\s", desc), desc


def test_unstartable_command_shows_reason(kubectl: Kubectl, namespace: str) -> None:
    kubectl("-n", namespace, "run", "broken", "--image=any", "--", "no-such-command-xyz")
    deadline = time.monotonic() + 20
    reason = ""
    while time.monotonic() < deadline and reason != "ContainerCannotRun":
        reason = kubectl(
            "-n",
            namespace,
            "get",
            "pod",
            "broken",
            "-o",
            "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
        ).stdout
        time.sleep(0.1)  # polling the pod status, bounded by the deadline
    assert reason == "ContainerCannotRun"
    message = kubectl(
        "-n",
        namespace,
        "get",
        "pod",
        "broken",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.waiting.message}",
    ).stdout
    assert "no-such-command-xyz" in message and "not found" in message


def test_errors_as_status(kubectl: Kubectl, namespace: str) -> None:
    missing = kubectl("-n", namespace, "get", "pod", "nosuch", check=False)
    assert missing.returncode == 1 and '(NotFound): pods "nosuch" not found' in missing.stderr
    again = kubectl("create", "namespace", namespace, check=False)
    assert again.returncode == 1 and "(AlreadyExists)" in again.stderr
    denied = kubectl(
        "-n", namespace, "run", "nope", "--image=any", "--", "sleep", "1", viewer=True, check=False
    )
    assert denied.returncode == 1 and "(Forbidden)" in denied.stderr and 'User "viewer"' in denied.stderr
    assert kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    viewer = kubectl("auth", "can-i", "create", "pods", viewer=True, check=False)
    assert viewer.stdout.strip().startswith("no") and viewer.returncode == 1
    assert kubectl("auth", "can-i", "list", "pods", viewer=True).stdout.strip() == "yes"


def test_delete_namespace_waits_for_its_pods(kubectl: Kubectl) -> None:
    name = f"kc-del-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    # a short grace period: the real namespace controller looks again only after the pods' grace
    # estimate (51 s with the default 30 s, docs/lab.md), the emulated one as soon as they are gone
    grace = '{"spec": {"terminationGracePeriodSeconds": 3}}'
    kubectl("-n", name, "run", "victim", "--image=any", f"--overrides={grace}", "--", "sleep", "300")
    kubectl("-n", name, "wait", "--for=condition=Ready", "pod/victim", "--timeout=30s")
    started = time.monotonic()
    kubectl("delete", "namespace", name, "--timeout=40s")
    assert time.monotonic() - started < 30
    gone = kubectl("get", "namespace", name, check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr


def test_unpullable_image_is_err_image_pull_then_back_off(kubectl: Kubectl, namespace: str) -> None:
    """`.invalid` registries (RFC 2606) cannot be pulled: Pending, ErrImagePull/ImagePullBackOff, events."""
    image = "registry.invalid/python:3.12"
    kubectl("-n", namespace, "run", "nopull", f"--image={image}", "--restart=Never", "--", "sleep", "300")
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not {"ErrImagePull", "ImagePullBackOff"} <= seen:
        seen.add(
            kubectl(
                "-n",
                namespace,
                "get",
                "pod",
                "nopull",
                "-o",
                "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
            ).stdout
        )
        time.sleep(0.1)  # polling the pod status for both reasons, bounded by the deadline
    assert {"ErrImagePull", "ImagePullBackOff"} <= seen, seen
    row = kubectl("-n", namespace, "get", "pod", "nopull", "--no-headers").stdout.split()
    assert row[1] == "0/1" and row[2] in ("ErrImagePull", "ImagePullBackOff") and row[3] == "0", row
    described = kubectl("-n", namespace, "describe", "pod", "nopull").stdout
    assert f'Failed to pull image "{image}": failed to pull and unpack image "{image}"' in described
    assert "dial tcp: lookup registry.invalid: no such host" in described
    for event in ("Error: ErrImagePull", f'Back-off pulling image "{image}"', "Error: ImagePullBackOff"):
        assert event in described, event
    assert re.search(r"Status:\s+Pending", described)
    # any other image name is still "pulled" from the host filesystem
    kubectl(
        "-n", namespace, "run", "pulls", "--image=docker.io/library/python:3.12-slim", "--", "sleep", "300"
    )
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/pulls", "--timeout=30s")


def test_pod_security_label_refuses_host_network(kubectl: Kubectl, namespace: str) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=baseline")
    overrides = '{"spec": {"hostNetwork": true}}'
    refused = kubectl(
        "-n",
        namespace,
        "run",
        "hostnet",
        "--image=any",
        f"--overrides={overrides}",
        "--",
        "sleep",
        "1",
        check=False,
    )
    assert refused.returncode == 1
    assert (
        'Error from server (Forbidden): pods "hostnet" is forbidden: violates PodSecurity "baseline:latest": '
        "host namespaces (hostNetwork=true)"
    ) in refused.stderr
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=privileged", "--overwrite")
    kubectl(
        "-n", namespace, "run", "hostnet", "--image=any", f"--overrides={overrides}", "--", "sleep", "300"
    )
