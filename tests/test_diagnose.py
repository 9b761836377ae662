"""The flowchart over collected evidence: each pattern names its first broken hop and captures."""

from __future__ import annotations

from collections.abc import Callable

from netconform.checks.mesh import describe_partition, partition
from netconform.engine.diagnose import Addresses, diagnose, evidence_cells
from netconform.model.cell import Cell
from tests.suite_helpers import topology

TOPO = topology(3)
ADDRS = Addresses(
    node_ip={f"node-{i}": f"10.89.0.{10 + i}" for i in (1, 2, 3)},
    echo_ip={f"node-{i}": f"10.244.{i}.11" for i in (1, 2, 3)},
    probe_ip={f"node-{i}": f"10.244.{i}.10" for i in (1, 2, 3)},
    clusterip="10.96.0.20",
    lb_ip="10.89.0.200",
    nodeports={"tcp": 30900, "udp": 30901, "http": 30080},
    service_ports={"tcp": 9000, "udp": 9001, "http": 80},
    echo_ports={"tcp": 9000, "udp": 9001, "http": 8080},
    dns_ip="10.96.0.10",
    coredns={"node-1": ["10.244.1.53"], "node-2": ["10.244.2.53"]},
    external_host="203.0.113.10",
    external_port=80,
)


def lookup_from(failing: set[str], default: str = "passed") -> Callable[[Cell], str]:
    def outcome(cell: Cell) -> str:
        return "failed" if cell.id in failing else default

    return outcome


CHANNELS = ("L3-icmp", "L3-mtu", "L4-tcp", "L4-udp", "L7-http")


def every_channel(*paths: str) -> set[str]:
    """A broken path breaks every channel on it: "pod@a->pod@b" -> its ICMP, MTU, TCP, UDP, HTTP cells."""
    return {f"{path}/{channel}" for path in paths for channel in CHANNELS}


def test_cross_node_fails_same_node_works_points_at_the_tunnel() -> None:
    failing = every_channel(*(f"pod@{a}->pod@node-3" for a in ("node-1", "node-2")))
    failing |= every_channel(*(f"pod@node-3->pod@{b}" for b in ("node-1", "node-2")))
    cell = Cell("pod@node-1", "pod@node-3", "L4", "tcp")
    found = diagnose(cell, TOPO, ADDRS, lookup_from(failing))
    assert found is not None and found.fm == "FM-09"
    assert "UDP 6081" in found.hop
    assert any("udp port 6081 and host 10.89.0.13" in c for c in found.capture)
    assert any("host 10.244.3.11 and port 9000" in c for c in found.capture)


def test_node_cannot_reach_its_own_pod_points_at_the_pod_route() -> None:
    failing = every_channel("host@node-2->pod@node-2", "pod@node-1->pod@node-2")
    found = diagnose(Cell("pod@node-1", "pod@node-2", "L4", "tcp"), TOPO, ADDRS, lookup_from(failing))
    assert found is not None and found.fm == "FM-10"
    assert "ip route get 10.244.2.11" in " ".join(found.capture)


def test_underlay_failure_is_named_before_the_tunnel() -> None:
    failing = every_channel("pod@node-1->pod@node-2") | {"host@node-1->node@node-2/L3-icmp"}
    found = diagnose(Cell("pod@node-1", "pod@node-2", "L4", "tcp"), TOPO, ADDRS, lookup_from(failing))
    assert found is not None and found.fm == "FM-13" and "node network" in found.hop


def test_vip_fails_but_backends_answer_points_at_service_nat() -> None:
    failing = {f"pod@node-{i}->clusterip/L4-tcp" for i in (1, 2, 3)}
    found = diagnose(Cell("pod@node-1", "clusterip", "L4", "tcp"), TOPO, ADDRS, lookup_from(failing))
    assert found is not None and found.fm == "FM-08"
    assert "host 10.96.0.20 and port 9000" in found.capture[0]
    assert evidence_cells(Cell("pod@node-1", "clusterip", "L4", "tcp"), TOPO)[0] == Cell(
        "pod@node-1", "pod@node-1", "L4", "tcp"
    )


