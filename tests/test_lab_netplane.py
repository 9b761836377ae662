"""The lab data plane on real namespaces, without the control plane: connectivity of every kind the
suite checks (pod↔pod on one node and across the VXLAN overlay, Services, NodePort, LB VIP with ARP,
SNAT, cluster DNS) and the safety rules (nothing in the root namespace, documentation addresses only,
complete teardown even after the builder died)."""

from __future__ import annotations

import base64
import errno
import fcntl
import ipaddress
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netconform.lab.net import addressing as A
from netconform.lab.net import hostguard as hostguard
from netconform.lab.net.netplane import Backend, Netplane, NetplaneError, ServiceNAT, ServicePort, destroy_lab
from netconform.lab.net.nsexec import NETNS_ETC, netns_list, process_alive
from tests.can_run import needs
from tests.dataplane_helpers import (
    ECHO_CIP,
    EMPTY_CIP,
    PODS,
    VIP,
    DataplaneLab,
    build_test_lab,
    client_ip,
    dns_answer,
    dns_query,
    echo_services,
    http,
    icmp,
    lab_name,
    probe,
    sh,
    tcp,
    udp,
    write_zone,
    zone,
)

pytestmark = [
    needs("dataplane"),
    pytest.mark.root,
    pytest.mark.xdist_group("lab-dataplane-netplane"),
]

BUILD_BUDGET_S = 5.0  # the whole lab (control plane included) must be up in 15 s


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataplaneLab]:
    name = lab_name("dpn")
    state_dir = tmp_path_factory.mktemp(name)
    test_lab = None
    try:
        test_lab = build_test_lab(name, state_dir)
        yield test_lab
    finally:
        destroy_lab(name, state_dir)


def test_build_is_fast(lab: DataplaneLab) -> None:
    timings = lab.plane.timings
    print(f"data plane build timings (s): {json.dumps({k: round(v, 3) for k, v in timings.items()})}")
    assert timings["build"] < BUILD_BUDGET_S


def test_pod_to_pod_on_the_same_node(lab: DataplaneLab) -> None:
    results = probe(lab.ns("a1"), [http("http", "http://10.244.1.11:8080/"), icmp("ping", "10.244.1.11")])
    assert client_ip(results["http"]) == "10.244.1.10"  # no NAT between pods
    assert results["ping"]["ok"], results["ping"]


