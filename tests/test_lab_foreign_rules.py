"""A lab node runs beside other software, like a real node: firewall rules that are not the lab's survive
its resyncs, its faults and `fault clear`, and still take effect.

kube-proxy writes only its own chains and the jumps into them; the lab does the same (`NC-*` chains,
`iptables-restore --noflush`). So a rule an admin adds with `iptables -I FORWARD ...` and a table a
security agent adds with `nft` stay exactly as they were while Services, pods and faults come and go,
and a foreign DROP between two nodes' pod CIDRs fails exactly the suite's cells that cross it.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netconform.lab.cluster import Lab
from tests.can_run import needs
from tests.dataplane_helpers import http, probe, sh, tcp
from tests.lab_helpers import cli, echo_pod, namespace_api, remove, start, wait_for

pytestmark = [needs("lab"), pytest.mark.xdist_group("lab-shared"), pytest.mark.lab, pytest.mark.root]

NS = "foreign"
COUNTERS = re.compile(r"^\[\d+:\d+\] ")
MARK = "foreign-test"  # the comment every foreign iptables rule of this module carries
FOREIGN_TABLE = "foreigntest"
# rules somebody else put on node-2, in three tables (one of which the lab never uses)
FOREIGN_RULES = (
    ("filter", ["-I", "FORWARD", "1", "-s", "10.244.250.250/32", "-j", "DROP"]),
    ("filter", ["-A", "INPUT", "-p", "tcp", "--dport", "7777", "-j", "REJECT"]),
    ("nat", ["-I", "POSTROUTING", "1", "-s", "10.244.250.251/32", "-j", "RETURN"]),
    ("mangle", ["-A", "PREROUTING", "-s", "10.244.250.252/32", "-j", "MARK", "--set-mark", "0x7"]),
)
NFT_TABLE = f"""table inet {FOREIGN_TABLE} {{
    chain guard {{
        type filter hook forward priority 10; policy accept;
        ip saddr 10.244.250.253 drop
    }}
}}
"""


def node_ns(lab: Lab, node: str) -> str:
    return f"nc-{lab.name}-{node}"


def foreign_state(netns: str) -> tuple[list[str], str]:
    """The foreign iptables rules (in order, per table) and the foreign nft table, as the kernel has them."""
    saved = sh(netns, ["iptables-save"])
    table, rules = "", []
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif MARK in line:
            rules.append(f"{table}: {COUNTERS.sub('', line)}")
    return rules, sh(netns, ["nft", "list", "table", "inet", FOREIGN_TABLE])


def lab_rules(netns: str) -> list[str]:
    """The lab's own rules in a namespace (NC-* chains and the jumps into them), without counters."""
    return [ln for ln in sh(netns, ["iptables-save"]).splitlines() if "NC-" in ln and not ln.startswith("#")]


def nft(netns: str, script: str) -> None:
    """Load an nft script in `netns` (as a security agent would), failing loudly."""
    proc = subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", "nft", "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def quietly(netns: str, argv: list[str]) -> None:
    """Undo a foreign rule; it may already be gone (the test failed before adding it)."""
    argv = ["nsenter", f"--net=/run/netns/{netns}", *argv]
    subprocess.run(argv, capture_output=True, timeout=10, check=False)


def add_foreign(netns: str) -> None:
    for table, args in FOREIGN_RULES:
        sh(netns, ["iptables", "-w", "5", "-t", table, *args, "-m", "comment", "--comment", MARK])
    nft(netns, NFT_TABLE)


def remove_foreign(netns: str) -> None:
    for table, args in FOREIGN_RULES:
        spec = args[3:] if args[0] == "-I" else args[2:]
        comment = ["-m", "comment", "--comment", MARK]
        quietly(netns, ["iptables", "-w", "5", "-t", table, "-D", args[1], *spec, *comment])
    quietly(netns, ["nft", "delete", "table", "inet", FOREIGN_TABLE])


@pytest.fixture(scope="module")
def core(lab_api: Any) -> Iterator[Any]:
    yield from namespace_api(lab_api, NS)


@pytest.fixture
def foreign_on_node2(lab: Lab) -> Iterator[str]:
    netns = node_ns(lab, "node-2")
    add_foreign(netns)
    try:
        yield netns
    finally:
        remove_foreign(netns)