def test_lb_vip_without_arp_answer_points_at_the_announcement() -> None:
    failing = {"external->lb-vip/L4-tcp"} | {f"host@node-{i}->lb-vip/L2-arp" for i in (1, 2, 3)}
    found = diagnose(Cell("external", "lb-vip", "L4", "tcp"), TOPO, ADDRS, lookup_from(failing))
    assert found is not None and found.fm == "FM-06"


def test_some_coredns_pods_answer_is_a_pattern() -> None:
    failing = {"pod@node-3->dns-internal/DNS-udp", "pod@node-3->coredns@node-2/DNS-udp"}
    found = diagnose(Cell("pod@node-3", "dns-internal", "DNS", "udp"), TOPO, ADDRS, lookup_from(failing))
    assert found is not None and found.fm == "FM-22"
    assert "node-2" in found.hop and "10.244.2.53" in found.capture[0]


def test_external_names_fail_internal_work_points_upstream() -> None:
    failing = {"pod@node-1->dns-external/DNS-udp", "host@node-1->nameserver@node-1/DNS-udp"}
    found = diagnose(Cell("pod@node-1", "dns-external", "DNS", "udp"), TOPO, ADDRS, lookup_from(failing))
    assert found is not None and found.fm == "FM-23" and "node-1" in found.summary


def test_egress_fails_while_node_reaches_outside_points_at_snat() -> None:
    failing = {"pod@node-2->outside/L4-snat"}
    found = diagnose(Cell("pod@node-2", "outside", "L4", "snat"), TOPO, ADDRS, lookup_from(failing))
    assert found is not None and found.fm == "FM-11" and "203.0.113.10" in found.capture[0]
    failing.add("host@node-2->outside/L4-tcp")
    found = diagnose(Cell("pod@node-2", "outside", "L4", "snat"), TOPO, ADDRS, lookup_from(failing))
    assert found is not None and found.fm == "FM-12"


def test_partition_groups_nodes() -> None:
    failing = {
        f"pod@{a}->pod@{b}/L4-tcp"
        for a, b in (("node-1", "node-3"), ("node-2", "node-3"), ("node-3", "node-1"), ("node-3", "node-2"))
    }
    groups, broken = partition(TOPO, lookup_from(failing))
    assert groups == [["node-1", "node-2"], ["node-3"]] and len(broken) == 4
    assert "{node-1, node-2} | {node-3}" in (describe_partition(TOPO, lookup_from(failing)) or "")
    assert describe_partition(TOPO, lookup_from(set())) is None


def test_unmeasured_neighbours_give_no_guess() -> None:
    found = diagnose(Cell("pod@node-1", "clusterip", "L4", "tcp"), TOPO, ADDRS, lambda c: None)
    assert found is None


def test_an_answer_from_the_pod_is_not_blamed_on_routes() -> None:
    """refused/reset/HTTP errors mean the packet arrived: the endpoint is named, not the pod route."""
    failing = every_channel("host@node-2->pod@node-2", "pod@node-2->pod@node-2")
    cell = Cell("pod@node-2", "pod@node-2", "L4", "tcp")
    routed = diagnose(cell, TOPO, ADDRS, lookup_from(failing), "timeout")
    assert routed is not None and routed.fm == "FM-10"
    answered = diagnose(cell, TOPO, ADDRS, lookup_from(failing), "refused")
    assert answered is not None and answered.fm != "FM-10"
    assert answered.hop == "endpoint 10.244.2.11:9000 on node-2"
    assert "nothing listens" in answered.summary
    reset = diagnose(Cell("pod@node-1", "pod@node-3", "L4", "tcp"), TOPO, ADDRS, lookup_from(set()), "reset")
    assert reset is not None and reset.fm == "FM-02" and "conntrack" in reset.summary
    http = diagnose(
        Cell("pod@node-1", "pod@node-3", "L7", "http"), TOPO, ADDRS, lookup_from(set()), "http-status"
    )
    assert http is not None and http.fm == "FM-01" and http.hop.endswith(":8080 on node-3")


