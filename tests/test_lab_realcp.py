"""A lab with the real control plane (`lab up --control-plane real`), end to end.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built by `make control-plane` into
the cache) and one virtual-kubelet node agent per node; the lab's kernel data plane and kubelet. Proves:
the nodes register and are Ready, the real scheduler places a pod, `kubectl exec` and `kubectl logs`
go through the real API server to the node agent, a Service's ClusterIP (allocated by the real API,
endpoints from the real EndpointSlice controller) answers from a pod on another node, the suite's
default run passes, and `lab down` leaves no process, namespace or state behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab, LabError
from netconform.lab.control import procs
from netconform.lab.control.realcp import missing_cache
from netconform.lab.net.addressing import lab_namespace_pattern
from netconform.lab.net.nsexec import netns_list
from tests.can_run import needs
from tests.lab_helpers import cli, lab_name, wait_for

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = shutil.which("kubectl")
_MISSING = missing_cache()
pytestmark = [
    needs("lab"),
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"the real control plane's cache lacks {_MISSING} (run `make control-plane`)",
    ),
    pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (make kubectl)"),
    pytest.mark.xdist_group("lab-realcp"),
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.root,
]
NS = "realcp-test"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    handle = Lab(lab_name("rcp"))
    started = time.monotonic()
    try:
        handle.up(nodes=3, lb=True, control_plane="real", timeout=150)
    except LabError as exc:
        handle.down()
        pytest.fail(f"lab up --control-plane real failed: {exc}")
    handle.up_seconds = time.monotonic() - started  # type: ignore[attr-defined]
    try:
        yield handle
    finally:
        handle.down()


def kubectl(lab: Lab, *args: str, timeout: float = 30.0, check: bool = True) -> str:
    assert KUBECTL is not None
    proc = subprocess.run(
        [KUBECTL, f"--kubeconfig={lab.kubeconfig}", f"--request-timeout={int(timeout)}s", *args],
        capture_output=True,
        text=True,
        timeout=timeout + 5,
        check=False,
    )
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout + (proc.stderr if not check else "")


def kget(lab: Lab, *args: str) -> Any:
    return json.loads(kubectl(lab, "get", *args, "-o", "json"))


def pod_manifest(name: str, command: list[str], node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "main", "image": "python:3-slim", "command": command}],
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": spec,
    }


def apply(lab: Lab, obj: dict[str, Any]) -> None:
    assert KUBECTL is not None
    proc = subprocess.run(
        [KUBECTL, f"--kubeconfig={lab.kubeconfig}", "create", "-f", "-"],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def running_pod(lab: Lab, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        pod: dict[str, Any] = kget(lab, "pod", "-n", NS, name)
        conds = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
        return pod if conds.get("Ready") == "True" and pod["status"].get("podIP") else None

    result: dict[str, Any] = wait_for(f"pod {name} Ready", ready, timeout=60)
    return result


def test_real_api_server_and_nodes_ready(lab: Lab) -> None:
    version = json.loads(kubectl(lab, "version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == "v1.34.4"
    nodes = wait_for(
        "3 Ready nodes",
        lambda: (
            (
                items := [
                    n
                    for n in kget(lab, "nodes")["items"]
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
                ]
            )
            and len(items) == 3
            and items
        ),
    )
    by_name = {n["metadata"]["name"]: n for n in nodes}
    assert sorted(by_name) == ["node-1", "node-2", "node-3"]
    n1 = by_name["node-1"]
    assert "node-role.kubernetes.io/control-plane" in n1["metadata"]["labels"]
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in n1["spec"]["taints"]
    addrs = {a["type"]: a["address"] for a in n1["status"]["addresses"]}
    assert addrs["InternalIP"] == "10.89.0.11" or addrs["InternalIP"].startswith("10.89.0.")
    assert n1["spec"]["podCIDR"].startswith("10.244.")
    st = lab.state() or {}
    assert st.get("control_plane") == "real" and st.get("kube_api", "").startswith("https://127.0.0.1:")
    # kube-system as on the emulated lab, run by the node agents
    pods = kget(lab, "pods", "-n", "kube-system")["items"]
    names = sorted(p["metadata"]["name"] for p in pods)
    assert sum(n.startswith("coredns-") for n in names) == 2, names
    assert [n for n in names if n.startswith("lab-cni-")] == [
        "lab-cni-node-1",
        "lab-cni-node-2",
        "lab-cni-node-3",
    ]
    # lab up waits for the lab kubelet's view; the node agents report the pods' status to the real API
    # asynchronously (virtual-kubelet's status updates), so the real phase may lag it by a moment
    wait_for(
        "every kube-system pod Running in the real API",
        lambda: all(
            p["status"]["phase"] == "Running" for p in kget(lab, "pods", "-n", "kube-system")["items"]
        ),
    )


def ready_condition(lab: Lab, node: str) -> dict[str, Any]:
    node_obj = json.loads(kubectl(lab, "get", "node", node, "-o", "json"))
    return next(c for c in node_obj["status"]["conditions"] if c["type"] == "Ready")


def test_cni_not_ready_is_reported_by_the_node_agent_to_the_real_api(lab: Lab) -> None:
    """A fault that flips API state: the node's own agent reports Ready=False (as a kubelet whose runtime
    says NetworkReady=false), so the real API, kubectl and the scheduler see it; clear reports Ready."""
    assert ready_condition(lab, "node-3")["status"] == "True"
    lab.fault_add("cni-not-ready", node="node-3")
    try:
        cond = wait_for(
            "node-3 NotReady in the real API",
            lambda: (c := ready_condition(lab, "node-3"))["status"] == "False" and c,
        )
        assert cond["reason"] == "NetworkPluginNotReady"
        assert "cni plugin not initialized" in cond["message"]
        assert ready_condition(lab, "node-2")["status"] == "True"
        wide = kubectl(lab, "get", "nodes", "--no-headers")
        assert any(line.split()[:2] == ["node-3", "NotReady"] for line in wide.splitlines()), wide
    finally:
        lab.fault_clear("cni-not-ready")
    wait_for("node-3 Ready again", lambda: ready_condition(lab, "node-3")["status"] == "True")


def test_node_authorizer_node_restriction_and_rbac(lab: Lab) -> None:
    """The real authorizers decide: a node's credentials may not give itself a role label
    (NodeRestriction) nor touch another node (Node authorizer); the viewer context may read, not write."""
    node2 = lab.state_dir / "pki" / "node-node-2.kubeconfig"
    assert KUBECTL is not None

    def as_(
        kubeconfig: Path | str, *args: str, context: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        ctx = [f"--context={context}"] if context else []
        return subprocess.run(
            [KUBECTL, f"--kubeconfig={kubeconfig}", *ctx, "--request-timeout=20s", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    own = as_(node2, "label", "node", "node-2", "node-role.kubernetes.io/worker=")
    assert (
        own.returncode != 0
        and "is not allowed to modify labels: node-role.kubernetes.io/worker" in own.stderr
    )
    other = as_(node2, "label", "node", "node-3", "example.com/x=y")
    assert other.returncode != 0 and "forbidden" in other.stderr.lower()
    ok = as_(node2, "label", "node", "node-2", "example.com/lab=yes")
    assert ok.returncode == 0, ok.stderr
    viewer = f"lab-{lab.name}-viewer"
    assert as_(lab.kubeconfig, "get", "pods", "-A", context=viewer).returncode == 0
    denied = as_(lab.kubeconfig, "create", "namespace", "realcp-viewer-x", context=viewer)
    assert denied.returncode != 0 and 'User "viewer" cannot create resource "namespaces"' in denied.stderr


def test_pod_scheduled_exec_logs(lab: Lab) -> None:
    kubectl(lab, "create", "namespace", NS, check=False)
    script = "import time,sys\nprint('hello from realcp', flush=True)\ntime.sleep(3600)"
    apply(lab, pod_manifest("hello", [sys.executable, "-c", script]))
    pod = running_pod(lab, "hello")
    # the real scheduler chose a node; node-1 is tainted NoSchedule
    assert pod["spec"]["nodeName"] in ("node-2", "node-3")
    assert pod["status"]["podIP"].startswith("10.244.")
    out = kubectl(lab, "exec", "-n", NS, "hello", "--", "sh", "-c", "echo exec-ok; echo $HOSTNAME; exit 0")
    assert out.splitlines()[0] == "exec-ok"
    assert out.splitlines()[1] == "hello"
    # the exit code travels back through the API server
    failed = subprocess.run(
        [
            KUBECTL or "kubectl",
            f"--kubeconfig={lab.kubeconfig}",
            "exec",
            "-n",
            NS,
            "hello",
            "--",
            "sh",
            "-c",
            "exit 7",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert failed.returncode == 7, failed.stderr
    logs = wait_for("the pod's log", lambda: kubectl(lab, "logs", "-n", NS, "hello").strip())
    assert logs == "hello from realcp"


def test_cluster_ip_answers_from_another_node(lab: Lab) -> None:
    kubectl(lab, "create", "namespace", NS, check=False)
    server = "import http.server,socketserver\n" + (
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "  def do_GET(self):\n"
        "    self.send_response(200); self.end_headers(); self.wfile.write(b'echo-backend')\n"
        "socketserver.TCPServer.allow_reuse_address=True\n"
        "http.server.HTTPServer(('0.0.0.0', 8080), H).serve_forever()\n"
    )
    apply(lab, pod_manifest("backend", [sys.executable, "-c", server], node="node-2"))
    apply(lab, pod_manifest("client", [sys.executable, "-c", "import time; time.sleep(3600)"], node="node-3"))
    apply(
        lab,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "backend", "namespace": NS},
            "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    running_pod(lab, "backend")
    running_pod(lab, "client")
    svc = kget(lab, "service", "-n", NS, "backend")
    vip = svc["spec"]["clusterIP"]
    assert vip.startswith("10.96.")
    probe = (
        f"import urllib.request; print(urllib.request.urlopen('http://{vip}/', timeout=2).read().decode())"
    )

    def answered() -> str | None:
        out = kubectl(lab, "exec", "-n", NS, "client", "--", sys.executable, "-c", probe, check=False)
        return out if "echo-backend" in out else None

    assert "echo-backend" in wait_for(f"ClusterIP {vip} answering from node-3", answered, timeout=40)
    # the endpoints the lab's proxy programs come from the real EndpointSlice controller
    slices = kget(lab, "endpointslices", "-n", NS, "-l", "kubernetes.io/service-name=backend")["items"]
    assert [e["addresses"][0] for s in slices for e in s["endpoints"]] == [
        running_pod(lab, "backend")["status"]["podIP"]
    ]


def test_suite_default_run_passes(lab: Lab, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    argv = [sys.executable, "-m", "netconform.cli.main", "run", "--lab", lab.name, "--out", str(tmp_path)]
    argv += ["--no-html"]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=ROOT, env=env, check=False)
    wall = time.monotonic() - started
    output = proc.stdout + proc.stderr
    print(f"suite run on the real control plane: {wall:.1f} s")
    assert proc.returncode == 0, output[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results, output[-2000:]


def _kubectl(lab: Lab, *args: str, context: str | None = None, stdin: str | None = None) -> str:
    assert KUBECTL is not None
    argv = [KUBECTL, "--kubeconfig", str(lab.kubeconfig), *(["--context", context] if context else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, input=stdin, check=False)
    assert proc.returncode == 0, (argv, proc.stdout + proc.stderr)
    return proc.stdout


def test_suite_as_a_service_account_bound_to_exactly_docs_rbac_yaml(lab: Lab, tmp_path: Path) -> None:
    """docs/rbac.yaml applied to the real API server and bound to a ServiceAccount; the suite runs with
    that account's token only: the preflight (SelfSubjectAccessReview) passes and the run is healthy."""
    import yaml

    _kubectl(lab, "apply", "-f", str(ROOT / "docs" / "rbac.yaml"))
    _kubectl(lab, "-n", "default", "create", "serviceaccount", "netconform-runner")
    binding = ["create", "clusterrolebinding", "netconform-runner", "--clusterrole=netconform"]
    _kubectl(lab, *binding, "--serviceaccount=default:netconform-runner")
    token = _kubectl(lab, "-n", "default", "create", "token", "netconform-runner", "--duration=1h").strip()
    config = yaml.safe_load(lab.kubeconfig.read_text())
    admin = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == admin["context"]["cluster"])
    sa_config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "netconform-runner", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "netconform-runner"}}],
        "current-context": "sa",
    }
    kubeconfig = tmp_path / "sa.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(sa_config))
    argv = ["run", "--lab", lab.name, "--kubeconfig", str(kubeconfig), "--out", str(tmp_path / "out")]
    proc = cli(*argv, "--no-html", timeout=400)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["run"]["counts"]["failed"] == 0 and results["run"]["counts"]["passed"] > 100


