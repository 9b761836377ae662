"""``results.json`` documents for the report tests, generated from the suite's real model.

No second model: the cells are the real checks' cells (each :class:`netconform.checks.Check` of the
conformance tests, ``check.cells(topo)`` over a synthetic :class:`~netconform.model.topology.Topology` of
N nodes), tagged with the FM IDs and test names of the real conformance tests (their ``check`` and ``fm``
marks, read from ``tests_conformance``), and assembled by the real results builder
(:class:`netconform.engine.results_document.Collector` and ``document()``) from the same
setup/call/teardown reports pytest would hand it. Errors are classified by the real classifier.

Only the outcomes are assigned here, deterministically, from a small reachability model of one fault, so
consequences propagate like on the data plane (a blocked tunnel also makes ClusterIP checks flaky when the
chosen backend sits behind it, and DNS fails when CoreDNS is on the other side).

Faults: ``tunnel-blocked`` (node: one node's UDP 6081 dropped, or every node's when node is None),
``partition`` (groups of nodes), ``isolated`` (node: cut off on the overlay and the node network),
``service-nat`` (node: no Service DNAT there), ``snat-missing`` (node: no masquerade), ``coredns-down``
(node: that CoreDNS pod does not answer), ``arp-conflict`` (two MACs answer for the LB VIP),
``upstream-dns`` (the outside nameserver does not answer).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import tests_conformance
from netconform.checks import Check
from netconform.engine import results_document as results_mod
from netconform.model.cell import Cell
from netconform.model.classify import classify
from netconform.model.topology import NodeInfo, PodInfo, Topology

TIMEOUT_S = 2.0
LB_VIP = "10.89.0.200"
CLUSTER_IP = "10.96.0.50"
DNS_IP = "10.96.0.10"
OUTSIDE = "203.0.113.10"
INTERNET = "198.51.100.10"
NAMESERVER = "203.0.113.53"
GOOD_MAC = "0a:58:0a:59:00:0b"
ROGUE_MAC = "00:50:56:9a:11:22"
# what a real run without privileges or without these components says (the tests' skip reasons)
SKIPS = {
    "host-conntrack": "conntrack budget needs a privileged host probe: pass --allow-privileged",
    "host-iptables": "DROP counters need a privileged host probe: pass --allow-privileged",
    "cilium-health": "no Cilium-based dataplane (anetd/cilium) runs in this cluster",
    "cilium-rate-limit": "no Cilium-based dataplane (anetd/cilium) runs in this cluster",
    "ebpf-maps": "no Cilium-based dataplane (anetd/cilium) runs in this cluster",
    "drop-monitor": "no drop monitor (cilium/hubble) available",
    "f5-config": "F5 BIG-IP is not in use (no k8s-bigip-ctlr pods)",
}


@dataclass
class Fault:
    name: str
    node: str | None = None
    groups: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class TestFunc:
    """One conformance test function: its module, name, check and FM IDs (from its marks)."""

    module: str
    name: str
    check: Check = field(compare=False)
    fm: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        return self.check.name

    def nodeid(self, cell_id: str) -> str:
        return f"tests_conformance/{self.module}.py::{self.name}[{cell_id}]"


@cache
def conformance_tests() -> tuple[TestFunc, ...]:
    """Every test of tests_conformance that takes a cell, in module order, read off its marks."""
    found: list[TestFunc] = []
    for info in sorted(pkgutil.iter_modules(tests_conformance.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"tests_conformance.{info.name}")
        for name, fn in vars(module).items():
            marks = getattr(fn, "pytestmark", None) if name.startswith("test") else None
            checks = [m.args[0] for m in marks or [] if m.name == "check"]
            if not checks:
                continue
            fms: list[str] = []
            for mark in marks or []:
                if mark.name == "fm":
                    fms += [a for a in mark.args if a not in fms]
            found.append(TestFunc(info.name, name, checks[0], tuple(fms)))
    return tuple(found)


def node_names(nodes: int) -> list[str]:
    return [f"node-{i}" for i in range(1, nodes + 1)]


def node_ip(names: list[str], node: str) -> str:
    index = names.index(node)
    return f"10.89.{index // 200}.{11 + index % 200}"


def pod_ip(names: list[str], node: str, role: str = "probe") -> str:
    return f"10.244.{names.index(node) + 1}.{5 if role == 'probe' else 6}"


def synth_topology(nodes: int = 3) -> Topology:
    """A lab-like cluster of N nodes: CoreDNS on the first two, the lab's CNI and LB announcer."""
    names = node_names(nodes)

    def pod(name: str, node: str, ip: str) -> PodInfo:
        return PodInfo(name, "kube-system", node, ip, "Running", True, 0, None)

    return Topology(
        server="https://127.0.0.1:6443",
        version="v1.31.0",
        context=None,
        nodes=[
            NodeInfo(
                name=n,
                internal_ip=node_ip(names, n),
                addresses={"InternalIP": node_ip(names, n)},
                pod_cidrs=[f"10.244.{i + 1}.0/24"],
                roles=["control-plane"] if i == 0 else [],
                taints=[],
                conditions={"Ready": {"status": "True"}},
            )
            for i, n in enumerate(names)
        ],
        dns_service_ip=DNS_IP,
        dns_ports=[{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}],
        coredns=[pod(f"coredns-{i}", n, pod_ip(names, n, "dns")) for i, n in enumerate(names[:2])],
        cni={"lab-cni": [pod(f"lab-cni-{n}", n, node_ip(names, n)) for n in names]},
        lb_controllers={"lab-lb": [pod("lab-lb-0", names[0], node_ip(names, names[0]))]},
        api_endpoints=[node_ip(names, names[0])],
        api_endpoint_port=6443,
    )