def _overlay_counter(fabric: str, rule: list[str]) -> int:
    """Packets counted by a marker rule (no target) on the fabric switch's FORWARD chain."""
    listing = subprocess.run(
        ["nsenter", f"--net=/run/netns/{fabric}", "iptables", "-w", "5", "-L", "FORWARD", "-v", "-x", "-n"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    for line in listing.splitlines():
        if "udp dpt:6081" in line and rule[3] in line and rule[5] in line:
            return int(line.split()[0])
    raise AssertionError(f"marker rule not found in {listing!r}")


def test_pod_to_pod_across_nodes_rides_udp_6081(lab: DataplaneLab) -> None:
    fabric = lab.plane.fabric_netns()
    rule = ["-p", "udp", "-s", "10.89.0.11", "-d", "10.89.0.12", "--dport", "6081"]
    iptables = ["nsenter", f"--net=/run/netns/{fabric}", "iptables", "-w", "5"]
    subprocess.run([*iptables, "-I", "FORWARD", "1", *rule], check=True, timeout=10)
    try:
        before = _overlay_counter(fabric, rule)
        results = probe(
            lab.ns("a1"), [http("http", "http://10.244.2.10:8080/"), udp("udp", "10.244.2.10", 9001)]
        )
        after = _overlay_counter(fabric, rule)
    finally:
        subprocess.run([*iptables, "-D", "FORWARD", *rule], check=True, timeout=10)
    assert client_ip(results["http"]) == "10.244.1.10"
    assert client_ip(results["udp"]) == "10.244.1.10"
    assert after - before >= 4, (
        f"pod traffic node-1 → node-2 should be VXLAN on UDP 6081 ({after - before} packets)"
    )
    details = sh(lab.plane.node_netns("node-1"), ["ip", "-d", "link", "show", "vx0"])
    assert "vxlan id 1" in details and "dstport 6081" in details


def test_node_reaches_its_pods_through_per_pod_routes(lab: DataplaneLab) -> None:
    routes = sh(lab.plane.node_netns("node-1"), ["ip", "route"])
    assert "10.244.1.10 dev cbr0" in routes and "10.244.1.11 dev cbr0" in routes
    assert "10.244.2.0/24 via 10.244.2.0 dev vx0" in routes
    results = probe(
        lab.plane.node_netns("node-1"), [tcp("tcp", "10.244.1.11", 9000), tcp("far", "10.244.3.10", 9000)]
    )
    assert results["tcp"]["ok"] and results["far"]["ok"], results


def test_pod_to_clusterip_tcp_and_udp_is_balanced(lab: DataplaneLab) -> None:
    checks = [http(f"h{i}", f"http://{ECHO_CIP}/") for i in range(12)] + [udp("udp", ECHO_CIP, 9001)]
    results = probe(lab.ns("a1"), checks)
    servers = {results[f"h{i}"]["echo"]["server_ip"] for i in range(12) if results[f"h{i}"]["ok"]}
    assert all(results[f"h{i}"]["ok"] for i in range(12)), results
    assert len(servers) >= 2, f"random balancing should reach several backends, got {servers}"
    assert servers <= {PODS[p][1] for p in ("a2", "b1", "c1")}
    assert client_ip(results["h0"]) == "10.244.1.10"  # pod sources are not masqueraded
    assert client_ip(results["udp"]) == "10.244.1.10"


SOLO_CIP, SOLO_VIP = "10.96.0.60", "10.89.0.201"


def test_pod_reaches_a_service_whose_only_endpoint_is_itself(lab: DataplaneLab) -> None:
    """Hairpin: DNAT sends the pod's packet back to the pod. kube-proxy marks it for masquerade (the
    pod would drop a packet from its own address) and the CNI bridge must send it back out of the
    port it came in on (hairpin mode). Every portal kind, TCP and UDP, with exactly one endpoint."""
    c1_ip = PODS["c1"][1]
    solo = ServiceNAT(
        "default/solo",
        SOLO_CIP,
        (
            ServicePort("TCP", 80, (Backend(c1_ip, 8080),), node_port=30090, name="http"),
            ServicePort("UDP", 9001, (Backend(c1_ip, 9001),), node_port=30091, name="udp"),
        ),
        lb_ips=(SOLO_VIP,),
    )
    own_node = A.node_ip("node-3")
    checks = [
        http("cip-tcp", f"http://{SOLO_CIP}/"),
        udp("cip-udp", SOLO_CIP, 9001),
        http("nodeport-tcp", f"http://{own_node}:30090/"),
        udp("nodeport-udp", own_node, 30091),
        http("lb-tcp", f"http://{SOLO_VIP}/"),
        udp("lb-udp", SOLO_VIP, 9001),
    ]
    try:
        lab.plane.sync_services([*echo_services(), solo])
        lab.plane.announce_vip(SOLO_VIP, "node-2")
        results = probe(lab.ns("c1"), checks)
    finally:
        lab.plane.withdraw_vip(SOLO_VIP)
        lab.plane.sync_services(echo_services())
    failed = {k: f"{r['error']} {r['message']}" for k, r in results.items() if not r["ok"]}
    assert not failed, f"hairpin to the pod's own Service failed: {failed}"
    for check_id, result in results.items():
        # masqueraded to the node's bridge address, and answered by the pod itself
        assert client_ip(result) == A.pod_gateway("node-3"), (check_id, result)
        echo = result.get("echo") or json.loads(base64.b64decode(result["reply_b64"]))
        assert echo["server_ip"] == c1_ip, (check_id, echo)


def test_service_without_endpoints_refuses(lab: DataplaneLab) -> None:
    result = probe(lab.ns("a1"), [tcp("tcp", EMPTY_CIP, 80)])["tcp"]
    assert not result["ok"] and result["error"] == "refused", result


def test_node_to_nodeport_on_every_node(lab: DataplaneLab) -> None:
    checks = [http(n, f"http://{A.node_ip(n)}:30080/") for n in lab.plane.nodes]
    checks.append(udp("udp", A.node_ip("node-3"), 30081))
    results = probe(lab.plane.node_netns("node-1"), checks)
    assert all(r["ok"] for r in results.values()), results


def test_outside_client_reaches_lb_vip_and_nodeport_but_not_clusterip(lab: DataplaneLab) -> None:
    checks = [
        http("vip", f"http://{VIP}/"),
        http("np", "http://10.89.0.13:30080/"),
        tcp("cip", ECHO_CIP, 80, 1.0),
    ]
    argv = lab.plane.run_in_outside(["true"])
    assert argv[:4] == ["ip", "netns", "exec", lab.plane.client_netns()]
    results = probe(lab.plane.client_netns(), checks)
    assert results["vip"]["ok"] and results["np"]["ok"], results
    assert not results["cip"]["ok"], "a ClusterIP must not be reachable from outside the cluster"
    assert "203.0.113.20" in sh(lab.plane.client_netns(), ["ip", "-br", "addr", "show", "eth0"])


def test_vip_arp_is_answered_by_exactly_the_announcing_node(lab: DataplaneLab) -> None:
    results = probe(
        lab.plane.router_netns(), [{"id": "arp", "kind": "arp", "ip": VIP, "window": 1.0, "timeout": 2.0}]
    )
    mac = sh(lab.plane.node_netns("node-2"), ["cat", "/sys/class/net/eth0/address"]).strip()
    assert results["arp"]["macs"] == [mac]


def test_no_lb_lab_announces_nothing(tmp_path: Path) -> None:
    plane = Netplane(lab_name("dpq"), nodes=1, lb=False, state_dir=tmp_path)
    plane.announce_vip(VIP, "node-1")
    assert plane.vips() == {}


def test_pod_egress_leaves_with_the_node_ip(lab: DataplaneLab) -> None:
    checks = [http("outside", "http://203.0.113.10/"), http("internet", "http://198.51.100.10/")]
    checks.append(icmp("ping", "203.0.113.10"))
    from_a1, from_c1 = probe(lab.ns("a1"), checks), probe(lab.ns("c1"), checks)
    assert client_ip(from_a1["outside"]) == "10.89.0.11"
    assert client_ip(from_a1["internet"]) == "10.89.0.11"
    assert client_ip(from_c1["outside"]) == "10.89.0.13"
    assert from_a1["ping"]["ok"]


def test_cluster_dns_internal_external_and_reload(lab: DataplaneLab) -> None:
    checks = [
        dns_query("svc", A.KUBE_DNS_IP, "echo.default.svc.cluster.local"),
        dns_query("k8s", "10.244.2.53", "kubernetes.default.svc.cluster.local"),
        dns_query("missing", A.KUBE_DNS_IP, "nope.default.svc.cluster.local"),
        dns_query("aaaa", "10.244.1.53", "echo.default.svc.cluster.local", "AAAA"),
        dns_query("ext", A.KUBE_DNS_IP, "example.test"),
        dns_query("extmissing", "10.244.1.53", "unknown.test"),
        {**dns_query("tcp", A.KUBE_DNS_IP, "echo.default.svc.cluster.local"), "transport": "tcp"},
        {"id": "resolve", "kind": "resolve", "name": "echo", "timeout": 3.0},
    ]
    results = probe(lab.ns("a1"), checks)
    assert dns_answer(results["svc"]) == ("NOERROR", [ECHO_CIP])
    assert dns_answer(results["k8s"]) == ("NOERROR", [A.KUBERNETES_SERVICE_IP])
    assert dns_answer(results["missing"]) == ("NXDOMAIN", [])
    assert dns_answer(results["aaaa"]) == ("NOERROR", [])
    assert dns_answer(results["ext"]) == ("NOERROR", [A.OUTSIDE_ECHO_IP])
    assert dns_answer(results["extmissing"]) == ("NXDOMAIN", [])
    assert dns_answer(results["tcp"]) == ("NOERROR", [ECHO_CIP])
    assert results["resolve"]["ok"] and ECHO_CIP in results["resolve"]["addresses"], results["resolve"]
    write_zone(lab.zone_file, zone({"late.default.svc.cluster.local": {"A": ["10.96.0.77"]}}))
    try:
        late = probe(lab.ns("a1"), [dns_query("late", "10.244.1.53", "late.default.svc.cluster.local")])
        assert dns_answer(late["late"]) == ("NOERROR", ["10.96.0.77"])  # re-read on the next query
    finally:
        write_zone(lab.zone_file, zone())


def test_node_resolver_is_the_upstream(lab: DataplaneLab) -> None:
    node = lab.plane.node_netns("node-2")
    assert sh(node, ["cat", "/etc/resolv.conf"]) == "nameserver 203.0.113.53\n"
    results = probe(node, [{"id": "resolve", "kind": "resolve", "name": "www.example.test", "timeout": 3.0}])
    assert results["resolve"]["addresses"] == ["203.0.113.10"]


def test_sync_services_is_idempotent_and_follows_backends(lab: DataplaneLab) -> None:
    node1 = lab.plane.node_netns("node-1")
    before = lab.plane.state().applied
    lab.plane.sync_services(echo_services())
    assert lab.plane.state().applied == before  # nothing to rewrite
    only_c1 = [s for s in echo_services() if s.key != "default/echo"]
    echo = next(s for s in echo_services() if s.key == "default/echo")
    narrowed = type(echo)(
        echo.key,
        echo.cluster_ip,
        tuple(
            type(p)(
                p.protocol, p.port, tuple(b for b in p.backends if b.ip == "10.244.3.10"), p.node_port, p.name
            )
            for p in echo.ports
        ),
        echo.lb_ips,
    )
    try:
        lab.plane.sync_services([narrowed, *only_c1])
        results = probe(lab.ns("a1"), [http(f"h{i}", f"http://{ECHO_CIP}/") for i in range(6)])
        assert {r["echo"]["server_ip"] for r in results.values()} == {"10.244.3.10"}
        assert sh(node1, ["iptables-save", "-t", "nat"]).count("DNAT") == 3 + 2 * 2  # echo 3 ports, dns 2×2
    finally:
        lab.plane.sync_services(echo_services())


UDP_FROM_FIXED_PORT = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 40404))
s.settimeout(2.0)
s.sendto(b"x", (sys.argv[1], 9001))
print(json.loads(s.recv(4096))["server_ip"])
"""


def test_udp_flows_follow_a_removed_backend(lab: DataplaneLab) -> None:
    """A UDP 5-tuple (like a resolver on a fixed port) must not stick to a backend that is gone."""
    echo = next(s for s in echo_services() if s.key == "default/echo")
    others = [s for s in echo_services() if s.key != "default/echo"]

    def only(ip: str) -> list[ServiceNAT]:
        ports = tuple(
            ServicePort(p.protocol, p.port, tuple(b for b in p.backends if b.ip == ip), p.node_port, p.name)
            for p in echo.ports
        )
        return [ServiceNAT(echo.key, echo.cluster_ip, ports, echo.lb_ips), *others]

    def ask() -> str:
        argv = ["ip", "netns", "exec", lab.ns("a1"), sys.executable, "-c", UDP_FROM_FIXED_PORT, ECHO_CIP]
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout.strip()

    try:
        lab.plane.sync_services(only("10.244.2.10"))
        assert ask() == "10.244.2.10"
        lab.plane.sync_services(only("10.244.3.10"))
        assert ask() == "10.244.3.10"  # the old conntrack entry was dropped with its backend
    finally:
        lab.plane.sync_services(echo_services())


def test_remove_and_re_add_pod(lab: DataplaneLab) -> None:
    key, node = "default/tmp", "node-3"
    netns = lab.plane.add_pod(key, node, "10.244.3.77", "nameserver 10.96.0.10\n")
    assert lab.plane.add_pod(key, node, "10.244.3.77", "nameserver 10.96.0.10\n") == netns  # idempotent
    assert (NETNS_ETC / netns / "resolv.conf").read_text() == "nameserver 10.96.0.10\n"
    assert probe(lab.plane.node_netns(node), [icmp("ping", "10.244.3.77")])["ping"]["ok"]
    lab.plane.remove_pod(key)
    assert netns not in netns_list() and not (NETNS_ETC / netns).exists()
    node_ns = lab.plane.node_netns(node)
    assert "10.244.3.77" not in sh(node_ns, ["ip", "route"])
    assert "veth" + A.pod_short(key) not in sh(node_ns, ["ip", "-o", "link"])
    # the ping left the pod's MAC in the node's cache: gone with the pod, or a pod given the IP next waits
    assert sh(node_ns, ["ip", "neigh", "show", "to", "10.244.3.77"]).strip() == ""
    lab.plane.remove_pod(key)  # unknown keys are fine


def test_pods_are_wired_while_a_rule_sync_waits_and_the_sync_writes_the_newest_state(
    lab: DataplaneLab,
) -> None:
    """A rule sync (a save and a restore per node: ~1 s at 100 nodes) holds only the rules lock, so pods
    keep being wired; the sync that waited for that lock writes the state as it is when it gets it."""
    key, node = "default/during-sync", "node-2"
    echo = next(s for s in echo_services() if s.key == "default/echo")
    moved = ServiceNAT(echo.key, "10.96.0.77", echo.ports, echo.lb_ips)  # a new ClusterIP for echo
    others = [s for s in echo_services() if s.key != "default/echo"]
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            lab.plane.sync_services([moved, *others])
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=sync, daemon=True)
    with open(lab.plane.state_dir / "netplane-rules.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process writing rules, as far as the plane knows
        try:
            writer.start()
            deadline = time.monotonic() + 10
            while lab.plane.state().services != [s.to_json() for s in [moved, *others]]:
                assert time.monotonic() < deadline, "sync_services did not record the services in 10 s"
                time.sleep(0.05)
            netns = lab.plane.add_pod(key, node, "10.244.2.78", "nameserver 10.96.0.10\n")
            assert writer.is_alive(), "the sync did not wait for the rules lock"
            assert probe(lab.plane.node_netns(node), [icmp("ping", "10.244.2.78")])["ping"]["ok"]
            assert "10.96.0.77" not in sh(lab.plane.node_netns("node-1"), ["iptables-save", "-t", "nat"])
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
    try:
        writer.join(30)
        assert not writer.is_alive() and not errors, errors
        assert "10.96.0.77" in sh(lab.plane.node_netns("node-1"), ["iptables-save", "-t", "nat"])
        assert netns in netns_list()
    finally:
        lab.plane.remove_pod(key)
        lab.plane.sync_services(echo_services())
    assert ECHO_CIP in sh(lab.plane.node_netns("node-3"), ["iptables-save", "-t", "nat"])


@pytest.mark.parametrize(
    ("node", "ip", "message"),
    [
        ("node-1", "10.244.2.50", "not a usable address"),
        ("node-1", "10.244.1.1", "not a usable address"),
        ("node-9", "10.244.9.5", "unknown node"),
        ("node-1", "10.244.1.10", "already used by pod default/a1"),
        ("node-1", "bogus", "not an IPv4 address"),
    ],
)
def test_add_pod_rejects_bad_input(lab: DataplaneLab, node: str, ip: str, message: str) -> None:
    with pytest.raises(NetplaneError, match=message):
        lab.plane.add_pod("default/bad", node, ip, "")


def test_build_refuses_an_existing_lab(lab: DataplaneLab) -> None:
    with pytest.raises(NetplaneError, match="already has namespaces"):
        Netplane(lab.plane.lab, nodes=3, state_dir=lab.plane.state_dir / "other").build()


def test_nothing_of_the_lab_in_the_root_namespace(lab: DataplaneLab) -> None:
    links = subprocess.run(["ip", "-o", "-d", "link"], capture_output=True, text=True, timeout=10).stdout
    assert A.ns_prefix(lab.plane.lab) not in links
    routes = subprocess.run(
        ["ip", "-o", "route", "show", "table", "all"], capture_output=True, text=True, timeout=10
    ).stdout.splitlines()
    for net in ("10.89.0.", "10.244.", "10.96."):
        # the lab's only routes there are the guards that make its addresses unreachable from the host
        lab_routes = [r for r in routes if net in r]
        assert lab_routes and all(r.startswith("unreachable ") for r in lab_routes), (net, lab_routes)
    for net in ("203.0.113.", "198.51.100."):  # the outside ranges: never a route of the lab's here
        assert not [r for r in routes if net in r and "proto 78" in r], net


def test_the_host_cannot_reach_lab_addresses_while_a_lab_is_up(lab: DataplaneLab) -> None:
    """A connect from the host's root namespace to a lab address fails at once: no packet leaves."""
    guarded = hostguard.guard_routes()
    # a lab of an older address plan (fabric /24) may be up beside this one and hold its own guard
    assert {str(n) for n in hostguard.GUARDED_RANGES} <= set(guarded)
    for ip in (A.node_ip("node-1"), A.LB_POOL_FIRST, "10.244.2.10", A.KUBE_DNS_IP):
        # only connect once the kernel says the route is unreachable, so a broken guard sends nothing
        route = subprocess.run(["ip", "route", "get", ip], capture_output=True, text=True, timeout=5)
        assert route.returncode != 0 and "No route to host" in route.stderr, (ip, route.stdout)
        started = time.monotonic()
        with socket.socket() as sock, pytest.raises(OSError) as err:
            sock.settimeout(5)
            sock.connect((ip, 80))
        assert err.value.errno == errno.EHOSTUNREACH, (ip, err.value)
        assert time.monotonic() - started < 0.5


