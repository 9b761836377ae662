"""The lab end to end through the official Python client: probe pods run the real agent (mounted from a
ConfigMap, like the suite does), and every check is one exec over the websocket with the plan on stdin.

Covers: pod->pod on the same and on another node, pod->ClusterIP (TCP, UDP, targetPort by name), node->
NodePort, outside client->LB VIP, DNS (internal, external, headless) from a pod, SNAT (the outside echo
sees the node IP), ARP for the VIP answered by exactly one MAC, endpoints following readiness, and the
exec/API counters of `lab status`.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dns.message
import pytest

from netconform.agent import SOURCE as AGENT_FILE
from netconform.lab.cluster import Lab
from netconform.lab.net.addressing import OUTSIDE_ECHO_IP, lb_pool, node_ip
from tests.can_run import needs
from tests.narrow import present

if TYPE_CHECKING:
    from kubernetes.client import V1ContainerStatus

pytestmark = [needs("lab"), pytest.mark.xdist_group("lab-shared"), pytest.mark.lab, pytest.mark.root]

NS = "e2e"
AGENT = AGENT_FILE
SERVE = ["python3", "/opt/netconform/agent.py", "serve", "--http", "8080", "--tcp", "9000", "--udp", "9001"]
DEADLINE = 30.0


def _pod(name: str, node: str, command: list[str], host_network: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"app": "echo" if "serve" in command else "probe"},
        },
        "spec": {
            "terminationGracePeriodSeconds": 1,  # the real namespace controller waits out the grace
            "nodeName": node,
            "hostNetwork": host_network,
            "dnsPolicy": "Default" if host_network else "ClusterFirst",
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "main",
                    "image": "python:3-slim",
                    "command": command,
                    "env": [
                        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "ports": [
                        {"name": "http", "containerPort": 8080},
                        {"name": "echo-udp", "containerPort": 9001, "protocol": "UDP"},
                    ],
                    "volumeMounts": [{"name": "agent", "mountPath": "/opt/netconform", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "agent", "configMap": {"name": "agent"}}],
        },
    }


def _service(name: str, typ: str, headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": typ,
        "selector": {"app": "echo"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "udp", "port": 9001, "targetPort": 9001, "protocol": "UDP"},
        ],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS}, "spec": spec}


class Kit:
    """The probe kit of this module: pods, services and an exec helper running agent plans."""

    def __init__(self, lab_obj: Lab, api_client: Any) -> None:
        from kubernetes import client

        self.lab = lab_obj
        self.core = client.CoreV1Api(api_client)
        self.pods: dict[str, Any] = {}
        self.services: dict[str, Any] = {}

    def run_plan(self, pod: str, checks: list[dict[str, Any]]) -> dict[str, Any]:
        from kubernetes.stream import stream

        plan = json.dumps({"checks": checks, "attempts": 1}) + "\n"
        ws = stream(
            self.core.connect_get_namespaced_pod_exec,
            pod,
            NS,
            command=["python3", "/opt/netconform/agent.py", "run"],
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
            _request_timeout=30,
        )
        try:
            ws.write_stdin(plan)
            ws.run_forever(timeout=30)
            out = ws.read_channel(1)
            err = ws.read_channel(2)
            assert ws.returncode == 0, f"agent exit {ws.returncode}: {err}"
        finally:
            ws.close()
        results = {r["id"]: r for r in json.loads(out)["results"]}
        return results

    def exec_text(self, pod: str, command: list[str]) -> str:
        from kubernetes.stream import stream

        out: str = stream(
            self.core.connect_get_namespaced_pod_exec,
            pod,
            NS,
            command=command,
            stdin=False,
            stdout=True,
            stderr=True,
            tty=False,
            _request_timeout=30,
        )
        return out


def _wait(what: str, predicate: Any, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)  # polling the API for `what`, bounded by `timeout`
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def kit(lab: Lab, lab_api: Any) -> Iterator[Kit]:
    from kubernetes import client

    k = Kit(lab, lab_api)
    k.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    try:
        k.core.create_namespaced_config_map(
            NS,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="agent"), data={"agent.py": AGENT.read_text()}
            ),
        )
        for name, node, command, host in (
            ("echo-2", "node-2", SERVE, False),
            ("echo-3", "node-3", SERVE, False),
            ("probe-2", "node-2", ["sleep", "infinity"], False),
            ("host-2", "node-2", ["sleep", "infinity"], True),
        ):
            # the client sends a plain dict as it is; its annotation names only the model class
            k.core.create_namespaced_pod(NS, _pod(name, node, command, host))  # type: ignore[arg-type]
        for name, typ, headless in (
            ("echo", "ClusterIP", False),
            ("echo-np", "NodePort", False),
            ("echo-lb", "LoadBalancer", False),
            ("echo-headless", "ClusterIP", True),
        ):
            k.core.create_namespaced_service(NS, _service(name, typ, headless))  # type: ignore[arg-type]

        def all_ready() -> bool:
            pods = k.core.list_namespaced_pod(NS).items
            return len(pods) == 4 and all(
                any(
                    c.type == "Ready" and c.status == "True"
                    for c in present(p.status, "status").conditions or []
                )
                for p in pods
            )

        _wait("the e2e pods to be Ready", all_ready)

        def vip() -> object:
            status = present(k.core.read_namespaced_service("echo-lb", NS).status, "echo-lb's status")
            return present(status.load_balancer, "echo-lb's load_balancer").ingress

        _wait("the LB VIP", vip)
        _wait(
            "two echo endpoints",
            lambda: (
                len(
                    [
                        a
                        for s in k.core.read_namespaced_endpoints("echo", NS).subsets or []
                        for a in s.addresses or []
                    ]
                )
                == 2
            ),
        )
        # every Service's own EndpointSlices: the real control plane's endpointslice controller follows
        # each Service on its own (CI: echo's Endpoints had both pods while echo-headless's slice had one)
        disc = client.DiscoveryV1Api(lab_api)
        for name in ("echo", "echo-np", "echo-lb", "echo-headless"):
            _wait(
                f"{name}'s EndpointSlices to list both echo pods as ready",
                lambda n=name: _slice_ready(disc, n) == 2,
            )
        for p in k.core.list_namespaced_pod(NS).items:
            k.pods[present(p.metadata, "metadata").name or ""] = p
        for s in k.core.list_namespaced_service(NS).items:
            k.services[present(s.metadata, "metadata").name or ""] = s

        def echoes_listen() -> bool:
            # Ready means started (the lab has no readiness probes): the echo agents bind a moment later
            checks = [
                {"id": f"{pod}-{port}", "kind": "tcp", "host": _ip(k, pod), "port": port, "timeout": 2}
                for pod in ("echo-2", "echo-3")
                for port in (8080, 9000)
            ]
            return all(r["ok"] for r in k.run_plan("probe-2", checks).values())

        _wait("the echo agents to listen", echoes_listen)
        yield k
    finally:
        k.core.delete_namespace(NS)
        _wait(
            "the e2e namespace to go away",
            lambda: NS not in [present(n.metadata, "metadata").name for n in k.core.list_namespace().items],
        )


def _slice_ready(disc: Any, service: str) -> int:
    """How many addresses the Service's EndpointSlices list as ready."""
    slices = disc.list_namespaced_endpoint_slice(NS, label_selector=f"kubernetes.io/service-name={service}")
    return sum(
        len(e.addresses or [])
        for s in slices.items
        for e in s.endpoints or []
        if e.conditions is None or e.conditions.ready is not False
    )


