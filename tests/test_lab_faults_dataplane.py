"""Every lab fault on a real data plane: what it must break breaks, what it must not break still
works, and `clear` heals — back to exactly the configuration the plane had before (rules, routes,
addresses, links, permanent neighbours, ARP sysctls, resolv.conf files, namespaces)."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.faults import catalogue as faults
from netconform.lab.net import addressing as A
from netconform.lab.net.netplane import Netplane, destroy_lab
from netconform.lab.net.outside import AGENT
from tests.can_run import needs
from tests.dataplane_helpers import (
    DNS_PODS,
    ECHO_ARGS,
    ECHO_CIP,
    ECHO_PODS,
    POD_RESOLV,
    PODS,
    VIP,
    DataplaneLab,
    arp,
    build_test_lab,
    dns_answer,
    dns_query,
    http,
    icmp,
    lab_name,
    mtu,
    probe,
    read,
    sh,
    snapshot,
    tcp,
    udp,
)

pytestmark = [
    needs("dataplane"),
    pytest.mark.root,
    pytest.mark.xdist_group("lab-dataplane-faults"),
]

FAIL_TIMEOUT = 1.0  # a check that must fail costs at most this
OUTSIDE, INTERNET = f"http://{A.OUTSIDE_ECHO_IP}/", f"http://{A.INTERNET_ECHO_IP}/"


def pod_url(pod: str, port: int = 8080) -> str:
    return f"http://{PODS[pod][1]}:{port}/"


@dataclass
class Fixture:
    lab: DataplaneLab
    ctx: faults.FaultContext
    healthy: dict[str, str]
    conditions: list[tuple[str, bool, str, str]] = field(default_factory=list)
    late: list[faults.PodInfo] = field(default_factory=list)  # pods a test started after the world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    name = lab_name("dpf")
    state_dir = tmp_path_factory.mktemp(name)
    try:
        lab = build_test_lab(name, state_dir)
        conditions: list[tuple[str, bool, str, str]] = []

        def pods() -> list[faults.PodInfo]:
            out = []
            for pod, (node, ip) in PODS.items():
                if pod in DNS_PODS:
                    ns, labels = "kube-system", {"k8s-app": "kube-dns"}
                else:
                    ns, labels = "default", {"netconform.io/role": "echo" if pod in ECHO_PODS else "probe"}
                ports = (
                    (faults.PodPort(8080, "http"), faults.PodPort(9000, "tcp")) if pod in ECHO_PODS else ()
                )
                out.append(faults.PodInfo(pod, ns, node, lab.pod_ns[pod], ip, labels, ports))
            return out + late

        late: list[faults.PodInfo] = []
        ctx = faults.FaultContext(lab.plane, pods, lambda *args: conditions.append(args))
        yield Fixture(lab, ctx, snapshot(lab), conditions, late)
    finally:
        destroy_lab(name, state_dir)


Check = tuple[str, dict[str, Any]]  # (where it runs: pod short name, node or role; the check)


def run_checks(lab: DataplaneLab, checks: list[Check], attempts: int = 1) -> dict[str, dict[str, Any]]:
    """All checks at once: one agent per subject namespace, subjects in parallel."""
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for subject, check in checks:
        by_subject.setdefault(subject, []).append(check)
    with ThreadPoolExecutor(max_workers=len(by_subject)) as pool:
        futures = [
            pool.submit(probe, lab.ns(s), c, attempts=attempts, gap=0.5) for s, c in by_subject.items()
        ]
        results: dict[str, dict[str, Any]] = {}
        for future in futures:
            results.update(future.result())
    return results


def fast(check: dict[str, Any]) -> dict[str, Any]:
    return {**check, "timeout": FAIL_TIMEOUT}


def exercise(
    world: Fixture,
    fault: str,
    node: str | None,
    broken: list[Check],
    intact: list[Check],
    errors: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Add the fault, check broken/intact, clear it, check everything heals and nothing is left."""
    lab = world.lab
    summary = faults.add(fault, world.ctx, node)
    assert summary.startswith(fault), summary
    assert fault in faults.active(world.ctx)
    try:
        during = run_checks(lab, [(s, fast(c)) for s, c in broken] + intact)
    finally:
        assert faults.clear(fault, world.ctx) == f"{fault}: cleared"
    for _, check in broken:
        result = during[check["id"]]
        assert not result["ok"], f"{fault}: {check['id']} should fail but worked"
        if errors and check["id"] in errors:
            assert result["error"] == errors[check["id"]], (check["id"], result["error"], result["message"])
    for _, check in intact:
        result = during[check["id"]]
        assert result["ok"], (
            f"{fault}: {check['id']} must keep working: {result['error']} {result['message']}"
        )
    healed = run_checks(lab, broken + intact, attempts=4)
    still_broken = {k: (v["error"], v["message"]) for k, v in healed.items() if not v["ok"]}
    assert not still_broken, f"{fault}: clear did not heal {still_broken}"
    assert fault not in faults.active(world.ctx)
    after = snapshot(lab)
    changed = sorted(k for k in world.healthy if world.healthy[k] != after.get(k))
    assert not changed, f"{fault}: clear left changes in {changed}: " + _first_diff(
        world.healthy, after, changed
    )
    return during