class _Model:
    """Which paths work under a fault; every cell's outcome is derived from these answers."""

    def __init__(self, names: list[str], fault: Fault | None) -> None:
        self.names = names
        self.fault = fault
        self.coredns_nodes = names[:2]

    def _is(self, name: str) -> bool:
        return self.fault is not None and self.fault.name == name

    def _on(self, name: str, node: str | None) -> bool:
        """The fault ``name`` applies on ``node`` (a fault without a node applies everywhere)."""
        return self._is(name) and self.fault is not None and self.fault.node in (None, node)

    def _group(self, node: str) -> int:
        assert self.fault is not None
        return next((i for i, group in enumerate(self.fault.groups) if node in group), -1)

    def underlay_ok(self, a: str, b: str) -> bool:
        if a == b:
            return True
        if self._is("partition"):
            return self._group(a) == self._group(b)
        if self._is("isolated"):
            return not (self._on("isolated", a) or self._on("isolated", b))
        return True

    def overlay_ok(self, a: str, b: str) -> bool:
        """Pod-network traffic from node a to node b (through the tunnel when a != b)."""
        if a == b:
            return True
        if self._is("tunnel-blocked"):
            return not (self._on("tunnel-blocked", a) or self._on("tunnel-blocked", b))
        return self.underlay_ok(a, b)

    def service_nat_ok(self, node: str) -> bool:
        return not self._on("service-nat", node)

    def snat_ok(self, node: str) -> bool:
        return not self._on("snat-missing", node)

    def coredns_ok(self, node: str) -> bool:
        return not (self._is("coredns-down") and self.fault is not None and self.fault.node == node)

    def arp_macs(self) -> list[str]:
        return [GOOD_MAC, ROGUE_MAC] if self._is("arp-conflict") else [GOOD_MAC]

    def upstream_ok(self) -> bool:
        return not self._is("upstream-dns")


@dataclass
class Probe:
    """What the cell's probe saw: one check with per-attempt results, or a skip reason."""

    kind: str
    host: str
    port: int | None
    attempts: list[bool]
    error: str = "timeout"
    extra: dict[str, Any] = field(default_factory=dict)
    fail_reason: str | None = None
    skip: str | None = None


