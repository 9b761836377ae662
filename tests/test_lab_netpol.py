"""NetworkPolicy in the lab: served by the API, enforced by each node's data plane in its own chains.

Real traffic between the lab's pods: 3 namespaces (team=a|b|c) x 3 workloads (w1 on node-1, w2 on
node-2, w3 on node-3), each an echo backend (TCP 9000 `tcp`, HTTP 8080 `http`). Every source pod runs the
probe agent in its own network namespace against every pod on both ports, so one matrix is 162 cells;
an allowed cell connects, a denied one times out (a silent drop, never a refusal). The expected grid of
every phase is written out by hand here, independent of the lab's policy compiler.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab
from netconform.lab.net import netpol as netpol
from netconform.lab.net.iptrules import OwnedRules, render_node_tables, restore_document
from tests.can_run import missing, needs
from tests.dataplane_helpers import probe, sh, tcp, udp
from tests.lab_helpers import echo_pod, own_lab, pod_state, wait_for
from tests.narrow import present

LAB = f"ncnp{os.getpid() % 10000}"
NAMESPACES = {"np-a": "a", "np-b": "b", "np-c": "c"}
WORKLOADS = {"w1": "node-1", "w2": "node-2", "w3": "node-3"}
PORTS = (9000, 8080)
PROBE_TIMEOUT = 1.0
SETTLE = 30.0
lab_marks = [
    needs("dataplane"),
    pytest.mark.xdist_group("lab-netpol"),
    pytest.mark.lab,
]

Pod = tuple[str, str]  # (namespace, workload)


def _with_marks(fn: Any) -> Any:
    for mark in lab_marks:
        fn = mark(fn)
    return fn


Expect = Callable[[Pod, Pod, int], bool]


# ------------------------------------------------------------------------------ unit: compile, render
def _pod(
    ns: str, name: str, node: str, ip: str, labels: dict[str, str], ports: dict[str, int]
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 1,  # the real namespace controller waits out the grace
            "nodeName": node,
            "containers": [
                {"name": "c", "ports": [{"name": n, "containerPort": p} for n, p in ports.items()]}
            ],
        },
        "status": {"podIP": ip, "phase": "Running"},
    }


def _ns(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def test_compile_selectors_named_ports_and_ipblock() -> None:
    pods = [
        _pod("a", "web", "node-1", "10.244.1.5", {"app": "web"}, {"http": 8080}),
        _pod("a", "db", "node-2", "10.244.2.5", {"app": "db", "tier": "x"}, {}),
        _pod("b", "cli", "node-2", "10.244.2.6", {"app": "cli"}, {}),
    ]
    policy = {
        "metadata": {"namespace": "a", "name": "p"},
        "spec": {
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}],
                    "ports": [{"port": "http"}],
                },
                {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.2.0/24"]}}]},
            ],
        },
    }
    out = netpol.compile_policies(pods, [_ns("a"), _ns("b", team="b")], [policy], ["node-1", "node-2"])
    assert out["node-2"] == []  # only web is selected, and web runs on node-1
    (entry,) = out["node-1"]
    assert entry["key"] == "a/web" and entry["egress"] is None
    assert {"cidr": "10.244.2.6/32", "except": [], "protocol": "TCP", "port": 8080, "end": None} in entry[
        "ingress"
    ]
    assert {
        "cidr": "10.0.0.0/8",
        "except": ["10.244.2.0/24"],
        "protocol": None,
        "port": None,
        "end": None,
    } in (entry["ingress"])
    chains, jumps = netpol.render(out["node-1"])
    text = "\n".join(f"{c} {r}" for c, rules in chains.items() for r in rules)
    assert "-s 10.244.2.0/24 -j RETURN" in text and "-p tcp -m tcp --dport 8080" in text
    assert jumps[0].chain == "FORWARD" and chains["NC-POLICY"][0].startswith("-m conntrack")
    # a policy with no rules isolates with nothing allowed: only the final DROP
    deny = {
        "metadata": {"namespace": "a", "name": "d"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"]},
    }
    out = netpol.compile_policies(pods, [_ns("a")], [deny], ["node-1", "node-2"])
    assert [e["egress"] for e in out["node-2"]] == [[]] and out["node-2"][0]["ingress"] is None


def test_render_sctp_and_endport_restore_in_a_namespace(tmp_path: Any) -> None:
    """SCTP and port ranges render into rules the kernel takes (one throwaway namespace)."""
    if reason := missing("dataplane"):
        pytest.skip(reason)
    entry = {
        "key": "a/x",
        "ip": "10.244.1.9",
        "ingress": [{"cidr": None, "except": [], "protocol": "SCTP", "port": 5000, "end": 5010}],
        "egress": [
            {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"], "protocol": "UDP", "port": 53, "end": None}
        ],
    }
    owned = netpol.with_policies(render_node_tables([]), [entry])
    assert isinstance(owned, OwnedRules)
    netns = f"ncnpunit{os.getpid() % 10000}"
    import subprocess

    subprocess.run(["ip", "netns", "add", netns], check=True, timeout=10)
    try:
        proc = subprocess.run(
            ["ip", "netns", "exec", netns, "iptables-restore", "--noflush"],
            input=restore_document(owned, ""),
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert proc.returncode == 0, proc.stderr
        saved = sh(netns, ["iptables-save"])
        assert "-p sctp -m sctp --dport 5000:5010" in saved and "-j NC-POLICY" in saved
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False, timeout=10)


def test_validation_refuses_bad_policies() -> None:
    bad = {
        "metadata": {"name": "x"},
        "spec": {
            "policyTypes": ["Sideways"],
            "ingress": [
                {"ports": [{"protocol": "ICMP", "port": 1}, {"port": 90, "endPort": 80}]},
                {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/24"]}}]},
            ],
        },
    }
    fields = [f for f, _ in netpol.validate(bad)]
    assert fields == [
        "spec.policyTypes[0]",
        "spec.ingress[0].ports[0].protocol",
        "spec.ingress[0].ports[1].endPort",
        "spec.ingress[1].from[0].ipBlock.except[0]",
    ]


# ------------------------------------------------------------------------------ lab
@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if reason := missing("dataplane"):
        pytest.skip(reason)
    yield from own_lab(LAB, ingress=False)


class World:
    """The 9 pods, their IPs and network namespaces, and the APIs to change policies and labels."""

    def __init__(self, lab: Lab, core: Any, net: Any) -> None:
        self.lab, self.core, self.net = lab, core, net
        self.ip: dict[Pod, str] = {}
        self.netns: dict[Pod, str] = {}

    def refresh(self) -> None:
        by_key = {(p["namespace"], p["name"]): p for p in self.lab.status()["pods"]}
        for ns in NAMESPACES:
            for w in WORKLOADS:
                state = pod_state(self.core, ns, w)
                assert state and state["ip"], (ns, w)
                self.ip[(ns, w)] = state["ip"]
                self.netns[(ns, w)] = by_key[(ns, w)]["netns"]

    def observe(self) -> dict[tuple[Pod, Pod, int], str]:
        """Every cell: "ok", or the agent's error code (a denied flow must be "timeout")."""
        pods = sorted(self.ip)

        def one(src: Pod) -> dict[tuple[Pod, Pod, int], str]:
            checks = [
                tcp(f"{dst[0]}/{dst[1]}:{port}", self.ip[dst], port, timeout=PROBE_TIMEOUT)
                for dst in pods
                for port in PORTS
            ]
            for c in checks:
                if c["port"] == 8080:  # the HTTP port: connect only (no echo there)
                    c.pop("send_b64")
                    c.pop("expect_b64")
            res = probe(self.netns[src], checks)
            out = {}
            for dst in pods:
                for port in PORTS:
                    r = res[f"{dst[0]}/{dst[1]}:{port}"]
                    out[(src, dst, port)] = "ok" if r["ok"] else str(r["error"])
            return out

        with ThreadPoolExecutor(max_workers=len(pods)) as pool:
            merged: dict[tuple[Pod, Pod, int], str] = {}
            for part in pool.map(one, pods):
                merged.update(part)
        return merged

    def expect(self, allowed: Expect) -> None:
        """Wait (bounded) until the grid is exactly `allowed`, then assert it cell by cell."""
        want = {
            (s, d, p): "ok" if s == d or allowed(s, d, p) else "timeout"
            for s in self.ip
            for d in self.ip
            for p in PORTS
        }
        last: dict[tuple[Pod, Pod, int], str] = {}

        def settled() -> bool:
            nonlocal last
            last = self.observe()
            return last == want

        try:
            wait_for("the policy grid", settled, timeout=SETTLE)
        except AssertionError:
            wrong = {
                f"{s[0]}/{s[1]} -> {d[0]}/{d[1]}:{p}": f"want {want[(s, d, p)]}, got {got}"
                for (s, d, p), got in last.items()
                if got != want[(s, d, p)]
            }
            raise AssertionError(f"{len(wrong)} wrong cells: {wrong}") from None

    def apply(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        self.net.create_namespaced_network_policy(ns, {"metadata": {"name": name}, "spec": spec})

    def delete(self, ns: str, name: str) -> None:
        self.net.delete_namespaced_network_policy(name, ns)


def _serve(ns: str, w: str, node: str) -> dict[str, Any]:
    manifest = echo_pod(w, node, ns)
    manifest["metadata"]["labels"] = {"app": w}
    return manifest


@pytest.fixture(scope="module")
def world(lab: Lab) -> Iterator[World]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(lab.kubeconfig))
    core: Any = client.CoreV1Api(api_client)
    net: Any = client.NetworkingV1Api(api_client)
    for ns, team in NAMESPACES.items():
        core.create_namespace({"metadata": {"name": ns, "labels": {"team": team}}})
        for w, node in WORKLOADS.items():
            core.create_namespaced_pod(ns, _serve(ns, w, node))

    def all_ready() -> bool:
        return all(
            (s := pod_state(core, ns, w)) is not None and s["ready"] for ns in NAMESPACES for w in WORKLOADS
        )

    wait_for("the 9 workload pods Ready", all_ready, timeout=60)
    world = World(lab, core, net)
    world.refresh()
    try:
        yield world
    finally:
        api_client.close()