def _first_diff(before: dict[str, str], after: dict[str, str], keys: list[str]) -> str:
    old, new = before[keys[0]].splitlines(), after.get(keys[0], "").splitlines()
    return f"only before: {sorted(set(old) - set(new))[:3]}, only after: {sorted(set(new) - set(old))[:3]}"


# ---------------------------------------------------------------------------------------------- API
def test_names_are_the_contract() -> None:
    assert faults.names() == [
        "tunnel-blocked",
        "node-partition",
        "pod-route-missing",
        "service-nat-missing",
        "snat-missing",
        "snat-port-exhaustion",
        "coredns-down",
        "upstream-dns-servfail",
        "node-nameserver-mismatch",
        "lb-arp-silent",
        "ip-conflict",
        "stale-arp",
        "tcp-reset",
        "http-503",
        "mtu-blackhole",
        "cni-not-ready",
        *faults.INGRESS_FAULTS,
        *faults.COMPONENT_FAULTS,
        *faults.NETPOL_FAULTS,
    ]
    assert faults.NETPOL_FAULTS == ("netpol-not-enforced", "netpol-stale")
    assert faults.COMPONENT_FAULTS == (
        "cilium-health-down",
        "ebpf-map-full",
        "cilium-rate-limit",
        "f5-partition-shared",
        "f5-configmap-missing",
        "metallb-speaker-down",
    )
    assert all(re.search(r"\(FM-\d\d\)", faults.describe(n)) for n in faults.names())


def test_bad_requests_give_one_line(world: Fixture) -> None:
    with pytest.raises(faults.FaultError, match="unknown fault 'nope'"):
        faults.add("nope", world.ctx)
    with pytest.raises(faults.FaultError, match="unknown node 'node-7'"):
        faults.add("pod-route-missing", world.ctx, "node-7")
    with pytest.raises(faults.FaultError, match="not to a node"):
        faults.add("upstream-dns-servfail", world.ctx, "node-1")
    with pytest.raises(faults.FaultError, match="other than node-1"):
        faults.add("stale-arp", world.ctx, "node-1")
    assert faults.clear("snat-missing", world.ctx) == "snat-missing: not active"
    assert faults.active(world.ctx) == {}


def test_active_faults_survive_in_the_state_file(world: Fixture) -> None:
    faults.add("pod-route-missing", world.ctx, "node-3")
    try:
        assert faults.add("pod-route-missing", world.ctx, "node-3").endswith("already active on node-3")
        with pytest.raises(faults.FaultError, match="already active on node-3: clear it first"):
            faults.add("pod-route-missing", world.ctx, "node-2")
        other = faults.FaultContext(Netplane.load(world.lab.plane.lab, world.lab.plane.state_dir))
        assert faults.active(other) == {"pod-route-missing": "node-3"}
        assert faults.clear_all(other) == ["pod-route-missing: cleared"]
    finally:
        faults.clear("pod-route-missing", world.ctx)
    assert faults.active(world.ctx) == {}
    assert "10.244.3.10 dev cbr0" in sh(world.lab.plane.node_netns("node-3"), ["ip", "route"])