def test_one_port_dropped_on_a_path_that_carries_the_others_is_a_filter_not_the_tunnel() -> None:
    """HTTP to node-3's pod times out while ICMP, TCP, UDP and big DF packets on the same path pass:
    the routes and the tunnel deliver, so the first broken hop is a rule on port 8080."""
    failing = {"pod@node-1->pod@node-3/L7-http", "pod@node-3->pod@node-3/L7-http"}
    cell = Cell("pod@node-1", "pod@node-3", "L7", "http")
    found = diagnose(cell, TOPO, ADDRS, lookup_from(failing), "timeout")
    assert found is not None and found.fm == "FM-19", found
    assert found.hop == "HTTP to port 8080 on the path node-1 -> node-3"
    assert "ICMP (ping), large packets with DF set (MTU), TCP and UDP" in found.summary
    assert "tunnel deliver" in found.summary and "drops it (on node-1, node-3 or between)" in found.summary
    assert "on node-1: tcpdump -ni any 'host 10.244.1.10 and host 10.244.3.11 and port 8080'" in found.capture
    assert any(c.startswith("on node-3: iptables-save -c") for c in found.capture)
    # the same path broken for every channel is not a port filter: the tunnel again
    tunnel = diagnose(cell, TOPO, ADDRS, lookup_from(every_channel("pod@node-1->pod@node-3")), "timeout")
    assert tunnel is not None and tunnel.fm == "FM-09", tunnel
    # small UDP and the MTU check's large datagrams (UDP to the same port) lost, TCP and ICMP fine: a port
    udp = every_channel("pod@node-1->pod@node-3") - {
        "pod@node-1->pod@node-3/L3-icmp",
        "pod@node-1->pod@node-3/L4-tcp",
    }
    udp -= {"pod@node-1->pod@node-3/L7-http"}
    for proto in ("udp", "mtu"):
        found = diagnose(
            Cell("pod@node-1", "pod@node-3", "L3" if proto == "mtu" else "L4", proto),
            TOPO,
            ADDRS,
            lookup_from(udp),
            "timeout",
        )
        assert found is not None and found.fm == "FM-19", found
        assert found.hop == "UDP to port 9001 on the path node-1 -> node-3", found
    # large packets lost as well: a size problem, never called a port filter
    sized = diagnose(cell, TOPO, ADDRS, lookup_from(failing | {"pod@node-1->pod@node-3/L3-mtu"}), "timeout")
    assert sized is not None and sized.fm != "FM-19", sized


def test_http_to_a_vip_whose_backends_drop_http_is_not_blamed_on_service_nat() -> None:
    failing = {"pod@node-1->clusterip/L7-http"} | {f"pod@node-1->pod@node-{i}/L7-http" for i in (1, 2, 3)}
    cell = Cell("pod@node-1", "clusterip", "L7", "http")
    assert Cell("pod@node-1", "pod@node-2", "L7", "http") in evidence_cells(cell, TOPO)
    found = diagnose(cell, TOPO, ADDRS, lookup_from(failing), "timeout")
    assert found is not None and found.fm == "FM-19", found
    assert "over TCP (port 9000) but not over HTTP (port 8080)" in found.summary
    assert found.capture[0] == "on node-1: tcpdump -ni any 'host 10.96.0.20 and port 80'"
    # only the VIP fails over HTTP: service NAT, on the Service's HTTP port
    nat = diagnose(cell, TOPO, ADDRS, lookup_from({"pod@node-1->clusterip/L7-http"}), "timeout")
    assert nat is not None and nat.fm == "FM-08" and nat.hop == "service NAT 10.96.0.20:80", nat


def test_a_vip_that_fails_when_it_picks_one_unreachable_backend_names_that_backend() -> None:
    failing = {"pod@node-1->clusterip/L4-tcp", "pod@node-1->pod@node-3/L4-tcp"}
    found = diagnose(
        Cell("pod@node-1", "clusterip", "L4", "tcp"), TOPO, ADDRS, lookup_from(failing), "timeout"
    )
    assert found is not None and found.fm == "FM-13", found
    assert found.hop == "backend pods on node-3"
    assert "except those on node-3" in found.summary and "not the service NAT" in found.summary
    assert "on node-3: tcpdump -ni any 'host 10.244.3.11 and port 9000'" in found.capture