def _ip(kit: Kit, pod: str) -> str:
    ip: str = kit.pods[pod].status.pod_ip
    return ip


def test_downward_api_and_cluster_resolv_conf(kit: Kit) -> None:
    text = kit.exec_text("probe-2", ["sh", "-c", "echo $NODE_NAME $POD_IP; cat /etc/resolv.conf"])
    assert text.splitlines()[0] == f"node-2 {_ip(kit, 'probe-2')}"
    assert "nameserver 10.96.0.10" in text
    assert f"search {NS}.svc.cluster.local svc.cluster.local cluster.local" in text
    assert "options ndots:5" in text
    host = kit.exec_text("host-2", ["cat", "/etc/resolv.conf"])
    assert "10.96.0.10" not in host, "a hostNetwork pod with dnsPolicy Default must use the node's resolver"


def test_pod_to_pod_same_and_other_node(kit: Kit) -> None:
    res = kit.run_plan(
        "probe-2",
        [
            {"id": "same", "kind": "http", "url": f"http://{_ip(kit, 'echo-2')}:8080/", "timeout": 3},
            {"id": "other", "kind": "http", "url": f"http://{_ip(kit, 'echo-3')}:8080/", "timeout": 3},
            {"id": "other-tcp", "kind": "tcp", "host": _ip(kit, "echo-3"), "port": 9000, "timeout": 3},
        ],
    )
    assert all(r["ok"] for r in res.values()), res
    assert res["other"]["echo"]["client_ip"] == _ip(kit, "probe-2"), "pod-to-pod must not be NATed"
    assert res["other"]["echo"]["node"] == "node-3"