# ------------------------------------------------------------------------------------------- faults
def test_tunnel_blocked(world: Fixture) -> None:
    exercise(
        world,
        "tunnel-blocked",
        None,
        broken=[("a1", http("cross-2", pod_url("b1"))), ("a1", http("cross-3", pod_url("c1")))],
        intact=[("a1", http("same-node", pod_url("a2"))), ("node-1", icmp("underlay", "10.89.0.12"))],
    )


def test_node_partition(world: Fixture) -> None:
    exercise(
        world,
        "node-partition",
        None,  # the last node
        broken=[
            ("node-1", icmp("n1-n3", "10.89.0.13")),
            ("node-2", icmp("n2-n3", "10.89.0.13")),
            ("a1", http("pod-n3", pod_url("c1"))),
        ],
        intact=[
            ("node-1", icmp("n1-n2", "10.89.0.12")),
            ("a1", http("pod-n2", pod_url("b1"))),
            ("client", icmp("outside-n3", "10.89.0.13")),
        ],
    )


def test_pod_route_missing(world: Fixture) -> None:
    exercise(
        world,
        "pod-route-missing",
        "node-2",
        broken=[
            ("node-2", tcp("node-to-pod", PODS["b1"][1], 9000)),
            ("a1", http("pod-to-pod", pod_url("b1"))),
        ],
        intact=[
            ("a1", http("other-node", pod_url("c1"))),
            ("node-1", tcp("n1-own-pod", PODS["a2"][1], 9000)),
        ],
    )


def test_service_nat_missing_everywhere(world: Fixture) -> None:
    exercise(
        world,
        "service-nat-missing",
        None,
        broken=[
            ("a1", http("cip-tcp", f"http://{ECHO_CIP}/")),
            ("a1", udp("cip-udp", ECHO_CIP, 9001)),
            ("client", http("lb-vip", f"http://{VIP}/")),
        ],
        intact=[("a1", http("pod-ip", pod_url("b1"))), ("a1", http("egress", OUTSIDE))],
    )


def test_service_nat_missing_on_one_node(world: Fixture) -> None:
    exercise(
        world,
        "service-nat-missing",
        "node-1",
        broken=[("a1", http("cip-from-node-1", f"http://{ECHO_CIP}/"))],
        intact=[("c1", http("cip-from-node-3", f"http://{ECHO_CIP}/"))],
    )


def test_snat_missing(world: Fixture) -> None:
    exercise(
        world,
        "snat-missing",
        None,
        broken=[("a1", http("outside", OUTSIDE)), ("c1", http("internet", INTERNET))],
        intact=[
            ("a1", http("pod", pod_url("b1"))),
            ("a1", http("cip", f"http://{ECHO_CIP}/")),
            ("node-1", http("node-egress", OUTSIDE)),
        ],
    )


def test_snat_port_exhaustion(world: Fixture) -> None:
    node1 = world.lab.plane.node_netns("node-1")

    def drops() -> int:
        stats = sh(node1, ["conntrack", "-S"])
        return sum(int(n) for n in re.findall(r"insert_failed=(\d+)", stats))

    before = drops()
    exercise(
        world,
        "snat-port-exhaustion",
        None,
        broken=[
            ("a1", http("outside", OUTSIDE)),
            ("a1", tcp("outside-tcp", A.OUTSIDE_ECHO_IP, 7)),
            ("b1", http("internet", INTERNET)),
        ],
        intact=[
            ("a1", http("pod", pod_url("b1"))),
            ("a1", http("cip", f"http://{ECHO_CIP}/")),
            ("a1", icmp("ping-outside", A.OUTSIDE_ECHO_IP)),
        ],
    )
    assert drops() > before, "the kernel should count NAT insert failures (No mapping for NAT)"
    held = sh(node1, ["conntrack", "-L", "-s", A.pod_gateway("node-1"), "-q", A.node_ip("node-1")])
    assert "dport=6100" not in held, "the held masquerade ports must be released by clear"


def test_coredns_down(world: Fixture) -> None:
    query = "kubernetes.default.svc.cluster.local"
    exercise(
        world,
        "coredns-down",
        None,  # the first DNS pod (node-1)
        broken=[("a1", dns_query("dns1", PODS["dns1"][1], query))],
        intact=[
            ("a1", dns_query("dns2", PODS["dns2"][1], query)),
            ("b1", dns_query("dns2-b", PODS["dns2"][1], query)),
        ],
        errors={"dns1": "timeout"},
    )