class _Judge:
    """Turns one real cell into the probe result it would have under the model."""

    def __init__(self, names: list[str], model: _Model, attempts: int) -> None:
        self.names = names
        self.model = model
        self.attempts = attempts

    def tries(self, ok: bool) -> list[bool]:
        return [ok] * (1 if ok else self.attempts)

    def spread(self, oks: list[bool], start: int = 0) -> list[bool]:
        """Attempts that go to different backends: attempt i hits backend start + i (mod backends)."""
        picks = [oks[(start + i) % len(oks)] for i in range(max(self.attempts, 2))]
        return picks if not all(picks) else [True]

    def probe(self, fam: str, cell: Cell) -> Probe:
        m, names = self.model, self.names
        src, dst = cell.subject_node, cell.target_node
        start = names.index(src) if src in names else 0
        proto = cell.protocol
        if fam in SKIPS:
            return Probe("check", "", None, [], skip=SKIPS[fam])
        if cell.target.startswith("pod@") and src and dst:
            port = {"tcp": 9000, "udp": 9001, "http": 8080, "mtu": 9000}.get(proto)
            extra: dict[str, Any] = {}
            if proto == "mtu":
                extra = {"sizes": [1200, 1400], "largest_ok": 1400 if m.overlay_ok(src, dst) else None}
            return Probe(
                proto, pod_ip(names, dst, "echo"), port, self.tries(m.overlay_ok(src, dst)), extra=extra
            )
        if cell.target.startswith("node@") and src and dst and proto in ("icmp", "arp"):
            ok = m.underlay_ok(src, dst)
            return Probe(proto, node_ip(names, dst), None, self.tries(ok))
        if cell.target == "clusterip":
            if proto == "icmp":
                return Probe("icmp", CLUSTER_IP, None, [True], extra={"expect": "no answer is fine"})
            assert src is not None
            backends = [m.overlay_ok(src, d) and m.service_nat_ok(src) for d in names]
            port = {"tcp": 9000, "udp": 9001, "http": 80}[proto]
            return Probe(proto, CLUSTER_IP, port, self.spread(backends, start))
        if cell.target.startswith("nodeport@") and dst:
            reach = src is None or m.underlay_ok(src, dst)
            oks = [m.service_nat_ok(dst) and reach and m.overlay_ok(dst, d) for d in names]
            return Probe("tcp", node_ip(names, dst), 30080, self.spread(oks, names.index(dst)))
        if cell.target == "lb-vip":
            if proto == "arp":
                macs = m.arp_macs()
                one = len(macs) == 1
                return Probe(
                    "arp",
                    LB_VIP,
                    None,
                    self.tries(one),
                    error="protocol",
                    extra={"macs": macs},
                    fail_reason=None
                    if one
                    else f"{LB_VIP} answered by {len(macs)} MACs: {', '.join(macs)} "
                    "(00:50:56 is VMware): IP conflict",
                )
            if proto == "icmp":
                return Probe("icmp", LB_VIP, None, [True])
            announcer = names[0]
            nat = m.service_nat_ok(src or announcer)
            oks = [nat and m.overlay_ok(announcer, d) for d in names]
            if cell.subject == "external" and len(m.arp_macs()) > 1:
                oks = [True, False] * len(names)
            return Probe(proto, LB_VIP, 80, self.spread(oks, start))
        if cell.target in ("dns-internal", "dns-external") and cell.subject.startswith("pod@"):
            assert src is not None
            paths = [
                m.overlay_ok(src, c) and m.coredns_ok(c) and m.service_nat_ok(src) for c in m.coredns_nodes
            ]
            upstream = cell.target == "dns-internal" or m.upstream_ok()
            name = "kubernetes.default.svc.cluster.local" if cell.target == "dns-internal" else "example.test"
            kind = "resolve" if proto == "resolve" else "dns"
            return Probe(
                kind,
                "" if kind == "resolve" else DNS_IP,
                None if kind == "resolve" else 53,
                self.spread([ok and upstream for ok in paths], start),
                error="timeout" if upstream else "resolver-failure",
                extra={"name": name},
            )
        if cell.target.startswith("coredns@") and src and dst:
            ok = m.overlay_ok(src, dst) and m.coredns_ok(dst)
            return Probe(
                "dns", pod_ip(names, dst, "dns"), 53, self.tries(ok), extra={"name": "kubernetes.default"}
            )
        if cell.subject.startswith("host@") and cell.target in ("dns-internal", "dns-external"):
            if cell.target == "dns-internal":
                extra = {"name": "kubernetes.default.svc.cluster.local", "expect": "name-not-found"}
                return Probe("resolve", "", None, [True], extra=extra)
            ok = m.upstream_ok()
            return Probe(
                "resolve", "", None, self.tries(ok), error="resolver-failure", extra={"name": "example.test"}
            )
        if cell.target.startswith("nameserver@"):
            return Probe("dns", NAMESERVER, 53, self.tries(m.upstream_ok()))
        if fam == "pod-outside-snat":
            assert src is not None
            snat = m.snat_ok(src)
            seen = node_ip(names, src) if snat else pod_ip(names, src)
            return Probe(
                "http",
                OUTSIDE,
                80,
                self.tries(snat),
                error="protocol",
                extra={"seen_source": seen},
                fail_reason=None
                if snat
                else f"source seen outside is {seen}, expected node IP {node_ip(names, src)}: "
                "egress is not masqueraded",
            )
        if cell.target == "outside":
            return Probe(proto, OUTSIDE, None if proto == "icmp" else 80, [True])
        if cell.target == "internet":
            return Probe("http", INTERNET, 80, [True])
        if fam == "pod-mesh":
            broken = sum(1 for a in names for b in names if not m.overlay_ok(a, b))
            return Probe(
                "check",
                "",
                None,
                self.tries(broken == 0),
                error="protocol",
                fail_reason=None if broken == 0 else f"{broken} node pairs cannot reach each other's pods",
            )
        if proto in ("arp",):
            return Probe("arp", node_ip(names, names[0]), None, [True], extra={"macs": [GOOD_MAC]})
        # routes, apiserver, cni-ready, nameserver sets, metallb announce: healthy under every fault here
        return Probe("check", node_ip(names, src) if src else "", None, [True])