# the policies of the truth table: default deny in every namespace, then three allows
DENY_ALL = {"podSelector": {}, "policyTypes": ["Ingress"]}
ALLOW_A = {  # np-a: w1 from its own namespace, on the named port "tcp" (9000) only
    "podSelector": {"matchLabels": {"app": "w1"}},
    "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": "tcp"}]}],
}
ALLOW_B = {  # np-b: everything from namespaces team in (a), any port
    "podSelector": {},
    "ingress": [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]
                    }
                }
            ]
        }
    ],
}
ALLOW_C = {  # np-c: w2 from the w3 pods of team=b namespaces, TCP 9000
    "podSelector": {"matchLabels": {"app": "w2"}},
    "ingress": [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"team": "b"}},
                    "podSelector": {"matchLabels": {"app": "w3"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 9000}],
        }
    ],
}


def truth(src: Pod, dst: Pod, port: int) -> bool:
    if dst[0] == "np-a":
        return dst[1] == "w1" and src[0] == "np-a" and port == 9000
    if dst[0] == "np-b":
        return src[0] == "np-a"
    return dst[1] == "w2" and src == ("np-b", "w3") and port == 9000


@pytest.fixture(scope="module")
def table(world: World) -> Iterator[World]:
    world.expect(lambda s, d, p: True)  # no policy: everything connects
    for ns in NAMESPACES:
        world.apply(ns, "deny-all", DENY_ALL)
    world.apply("np-a", "allow-a", ALLOW_A)
    world.apply("np-b", "allow-b", ALLOW_B)
    world.apply("np-c", "allow-c", ALLOW_C)
    yield world


