"""The component parsers on samples of the real tools' output, and the judges on a fake API.

Samples are quoted from the projects' documentation and issue reports as far as recalled here (the
search tool was not used); each names its source. The lab's own programs print the same formats, so
the last tests run the lab CLI scripts directly and parse what they print.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from netconform.checks import components as C
from netconform.checks.context import Skip
from netconform.model.topology import PodInfo, Topology
from tests.suite_helpers import topology

# Cilium v1.14 `cilium status --all-health` (docs.cilium.io "Troubleshooting", cmd/status output of
# pkg/health/client GetAndFormatHealthStatus: `Cluster health: N/M reachable (time)` then a
# Name/IP/Node/Endpoints table, names prefixed with the cluster name since 1.14).
CILIUM_STATUS_HEALTHY = """\
KVStore:                 Ok   Disabled
Kubernetes:              Ok   1.27 (v1.27.3) [linux/amd64]
Kubernetes APIs:         ["cilium/v2::CiliumClusterwideNetworkPolicy", "cilium/v2::CiliumNetworkPolicy"]
KubeProxyReplacement:    Strict   [eth0 172.18.0.3 (Direct Routing)]
Cilium:                  Ok   1.14.2 (v1.14.2-a6748946)
NodeMonitor:             Listening for events on 8 CPUs with 64x4096 of shared memory
Cilium health daemon:    Ok
IPAM:                    IPv4: 5/254 allocated from 10.244.0.0/24,
Controller Status:       30/30 healthy
Cluster health:          2/2 reachable   (2023-09-20T10:40:05Z)
  Name                                        IP              Node        Endpoints
  kind-kind/kind-control-plane (localhost)    172.18.0.3      reachable   reachable
  kind-kind/kind-worker                       172.18.0.2      reachable   reachable
"""
CILIUM_STATUS_PARTITION = """\
Cilium:                  Ok   1.14.2 (v1.14.2-a6748946)
Cluster health:          1/2 reachable   (2023-09-20T10:41:05Z)
  Name                                        IP              Node          Endpoints
  kind-kind/kind-worker                       172.18.0.2      unreachable   unreachable
"""
# Cilium <= 1.13 prints plain node names
CILIUM_STATUS_OLD = """\
Cluster health:   2/3 reachable   (2021-03-17T12:02:05Z)
  Name              IP              Node          Endpoints
  worker-2          10.0.0.12       unreachable   reachable
