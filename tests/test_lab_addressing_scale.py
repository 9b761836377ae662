"""The 100-node address plan (docs/contracts.md §3, docs/scale.md): every address inside the lab's private
ranges, none on a documentation range, the host guard covering exactly the private ranges."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from netconform.lab.net import addressing as A
from netconform.lab.net import hostguard, hostlimits


def test_a_hundred_nodes_fit_the_plan() -> None:
    nodes = A.node_names(A.MAX_NODES)
    assert len(nodes) == 100 and nodes[-1] == "node-100"
    fabric = ipaddress.ip_network(A.FABRIC_CIDR)
    assert fabric.prefixlen <= 22
    pool = {ipaddress.ip_address(ip) for ip in A.lb_pool()}
    reserved = {ipaddress.ip_address(A.ROUTER_FABRIC_IP), ipaddress.ip_address(A.CONTROL_PLANE_VIP)}
    node_ips = [ipaddress.ip_address(A.node_ip(n)) for n in nodes]
    assert len(set(node_ips)) == 100
    assert all(ip in fabric and ip not in pool and ip not in reserved for ip in node_ips)
    cidrs = [ipaddress.ip_network(A.pod_cidr(n)) for n in nodes]
    supernet = ipaddress.ip_network(A.POD_SUPERNET)
    assert all(c.subnet_of(supernet) for c in cidrs)  # type: ignore[arg-type]
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])
    for ip in [*map(str, node_ips), A.LB_POOL_FIRST, A.LB_POOL_LAST, A.pod_gateway("node-100")]:
        assert not A.is_documentation_address(ip), ip


@pytest.mark.parametrize("bad", ["node-0", "node-101", "node-1000", "node-01"])
def test_nodes_beyond_the_plan_are_refused(bad: str) -> None:
    with pytest.raises(A.AddressError):
        A.node_ip(bad)
    with pytest.raises(A.AddressError):
        A.node_names(A.MAX_NODES + 1)


def test_the_guard_covers_the_private_ranges_and_never_a_documentation_range() -> None:
    guarded = [str(n) for n in hostguard.GUARDED_RANGES]
    assert guarded == [A.FABRIC_CIDR, A.POD_SUPERNET, A.SERVICE_CIDR]
    assert not any(n.overlaps(d) for n in hostguard.GUARDED_RANGES for d in A.DOCUMENTATION_NETS)
    registry = ipaddress.ip_address("203.0.113.80")  # the machine's package registries
    assert not any(registry in n for n in hostguard.GUARDED_RANGES)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to write the neighbour table limits")
def test_neighbour_table_limits_only_go_up() -> None:
    thresh3 = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
    before = int(thresh3.read_text())
    hostlimits.ensure_neighbour_capacity(1)
    after = int(thresh3.read_text())
    assert after >= max(before, hostlimits.needed_entries(1))
    assert hostlimits.ensure_neighbour_capacity(1) is None  # enough now: nothing changes
    assert int(thresh3.read_text()) == after


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to write the receive backlog")
def test_receive_backlog_only_goes_up() -> None:
    before = int(hostlimits.BACKLOG.read_text())
    hostlimits.ensure_backlog_capacity(20)
    after = int(hostlimits.BACKLOG.read_text())
    assert after >= max(before, hostlimits.needed_backlog(20)) > hostlimits.BASE_BACKLOG
    assert hostlimits.ensure_backlog_capacity(3) is None  # a smaller lab never lowers it
    assert int(hostlimits.BACKLOG.read_text()) == after