def test_upstream_dns_servfail(world: Fixture) -> None:
    checks = [("a1", dns_query("external", A.KUBE_DNS_IP, "example.test"))]
    checks.append(("a1", dns_query("internal", A.KUBE_DNS_IP, "echo.default.svc.cluster.local")))
    faults.add("upstream-dns-servfail", world.ctx)
    try:
        during = run_checks(world.lab, checks)
    finally:
        faults.clear("upstream-dns-servfail", world.ctx)
    assert dns_answer(during["external"])[0] == "SERVFAIL"
    assert dns_answer(during["internal"]) == ("NOERROR", [ECHO_CIP])
    healed = run_checks(world.lab, checks)
    assert dns_answer(healed["external"]) == ("NOERROR", [A.OUTSIDE_ECHO_IP])
    assert snapshot(world.lab) == world.healthy


def test_node_nameserver_mismatch(world: Fixture) -> None:
    resolve = {"id": "resolve", "kind": "resolve", "name": "www.example.test", "timeout": 3.0}
    checks = [("node-3", read("resolv3", "/etc/resolv.conf")), ("node-3", resolve)]
    checks += [
        ("node-1", read("resolv1", "/etc/resolv.conf")),
        ("node-3", fast(dns_query("dead", A.DEAD_NAMESERVER_IP, "example.test"))),
    ]
    faults.add("node-nameserver-mismatch", world.ctx)  # the last node
    try:
        during = run_checks(world.lab, checks)
    finally:
        faults.clear("node-nameserver-mismatch", world.ctx)
    assert A.DEAD_NAMESERVER_IP in during["resolv3"]["content"]
    assert A.UPSTREAM_DNS_IP in during["resolv1"]["content"]
    assert not during["resolve"]["ok"] and not during["dead"]["ok"]
    healed = run_checks(world.lab, checks[:3])
    assert healed["resolv3"]["content"] == f"nameserver {A.UPSTREAM_DNS_IP}\n"
    assert healed["resolve"]["addresses"] == [A.OUTSIDE_ECHO_IP]
    assert snapshot(world.lab) == world.healthy


def test_lb_arp_silent(world: Fixture) -> None:
    node2 = world.lab.plane.node_netns("node-2")
    during = exercise(
        world,
        "lb-arp-silent",
        None,
        broken=[("router", arp("vip-arp", VIP)), ("client", http("vip-http", f"http://{VIP}/"))],
        intact=[("router", arp("node-arp", "10.89.0.12")), ("node-2", http("vip-local", f"http://{VIP}/"))],
    )
    assert during["node-arp"]["macs"] == [sh(node2, ["cat", "/sys/class/net/eth0/address"]).strip()]
    assert len(run_checks(world.lab, [("router", arp("again", VIP))])["again"]["macs"]) == 1


def test_ip_conflict(world: Fixture) -> None:
    checks = [("router", arp("conflict", "10.89.0.13")), ("router", arp("single", "10.89.0.12"))]
    faults.add("ip-conflict", world.ctx)  # claims the last node's IP
    try:
        during = run_checks(world.lab, checks)
    finally:
        faults.clear("ip-conflict", world.ctx)
    links = json.loads(sh(world.lab.ns("node-3"), ["ip", "-j", "addr", "show"]))
    owner = [
        i["address"] for i in links if any(a.get("local") == "10.89.0.13" for a in i.get("addr_info", []))
    ]
    assert len(owner) == 1, links
    # both answer, in either order: the node that owns the IP and the rogue (VMware's OUI, 00:50:56)
    assert sorted(during["conflict"]["macs"]) == sorted([owner[0], faults.ROGUE_MAC])
    assert len(during["single"]["macs"]) == 1
    healed = run_checks(world.lab, checks)
    assert len(healed["conflict"]["macs"]) == 1 and faults.ROGUE_MAC not in healed["conflict"]["macs"]
    assert snapshot(world.lab) == world.healthy


