"""Pod-scoped lab faults follow pods, on a whole lab: pods created (or recreated) after `fault add` are
broken, removing a pod leaves nothing of the fault behind, `clear` heals every pod it reached — and a
user's `lab fault add http-503` before `netconform run --lab NAME` breaks the suite's HTTP cells.

Probes run the agent in node-1's namespace (as root, like a host probe): the faults act in the target
pods' own namespaces, so any client sees them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab
from netconform.lab.net.addressing import ns_name
from netconform.lab.net.netplane import Netplane
from tests import lab_helpers
from tests.can_run import needs
from tests.dataplane_helpers import _drop_empty_tables, dns_answer, dns_query, http, probe, sh, tcp
from tests.lab_helpers import cli, pod_state, remove, start, wait_for

pytestmark = [needs("lab"), pytest.mark.xdist_group("lab-shared"), pytest.mark.lab, pytest.mark.root]

NS = "follow"
ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 30.0
RUN_TIMEOUT = 120.0
DNS_NAME = "kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def core(lab_api: Any) -> Iterator[Any]:
    """CoreV1Api with this module's namespace; the namespace goes at the end."""
    yield from lab_helpers.namespace_api(lab_api, NS)


@pytest.fixture
def pods_removed(core: Any) -> Iterator[None]:
    """Whatever the test left in the module's namespace is removed after it, pass or fail."""
    yield
    for pod in core.list_namespaced_pod(NS).items:
        remove(core, NS, pod.metadata.name)


def echo_pod(name: str, node: str) -> dict[str, Any]:
    return lab_helpers.echo_pod(name, node, NS)


def where(lab: Lab) -> dict[str, str]:
    return {f["name"]: f["where"] for f in lab.status()["faults"]}


def rules(netns: str) -> str:
    """The pod namespace's iptables, as a healthy pod has them (counters, comments, empty tables gone)."""
    text = sh(netns, ["iptables-save"])
    return _drop_empty_tables("".join(ln + "\n" for ln in text.splitlines() if not ln.startswith("#")))


def helpers_in(lab: Lab, netns: str) -> list[str]:
    """Helper programs (the 503 responder) the data plane still records for a namespace."""
    return [n for n, info in Netplane.load(lab.name).state().processes.items() if info["netns"] == netns]


def test_echo_pods_created_after_the_fault_are_broken_until_clear(
    lab: Lab,
    core: Any,
    pods_removed: None,
) -> None:
    node1 = ns_name(lab.name, "node-1")
    assert "none running now" in lab.fault_add("http-503", "node-2")["summary"]
    lab.fault_add("tcp-reset", "node-3")
    try:
        ip1, ns1 = start(lab, core, echo_pod("late-n1", "node-1"))
        ip2, ns2 = start(lab, core, echo_pod("late-n2", "node-2"))
        ip3, ns3 = start(lab, core, echo_pod("late-n3", "node-3"))
        assert where(lab) == {
            "http-503": "echo pods on node-2: late-n2",
            "tcp-reset": "echo pods on node-3: late-n3",
        }
        checks = [
            http("n2-http", f"http://{ip2}:8080/", timeout=1.0),
            tcp("n2-tcp", ip2, 9000, timeout=1.0),
            tcp("n3-tcp", ip3, 9000, timeout=1.0),
            http("n1-http", f"http://{ip1}:8080/", timeout=1.0),
        ]
        during = probe(node1, checks)
        assert "NC-FAULT-503" in rules(ns2) and "NC-FAULT-RST" in rules(ns3)
        # the pod goes: nothing of the fault stays for it; recreated, it is broken again
        remove(core, NS, "late-n2")
        assert where(lab)["http-503"] == "echo pods on node-2: none running now"
        assert helpers_in(lab, ns2) == []
        ip2, ns2 = start(lab, core, echo_pod("late-n2", "node-2"))
        again = probe(node1, [http("n2-again", f"http://{ip2}:8080/", timeout=1.0)])["n2-again"]
    finally:
        cleared = lab.fault_clear()
    assert sorted(cleared) == ["http-503", "tcp-reset"]
    brief = {k: (v["error"], v.get("status"), v["message"]) for k, v in during.items()}
    assert during["n2-http"]["status"] == 503 and during["n2-http"]["error"] == "http-status", brief
    assert during["n2-tcp"]["ok"], brief  # http-503 leaves L4 alone
    assert during["n3-tcp"]["error"] == "reset", brief
    assert during["n1-http"]["ok"], brief  # --node is honoured
    assert again["status"] == 503, again
    healed = probe(node1, [http("n2", f"http://{ip2}:8080/"), tcp("n3", ip3, 9000)], attempts=3, gap=0.3)
    assert all(r["ok"] for r in healed.values()), healed
    healthy = rules(ns1)
    assert rules(ns2) == healthy and rules(ns3) == healthy, (rules(ns2), rules(ns3), healthy)
    assert helpers_in(lab, ns2) == [] and where(lab) == {}


def _manifest(lab_api: Any, pod: Any) -> dict[str, Any]:
    """A pod as it was created (name, labels, spec): what a controller recreates."""
    data = lab_api.sanitize_for_serialization(pod)
    meta = data["metadata"]
    return {
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels") if k in meta},
        "spec": data["spec"],
    }