def test_outside_world_uses_documentation_addresses_only(lab: DataplaneLab) -> None:
    fabric = ipaddress.ip_network(A.FABRIC_CIDR)
    for role in ("router", "outside", "client", "internet"):
        out = sh(lab.plane.ns(role), ["ip", "-j", "addr"])
        for link in json.loads(out):
            for addr in link.get("addr_info", []):
                if addr["family"] != "inet" or addr["local"].startswith("127."):
                    continue
                ip = ipaddress.ip_address(addr["local"])
                assert ip in fabric or A.is_documentation_address(str(ip)), f"{role}: {ip}"
    router_routes = sh(lab.plane.router_netns(), ["ip", "route"])
    assert "default" not in router_routes  # the router leads nowhere beyond the lab
    for role in ("outside", "client"):
        assert "default via 203.0.113.1" in sh(lab.plane.ns(role), ["ip", "route"])


def test_destroy_works_after_the_builder_died(tmp_path: Path) -> None:
    name = lab_name("dpd")
    script = (
        "import sys; from pathlib import Path; from netconform.lab.net.netplane import Netplane\n"
        f"p = Netplane({name!r}, nodes=2, state_dir=Path({str(tmp_path)!r})); p.build()\n"
        "p.add_pod('default/x', 'node-2', '10.244.2.9', 'nameserver 10.96.0.10\\n')\n"
        "print(p.state().processes)\n"
    )
    try:
        built = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert built.returncode == 0, built.stderr[-500:]
        namespaces = [n for n in netns_list() if n.startswith(A.ns_prefix(name))]
        assert len(namespaces) == 1 + 2 + 4 + 1  # fabric, nodes, router/outside/client/internet, pod
        pids = [int(p["pid"]) for p in Netplane.load(name, tmp_path).state().processes.values()]
        assert pids and all(process_alive(pid) for pid in pids)
    finally:
        removed = destroy_lab(name, tmp_path)
    assert sorted(removed) == sorted(namespaces)
    assert not [n for n in netns_list() if n.startswith(A.ns_prefix(name))]
    assert not [e for e in NETNS_ETC.iterdir() if e.name.startswith(A.ns_prefix(name))]
    assert not any(process_alive(pid) for pid in pids)
    assert not (tmp_path / "netplane.json").exists()
    root_links = subprocess.run(["ip", "-o", "-d", "link"], capture_output=True, text=True, timeout=10).stdout
    assert A.ns_prefix(name) not in root_links
    assert destroy_lab(name, tmp_path) == []  # idempotent
    with pytest.raises(NetplaneError, match="no data plane state"):
        Netplane.load(name, tmp_path)
