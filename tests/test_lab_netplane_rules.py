"""The data plane's pure parts, without root: addressing and the kube-proxy-like rule rendering.
(The rendered rules are loaded into real kernels by test_lab_netplane.py; here their shape.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netconform.lab.net import addressing as A
from netconform.lab.net import iptrules as R
from netconform.lab.net.iptrules import Backend, ServiceNAT, ServicePort
from netconform.lab.net.netplane import Netplane, NetplaneError


def test_contract_addresses() -> None:
    assert A.node_names(3) == ["node-1", "node-2", "node-3"]
    assert [A.node_ip(n) for n in A.node_names(3)] == ["10.89.0.11", "10.89.0.12", "10.89.0.13"]
    assert A.pod_cidr("node-2") == "10.244.2.0/24" and A.pod_gateway("node-2") == "10.244.2.1"
    assert A.lb_pool()[0] == "10.89.0.200" and A.lb_pool()[-1] == "10.89.0.239" and len(A.lb_pool()) == 40
    for ip in (
        A.OUTSIDE_ECHO_IP,
        A.UPSTREAM_DNS_IP,
        A.EXTERNAL_CLIENT_IP,
        A.INTERNET_ECHO_IP,
        A.DEAD_NAMESERVER_IP,
    ):
        assert A.is_documentation_address(ip)
    assert not A.is_documentation_address("10.89.0.1")


@pytest.mark.parametrize("bad", ["", "Default", "-x", "a_b", "x" * 25])
def test_bad_lab_names_are_refused(bad: str) -> None:
    with pytest.raises(A.AddressError, match="lab name"):
        A.check_lab_name(bad)


def test_bad_nodes_are_refused() -> None:
    with pytest.raises(A.AddressError):
        A.node_ip("worker-1")
    with pytest.raises(A.AddressError):
        A.node_names(0)


def test_namespace_patterns_never_take_another_labs_namespaces() -> None:
    mine = A.lab_namespace_pattern("a")
    assert mine.match("nc-a-fabric") and mine.match("nc-a-node-12") and mine.match("nc-a-p-0123abcd")
    for other in (
        "nc-a-p-fabric",
        "nc-a-p-node-1",
        "nc-a-b-p-0123abcd",
        "nc-ab-fabric",
        "nc-a-fabric2",
        "xnc-a-fabric",
    ):
        assert not mine.match(other), other
    anyone = A.lab_namespace_pattern()
    match = anyone.match("nc-a-p-node-1")
    assert match and match.group(1) == "a-p"


@given(st.text(min_size=1, max_size=80))
def test_pod_interface_names_fit_the_kernel_limit(key: str) -> None:
    assert len(A.pod_veth(key)) <= 15
    assert re.fullmatch(r"nc-lab-p-[0-9a-f]{8}", A.pod_netns("lab", key))


def _svc(backends: int = 3, node_port: int | None = 30080) -> ServiceNAT:
    bk = tuple(Backend(f"10.244.{i}.10", 8080) for i in range(1, backends + 1))
    return ServiceNAT(
        "default/echo",
        "10.96.0.50",
        (ServicePort("TCP", 80, bk, node_port=node_port, name="http"), ServicePort("UDP", 9001, bk[:1])),
        lb_ips=("10.89.0.200",),
    )


def test_service_rules_balance_and_masquerade_like_kube_proxy() -> None:
    text = str(R.render_node_tables([_svc()]))
    assert text.count("*nat") == 1 and text.count("*filter") == 1 and text.count("COMMIT") == 2
    probabilities = re.findall(r"--probability (\S+)", text)
    assert [round(float(p), 4) for p in probabilities] == [0.3333, 0.5]  # 1/3, then 1/2, then the rest
    assert "-d 10.96.0.50/32 -p tcp -m tcp --dport 80" in text
    assert "-d 10.89.0.200/32 -p tcp -m tcp --dport 80" in text
    assert "-A NC-NODEPORTS" in text and "--dport 30080" in text
    assert "! -s 10.244.0.0/16 -d 10.96.0.50/32" in text  # non-pod sources to a ClusterIP are masqueraded
    assert "-j DNAT --to-destination 10.244.2.10:8080" in text
    assert "-p udp -m udp -j DNAT --to-destination 10.244.1.10:8080" in text
    assert "-s 10.244.0.0/16 -o eth0 -j MASQUERADE" in text
    assert "REJECT" not in text
    assert all(len(c) <= 28 for c in re.findall(r"^:(\S+)", text, re.M))


def test_every_endpoint_chain_masquerades_the_endpoint_reaching_itself() -> None:
    """Hairpin, as kube-proxy: `-A KUBE-SEP-X -s <endpoint>/32 -j KUBE-MARK-MASQ` before the DNAT."""
    text = str(R.render_node_tables([_svc()]))
    sep_rules: dict[str, list[str]] = {}
    for line in text.splitlines():
        if match := re.match(r"-A (NC-SEP-\S+) (.*)", line):
            sep_rules.setdefault(match.group(1), []).append(match.group(2))
    assert len(sep_rules) == 3 + 1  # TCP 80: three endpoints, UDP 9001: one
    for chain, rules in sep_rules.items():
        assert len(rules) == 2, (chain, rules)
        endpoint = re.search(r"--to-destination ([\d.]+):", rules[1])
        assert endpoint, (chain, rules)
        assert rules[0] == f"-s {endpoint.group(1)}/32 -j NC-MARK-MASQ", (chain, rules)
    assert f"-A NC-MARK-MASQ -j MARK --set-xmark {A.MASQ_MARK}" in text
    assert f"-A NC-POSTROUTING -m mark --mark {A.MASQ_MARK} -j MASQUERADE" in text


def test_service_without_backends_is_rejected_not_translated() -> None:
    text = str(R.render_node_tables([_svc(backends=0)]))
    assert "DNAT" not in text
    assert text.count("-j REJECT") == 2 + 1 + 2  # TCP: ClusterIP, LB IP, NodePort; UDP: ClusterIP, LB IP


def test_headless_services_have_no_rules() -> None:
    headless = ServiceNAT("default/h", None, (ServicePort("TCP", 80, (Backend("10.244.1.5", 80),)),))
    assert R.render_node_tables([headless]) == R.render_node_tables([])


def test_fault_flags_change_only_their_part() -> None:
    healthy = str(R.render_node_tables([_svc()]))
    no_nat = str(R.render_node_tables([_svc()], [R.FLAG_NO_SERVICE_NAT]))
    assert "DNAT" not in no_nat and "-o eth0 -j MASQUERADE" in no_nat
    no_snat = str(R.render_node_tables([_svc()], [R.FLAG_NO_EGRESS_SNAT]))
    assert "-o eth0 -j MASQUERADE" not in no_snat and "DNAT" in no_snat
    exhausted = str(R.render_node_tables([_svc()], [R.FLAG_SNAT_EXHAUSTED]))
    assert exhausted.count("--to-ports 61000-61003") == 2
    blackhole = str(R.render_node_tables([_svc()], [R.FLAG_DROP_FRAG_NEEDED]))
    assert "fragmentation-needed -j DROP" in blackhole and "fragmentation-needed" not in healthy
    with pytest.raises(ValueError, match="unknown node flags"):
        R.render_node_tables([], ["bogus"])


def test_fabric_rules() -> None:
    ips = {n: A.node_ip(n) for n in A.node_names(3)}
    ports = {n: f"port-{n}" for n in ips}
    assert "DROP" not in str(R.render_fabric_table([], [], ips, ports))
    everywhere = str(R.render_fabric_table(["*"], [], ips, ports))
    assert "-A NC-FABRIC -p udp -m udp --dport 6081 -j DROP" in everywhere
    one = str(R.render_fabric_table(["node-2"], [], ips, ports))
    assert "-s 10.89.0.12/32 -p udp" in one and "-d 10.89.0.12/32 -p udp" in one
    cut = str(R.render_fabric_table([], ["node-3"], ips, ports))
    assert cut.count("-j DROP") == 4  # both directions to each of the two other nodes
    assert "--physdev-in port-node-3 --physdev-out port-node-1" in cut


def test_service_json_round_trip() -> None:
    svc = _svc()
    assert ServiceNAT.from_json(svc.to_json()) == svc


def test_bad_service_ports_are_refused() -> None:
    with pytest.raises(ValueError, match="protocol"):
        ServicePort("SCTP", 80)
    with pytest.raises(ValueError, match=r"1\.\.65535"):
        ServicePort("TCP", 70000)


@pytest.mark.parametrize(
    ("cluster_ip", "lb_ips", "message"),
    [
        ("10.97.0.1", (), "outside 10.96.0.0/16"),
        ("bogus", (), "not an IPv4 address"),
        ("10.96.0.9", ("x",), "'x'"),
    ],
)
def test_sync_services_refuses_bad_addresses_before_touching_anything(
    tmp_path: Path, cluster_ip: str, lb_ips: tuple[str, ...], message: str
) -> None:
    plane = Netplane("unit", nodes=1, state_dir=tmp_path)
    with pytest.raises(NetplaneError, match=message):
        plane.sync_services([ServiceNAT("default/x", cluster_ip, (ServicePort("TCP", 80),), lb_ips)])
    assert not (tmp_path / "netplane.json").exists()