def test_recreated_dns_pod_stays_down_until_clear(lab: Lab, core: Any, lab_api: Any) -> None:
    node1 = ns_name(lab.name, "node-1")
    dns = core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns").items
    target = next(p for p in dns if p.spec.node_name == "node-2")
    other = next(p for p in dns if p.spec.node_name != "node-2")
    name, manifest = target.metadata.name, _manifest(lab_api, target)
    lab.fault_add("coredns-down", "node-2")
    try:
        assert where(lab)["coredns-down"] == f"one kube-dns pod on node-2: {name}"
        remove(core, "kube-system", name)
        assert where(lab)["coredns-down"] == "one kube-dns pod on node-2: none running now"
        ip, netns = start(lab, core, manifest)
        assert where(lab)["coredns-down"] == f"one kube-dns pod on node-2: {name}"
        during = probe(
            node1,
            [
                dns_query("recreated", ip, DNS_NAME, timeout=1.0),
                dns_query("other", other.status.pod_ip, DNS_NAME),
            ],
        )
    finally:
        lab.fault_clear("coredns-down")
        if pod_state(core, "kube-system", name) is None:  # the shared lab keeps its two DNS pods
            start(lab, core, manifest)
    assert during["recreated"]["error"] == "timeout", during["recreated"]
    assert dns_answer(during["other"])[0] == "NOERROR", during["other"]
    healed = probe(node1, [dns_query("recreated", ip, DNS_NAME)], attempts=3, gap=0.3)["recreated"]
    assert dns_answer(healed)[0] == "NOERROR", healed
    assert "NC-FAULT" not in rules(netns) and where(lab) == {}


# --------------------------------------------------------------------------------- as a user does it
def run_suite(lab: Lab, out: Path) -> tuple[int, dict[str, Any], str]:
    """The suite's pod->pod and ClusterIP cells over HTTP and TCP, as `netconform run --lab` runs them."""
    proc = cli(
        *("run", "--lab", lab.name, "--probe-timeout", "1", "--attempts", "1", "--ready-timeout", "40"),
        *("--out", str(out), "--no-html", "--", "-k"),
        "pod_to_pod_http or pod_to_pod_tcp or clusterip_http or clusterip_tcp",
        timeout=RUN_TIMEOUT,
    )
    output = proc.stdout + proc.stderr
    path = out / "results.json"
    assert path.exists(), output[-3000:]
    return proc.returncode, json.loads(path.read_text()), output


def test_cli_http_503_added_before_the_run_fails_the_http_cells(
    lab: Lab,
    tmp_path: Path,
) -> None:
    added = cli("lab", "fault", "add", "http-503", "--name", lab.name)
    try:
        assert added.returncode == 0, added.stderr
        assert "pods started later get it too" in added.stdout, added.stdout
        listed = cli("lab", "fault", "list", "--name", lab.name).stdout
        assert "http-503 follow pods" in listed, listed
        rc, results, output = run_suite(lab, tmp_path / "broken")
        # the run's echo pods are gone with its namespace: the fault keeps nothing for them
        assert where(lab) == {"http-503": "echo pods on all nodes: none running now"}
        assert not [n for n in Netplane.load(lab.name).state().processes if n.startswith("http503-")]
    finally:
        cleared = cli("lab", "fault", "clear", "--name", lab.name)
    assert cleared.returncode == 0 and "http-503" in cleared.stdout, cleared.stderr
    cells = results["cells"]
    web = [c for c in cells if c["protocol"] == "http"]
    plain = [c for c in cells if c["protocol"] == "tcp"]
    assert len(web) == 12 and len(plain) == 12, output[-2000:]  # 9 pod->pod + 3 pod->ClusterIP each
    for cell in web:
        assert cell["outcome"] == "failed" and cell["classified_layer"] == "L7", (
            cell["test"],
            cell["reason"],
        )
        assert cell["error"] == "http-status" and cell["fm"][0] == "FM-01" and "503" in cell["reason"], cell
    assert all(c["outcome"] == "passed" for c in plain), [(c["test"], c["reason"]) for c in plain]
    assert rc == 1, output[-2000:]
    rc, results, output = run_suite(lab, tmp_path / "healed")
    assert rc == 0 and {c["outcome"] for c in results["cells"]} == {"passed"}, output[-2000:]


def test_lb_arp_silent_covers_vips_allocated_after_it(lab: Lab, core: Any, pods_removed: None) -> None:
    """`fault add lb-arp-silent` before any LoadBalancer exists is a state: a VIP allocated later gets
    no ARP answer (it sits on its node's `lo`), and `clear` makes exactly one MAC answer for it again."""
    from tests.dataplane_helpers import arp

    added = cli("lab", "fault", "add", "lb-arp-silent", "--name", lab.name)
    try:
        assert added.returncode == 0, added.stderr
        start(lab, core, echo_pod("vip-backend", "node-1"))
        service = {
            "metadata": {"name": "late-lb", "namespace": NS},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"netconform.io/role": "echo"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        }
        core.create_namespaced_service(NS, service)
        vip = wait_for(
            "a LoadBalancer address for late-lb",
            lambda: (
                (ingress := core.read_namespaced_service("late-lb", NS).status.load_balancer.ingress)
                and ingress[0].ip
            ),
        )
        node = wait_for(f"{vip} announced", lambda: Netplane.load(lab.name).vips().get(vip))
        assert f"{vip}/32" in sh(f"nc-{lab.name}-{node}", ["ip", "-4", "-o", "addr", "show", "dev", "lo"])
        router = f"nc-{lab.name}-router"
        silent = probe(router, [arp("vip", vip, window=0.5)])
        assert silent["vip"]["macs"] == [], silent
    finally:
        cleared = cli("lab", "fault", "clear", "lb-arp-silent", "--name", lab.name)
    assert cleared.returncode == 0, cleared.stderr
    try:
        answered = probe(router, [arp("vip", vip, window=0.5)])
        assert len(answered["vip"]["macs"]) == 1, answered
        assert f"{vip}/32" in sh(f"nc-{lab.name}-{node}", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
    finally:
        core.delete_namespaced_service("late-lb", NS)