def test_preflight_on_a_viewer_names_what_the_real_authorizer_refuses(lab: Lab, tmp_path: Path) -> None:
    """The viewer (bound to the built-in `view` role): every permission of docs/rbac.yaml the preflight
    names as missing is one `kubectl auth can-i` answers "no" for, and every one it does not name is "yes"."""
    import yaml

    from netconform.kube.preflight import required_permissions

    contexts = [c["name"] for c in yaml.safe_load(lab.kubeconfig.read_text())["contexts"]]
    viewer = next(c for c in contexts if c.endswith("-viewer"))
    refused = set()
    for perm in required_permissions():
        resource, _, sub = perm.resource.partition("/")
        what = f"{resource}.{perm.group}" if perm.group else resource
        args = ["auth", "can-i", perm.verb, what + (f" --subresource={sub}" if sub else "")]
        argv = [
            str(KUBECTL),
            "--kubeconfig",
            str(lab.kubeconfig),
            "--context",
            viewer,
            *" ".join(args).split(),
        ]
        answer = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout.strip()
        assert answer in ("yes", "no"), (argv, answer)
        if answer == "no":
            refused.add(perm.describe())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    argv = [sys.executable, "-m", "netconform.cli.main", "run", "--lab", lab.name, "--context", viewer]
    argv += ["--out", str(tmp_path / "out"), "--no-html"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, check=False)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "missing permission" in ln]
    assert proc.returncode == 4 and len(lines) == 1, proc.stdout + proc.stderr
    named = lines[0].split("missing permissions: ", 1)[1].split(" (the least ClusterRole", 1)[0].split(", ")
    assert set(named) == refused and refused, (sorted(set(named) ^ refused), lines[0])


