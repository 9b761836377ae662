"""Synthetic but realistic ``results.json`` documents for the report tests.

Until the suite produces real lab runs (and for the 12-node size/speed check, which no CI can afford to
run for real), this builds results the way the suite does: the lab's addresses (contracts §3), the
scope ids and kinds of §4 and cells of §5, with outcomes *derived* from a small reachability model of
the fault, so consequences propagate like on the real data plane (a blocked tunnel also makes ClusterIP
checks flaky when the chosen backend sits behind it, and DNS fails when CoreDNS is on the other side).

Faults: ``tunnel-blocked`` (node: one node's UDP 6081 dropped, or every node's when node is None),
``partition`` (groups of nodes), ``service-nat`` (node: no Service DNAT there), ``snat-missing`` (node:
no masquerade), ``coredns-down`` (node: that CoreDNS pod does not answer), ``arp-conflict`` (two MACs
answer for the LB VIP), ``upstream-dns`` (the outside nameserver does not answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TIMEOUT_S = 2.0


@dataclass
class Fault:
    name: str
    node: str | None = None
    groups: list[list[str]] = field(default_factory=list)


class _Model:
    """Which paths work under a fault; every cell's outcome is derived from these answers."""

    def __init__(self, nodes: list[str], fault: Fault | None) -> None:
        self.nodes = nodes
        self.fault = fault
        self.coredns_nodes = nodes[:2]

    def _is(self, name: str) -> bool:
        return self.fault is not None and self.fault.name == name

    def overlay_ok(self, a: str, b: str) -> bool:
        """Pod-network traffic from node a to node b (through the tunnel when a != b)."""
        if a == b:
            return True
        if self._is("tunnel-blocked"):
            assert self.fault is not None
            return self.fault.node is not None and self.fault.node not in (a, b)
        if self._is("partition"):
            return self._group(a) == self._group(b)
        return True

    def underlay_ok(self, a: str, b: str) -> bool:
        if self._is("partition"):
            return self._group(a) == self._group(b)
        return True

    def _group(self, node: str) -> int:
        assert self.fault is not None
        for index, group in enumerate(self.fault.groups):
            if node in group:
                return index
        return -1

    def service_nat_ok(self, node: str) -> bool:
        return not (self._is("service-nat") and self.fault is not None and self.fault.node in (None, node))

    def snat_ok(self, node: str) -> bool:
        return not (self._is("snat-missing") and self.fault is not None and self.fault.node in (None, node))

    def coredns_ok(self, node: str) -> bool:
        return not (self._is("coredns-down") and self.fault is not None and self.fault.node == node)

    def arp_macs(self) -> list[str]:
        macs = ["0a:58:0a:59:00:0b"]
        if self._is("arp-conflict"):
            macs.append("00:50:56:9a:11:22")
        return macs

    def upstream_ok(self) -> bool:
        return not self._is("upstream-dns")


def node_ip(nodes: list[str], node: str) -> str:
    return f"10.89.0.{10 + nodes.index(node) + 1}"


def pod_ip(nodes: list[str], node: str, role: str = "probe") -> str:
    return f"10.244.{nodes.index(node) + 1}.{5 if role == 'probe' else 6}"