@_with_marks
def test_truth_table_3x3_default_deny_plus_allows(table: World) -> None:
    table.expect(truth)


@_with_marks
def test_not_enforced_on_node2_opens_exactly_its_pods(lab: Lab, table: World) -> None:
    lab.fault_add("netpol-not-enforced", "node-2")
    try:
        table.expect(lambda s, d, p: truth(s, d, p) or WORKLOADS[d[1]] == "node-2")
        listed = {f["name"]: f for f in lab.request("GET", "/lab/v1/faults")["faults"]}
        assert listed["netpol-not-enforced"]["active"], listed["netpol-not-enforced"]
    finally:
        lab.fault_clear("netpol-not-enforced")
    table.expect(truth)


@_with_marks
def test_stale_node3_keeps_a_deleted_policy(lab: Lab, table: World) -> None:
    lab.fault_add("netpol-stale", "node-3")
    try:
        table.delete("np-c", "deny-all")  # np-c/w1 (node-1) and w3 (node-3) open ... but node-3 is stale

        def stale(s: Pod, d: Pod, p: int) -> bool:
            return truth(s, d, p) or d == ("np-c", "w1")

        table.expect(stale)
    finally:
        lab.fault_clear("netpol-stale")
    table.expect(lambda s, d, p: truth(s, d, p) or d in (("np-c", "w1"), ("np-c", "w3")))
    table.apply("np-c", "deny-all", DENY_ALL)
    table.expect(truth)