def _diagnose(names: list[str], cell: Cell, fm: tuple[str, ...]) -> dict[str, Any]:
    src, dst = cell.subject_node, cell.target_node
    if src in names and dst in names and src != dst and cell.target.startswith("pod@"):
        a, b = node_ip(names, src), node_ip(names, dst)
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
        "hop": f"{cell.subject} -> {cell.target}",
        "summary": f"{cell.layer} {cell.protocol} check failed; first broken hop not narrowed further",
        "fm": fm[0] if fm else "FM-00",
        "capture": [f"tcpdump -ni any 'host {cell.target}'"],
    }


def _static(cell: Cell, fm: tuple[str, ...]) -> dict[str, Any]:
    """What the suite's plugin records per item (fixtures.plugin.static_cell)."""
    return {
        "key": cell.key(fm[0] if fm else "FM-00"),
        "fm": list(fm),
        "subject": cell.subject,
        "subject_kind": cell.subject_kind,
        "target": cell.target,
        "target_kind": cell.target_kind,
        "layer": cell.layer,
        "protocol": cell.protocol,
    }


def _report(
    collector: results_mod.Collector,
    nodeid: str,
    static: dict[str, Any],
    probe: Probe,
    names: list[str],
    n: int,
) -> int:
    """Feed the collector the setup/call/teardown reports pytest would; returns the checks run."""
    props: list[tuple[str, Any]] = [(results_mod.CELL_PROP, static)]
    collector.add(nodeid, "setup", "passed", None, 0.001, props)
    if probe.skip is not None:
        collector.add(nodeid, "call", "skipped", (nodeid, 1, f"Skipped: {probe.skip}"), 0.0, props)
        collector.add(nodeid, "teardown", "passed", None, 0.0, props)
        return 0
    attempts = [
        {
            "ok": ok,
            "error": None if ok else probe.error,
            "elapsed_ms": round(1.2 + i * 0.37, 2) if ok else 2001.4,
        }
        for i, ok in enumerate(probe.attempts)
    ]
    last_ok = bool(probe.attempts and probe.attempts[-1])
    check: dict[str, Any] = {
        "id": f"c{n}",
        "kind": probe.kind,
        "host": probe.host,
        "ok": last_ok,
        "error": None if last_ok else probe.error,
        "elapsed_ms": attempts[-1]["elapsed_ms"] if attempts else 0.0,
        "attempts": attempts,
    }
    if probe.port is not None:
        check["port"] = probe.port
    check.update(probe.extra)
    if all(probe.attempts):
        verdict: dict[str, Any] = {"outcome": "passed", "checks": [check]}
        collector.add(nodeid, "call", "passed", None, 0.003, [*props, (results_mod.VERDICT_PROP, verdict)])
    else:
        outcome = "flaky" if any(probe.attempts) else "failed"
        where = f"{probe.host}:{probe.port}" if probe.port is not None else probe.host
        found = classify(probe.error, probe.kind)
        tries = probe.attempts
        cell = Cell(static["subject"], static["target"], static["layer"], static["protocol"])
        verdict = {
            "outcome": outcome,
            "reason": probe.fail_reason
            or f"{probe.kind} {where}: {probe.error} after {TIMEOUT_S} s"
            f" ({len(tries)} attempts, {sum(tries)} ok)",
            "error": probe.error,
            "classified_layer": found.layer,
            "meaning": found.meaning,
            "classified_fm": found.fm or None,
            "checks": [check],
            "notes": [],
            "diagnosis": _diagnose(names, cell, tuple(static["fm"])),
        }
        collector.add(
            nodeid,
            "call",
            "failed",
            "E   AssertionError",
            0.003,
            [*props, (results_mod.VERDICT_PROP, verdict)],
        )
    collector.add(nodeid, "teardown", "passed", None, 0.0, props)
    return len(probe.attempts)