class _Builder:
    def __init__(self, nodes: list[str], model: _Model, attempts: int) -> None:
        self.nodes = nodes
        self.model = model
        self.attempts = attempts
        self.cells: list[dict[str, Any]] = []
        self.checks = 0

    def add(
        self,
        subject: str,
        target: str,
        layer: str,
        protocol: str,
        fm: list[str],
        kind: str,
        host: str,
        port: int | None,
        attempt_ok: list[bool],
        *,
        error: str = "timeout",
        extra: dict[str, Any] | None = None,
        skip_reason: str | None = None,
        fail_reason: str | None = None,
    ) -> None:
        subject_kind = {"host": "S-NODE", "pod": "S-POD-NODE", "external": "S-EXTERNAL"}.get(
            subject.split("@")[0], "S-CLUSTER"
        )
        self.checks += len(attempt_ok)
        attempts = [
            {
                "ok": ok,
                "error": None if ok else error,
                "elapsed_ms": round(1.2 + i * 0.37, 2) if ok else 2001.4,
            }
            for i, ok in enumerate(attempt_ok)
        ]
        check: dict[str, Any] = {
            "id": f"c{len(self.cells) + 1}",
            "kind": protocol if protocol in ("tcp", "udp", "icmp", "http", "arp", "mtu") else "dns",
            "host": host,
            "ok": bool(attempt_ok and attempt_ok[-1]),
            "error": None if (attempt_ok and attempt_ok[-1]) else error,
            "elapsed_ms": attempts[-1]["elapsed_ms"] if attempts else 0.0,
            "attempts": attempts,
        }
        if port is not None:
            check["port"] = port
        if extra:
            check.update(extra)
        if skip_reason is not None:
            outcome, reason, err, classified, meaning = "skipped", skip_reason, None, None, ""
            checks: list[dict[str, Any]] = []
        elif all(attempt_ok):
            outcome, reason, err, classified, meaning = "passed", "", None, None, ""
            checks = [check]
        else:
            outcome = "flaky" if any(attempt_ok) else "failed"
            where = f"{host}:{port}" if port is not None else host
            reason = fail_reason or (
                f"{protocol} {where}: {error} after {TIMEOUT_S} s ({len(attempt_ok)} attempts,"
                f" {sum(attempt_ok)} ok)"
            )
            err = error
            classified, meaning = _classify(error, layer)
            checks = [check]
        diagnosis = None
        if outcome in ("failed", "flaky"):
            diagnosis = _diagnose(self.nodes, subject, target, layer, protocol, fm)
        test_module = {"T-POD-NODE": "pod_to_pod", "T-POD-CLUSTER": "pod_to_pod"}.get(kind, "paths")
        test_id = f"{subject}->{target}/{layer}-{protocol}"
        self.cells.append(
            {
                "test": f"tests_conformance/test_{test_module}.py::test_{test_module}[{test_id}]",
                "key": "|".join([fm[0], subject, target, layer, protocol]),
                "fm": fm,
                "subject": subject,
                "subject_kind": subject_kind,
                "target": target,
                "target_kind": kind,
                "layer": layer,
                "protocol": protocol,
                "outcome": outcome,
                "reason": reason,
                "error": err,
                "classified_layer": classified,
                "meaning": meaning,
                "evidence": {"checks": checks},
                "diagnosis": diagnosis,
                "duration_s": 0.004,
            }
        )


def _classify(error: str, layer: str) -> tuple[str | None, str]:
    if error == "timeout":
        if layer == "DNS":
            return "DNS", "no answer from the DNS server: connectivity to the server (FM-04)"
        return "L3", "no answer: the packet is not routed (L3/L2)"
    if error == "reset":
        return "L4", "connection reset: conntrack/NAT state does not match (FM-02)"
    if error == "http-status":
        return "L7", "HTTP error: L4 works, the problem is L7 (FM-01)"
    if error == "protocol":
        return layer, "the answer was not what the check expects"
    return None, ""


def _diagnose(
    nodes: list[str], subject: str, target: str, layer: str, protocol: str, fm: list[str]
) -> dict[str, Any]:
    src = subject.split("@")[-1]
    dst = target.split("@")[-1]
    if src in nodes and dst in nodes and src != dst and target.startswith("pod@"):
        a, b = node_ip(nodes, src), node_ip(nodes, dst)
        return {
            "hop": f"overlay tunnel {src} -> {dst} (UDP 6081)",
            "summary": f"{src} and {dst} reach each other on the node network; encapsulated traffic is lost",
            "fm": "FM-09",
            "capture": [
                f"tcpdump -ni any 'udp port 6081 and host {b}'  # on {src}",
                f"tcpdump -ni any 'udp port 6081 and host {a}'  # on {dst}",
            ],
        }
    return {
        "hop": f"{subject} -> {target}",
        "summary": f"{layer} {protocol} check failed; first broken hop not narrowed further",
        "fm": fm[0],
        "capture": [f"tcpdump -ni any 'host {target}'"],
    }