@_with_marks
def test_label_changes_are_followed(table: World) -> None:
    # a pod relabelled into ALLOW_A's selector, a namespace relabelled into ALLOW_B's
    table.core.patch_namespaced_pod("w2", "np-a", {"metadata": {"labels": {"app": "w1"}}})
    table.core.patch_namespace("np-c", {"metadata": {"labels": {"team": "a"}}})
    try:

        def moved(s: Pod, d: Pod, p: int) -> bool:
            if d == ("np-a", "w2"):
                return s[0] == "np-a" and p == 9000
            if d[0] == "np-b":
                return s[0] in ("np-a", "np-c")
            return truth(s, d, p)

        table.expect(moved)
    finally:
        table.core.patch_namespaced_pod("w2", "np-a", {"metadata": {"labels": {"app": "w2"}}})
        table.core.patch_namespace("np-c", {"metadata": {"labels": {"team": "c"}}})
    table.expect(truth)


@_with_marks
def test_ipblock_except_and_egress_deny(table: World) -> None:
    # np-c/w1 also from the pod network except node-2's pods; np-a/w3 may only talk to np-b on 9000
    table.apply(
        "np-c",
        "from-block",
        {
            "podSelector": {"matchLabels": {"app": "w1"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}]}],
        },
    )
    table.apply(
        "np-a",
        "egress-w3",
        {
            "podSelector": {"matchLabels": {"app": "w3"}},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}], "ports": [{"port": 9000}]}
            ],
        },
    )
    try:

        def blocked(s: Pod, d: Pod, p: int) -> bool:
            if s == ("np-a", "w3"):
                return d[0] == "np-b" and p == 9000 and truth(s, d, p)
            if d == ("np-c", "w1"):
                return WORKLOADS[s[1]] != "node-2"
            return truth(s, d, p)

        table.expect(blocked)
    finally:
        table.delete("np-c", "from-block")
        table.delete("np-a", "egress-w3")
    table.expect(truth)


@_with_marks
def test_pod_churn_new_pod_is_isolated(table: World) -> None:
    """A pod deleted and created again (new IP or not) is covered by the same policies at once."""
    core = table.core
    core.delete_namespaced_pod("w3", "np-b", grace_period_seconds=0)
    wait_for("np-b/w3 gone", lambda: pod_state(core, "np-b", "w3") is None)
    core.create_namespaced_pod("np-b", _serve("np-b", "w3", "node-3"))
    wait_for("np-b/w3 Ready", lambda: (s := pod_state(core, "np-b", "w3")) and s["ready"])
    table.refresh()
    table.expect(truth)


@_with_marks
def test_policies_are_served_like_the_api(lab: Lab, table: World) -> None:
    from kubernetes.client import ApiException

    got = table.net.read_namespaced_network_policy("allow-c", "np-c")
    assert got.spec.policy_types == ["Ingress"] and got.metadata.generation == 1
    bad: dict[str, Any] = copy.deepcopy(ALLOW_C)
    bad["ingress"][0]["ports"] = [{"protocol": "ICMP", "port": 1}]
    with pytest.raises(ApiException) as err:
        table.apply("np-c", "bad", bad)
    message = json.loads(present(err.value.body, "the error's body"))["message"]
    assert err.value.status == 422 and message.startswith(
        'NetworkPolicy.networking.k8s.io "bad" is invalid: '  # the group-qualified kind, as the real API
    ), message
    assert 'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP"' in message, message

    def rendered() -> bool:
        rules = sh(f"nc-{lab.name}-node-2", ["iptables-save", "-t", "filter"])
        return "-A FORWARD -j NC-POLICY" in rules and "NC-PI-" in rules

    wait_for("node-2's policy chains", rendered)
    import subprocess
    import sys

    venv_kubectl = Path(sys.executable).parent / "kubectl"
    kubectl = str(venv_kubectl) if venv_kubectl.exists() else (shutil.which("kubectl") or "kubectl")
    argv = [kubectl, "--kubeconfig", str(lab.kubeconfig), "-n", "np-c", "get", "netpol"]
    listed = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    lines = [ln.split()[:2] for ln in listed.stdout.splitlines()]
    assert (
        lines[0] == ["NAME", "POD-SELECTOR"]
        and ["allow-c", "app=w2"] in lines
        and ["deny-all", "<none>"] in lines
    )