"""
# `cilium monitor --type drop` (docs.cilium.io "Troubleshooting: Monitoring Datapath State")
MONITOR_DROPS = """\
Listening for events on 8 CPUs with 64x4096 of shared memory
Press Ctrl-C to quit
xx drop (Policy denied) flow 0x6c4d8e9b to endpoint 1234, ifindex 5, file bpf_lxc.c:1950, , identity 12345->67890: 10.0.1.215:44806 -> 10.0.0.36:80 tcp SYN
xx drop (Service backend not found) flow 0x0 to endpoint 0, ifindex 0, file bpf_lxc.c:1001, , identity 12345->world: 10.0.1.215:5555 -> 10.96.5.5:80 tcp SYN
xx drop (Invalid source ip) flow 0x0 to endpoint 0, ifindex 29, file bpf_lxc.c:1401, , identity unknown->unknown: fe80::a8b9:e4ff:fe5a:5 -> ff02::2 RouterSolicitation
"""
# bpftool v7 `map show pinned` / `map dump pinned` without BTF (bpftool-map(8): hex bytes, groups of 8,
# last line `Found N elements`); the seed reads the count with `| tail -n -1`
BPFTOOL_SHOW = """\
523: hash  name cilium_lb4_serv  flags 0x1
\tkey 12B  value 12B  max_entries 65536  memlock 6291456B
"""
BPFTOOL_SHOW_JSON = (
    '{"id":523,"type":"hash","name":"cilium_lb4_serv","flags":1,"bytes_key":12,"bytes_value":12,'
    '"max_entries":65536,"bytes_memlock":6291456,"frozen":0}'
)
BPFTOOL_DUMP = """\
key: 0a 60 00 01 01 bb 00 00  06 00 00 00  value: 00 00 00 00 01 00 00 01  00 00 00 00
key: 0a 60 00 01 01 bb 01 00  06 00 00 00  value: 0b 00 00 00 00 00 00 01  00 00 00 00
Found 2 elements
"""
BPFTOOL_DUMP_JSON = '[{"key":["0x0a","0x60"],"value":["0x00"]},{"key":["0x0a","0x61"],"value":["0x00"]}]'
# MetalLB v0.13 speaker, layer 2 (metallb.io "Troubleshooting": speaker logs, one JSON object a line)
METALLB_SPEAKER = """\
{"caller":"announcer.go:126","event":"createARPResponder","interface":"eth0","level":"info","msg":"created ARP responder for interface","ts":"2023-05-10T09:12:41Z"}
{"caller":"main.go:374","event":"serviceAnnounced","ips":["192.168.1.240"],"level":"info","msg":"service has IP, announcing","pool":"first-pool","protocol":"layer2","service":"default/nginx","ts":"2023-05-10T09:12:45Z"}
{"caller":"main.go:374","event":"serviceAnnounced","ips":["192.168.1.241"],"level":"info","msg":"service has IP, announcing","pool":"first-pool","protocol":"layer2","service":"default/web","ts":"2023-05-10T09:12:46Z"}
{"caller":"main.go:416","event":"serviceWithdrawn","ip":["192.168.1.241"],"level":"info","msg":"withdrawing service announcement","reason":"notOwner","service":"default/web","ts":"2023-05-10T09:13:01Z"}
"""
# The seed's F5 ConfigMap data (GKE on-prem troubleshooting page, "El servicio de F5 no recibe tráfico")
F5_DATA = (
    '{"virtualServer":{"backend":{"serviceName":"kube-apiserver","servicePort":443,"healthMonitors":'
    '[{"protocol":"tcp","interval":5,"timeout":16}]},"frontend":{"virtualAddress":{"bindAddr":"21.1.7.16",'
    '"port":443},"partition":"herc-b5bead08c95b-admin","balance":"ratio-member","mode":"tcp"}}}'
)
F5_SCHEMA = "f5schemadb://bigip-virtual-server_v0.1.7.json"


def test_cilium_health_parses_counts_and_rows() -> None:
    healthy = C.parse_cilium_health(CILIUM_STATUS_HEALTHY)
    assert healthy is not None and (healthy.reachable, healthy.total) == (2, 2)
    assert [r[0] for r in healthy.rows] == ["kind-kind/kind-control-plane", "kind-kind/kind-worker"]
    assert healthy.unreachable() == []
    cut = C.parse_cilium_health(CILIUM_STATUS_PARTITION)
    assert cut is not None and (cut.reachable, cut.total) == (1, 2) and cut.unreachable() == ["kind-worker"]
    old = C.parse_cilium_health(CILIUM_STATUS_OLD)
    assert old is not None and old.unreachable() == ["worker-2"]
    assert C.parse_cilium_health("Cluster health:   Warning   cilium-health daemon unreachable") is None


def test_monitor_drops_are_parsed_with_reason_and_addresses() -> None:
    drops = C.parse_drops(MONITOR_DROPS)
    assert [d.reason for d in drops] == ["Policy denied", "Service backend not found", "Invalid source ip"]
    assert (drops[0].src, drops[0].dst, drops[0].proto) == ("10.0.1.215:44806", "10.0.0.36:80", "tcp")
    assert C.parse_drops("Listening for events on 8 CPUs with 64x4096 of shared memory\n") == []


def test_bpftool_show_and_dump() -> None:
    assert C.parse_map_max(BPFTOOL_SHOW) == 65536
    assert C.parse_map_max(BPFTOOL_SHOW_JSON) == 65536
    assert C.parse_map_count(BPFTOOL_DUMP) == 2
    assert C.parse_map_count("Found 1 element\n") == 1  # the seed's `| tail -n -1`
    assert C.parse_map_count(BPFTOOL_DUMP_JSON) == 2
    assert C.parse_map_count("\n".join(BPFTOOL_DUMP.splitlines()[:2])) == 2  # cut before "Found"
    assert C.parse_map_count("Error: bpf obj get (/sys/fs/bpf/tc/globals): No such file or directory") is None


def test_metallb_log_keeps_announce_and_withdraw_in_order() -> None:
    events = C.parse_metallb_log(METALLB_SPEAKER)
    assert [(e.event, e.ips) for e in events] == [
        ("serviceAnnounced", ("192.168.1.240",)),
        ("serviceAnnounced", ("192.168.1.241",)),
        ("serviceWithdrawn", ("192.168.1.241",)),
    ]
    assert events[0].service == "default/nginx" and events[0].node is None


def test_f5_config_map_of_the_seed() -> None:
    vs = C.parse_f5_config_map(
        {"name": "kube-server-443-tcp", "data": {"data": F5_DATA, "schema": F5_SCHEMA}}
    )
    assert vs == C.VirtualServer(
        "kube-server-443-tcp", "21.1.7.16", 443, "herc-b5bead08c95b-admin", "kube-apiserver", 443
    )
    assert C.parse_f5_config_map({"name": "x", "data": {"data": F5_DATA}}) is None  # no schema: not F5's
    assert C.parse_f5_config_map({"name": "x", "data": {"data": "{", "schema": F5_SCHEMA}}) is None


@pytest.mark.parametrize(
    "sync",
    [
        # k8s-bigip-ctlr 1.x's own line after each sync (F5Networks/k8s-bigip-ctlr issues #1023, #1255)
        "2024/05/02 10:00:0{} [INFO] Wrote 1 Virtual Server and 0 IApp configs",
        "2024/05/02 10:00:0{} [INFO] [x f5_cccl.service.manager INFO] F5 CCCL: apply config to partition P: 1",
    ],
)
def test_bigip_log_last_sync(sync: str) -> None:
    # f5-cccl resource lines are `<Verb> <Class>: /<partition>/<name>` under the controller's prefix
    # (layout of "Updating ApiApplicationService: /service/default_iapp-tcp", k8s-bigip-ctlr issue #1255)
    p = "2024/05/02 10:00:0{} [INFO] [2024-05-02 10:00:0{},123 f5_cccl.resource.resource INFO] {}"
    text = "\n".join(
        [
            p.format(1, 1, "Creating ApiVirtualServer: /P/ns_a-80-tcp"),
            sync.format(1),
            p.format(2, 2, "Deleting ApiVirtualServer: /P/ns_a-80-tcp"),
            p.format(2, 2, "Deleting ApiVirtualServer: /P/other_b-80-tcp"),
            p.format(2, 2, "Updating ApiApplicationService: /service/default_iapp-tcp"),  # not a virtual
            sync.format(2),
        ]
    )
    parsed = C.parse_bigip_log(text)
    assert parsed.deleted_last == [("P", "ns_a-80-tcp"), ("P", "other_b-80-tcp")]
    assert parsed.created == {("P", "ns_a-80-tcp")}


class FakeApi:
    def __init__(
        self,
        logs: dict[str, str] | None = None,
        execs: dict[str, str] | None = None,
        maps: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.logs, self.execs, self.maps = logs or {}, execs or {}, maps or {}

    def pod_log(self, namespace: str, name: str, tail_lines: int) -> str:
        return self.logs.get(name, "")

    def exec_command(self, namespace: str, name: str, command: list[str], deadline_s: float) -> str:
        return self.execs.get(" ".join(command), "")

    def config_maps(self, namespace: str) -> list[dict[str, Any]]:
        return self.maps.get(namespace, [])


def _pod(name: str, node: str) -> PodInfo:
    return PodInfo(name, "kube-system", node, "10.89.0.11", "Running", True, 0, None)


def _topo(**kw: Any) -> Topology:
    topo = topology(3)
    for k, v in kw.items():
        setattr(topo, k, v)
    return topo


def test_judges_skip_without_the_component() -> None:
    topo = _topo()
    with pytest.raises(Skip, match="no Cilium"):
        C.judge_cilium_health(topo, FakeApi(), 5)
    with pytest.raises(Skip, match="MetalLB is not in use"):
        C.judge_metallb(topo, FakeApi(), "10.89.0.200", lambda n, ip: [])
    with pytest.raises(Skip, match="F5 BIG-IP is not in use"):
        C.judge_f5(topo, FakeApi(), "10.89.0.200", [80])


def test_ebpf_judge_fails_at_ninety_percent_of_max_entries() -> None:
    topo = _topo(cni={"anetd": [_pod("anetd-a", "node-1")]})
    path = C.BPF_GLOBALS + "cilium_lb4_services_v2"
    back = C.BPF_GLOBALS + "cilium_lb4_backends_v3"
    execs = {
        f"bpftool map show pinned {path}": BPFTOOL_SHOW.replace("65536", "1000"),
        f"bpftool map dump pinned {path}": "Found 950 elements\n",
        f"bpftool map show pinned {back}": BPFTOOL_SHOW.replace("65536", "1000"),
        f"bpftool map dump pinned {back}": "Found 3 elements\n",
    }
    verdict = C.judge_ebpf_maps(topo, FakeApi(execs=execs), True, 5)
    assert verdict.outcome == "failed" and "950/1000 (95 %)" in verdict.reason
    execs[f"bpftool map dump pinned {path}"] = "Found 899 elements\n"
    assert C.judge_ebpf_maps(topo, FakeApi(execs=execs), True, 5).outcome == "passed"
    with pytest.raises(Skip, match="allow-privileged"):
        C.judge_ebpf_maps(topo, FakeApi(execs=execs), False, 5)


def test_metallb_judge_compares_the_logged_node_with_arp() -> None:
    line = json.dumps({"event": "serviceAnnounced", "ips": ["10.89.0.200"], "service": "ns/echo-lb"})
    topo = _topo(lb_controllers={"metallb": [_pod("metallb-speaker-x", "node-2")]})
    node2_mac, other = "02:00:00:00:00:02", "02:00:00:00:00:09"
    api = FakeApi(logs={"metallb-speaker-x": line})

    def arp(correct: bool) -> Any:
        return lambda frm, ip: [node2_mac] if ip == "10.89.0.12" or correct else [other]

    assert C.judge_metallb(topo, api, "10.89.0.200", arp(True)).outcome == "passed"
    wrong = C.judge_metallb(topo, api, "10.89.0.200", arp(False))
    assert wrong.outcome == "failed" and "names node-2" in wrong.reason
    silent = C.judge_metallb(topo, FakeApi(), "10.89.0.200", arp(True))
    assert silent.outcome == "failed" and "no MetalLB speaker announces" in silent.reason


ROOT = Path(__file__).resolve().parent.parent
LAB_CILIUM = ROOT / "netconform" / "lab" / "components" / "cilium.py"


def test_lab_programs_print_what_the_parsers_read(tmp_path: Path) -> None:
    """The lab's cilium/bpftool print the formats above (run as plain processes: no namespaces)."""
    (tmp_path / "cilium").mkdir()
    (tmp_path / "config.json").write_text(
        json.dumps({"node_ips": {"node-1": "10.89.0.11", "node-2": "10.89.0.12"}})
    )
    health = {
        "time": __import__("time").time(),
        "iso": "2024-05-02T10:00:00Z",
        "nodes": {
            "node-1": {"ip": "10.89.0.11", "reachable": True, "local": True},
            "node-2": {"ip": "10.89.0.12", "reachable": False},
        },
    }
    (tmp_path / "cilium" / "node-1.health.json").write_text(json.dumps(health))
    services = [
        {
            "key": "ns/s",
            "cluster_ip": "10.96.0.20",
            "lb_ips": [],
            "ports": [
                {
                    "protocol": "TCP",
                    "port": 80,
                    "node_port": None,
                    "name": "",
                    "backends": [["10.244.1.5", 8080], ["10.244.2.5", 8080]],
                }
            ],
        }
    ]
    (tmp_path / "cilium" / "services.json").write_text(json.dumps(services))
    env = {**os.environ, "NC_COMPONENTS_DIR": str(tmp_path), "NC_NODE_NAME": "node-1"}

    def run(*args: str) -> str:
        return subprocess.run(
            [sys.executable, str(LAB_CILIUM), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=True,
        ).stdout

    summary = C.parse_cilium_health(run("cli", "status", "--all-health"))
    assert summary is not None and (summary.reachable, summary.total) == (1, 2)
    assert summary.unreachable() == ["node-2"]
    path = C.BPF_GLOBALS + "cilium_lb4_services_v2"
    assert C.parse_map_count(run("bpftool", "map", "dump", "pinned", path)) == 3  # frontend + 2 slots
    assert C.parse_map_max(run("bpftool", "map", "show", "pinned", path)) == 4096
    back = C.BPF_GLOBALS + "cilium_lb4_backends_v3"
    assert C.parse_map_count(run("bpftool", "-j", "map", "dump", "pinned", back)) == 2


# The layouts below follow real outputs found in public reports (values changed, layout kept):
# - Cilium 1.17.0-dev `cilium-dbg status` on dual-stack clustermesh nodes (cilium/cilium issue #33697,
#   2024-07-17): the IP column holds "v4,v6" and names carry the cluster prefix;
# - Cilium 1.5-era `cilium status` (SUSE/skuba issue #403, 2019-06-19): columns `Reachable` and
#   `Endpoints reachable` with true/false instead of reachable/unreachable;
# - `cilium monitor --type drop` without the file/ifindex fields (gitlab-org/gitlab issue 270130, 2020);
# - MetalLB 0.8 speaker `serviceAnnounced` (metallb/metallb issue #430, 2019): no node field.
HEALTH_DUAL_STACK = """\
Cluster health:                             2/4 reachable             (2025-01-10T08:00:00Z)
  Name                                      IP                        Node          Endpoints
  mesh1/mesh1-control-plane                 10.20.0.3,fd00:20::3      unreachable   unreachable
  mesh1/mesh1-worker                        10.20.0.2,fd00:20::2      unreachable   reachable
"""
HEALTH_TRUE_FALSE = """\
Cluster health:   1/3 reachable   (2020-03-02T09:11:20Z)
  Name            IP              Reachable   Endpoints reachable
  alpha1          10.9.0.17       false       true
  alpha2          10.9.0.6        true        false
"""
DROP_SHORT = (
    "xx drop (Policy denied) flow 0x0 to endpoint 0, identity 4242->9191: 10.1.0.5:40001 -> 10.1.0.9:53 udp\n"
)
SPEAKER_08 = (
    '{"caller":"main.go:229","event":"serviceAnnounced","ip":"10.5.0.40","msg":"service has IP, announcing",'
    '"pool":"default","protocol":"layer2","service":"shop/web","ts":"2020-01-02T03:04:05.1Z"}\n'
)


def test_cilium_health_rows_in_every_known_layout() -> None:
    dual = C.parse_cilium_health(HEALTH_DUAL_STACK)
    assert dual is not None and (dual.reachable, dual.total) == (2, 4)
    assert [r[1] for r in dual.rows] == ["10.20.0.3,fd00:20::3", "10.20.0.2,fd00:20::2"]
    assert dual.unreachable() == ["mesh1-control-plane", "mesh1-worker"]
    old = C.parse_cilium_health(HEALTH_TRUE_FALSE)
    assert old is not None and (old.reachable, old.total) == (1, 3)
    assert [(r[0], r[2], r[3]) for r in old.rows] == [
        ("alpha1", "unreachable", "reachable"),
        ("alpha2", "reachable", "unreachable"),
    ]
    assert old.unreachable() == ["alpha1", "alpha2"]


def test_short_drop_lines_and_old_speaker_logs_parse() -> None:
    drops = C.parse_drops(DROP_SHORT)
    assert [(d.reason, d.src, d.dst, d.proto) for d in drops] == [
        ("Policy denied", "10.1.0.5:40001", "10.1.0.9:53", "udp")
    ]
    announced = C.parse_metallb_log(SPEAKER_08)
    assert [(a.event, a.ips, a.service, a.node) for a in announced] == [
        ("serviceAnnounced", ("10.5.0.40",), "shop/web", None)
    ]