def synth_results(
    nodes: int = 3,
    fault: Fault | None = None,
    *,
    attempts: int = 2,
    run_id: str = "synth01",
) -> dict[str, Any]:
    """A results document (schema netconform/v1) for an N-node lab under ``fault`` (None = healthy)."""
    names = [f"node-{i}" for i in range(1, nodes + 1)]
    model = _Model(names, fault)
    b = _Builder(names, model, attempts)
    n = len(names)

    def tries(ok: bool) -> list[bool]:
        return [ok] * (1 if ok else attempts)

    def spread(oks: list[bool], start: int = 0) -> list[bool]:
        """Attempts that go to different backends: attempt i hits backend start + i (mod backends)."""
        picks = [oks[(start + i) % len(oks)] for i in range(max(attempts, 2))]
        return picks if not all(picks) else [True]

    for src in names:
        subject = f"pod@{src}"
        for dst in names:
            same = src == dst
            kind = "T-POD-NODE" if same else "T-POD-CLUSTER"
            fms = ["FM-10"] if same else ["FM-09", "FM-13"]
            ok = model.overlay_ok(src, dst)
            ip = pod_ip(names, dst, "echo")
            b.add(subject, f"pod@{dst}", "L3", "icmp", fms, kind, ip, None, tries(ok))
            b.add(subject, f"pod@{dst}", "L4", "tcp", fms, kind, ip, 9000, tries(ok))
            b.add(subject, f"pod@{dst}", "L4", "udp", ["FM-33", *fms], kind, ip, 9001, tries(ok))
            b.add(subject, f"pod@{dst}", "L7", "http", ["FM-01", *fms], kind, ip, 8080, tries(ok))
            if not same:
                b.add(
                    subject,
                    f"pod@{dst}",
                    "L3",
                    "mtu",
                    ["FM-31"],
                    kind,
                    ip,
                    9000,
                    tries(ok),
                    extra={"sizes": [1200, 1400], "largest_ok": 1400 if ok else None},
                )
            b.add(
                subject,
                f"node@{dst}",
                "L3",
                "icmp",
                ["FM-13"],
                "T-NODE",
                node_ip(names, dst),
                None,
                tries(model.underlay_ok(src, dst)),
            )
        backends = [model.overlay_ok(src, d) and model.service_nat_ok(src) for d in names]
        b.add(
            subject,
            "clusterip",
            "L3",
            "icmp",
            ["FM-15"],
            "T-CLUSTERIP",
            "10.96.0.50",
            None,
            [True],
            extra={"expect": "no answer is fine"},
        )
        for layer, proto, port, fms in (
            ("L4", "tcp", 9000, ["FM-08"]),
            ("L4", "udp", 9001, ["FM-33", "FM-08"]),
            ("L7", "http", 80, ["FM-08", "FM-01"]),
        ):
            b.add(
                subject,
                "clusterip",
                layer,
                proto,
                fms,
                "T-CLUSTERIP",
                "10.96.0.50",
                port,
                spread(backends, names.index(src)),
            )
        for dst in names:
            nat = model.service_nat_ok(src) and model.service_nat_ok(dst)
            b.add(
                subject,
                f"nodeport@{dst}",
                "L4",
                "tcp",
                ["FM-32"],
                "T-NODEPORT",
                node_ip(names, dst),
                30080,
                spread(
                    [nat and model.underlay_ok(src, dst) and model.overlay_ok(dst, d) for d in names],
                    names.index(dst),
                ),
            )
        lb = [model.service_nat_ok(src) and model.overlay_ok(names[0], d) for d in names]
        b.add(
            subject,
            "lb-vip",
            "L4",
            "tcp",
            ["FM-08"],
            "T-LB-VIP",
            "10.89.0.200",
            80,
            spread(lb, names.index(src)),
        )
        b.add(
            subject,
            "lb-vip",
            "L7",
            "http",
            ["FM-08", "FM-01"],
            "T-LB-VIP",
            "10.89.0.200",
            80,
            spread(lb, names.index(src)),
        )
        dns_paths = [model.overlay_ok(src, c) and model.coredns_ok(c) for c in model.coredns_nodes]
        via_service = [ok and model.service_nat_ok(src) for ok in dns_paths]
        b.add(
            subject,
            "dns-internal",
            "DNS",
            "udp",
            ["FM-21"],
            "T-DNS-INTERNAL",
            "10.96.0.10",
            53,
            spread(via_service, names.index(src)),
            extra={"name": "kubernetes.default.svc.cluster.local"},
        )
        b.add(
            subject,
            "dns-internal",
            "DNS",
            "tcp",
            ["FM-21"],
            "T-DNS-INTERNAL",
            "10.96.0.10",
            53,
            spread(via_service, names.index(src)),
            extra={"name": "echo.netconform.svc.cluster.local"},
        )
        b.add(
            subject,
            "dns-external",
            "DNS",
            "udp",
            ["FM-21", "FM-23"],
            "T-DNS-EXTERNAL",
            "10.96.0.10",
            53,
            spread([ok and model.upstream_ok() for ok in via_service], names.index(src)),
            error="timeout" if model.upstream_ok() else "resolver-failure",
            extra={"name": "example.test"},
        )
        for c in model.coredns_nodes:
            b.add(
                subject,
                f"coredns@{c}",
                "DNS",
                "udp",
                ["FM-22"],
                "T-DNS-SERVER",
                pod_ip(names, c, "echo"),
                53,
                tries(model.overlay_ok(src, c) and model.coredns_ok(c)),
            )
        b.add(subject, "outside", "L3", "icmp", ["FM-12"], "T-OUTSIDE", "203.0.113.10", None, [True])
        snat = model.snat_ok(src)
        b.add(
            subject,
            "outside",
            "L7",
            "http",
            ["FM-11"],
            "T-OUTSIDE",
            "203.0.113.10",
            80,
            tries(snat),
            error="protocol",
            extra={"seen_source": node_ip(names, src) if snat else pod_ip(names, src)},
            fail_reason=None
            if snat
            else (
                f"source seen outside is {pod_ip(names, src)}, expected node IP "
                f"{node_ip(names, src)}: egress is not masqueraded"
            ),
        )
        b.add(subject, "internet", "L7", "http", ["FM-12"], "T-INTERNET", "198.51.100.10", 80, [True])

    for src in names:
        subject = f"host@{src}"
        for dst in names:
            if dst != src:
                ok = model.underlay_ok(src, dst)
                b.add(
                    subject,
                    f"node@{dst}",
                    "L3",
                    "icmp",
                    ["FM-13", "FM-17"],
                    "T-NODE",
                    node_ip(names, dst),
                    None,
                    tries(ok),
                )
                b.add(
                    subject,
                    f"node@{dst}",
                    "L4",
                    "tcp",
                    ["FM-13"],
                    "T-NODE",
                    node_ip(names, dst),
                    10250,
                    tries(ok),
                )
            kind = "T-POD-NODE" if dst == src else "T-POD-CLUSTER"
            b.add(
                subject,
                f"pod@{dst}",
                "L3",
                "icmp",
                ["FM-10"] if dst == src else ["FM-09"],
                kind,
                pod_ip(names, dst, "echo"),
                None,
                tries(model.overlay_ok(src, dst)),
            )
            b.add(
                subject,
                f"nodeport@{dst}",
                "L4",
                "tcp",
                ["FM-32"],
                "T-NODEPORT",
                node_ip(names, dst),
                30080,
                spread([model.service_nat_ok(dst) and model.overlay_ok(dst, d) for d in names]),
            )
        macs = model.arp_macs()
        b.add(
            subject,
            "lb-vip",
            "L2",
            "arp",
            ["FM-06", "FM-16"],
            "T-LB-VIP",
            "10.89.0.200",
            None,
            [len(macs) == 1] * (1 if len(macs) == 1 else attempts),
            error="protocol",
            extra={"macs": macs},
            fail_reason=None
            if len(macs) == 1
            else f"10.89.0.200 answered by {len(macs)} MACs: {', '.join(macs)} "
            "(00:50:56 is VMware): IP conflict",
        )
        b.add(
            subject,
            "component:apiserver-vip",
            "L2",
            "arp",
            ["FM-28"],
            "T-COMPONENT",
            "10.89.0.2",
            None,
            [True],
            extra={"macs": ["0a:58:0a:59:00:0b"]},
        )
        b.add(
            subject,
            f"nameserver@{src}",
            "DNS",
            "udp",
            ["FM-24"],
            "T-DNS-SERVER",
            "203.0.113.53",
            53,
            tries(model.upstream_ok()),
        )
        b.add(
            subject,
            "dns-internal",
            "DNS",
            "resolve",
            ["FM-24"],
            "T-DNS-INTERNAL",
            "",
            None,
            [True],
            extra={"name": "kubernetes.default.svc.cluster.local", "expect": "name-not-found (hostNetwork)"},
        )
        b.add(
            subject,
            "component:conntrack",
            "L4",
            "tcp",
            ["FM-30"],
            "T-COMPONENT",
            "",
            None,
            [True],
            skip_reason="conntrack budget needs a privileged host probe: pass --allow-privileged",
        )

    for dst in names:
        b.add(
            "external",
            f"nodeport@{dst}",
            "L4",
            "tcp",
            ["FM-32"],
            "T-NODEPORT",
            node_ip(names, dst),
            30080,
            spread([model.service_nat_ok(dst) and model.overlay_ok(dst, d) for d in names]),
        )
    lb_ext = [model.service_nat_ok(names[0]) and model.overlay_ok(names[0], d) for d in names]
    if model.arp_macs()[1:]:
        lb_ext = [True, False] * n
    b.add(
        "external", "lb-vip", "L4", "tcp", ["FM-05", "FM-08"], "T-LB-VIP", "10.89.0.200", 80, spread(lb_ext)
    )
    b.add(
        "external", "lb-vip", "L7", "http", ["FM-05", "FM-08"], "T-LB-VIP", "10.89.0.200", 80, spread(lb_ext)
    )
    b.add("external", "lb-vip", "L3", "icmp", ["FM-15"], "T-LB-VIP", "10.89.0.200", None, [True])

    for comp, fm, reason in (
        ("cilium", "FM-14", "no Cilium-based dataplane (anetd/cilium) runs in this cluster"),
        ("cilium", "FM-25", "no Cilium-based dataplane (anetd/cilium) runs in this cluster"),
        ("cilium", "FM-26", "no Cilium-based dataplane (anetd/cilium) runs in this cluster"),
        ("f5", "FM-07", "F5 BIG-IP is not in use (no k8s-bigip-ctlr pods)"),
        ("f5", "FM-29", "F5 BIG-IP is not in use (no k8s-bigip-ctlr pods)"),
        ("hubble", "FM-18", "no drop monitor (cilium/hubble) available"),
        ("iptables", "FM-19", "DROP counters need a privileged host probe: pass --allow-privileged"),
    ):
        b.add(
            "cluster",
            f"component:{comp}",
            "L3",
            "check",
            [fm],
            "T-COMPONENT",
            "",
            None,
            [True],
            skip_reason=reason,
        )
    b.add("cluster", "component:cni", "L3", "check", ["FM-27"], "T-COMPONENT", "", None, [True])

    counts = {
        o: sum(1 for c in b.cells if c["outcome"] == o)
        for o in ("passed", "failed", "flaky", "skipped", "error")
    }
    return {
        "schema": "netconform/v1",
        "run": {
            "id": run_id,
            "started": "2026-11-26T12:00:00Z",
            "duration_s": round(8.0 + 0.9 * n, 1),
            "cluster": {
                "server": "https://127.0.0.1:6443",
                "version": "v1.31.0",
                "nodes": names,
                "context": None,
            },
            "options": {"probe_timeout": TIMEOUT_S, "attempts": attempts},
            "stats": {
                "api_requests": 30 + 4 * n,
                "exec_sessions": 2 * n + 1,
                "probe_checks": b.checks,
                "subjects": 2 * n + 1,
            },
            "counts": counts,
        },
        "cells": b.cells,
    }