@_with_marks
def test_ephemeral_probe_is_policed_like_its_pod(lab: Lab, table: World) -> None:
    """An ephemeral container shares its pod's network namespace: the pod's policies apply to its probes,
    and the container is reused for a second exec."""
    import subprocess
    import sys

    from netconform.lab.net.outside import AGENT

    src = ("np-a", "w3")
    probe_spec = {"name": "netconform-probe", "image": "python:3-slim", "command": ["sleep", "3600"]}
    body = {"spec": {"ephemeralContainers": [probe_spec]}}
    table.core.patch_namespaced_pod_ephemeralcontainers(src[1], src[0], body)

    def running() -> bool:
        pod = table.core.read_namespaced_pod(src[1], src[0])
        statuses = pod.status.ephemeral_container_statuses or []
        return any(s.name == "netconform-probe" and s.state.running for s in statuses)

    wait_for("the probe container running", running)
    targets: list[Pod] = [("np-b", "w1"), ("np-a", "w1"), ("np-a", "w2"), ("np-c", "w2")]
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    kubectl = str(venv_kubectl) if venv_kubectl.exists() else (shutil.which("kubectl") or "kubectl")
    argv = [kubectl, "--kubeconfig", str(lab.kubeconfig), "-n", src[0], "exec", "-i", src[1]]
    argv += ["-c", "netconform-probe", "--", sys.executable, str(AGENT), "run"]
    for _ in range(2):  # the same container twice
        plan = {
            "checks": [
                {"id": f"{d[0]}/{d[1]}", "kind": "tcp", "host": table.ip[d], "port": 9000, "timeout": 1.0}
                for d in targets
            ]
        }
        out = subprocess.run(
            argv, input=json.dumps(plan), capture_output=True, text=True, timeout=60, check=False
        )
        assert out.returncode == 0, out.stderr
        got = {r["id"]: "ok" if r["ok"] else r["error"] for r in json.loads(out.stdout)["results"]}
        want = {f"{d[0]}/{d[1]}": "ok" if truth(src, d, 9000) else "timeout" for d in targets}
        assert got == want and set(want.values()) == {"ok", "timeout"}, got


@_with_marks
def test_udp_protocol_and_port_ranges(table: World) -> None:
    """np-c/w3 admits UDP 9001 from np-a (TCP stays denied); np-c/w1 admits np-b on TCP 8000-9000."""
    table.apply(
        "np-c",
        "udp-from-a",
        {
            "podSelector": {"matchLabels": {"app": "w3"}},
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}],
                    "ports": [{"protocol": "UDP", "port": 9001}],
                }
            ],
        },
    )
    table.apply(
        "np-c",
        "range-from-b",
        {
            "podSelector": {"matchLabels": {"app": "w1"}},
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}],
                    "ports": [{"protocol": "TCP", "port": 8000, "endPort": 9000}],
                }
            ],
        },
    )
    try:
        table.expect(lambda s, d, p: truth(s, d, p) or (d == ("np-c", "w1") and s[0] == "np-b"))
        w3 = table.ip[("np-c", "w3")]
        for src, want in ((("np-a", "w1"), "ok"), (("np-a", "w2"), "ok"), (("np-b", "w1"), "timeout")):
            res = probe(table.netns[src], [udp("u", w3, 9001, timeout=PROBE_TIMEOUT)])
            assert ("ok" if res["u"]["ok"] else res["u"]["error"]) == want, (src, res)
    finally:
        table.delete("np-c", "udp-from-a")
        table.delete("np-c", "range-from-b")
    table.expect(truth)
    res = probe(
        table.netns[("np-a", "w1")], [udp("u", table.ip[("np-c", "w3")], 9001, timeout=PROBE_TIMEOUT)]
    )
    assert res["u"]["error"] == "timeout", res
