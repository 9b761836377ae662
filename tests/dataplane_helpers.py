"""Shared by the data-plane tests: a 3-node Netplane with pods, echo backends, cluster DNS and
Services, built without the control plane, and a probe that runs the real agent inside a namespace.

Topology built by `build_test_lab` (all inside `nc-<lab>-*` namespaces):
  node-1: pod a1 10.244.1.10 (client), a2 10.244.1.11 (echo), dns1 10.244.1.53 (clusterdns)
  node-2: pod b1 10.244.2.10 (echo), dns2 10.244.2.53 (clusterdns)
  node-3: pod c1 10.244.3.10 (echo)
  Services: echo 10.96.0.50 (TCP 80→8080 NodePort 30080, TCP 9000, UDP 9001, LB 10.89.0.200 on node-2),
            kube-dns 10.96.0.10 (UDP+TCP 53 → dns1, dns2), empty 10.96.0.51 (no endpoints).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode

from netconform.lab.net import addressing as A
from netconform.lab.net.netplane import Backend, Netplane, ServiceNAT, ServicePort
from netconform.lab.net.outside import AGENT

ECHO_ARGS = ("serve", "--http", "8080", "--tcp", "9000", "--udp", "9001")
POD_RESOLV = "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n"
POD_RESOLV += "options ndots:5\n"
NODE_RESOLV = f"nameserver {A.UPSTREAM_DNS_IP}\n"
ECHO_CIP, EMPTY_CIP, VIP = "10.96.0.50", "10.96.0.51", "10.89.0.200"
PODS: dict[str, tuple[str, str]] = {
    "a1": ("node-1", "10.244.1.10"),
    "a2": ("node-1", "10.244.1.11"),
    "dns1": ("node-1", "10.244.1.53"),
    "b1": ("node-2", "10.244.2.10"),
    "dns2": ("node-2", "10.244.2.53"),
    "c1": ("node-3", "10.244.3.10"),
}
ECHO_PODS = ("a2", "b1", "c1")
DNS_PODS = ("dns1", "dns2")


def lab_name(tag: str) -> str:
    """Unique per process, so parallel runs (xdist workers, other engineers) never collide."""
    return f"{tag}{os.getpid()}"


@dataclass
class DataplaneLab:
    plane: Netplane
    pod_ns: dict[str, str] = field(default_factory=dict)
    zone_file: Path = Path()

    def ns(self, who: str) -> str:
        """A pod short name, a node name, or one of router/outside/client/internet/fabric."""
        if who in self.pod_ns:
            return self.pod_ns[who]
        return self.plane.ns(who)

    @staticmethod
    def ip(pod: str) -> str:
        return PODS[pod][1]


def echo_services() -> list[ServiceNAT]:
    def backends(port: int) -> tuple[Backend, ...]:
        return tuple(Backend(PODS[p][1], port) for p in ECHO_PODS)

    dns_backends = tuple(Backend(PODS[p][1], 53) for p in DNS_PODS)
    return [
        ServiceNAT(
            "default/echo",
            ECHO_CIP,
            (
                ServicePort("TCP", 80, backends(8080), node_port=30080, name="http"),
                ServicePort("TCP", 9000, backends(9000), name="tcp"),
                ServicePort("UDP", 9001, backends(9001), node_port=30081, name="udp"),
            ),
            lb_ips=(VIP,),
        ),
        ServiceNAT(
            "kube-system/kube-dns",
            A.KUBE_DNS_IP,
            (
                ServicePort("UDP", 53, dns_backends, name="dns"),
                ServicePort("TCP", 53, dns_backends, name="dns-tcp"),
            ),
        ),
        ServiceNAT("default/empty", EMPTY_CIP, (ServicePort("TCP", 80, ()),)),
    ]


def zone(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    records: dict[str, Any] = {
        "kubernetes.default.svc.cluster.local": {"A": [A.KUBERNETES_SERVICE_IP]},
        "echo.default.svc.cluster.local": {"A": [ECHO_CIP]},
        "kube-dns.kube-system.svc.cluster.local": {"A": [A.KUBE_DNS_IP]},
    }
    records.update(extra or {})
    return {"domain": "cluster.local", "records": records}


def write_zone(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def build_test_lab(lab: str, state_dir: Path) -> DataplaneLab:
    """Build the plane and everything on it; the caller destroys it (also when this raises)."""
    plane = Netplane(lab, nodes=3, state_dir=state_dir)
    plane.build()
    test_lab = DataplaneLab(plane=plane, zone_file=state_dir / "zone.json")
    write_zone(test_lab.zone_file, zone())
    for pod, (node, ip) in PODS.items():
        resolv = NODE_RESOLV if pod in DNS_PODS else POD_RESOLV  # CoreDNS pods: dnsPolicy Default
        test_lab.pod_ns[pod] = plane.add_pod(f"default/{pod}", node, ip, resolv)
    for pod in ECHO_PODS:
        argv = [sys.executable, str(AGENT), *ECHO_ARGS]
        plane.start_program(f"echo-{pod}", test_lab.pod_ns[pod], argv, '"serving"')
    for pod in DNS_PODS:
        argv = [sys.executable, "-m", "netconform.lab.net.clusterdns", "--zone-file", str(test_lab.zone_file)]
        argv += ["--upstream-resolv", "/etc/resolv.conf", "--port", "53"]
        plane.start_program(f"clusterdns-{pod}", test_lab.pod_ns[pod], argv, "clusterdns: listening")
    plane.sync_services(echo_services())
    plane.announce_vip(VIP, "node-2")
    return test_lab


# ------------------------------------------------------------------------------------------ probing
def probe(
    ns: str, checks: list[dict[str, Any]], *, attempts: int = 1, gap: float = 0.3
) -> dict[str, dict[str, Any]]:
    """Run the agent in `ns` with these checks (concurrently); results by check id."""
    plan = {"checks": checks, "attempts": attempts, "attempt_gap": gap}
    budget = max(float(c.get("timeout", 2.0)) for c in checks) * attempts + gap * attempts + 15
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, str(AGENT), "run"],
        input=json.dumps(plan) + "\n",
        capture_output=True,
        text=True,
        timeout=budget,
    )
    assert proc.returncode == 0, f"agent in {ns} failed: {proc.stderr.strip()[:300]}"
    return {r["id"]: r for r in json.loads(proc.stdout)["results"]}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def http(cid: str, url: str, timeout: float = 2.0) -> dict[str, Any]:
    return {"id": cid, "kind": "http", "url": url, "timeout": timeout}


def tcp(cid: str, host: str, port: int, timeout: float = 2.0) -> dict[str, Any]:
    payload = _b64(b"ping\n")
    return {
        "id": cid,
        "kind": "tcp",
        "host": host,
        "port": port,
        "send_b64": payload,
        "expect_b64": payload,
        "timeout": timeout,
    }


def udp(cid: str, host: str, port: int, timeout: float = 2.0) -> dict[str, Any]:
    return {
        "id": cid,
        "kind": "udp",
        "host": host,
        "port": port,
        "payload_b64": _b64(b"hello"),
        "timeout": timeout,
    }


def icmp(cid: str, host: str, timeout: float = 1.5) -> dict[str, Any]:
    return {"id": cid, "kind": "icmp", "host": host, "timeout": timeout}


def arp(cid: str, ip: str, window: float = 1.0) -> dict[str, Any]:
    return {"id": cid, "kind": "arp", "ip": ip, "window": window, "timeout": window + 1.0}


def read(cid: str, path: str) -> dict[str, Any]:
    return {"id": cid, "kind": "read", "path": path, "timeout": 2.0}


def mtu(cid: str, host: str, port: int, sizes: list[int], timeout: float = 1.5) -> dict[str, Any]:
    return {"id": cid, "kind": "mtu", "host": host, "port": port, "sizes": sizes, "timeout": timeout}


def dns_query(cid: str, server: str, name: str, rdtype: str = "A", timeout: float = 2.0) -> dict[str, Any]:
    wire = dns.message.make_query(name, rdtype).to_wire()
    return {"id": cid, "kind": "dns", "server": server, "query_b64": _b64(wire), "timeout": timeout}


def dns_answer(result: dict[str, Any]) -> tuple[str, list[str]]:
    """(rcode, addresses/targets) of a dns check result."""
    assert result["ok"], f"dns check failed: {result['error']} {result['message']}"
    message = dns.message.from_wire(base64.b64decode(result["answer_b64"]))
    values = [item.to_text() for rrset in message.answer for item in rrset]
    return dns.rcode.to_text(message.rcode()), values


def client_ip(result: dict[str, Any]) -> str:
    assert result["ok"], f"{result['id']}: {result['error']} {result['message']}"
    echo = result.get("echo") or json.loads(base64.b64decode(result.get("reply_b64") or "e30=") or b"{}")
    return str(echo["client_ip"])


# ------------------------------------------------------------------------------------------ snapshots
_COUNTERS = re.compile(r"\[\d+:\d+\]")


def sh(ns: str, argv: list[str]) -> str:
    proc = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=15)
    return proc.stdout


def _drop_empty_tables(text: str) -> str:
    """An iptables table with no rules, no own chains and ACCEPT policies acts like no table at all
    (without `nft` a fault cannot delete a table it had to create)."""

    def empty(block: str) -> bool:
        lines = block.strip().splitlines()[1:-1]  # between "*table" and "COMMIT"
        return all(
            re.fullmatch(r":(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT\s*", line) for line in lines
        )

    return re.sub(
        r"^\*\w+\n(?:.*\n)*?COMMIT\n", lambda m: "" if empty(m.group(0)) else m.group(0), text, flags=re.M
    )


def snapshot(test_lab: DataplaneLab) -> dict[str, str]:
    """The configuration that faults may touch, per namespace, without counters or dynamic entries."""
    plane = test_lab.plane
    out: dict[str, str] = {}
    namespaces = [*(plane.ns(n) for n in plane.nodes), plane.fabric_netns(), plane.router_netns()]
    namespaces += test_lab.pod_ns.values()
    script = (
        "iptables-save | grep -v '^#'; echo; ip -4 -o addr | awk '{print $2, $4}'; echo; ip -o link; echo;"
        " ip -4 route show table all | sed 's/ linkdown//'; echo; ip -4 neigh show nud permanent; echo;"
        " cat /proc/sys/net/ipv4/conf/*/arp_ignore"
    )
    for ns in namespaces:
        proc = subprocess.run(
            ["nsenter", f"--net=/run/netns/{ns}", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=15,
        )
        text = _drop_empty_tables(_COUNTERS.sub("", proc.stdout))
        out[ns] = re.sub(r" state \S+| qdisc \S+| qlen \d+|<[^>]*>", "", text)
    out["namespaces"] = "\n".join(plane.namespaces())
    for node in plane.nodes:
        out[f"resolv {node}"] = plane.node_resolv_conf(node)
    out["upstream control"] = str(plane.upstream_control_file().exists())
    return out