INGRESS_SA = "system:serviceaccount:kube-system:lab-ingress-controller"


def _unix_get(socket_path: Path, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    """One HTTP/1.0 GET over the lab's api.sock (as the ingress controller pod makes it)."""
    import socket

    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(socket_path))
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: lab\r\n{auth}Accept: application/json\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_ingress_controller_and_gateway_api_on_the_real_api(lab: Lab) -> None:
    """The Gateway API's standard CRDs (v1.6.3) are Established; the ingress controller is the
    ServiceAccount kube-system/lab-ingress-controller with exactly its ClusterRole (the real authorizer
    says so), reaches the real API through api.sock with its own token (none: the API server's
    anonymous refusal), and has programmed the lab's Gateway with its Service's VIP."""
    crds = [c for c in kget(lab, "crd")["items"] if c["spec"]["group"] == "gateway.networking.k8s.io"]
    names = {c["metadata"]["name"] for c in crds}
    assert {f"{r}.gateway.networking.k8s.io" for r in ("gatewayclasses", "gateways", "httproutes")} <= names
    for crd in crds:
        notes = crd["metadata"]["annotations"]
        assert notes["gateway.networking.k8s.io/bundle-version"] == "v1.6.3", notes
        assert notes["gateway.networking.k8s.io/channel"] == "standard", notes
        conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conds.get("Established") == "True", (crd["metadata"]["name"], conds)
    allowed = {
        "list ingresses.networking.k8s.io -A": "yes",
        "watch endpointslices.discovery.k8s.io -A": "yes",
        "get secrets -A": "yes",
        "patch ingresses.networking.k8s.io --subresource=status -A": "yes",
        "patch httproutes.gateway.networking.k8s.io --subresource=status -A": "yes",
        "update gateways.gateway.networking.k8s.io --subresource=status -A": "yes",
        "update gateways.gateway.networking.k8s.io -A": "no",  # status only, never the spec
        "create ingresses.networking.k8s.io -A": "no",
        "create pods -A": "no",
        "delete secrets -A": "no",
        "list configmaps -A": "no",
    }
    answers = {
        what: kubectl(lab, "auth", "can-i", *what.split(), f"--as={INGRESS_SA}", check=False).split()[0]
        for what in allowed
    }
    assert answers == allowed, {k: v for k, v in answers.items() if allowed[k] != v}
    token = (lab.state_dir / "ingress-token").read_text().strip()
    status, body = _unix_get(lab.state_dir / "api.sock", "/apis/networking.k8s.io/v1/ingressclasses", token)
    assert status == 200 and [i["metadata"]["name"] for i in body["items"]] == ["lab"], (status, body)
    status, body = _unix_get(lab.state_dir / "api.sock", "/api/v1/namespaces/kube-system/pods", token)
    assert status == 403 and INGRESS_SA in body["message"], (status, body)
    status, body = _unix_get(lab.state_dir / "api.sock", "/apis/networking.k8s.io/v1/ingressclasses", None)
    assert status == 403 and "system:anonymous" in body["message"], (status, body)
    vip = kget(lab, "svc", "-n", "kube-system", "lab-ingress-controller")["status"]["loadBalancer"]["ingress"]

    def programmed() -> dict[str, Any] | None:
        gw: dict[str, Any] = kget(lab, "gateway", "-n", "kube-system", "lab-gateway")
        conds = {c["type"]: c["status"] for c in (gw.get("status") or {}).get("conditions") or []}
        return gw if conds.get("Programmed") == "True" else None

    gw = wait_for("the lab Gateway Programmed", programmed, timeout=60)
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": vip[0]["ip"]}], gw["status"]
    # the real CRD validation: an HTTPRoute path must start with "/" (the emulation accepted "x")
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "bad-path", "namespace": "default"},
        "spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "x"}}]}]},
    }
    proc = subprocess.run(
        [str(KUBECTL), f"--kubeconfig={lab.kubeconfig}", "create", "-f", "-"],
        input=json.dumps(route),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0 and "spec.rules[0].matches[0].path" in proc.stderr, proc.stderr


def test_down_leaves_nothing(lab: Lab) -> None:
    st = lab.state() or {}
    pids = procs.lab_pids(lab.name)
    assert len(pids) >= 8, pids  # 4 control-plane processes, 3 node agents, the pods' containers
    lab.down()
    assert procs.lab_pids(lab.name) == []
    assert [n for n in netns_list() if lab_namespace_pattern(lab.name).match(n)] == []
    assert not lab.state_dir.exists()
    assert st.get("kube_api")
    for pid in pids:
        assert not procs.pid_alive(pid)
    if not Lab.names():  # the host guard's routes go with the last lab (others may run in parallel)
        routes = subprocess.run(
            ["ip", "route", "show", "proto", "78"], capture_output=True, text=True, timeout=10, check=False
        )
        assert routes.stdout.strip() == ""