def test_clusterip_tcp_by_port_name_and_udp(kit: Kit) -> None:
    vip = kit.services["echo"].spec.cluster_ip
    payload = base64.b64encode(b"ping-udp").decode()
    res = kit.run_plan(
        "probe-2",
        [
            {"id": "tcp", "kind": "http", "url": f"http://{vip}/", "timeout": 3},
            {"id": "udp", "kind": "udp", "host": vip, "port": 9001, "payload_b64": payload, "timeout": 3},
        ],
    )
    assert res["tcp"]["ok"], res["tcp"]
    assert res["tcp"]["echo"]["pod"] in ("echo-2", "echo-3")
    assert res["udp"]["ok"], res["udp"]


def test_node_to_nodeport(kit: Kit) -> None:
    port = next(p.node_port for p in kit.services["echo-np"].spec.ports if p.name == "http")
    res = kit.run_plan(
        "host-2",
        [
            {"id": f"np-{n}", "kind": "http", "url": f"http://{node_ip(n)}:{port}/", "timeout": 3}
            for n in ("node-1", "node-2", "node-3")
        ],
    )
    assert all(r["ok"] for r in res.values()), res


def test_dns_internal_external_and_headless(kit: Kit) -> None:
    def query(name: str) -> dict[str, Any]:
        wire = dns.message.make_query(name, "A").to_wire()
        return {
            "id": name,
            "kind": "dns",
            "server": "10.96.0.10",
            "port": 53,
            "query_b64": base64.b64encode(wire).decode(),
            "transport": "udp",
            "timeout": 3,
        }

    res = kit.run_plan(
        "probe-2",
        [
            {
                "id": "internal",
                "kind": "resolve",
                "name": "kubernetes.default.svc.cluster.local",
                "timeout": 3,
            },
            {"id": "short", "kind": "resolve", "name": "echo", "timeout": 3},
            {"id": "external", "kind": "resolve", "name": "example.test", "timeout": 3},
            query(f"echo-headless.{NS}.svc.cluster.local"),
        ],
    )
    assert res["internal"]["addresses"] == ["10.96.0.1"], res["internal"]
    assert res["short"]["addresses"] == [kit.services["echo"].spec.cluster_ip], res["short"]
    assert res["external"]["addresses"] == [OUTSIDE_ECHO_IP], res["external"]
    both = sorted([_ip(kit, "echo-2"), _ip(kit, "echo-3")])
    headless = f"echo-headless.{NS}.svc.cluster.local"

    def headless_ips(result: dict[str, Any]) -> list[str]:
        answer = dns.message.from_wire(base64.b64decode(result["answer_b64"]))
        return sorted(str(rd) for rrset in answer.answer for rd in rrset)

    ips = headless_ips(res[headless])
    if ips != both:
        # the zone follows the API a moment behind it (CoreDNS's kubernetes plugin too): the slices
        # already list both pods (the fixture waited for that), so the answer must catch up, bounded
        ips = _wait(
            f"{headless} to answer both echo pods {both} (first answer {ips})",
            lambda: (
                (found := headless_ips(kit.run_plan("probe-2", [query(headless)])[headless])) == both
                and found
            ),
            timeout=10.0,
        )
    assert ips == both


def test_egress_snat_shows_node_ip(kit: Kit) -> None:
    res = kit.run_plan(
        "probe-2", [{"id": "out", "kind": "http", "url": f"http://{OUTSIDE_ECHO_IP}/", "timeout": 3}]
    )
    assert res["out"]["ok"], res["out"]
    assert res["out"]["echo"]["client_ip"] == node_ip("node-2")