def test_foreign_rules_survive_services_pods_and_faults(
    lab: Lab,
    core: Any,
    foreign_on_node2: str,
) -> None:
    netns = foreign_on_node2
    before = foreign_state(netns)
    assert len(before[0]) == len(FOREIGN_RULES) and "10.244.250.253" in before[1], before
    healthy = lab_rules(netns)

    def unchanged(step: str) -> None:
        assert foreign_state(netns) == before, f"after {step}"

    # pod and Service churn: every change rewrites node-2's service rules
    ip, _ = start(lab, core, echo_pod("web", "node-2", NS))
    service = {
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "type": "NodePort",
            "selector": {"netconform.io/role": "echo"},
            "ports": [{"name": "tcp", "port": 9000, "targetPort": 9000, "protocol": "TCP"}],
        },
    }
    created = core.create_namespaced_service(NS, service)
    cluster_ip = created.spec.cluster_ip
    try:
        wait_for(
            f"node-2's rules to DNAT {cluster_ip} to {ip}",
            lambda: (
                cluster_ip in sh(netns, ["iptables-save", "-t", "nat"])
                and f"--to-destination {ip}:9000" in sh(netns, ["iptables-save", "-t", "nat"])
            ),
        )
        unchanged("a NodePort Service got an endpoint")
    finally:
        core.delete_namespaced_service("web", NS)
    wait_for(
        f"{cluster_ip} gone from node-2", lambda: cluster_ip not in sh(netns, ["iptables-save", "-t", "nat"])
    )
    unchanged("the Service was deleted")
    remove(core, NS, "web")
    unchanged("the pod was deleted")
    assert lab_rules(netns) == healthy  # stale service chains went, the lab's own are as they were

    # faults rendered into node-2's own chains and the fabric, then cleared
    for fault, node in (
        ("service-nat-missing", "node-2"),
        ("snat-missing", "node-2"),
        ("mtu-blackhole", "node-2"),
        ("tunnel-blocked", None),
    ):
        added = lab.fault_add(fault, node)
        try:
            assert added, fault
            unchanged(f"fault add {fault}")
        finally:
            lab.fault_clear(fault)
        unchanged(f"fault clear {fault}")
        assert lab_rules(netns) == healthy, f"the lab's own rules after clearing {fault}"


def test_a_foreign_nft_drop_takes_effect_and_goes_with_its_table(
    lab: Lab,
    core: Any,
) -> None:
    """A security agent's nftables table on node-2 drops TCP 9000 to one pod: TCP 8080 to it still works."""
    ip, _ = start(lab, core, echo_pod("target", "node-2", NS))
    netns = node_ns(lab, "node-2")
    chain = f"chain guard {{ type filter hook forward priority 5; ip daddr {ip} tcp dport 9000 drop; }}"
    try:
        nft(netns, f"table inet {FOREIGN_TABLE}x {{\n{chain}\n}}\n")
        client = node_ns(lab, "node-1")
        during = probe(client, [tcp("blocked", ip, 9000, timeout=1.0), http("open", f"http://{ip}:8080/")])
        assert during["blocked"]["error"] == "timeout" and during["open"]["ok"], during
        lab.fault_add("service-nat-missing", "node-2")  # a resync of node-2's rules meanwhile
        lab.fault_clear("service-nat-missing")
        again = probe(client, [tcp("blocked", ip, 9000, timeout=1.0)])
        assert again["blocked"]["error"] == "timeout", again
        quietly(netns, ["nft", "delete", "table", "inet", f"{FOREIGN_TABLE}x"])
        healed = probe(client, [tcp("blocked", ip, 9000, timeout=2.0)])
        assert healed["blocked"]["ok"], healed
    finally:
        quietly(netns, ["nft", "delete", "table", "inet", f"{FOREIGN_TABLE}x"])
        remove(core, NS, "target")


CELLS_K = "test_pod_to_pod_tcp or test_pod_to_pod_udp or test_pod_to_pod_icmp or test_node_reaches_own_pods"


def test_a_foreign_drop_between_two_nodes_pod_cidrs_fails_exactly_those_cells(
    lab: Lab,
    tmp_path: Path,
) -> None:
    """`iptables -I FORWARD -s <node-1 pods> -d <node-2 pods> -j DROP` on node-1, then a suite run.

    node-1 forwards what its pods send to node-2's pods (dropped) and the replies of its pods to node-2's
    pods (dropped too): pod@node-1 <-> pod@node-2 fail in both directions, over every protocol; every
    other pod pair and each node's own pods pass.
    """
    netns = node_ns(lab, "node-1")
    match = ["-s", "10.244.1.0/24", "-d", "10.244.2.0/24", "-m", "comment", "--comment", MARK, "-j", "DROP"]
    sh(netns, ["iptables", "-w", "5", "-I", "FORWARD", "1", *match])
    try:
        proc = cli(
            *("run", "--lab", lab.name, "--probe-timeout", "1", "--attempts", "2", "--ready-timeout", "40"),
            *("--out", str(tmp_path), "--no-html", "--", "-k", CELLS_K),
            timeout=180,
        )
        # the lab rewrote node-1's rules while the run's Services came and went: the DROP is still there
        assert MARK in sh(netns, ["iptables-save", "-t", "filter"])
    finally:
        quietly(netns, ["iptables", "-w", "5", "-D", "FORWARD", *match])
    results = json.loads((tmp_path / "results.json").read_text())
    cells = results["cells"]
    assert len(cells) == 9 * 3 + 3, [c["test"] for c in cells]  # 9 pod pairs x 3 protocols, 3 own-pod cells
    crossing = {("pod@node-1", "pod@node-2"), ("pod@node-2", "pod@node-1")}
    for cell in cells:
        expected = "failed" if (cell["subject"], cell["target"]) in crossing else "passed"
        assert cell["outcome"] == expected, (cell["test"], cell["outcome"], cell["reason"])
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-2000:]