def test_stale_arp(world: Fixture) -> None:
    node1_mac = sh(world.lab.plane.node_netns("node-1"), ["cat", "/sys/class/net/eth0/address"]).strip()
    exercise(
        world,
        "stale-arp",
        None,  # every node but node-1
        broken=[
            ("node-2", icmp("n2-vip", A.CONTROL_PLANE_VIP)),
            ("node-3", icmp("n3-vip", A.CONTROL_PLANE_VIP)),
        ],
        intact=[
            ("node-2", icmp("n2-n1", A.node_ip("node-1"))),
            ("node-1", icmp("n1-vip", A.CONTROL_PLANE_VIP)),
        ],
    )
    neigh = sh(world.lab.plane.node_netns("node-2"), ["ip", "neigh", "show", A.CONTROL_PLANE_VIP])
    assert node1_mac in neigh and faults.STALE_MAC not in neigh


def test_stale_arp_entry_is_the_wrong_mac(world: Fixture) -> None:
    faults.add("stale-arp", world.ctx, "node-3")
    try:
        neigh = sh(world.lab.plane.node_netns("node-3"), ["ip", "neigh", "show", A.CONTROL_PLANE_VIP])
        untouched = sh(world.lab.plane.node_netns("node-2"), ["ip", "neigh", "show", "nud", "permanent"])
    finally:
        faults.clear("stale-arp", world.ctx)
    assert faults.STALE_MAC in neigh and "PERMANENT" in neigh
    assert untouched == ""


def test_tcp_reset(world: Fixture) -> None:
    exercise(
        world,
        "tcp-reset",
        None,
        broken=[("a1", tcp("tcp", PODS["b1"][1], 9000)), ("a1", http("http", pod_url("b1")))],
        intact=[("a1", udp("udp", PODS["b1"][1], 9001)), ("a1", icmp("ping", PODS["b1"][1]))],
        errors={"tcp": "reset", "http": "reset"},
    )


def test_http_503(world: Fixture) -> None:
    during = exercise(
        world,
        "http-503",
        None,
        broken=[("a1", http("pod", pod_url("b1"))), ("a1", http("cip", f"http://{ECHO_CIP}/"))],
        intact=[("a1", tcp("tcp", PODS["b1"][1], 9000))],
        errors={"pod": "http-status", "cip": "http-status"},
    )
    assert during["pod"]["status"] == 503 and during["cip"]["status"] == 503


@contextlib.contextmanager
def late_pod(world: Fixture, name: str, node: str, ip: str, role: str) -> Iterator[faults.PodInfo]:
    """A pod whose network comes up after the fault was added, reported like the kubelet does
    (`pod_started` before its program starts, `pod_stopped` before its namespace goes)."""
    plane = world.lab.plane
    netns = plane.add_pod(f"default/{name}", node, ip, POD_RESOLV)
    dns = role == "kube-dns"
    pod = faults.PodInfo(
        name,
        "kube-system" if dns else "default",
        node,
        netns,
        ip,
        {"k8s-app": "kube-dns"} if dns else {"netconform.io/role": role},
        () if dns else (faults.PodPort(8080, "http"),),
        uid=f"uid-{name}",
    )
    try:
        faults.pod_started(world.ctx, pod)
        if dns:
            argv = [
                sys.executable,
                "-m",
                "netconform.lab.net.clusterdns",
                "--zone-file",
                str(world.lab.zone_file),
            ]
            argv += ["--upstream-resolv", "/etc/resolv.conf", "--port", "53"]
            plane.start_program(f"clusterdns-{name}", netns, argv, "clusterdns: listening")
        else:
            argv = [sys.executable, str(AGENT), *ECHO_ARGS]
            plane.start_program(f"echo-{name}", netns, argv, '"serving"')
        world.lab.pod_ns[name] = netns
        world.late.append(pod)
        yield pod
    finally:
        world.lab.pod_ns.pop(name, None)
        if pod in world.late:
            world.late.remove(pod)
        faults.pod_stopped(world.ctx, pod)
        plane.stop_program(f"{'clusterdns' if dns else 'echo'}-{name}")
        plane.remove_pod(f"default/{name}")
        plane.forget_neighbour(ip)


def _fault_left_on(world: Fixture, netns: str) -> list[str]:
    """What of any fault remains for a pod namespace: record entries and helper programs."""
    records = world.lab.plane.fault_records()
    left = [
        f"{n}: {k}" for n, r in records.items() for k, i in r.get("pods", {}).items() if i["netns"] == netns
    ]
    return left + [p for p, info in world.lab.plane.state().processes.items() if info["netns"] == netns]