def test_outside_client_reaches_lb_vip_and_one_mac_answers_arp(kit: Kit) -> None:
    vip = kit.services["echo-lb"].status.load_balancer.ingress[0].ip
    assert vip in lb_pool()
    plan = json.dumps({"checks": [{"id": "lb", "kind": "http", "url": f"http://{vip}/", "timeout": 3}]})
    proc = subprocess.run(
        kit.lab.outside_argv(["python3", str(AGENT), "run"]),
        input=plan + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    lb = json.loads(proc.stdout)["results"][0]
    assert lb["ok"], lb
    arp = kit.run_plan(
        "host-2", [{"id": "arp", "kind": "arp", "ip": vip, "interface": "eth0", "window": 1.0, "timeout": 3}]
    )
    assert arp["arp"]["ok"], arp["arp"]
    assert len(arp["arp"]["macs"]) == 1, arp["arp"]


def test_endpoints_follow_pod_readiness(kit: Kit) -> None:
    """A pod that exits leaves the Service's endpoints and EndpointSlice; its restart brings it back."""
    from kubernetes import client

    disc = client.DiscoveryV1Api(kit.core.api_client)

    def addresses() -> list[str]:
        eps = kit.core.read_namespaced_endpoints("echo", NS)
        return sorted(a.ip for s in eps.subsets or [] for a in s.addresses or [])

    def slice_ready() -> list[str]:
        slices = disc.list_namespaced_endpoint_slice(
            NS, label_selector="kubernetes.io/service-name=echo"
        ).items
        return sorted(
            a
            for s in slices
            for e in s.endpoints or []
            if present(e.conditions, "conditions").ready
            for a in e.addresses
        )

    both = sorted([_ip(kit, "echo-2"), _ip(kit, "echo-3")])
    assert addresses() == both and slice_ready() == both

    # the container process crashes (the kubelet reports its pid as the container id)
    def first_container(pod: str) -> V1ContainerStatus:
        status = present(kit.core.read_namespaced_pod(pod, NS).status, f"{pod}'s status")
        return present(status.container_statuses, f"{pod}'s container statuses")[0]

    cid = present(first_container("echo-3").container_id, "echo-3's container id")
    assert cid.startswith("lab://")
    os.kill(int(cid.removeprefix("lab://")), signal.SIGKILL)
    _wait(
        "echo-3 to restart",
        lambda: first_container("echo-3").restart_count >= 1,
    )
    _wait("echo endpoints to be whole again", lambda: addresses() == both and slice_ready() == both)


def test_status_counts_exec_sessions_exactly(kit: Kit) -> None:
    before = kit.lab.status()["api"]
    kit.exec_text("probe-2", ["true"])
    kit.exec_text("probe-2", ["true"])
    after = kit.lab.status()["api"]
    assert after["exec_sessions"] - before["exec_sessions"] == 2
    created = after["requests"].get("create", {}).get("pods/exec", 0)
    assert created - before["requests"].get("create", {}).get("pods/exec", 0) == 2


def test_typed_client_reads_every_kind(kit: Kit) -> None:
    """The client validates models strictly (required fields): every kind the lab serves must parse."""
    from kubernetes import client

    core = kit.core
    assert len(core.list_node().items) == 3
    core.read_node("node-1")
    assert core.list_pod_for_all_namespaces().items
    assert core.list_service_for_all_namespaces().items
    assert core.list_endpoints_for_all_namespaces().items
    assert core.list_event_for_all_namespaces().items
    assert core.list_config_map_for_all_namespaces().items
    assert core.list_namespace().items
    assert client.DiscoveryV1Api(core.api_client).list_endpoint_slice_for_all_namespaces().items
    log = core.read_namespaced_pod_log("echo-2", NS, _request_timeout=10)
    assert '"serving"' in log, log  # the echo agent's first line: {"agent": ..., "serving": [...]}


def test_concurrent_exec_sessions(kit: Kit) -> None:
    """About ten exec sessions at once (the suite's burst): all answer, none is left open."""
    import threading

    outputs: dict[int, str] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        # kubernetes.stream.stream swaps ApiClient.request while it runs: one client per thread
        from kubernetes import client, config
        from kubernetes.stream import stream

        try:
            api = client.CoreV1Api(config.new_client_from_config(config_file=str(kit.lab.kubeconfig)))
            outputs[i] = stream(
                api.connect_get_namespaced_pod_exec,
                "probe-2",
                NS,
                command=["sh", "-c", f"sleep 0.5; echo session-{i}"],
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
                _request_timeout=30,
            )
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert outputs == {i: f"session-{i}\n" for i in range(10)}
    assert time.monotonic() - started < 10, "sessions must run concurrently"
    assert kit.lab.status()["api"]["exec_active"] == 0


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v5.channel.k8s.io"])
def test_exec_subprotocols_report_exit_code(kit: Kit, protocol: str) -> None:
    from kubernetes.stream.ws_client import WSClient, get_websocket_url

    cfg = kit.core.api_client.configuration
    url = get_websocket_url(
        cfg.host + f"/api/v1/namespaces/{NS}/pods/probe-2/exec"
        "?command=sh&command=-c&command=echo+hi%3B+exit+3&stdout=true&stderr=true"
    )
    ws = WSClient(
        cfg,
        url,
        headers={
            "sec-websocket-protocol": protocol,
            "authorization": cfg.auth_settings()["BearerToken"]["value"],
        },
        capture_all=True,
    )
    try:
        assert ws.subprotocol == protocol
        ws.run_forever(timeout=20)
        assert ws.read_channel(1) == "hi\n"
        assert ws.returncode == 3
    finally:
        ws.close()