def synth_results(
    nodes: int = 3,
    fault: Fault | None = None,
    *,
    attempts: int = 2,
    run_id: str = "synth01",
) -> dict[str, Any]:
    """A results document (schema netconform/v1) for an N-node lab under ``fault`` (None = healthy)."""
    names = node_names(nodes)
    topo = synth_topology(nodes)
    judge = _Judge(names, _Model(names, fault), attempts)
    collector = results_mod.Collector()
    checks = 0
    for test in conformance_tests():
        cells = test.check.cells(topo)
        if not cells:  # the plugin's placeholder: one skipped cell naming what is missing
            layer = test.check.layer
            static = {
                "key": "|".join([test.fm[0], "cluster", f"family:{test.family}", layer, test.family]),
                "fm": list(test.fm),
                "subject": "cluster",
                "subject_kind": "S-CLUSTER",
                "target": f"family:{test.family}",
                "target_kind": "T-COMPONENT",
                "layer": layer,
                "protocol": test.family,
            }
            probe = Probe("check", "", None, [], skip=test.check.missing(topo))
            _report(collector, test.nodeid("not-applicable"), static, probe, names, 0)
            continue
        for cell in cells:
            checks += _report(
                collector,
                test.nodeid(cell.id),
                _static(cell, test.fm),
                judge.probe(test.family, cell),
                names,
                checks + 1,
            )
    n = len(names)
    return results_mod.document(
        collector,
        run_id=run_id,
        started=datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC),
        duration_s=8.0 + 0.9 * n,
        cluster={"server": topo.server, "version": topo.version, "nodes": names, "context": None},
        options={"probe_timeout": TIMEOUT_S, "attempts": attempts},
        stats={
            "api_requests": 30 + 4 * n,
            "exec_sessions": 2 * n + 1,
            "probe_checks": checks,
            "subjects": 2 * n + 1,
        },
    )