@pytest.mark.parametrize("fault", ["http-503", "tcp-reset"])
def test_echo_faults_follow_pods_started_later(world: Fixture, fault: str) -> None:
    """Added with no echo pod on node-3 but c1: a pod started later on node-3 is broken too, one on
    node-1 (outside --node) is not; removing the pod leaves nothing; clear heals exactly."""
    summary = faults.add(fault, world.ctx, "node-3")
    assert "pods started later get it too" in summary and "echo pods on node-3: c1" in summary, summary
    try:
        with (
            late_pod(world, "late3", "node-3", "10.244.3.20", "echo") as pod,
            late_pod(world, "late1", "node-1", "10.244.1.20", "echo"),
        ):
            assert faults.active(world.ctx)[fault] == "echo pods on node-3: c1, late3"
            checks = [
                ("a1", http("late-http", "http://10.244.3.20:8080/")),
                ("a1", tcp("late-tcp", "10.244.3.20", 9000)),
                ("a1", http("other-node", "http://10.244.1.20:8080/")),
            ]
            during = run_checks(world.lab, checks, attempts=3)
            netns = pod.netns
            assert netns is not None
        # pod gone: nothing of the fault is kept for it, the fault stays on c1
        assert _fault_left_on(world, netns) == []
        assert faults.active(world.ctx)[fault] == "echo pods on node-3: c1"
    finally:
        faults.clear(fault, world.ctx)
    if fault == "http-503":
        assert during["late-http"]["status"] == 503 and during["late-http"]["error"] == "http-status"
        assert during["late-tcp"]["ok"], during["late-tcp"]
    else:
        # the RST comes right after the handshake: whichever step of the agent meets it (connect,
        # getpeername's ENOTCONN, a send's EPIPE), every attempt is a reset
        errors = {c: [a["error"] for a in during[c]["attempts"]] for c in ("late-tcp", "late-http")}
        assert errors == {"late-tcp": ["reset"] * 3, "late-http": ["reset"] * 3}, errors
    assert during["other-node"]["ok"] and len(during["other-node"]["attempts"]) == 3, during["other-node"]
    assert snapshot(world.lab) == world.healthy


def test_coredns_down_follows_a_dns_pod_started_later(world: Fixture) -> None:
    """node-3 has no DNS pod when the fault is added; the one started there later stops answering,
    exactly one at a time (a second one keeps answering); clear heals both."""
    query = "kubernetes.default.svc.cluster.local"
    summary = faults.add("coredns-down", world.ctx, "node-3")
    assert "one kube-dns pod on node-3: none running now" in summary, summary
    try:
        with (
            late_pod(world, "dns3", "node-3", "10.244.3.53", "kube-dns"),
            late_pod(world, "dns3b", "node-3", "10.244.3.54", "kube-dns"),
        ):
            assert faults.active(world.ctx)["coredns-down"] == "one kube-dns pod on node-3: dns3"
            checks = [
                ("a1", fast(dns_query("dns3", "10.244.3.53", query))),
                ("a1", dns_query("dns3b", "10.244.3.54", query)),
                ("a1", dns_query("dns1", PODS["dns1"][1], query)),
            ]
            during = run_checks(world.lab, checks)
            faults.clear("coredns-down", world.ctx)
            healed = run_checks(world.lab, checks[:1])
    finally:
        faults.clear("coredns-down", world.ctx)
    assert during["dns3"]["error"] == "timeout", during["dns3"]
    assert dns_answer(during["dns3b"]) == ("NOERROR", [A.KUBERNETES_SERVICE_IP])
    assert during["dns1"]["ok"] and healed["dns3"]["ok"], (during["dns1"], healed["dns3"])
    assert snapshot(world.lab) == world.healthy


def test_coredns_down_moves_to_the_next_dns_pod_when_its_pod_goes(world: Fixture) -> None:
    """One DNS pod on the node stays down while the fault is active: when it goes, the other one
    there is broken instead; when that goes too, none is, and nothing is left behind."""
    query = "kubernetes.default.svc.cluster.local"
    faults.add("coredns-down", world.ctx, "node-3")
    try:
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(late_pod(world, "dns3", "node-3", "10.244.3.53", "kube-dns"))
            with late_pod(world, "dns3b", "node-3", "10.244.3.54", "kube-dns") as second:
                stack.close()  # dns3 goes first
                assert faults.active(world.ctx)["coredns-down"] == "one kube-dns pod on node-3: dns3b"
                during = run_checks(world.lab, [("a1", fast(dns_query("dns3b", "10.244.3.54", query)))])
        assert faults.active(world.ctx)["coredns-down"] == "one kube-dns pod on node-3: none running now"
        assert first.netns and second.netns
        assert _fault_left_on(world, first.netns) == _fault_left_on(world, second.netns) == []
    finally:
        faults.clear("coredns-down", world.ctx)
    assert during["dns3b"]["error"] == "timeout", during["dns3b"]
    assert snapshot(world.lab) == world.healthy


def test_mtu_blackhole(world: Fixture) -> None:
    cross = mtu("cross", PODS["b1"][1], 9001, [1000, 1400])
    same = mtu("same", PODS["a2"][1], 9001, [1000, 1400])
    healthy = run_checks(world.lab, [("a1", cross)])
    assert healthy["cross"]["sizes_ok"] == [1000, 1400], healthy["cross"]
    faults.add("mtu-blackhole", world.ctx)
    try:
        during = run_checks(world.lab, [("a1", cross), ("a1", same)])
    finally:
        faults.clear("mtu-blackhole", world.ctx)
    assert during["cross"]["ok"] and during["cross"]["sizes_ok"] == [1000], during["cross"]
    assert during["cross"]["sizes_lost"] == [1400], "the big packet must vanish silently (no ICMP)"
    assert during["same"]["sizes_ok"] == [1000, 1400]
    healed = run_checks(world.lab, [("a1", cross)], attempts=3)
    assert healed["cross"]["sizes_ok"] == [1000, 1400]
    assert snapshot(world.lab) == world.healthy


def test_cni_not_ready(world: Fixture) -> None:
    world.conditions.clear()
    faults.add("cni-not-ready", world.ctx)
    assert world.conditions == [("node-3", False, "NetworkPluginNotReady", faults.CNI_MESSAGE)]
    assert "cni plugin not initialized" in faults.CNI_MESSAGE
    faults.clear("cni-not-ready", world.ctx)
    assert world.conditions[-1][:3] == ("node-3", True, "KubeletReady")
    context = faults.FaultContext(world.lab.plane)  # without a control plane
    with pytest.raises(faults.FaultError, match="needs the control plane"):
        faults.add("cni-not-ready", context)


def test_all_faults_at_once_clear_back_to_healthy(world: Fixture) -> None:
    plain = [n for n in faults.names() if n not in (*faults.COMPONENT_FAULTS, *faults.INGRESS_FAULTS)]
    for name in faults.COMPONENT_FAULTS:  # this lab runs no optional component (lab up --dataplane/--lb)
        with pytest.raises(faults.FaultError, match=r"this lab runs no .* \(lab up --"):
            faults.add(name, world.ctx)
    for name in faults.INGRESS_FAULTS:  # a bare data plane has no ingress controller pod
        with pytest.raises(faults.FaultError, match="no ingress controller"):
            faults.add(name, world.ctx)
    for name in plain:
        faults.add(name, world.ctx)
    assert set(faults.active(world.ctx)) == set(plain)
    assert sorted(faults.clear_all(world.ctx)) == sorted(f"{n}: cleared" for n in plain)
    assert snapshot(world.lab) == world.healthy
    healed = run_checks(
        world.lab,
        [
            ("a1", http("cross", pod_url("c1"))),
            ("a1", http("cip", f"http://{ECHO_CIP}/")),
            ("a1", http("out", OUTSIDE)),
        ],
        attempts=4,
    )
    assert all(r["ok"] for r in healed.values()), healed


def test_fault_state_is_removed_with_the_lab(tmp_path: Path) -> None:
    plane = Netplane(lab_name("dpg"), nodes=1, state_dir=tmp_path)
    plane.set_fault_record("upstream-dns-servfail", {"where": "x"})
    plane.upstream_control_file().write_text("servfail\n")
    destroy_lab(plane.lab, tmp_path)
    assert not (tmp_path / "netplane.json").exists() and not plane.upstream_control_file().exists()
