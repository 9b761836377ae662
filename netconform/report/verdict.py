"""The verdict: first what could not be measured, then the *scope* of the failures in the matrix's
coordinates with the contrast that bounds it, and only then the suspects, with how sure they are.

The scope comes from :mod:`netconform.model.scope_inference` (a pure search over the matrix), partitions
from :mod:`netconform.model.partition` (the algorithm the FM-13 cell uses too). Suspects are read off the
scope's shape: ICMP only with TCP working is a filter, not routing; one port (HTTP 8080, UDP 9001) failing
on pod paths whose other channels work is a port filter, not the tunnel; DNS over UDP only with TCP working is
UDP 53 filtered, not CoreDNS; cross-node pod paths through one node with the nodes reaching each other is
the tunnel; the same plus node-to-node failing is the node network; a Service failing while its backend
pods answer directly is service NAT. The result is data (:meth:`RunVerdict.to_json`, stored in
``results.json`` as ``verdict``); the terminal, the HTML and the markdown diff render that data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from netconform.model.channels import PATH_CHANNELS, PORT_CHANNELS, channel_of, channel_words
from netconform.model.partition import Partition, analyze, join_words, natural
from netconform.model.scope_inference import (
    Inference,
    Point,
    Scope,
    Unmeasured,
    class_words,
    indirect,
    infer,
    points_of,
    unmeasured,
)
from netconform.report.results import canonical_cells, count_outcomes, first_fm, key_of, nodes_of

Cell = Mapping[str, Any]
SERVICES = frozenset({"clusterip", "nodeport", "lb-vip"})
ONLY = "the only explanation consistent with the matrix"


@dataclass(frozen=True)
class Suspect:
    """A component to look at, the hop, the FM IDs, and why the scope points there."""

    component: str
    fm: tuple[str, ...]
    hop: str
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "fm": list(self.fm), "hop": self.hop, "why": self.why}


@dataclass(frozen=True)
class Finding:
    """One scope in words: the sentence, its FM IDs, the first suspect's component, the cells it covers."""

    summary: str
    fm: tuple[str, ...]
    component: str
    keys: tuple[str, ...] = ()
    scope: str = ""
    contrasts: tuple[str, ...] = ()
    suspects: tuple[Suspect, ...] = ()
    confidence: str = ""
    partition: Partition | None = None
    intermittent: bool = False
    fail_ratio: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "scope": self.scope,
            "contrasts": list(self.contrasts),
            "suspects": [s.to_json() for s in self.suspects],
            "confidence": self.confidence,
            "fm": list(self.fm),
            "component": self.component,
            "cells": list(self.keys),
            "partition": self.partition.to_json() if self.partition else None,
            "fail_ratio": self.fail_ratio,
        }


@dataclass(frozen=True)
class RunVerdict:
    text: str
    status: str  # "healthy" | "degraded" (only flaky) | "failing"
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    intermittent: tuple[Finding, ...] = field(default_factory=tuple)
    unmeasured: tuple[Unmeasured, ...] = field(default_factory=tuple)
    unmeasured_text: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "text": self.text,
            "unmeasured": {"text": self.unmeasured_text, "groups": [u.to_json() for u in self.unmeasured]},
            "scopes": [f.to_json() for f in self.findings],
            "intermittent": [f.to_json() for f in self.intermittent],
        }


# ---- suspects ---------------------------------------------------------------------------------------


def _nodes(nodes: Iterable[str]) -> str:
    return join_words(sorted(nodes, key=natural))


def _on(nodes: set[str], all_nodes: Sequence[str]) -> str:
    return f" on {_nodes(nodes)}" if nodes and len(nodes) < len(all_nodes) else ""


def _pairs_partition(scope: Scope, all_nodes: Sequence[str], run: RunCells) -> Partition | None:
    if scope.values("channel") <= {"L3 icmp", "L3 mtu", "L2 arp", "DNS udp", "DNS tcp"}:
        return None  # a protocol-only scope is not a partition of the nodes
    pairs = {p.pair for p in scope.points if p.pair and p.target_class in ("pod", "node", "coredns")}
    if not pairs or scope.values("path") - {"cross-node"}:
        return None
    return analyze(all_nodes, {x for x in pairs if x}, working=run.working_pairs(scope))


class RunCells:
    """The run's cells by key, with the indexes the suspects read built once per verdict, not once per
    scope (a 100-node run has ~12,000 cells and a fault can make dozens of scopes).

    >>> run = RunCells({"k": {"subject": "pod@a", "target": "pod@b", "layer": "L4", "protocol": "tcp",
    ...                       "outcome": "passed"}})
    >>> run.passing_channels[("pod@a", "pod@b")], run.stale_neighbours
    ({'L4 tcp'}, [])
    """

    def __init__(self, by_key: Mapping[str, Cell]) -> None:
        self.by_key = by_key

    @cached_property
    def stale_neighbours(self) -> list[Cell]:
        """The failing stale-neighbour cells (FM-28 at L2), in key order."""
        return [
            self.by_key[key]
            for key in sorted(self.by_key)
            if self.by_key[key].get("classified_fm") == "FM-28"
            and self.by_key[key].get("layer") == "L2"
            and self.by_key[key].get("outcome") != "passed"
        ]

    @cached_property
    def passing_channels(self) -> dict[tuple[str, str], set[str]]:
        """The channels that pass between each (subject, target)."""
        out: dict[tuple[str, str], set[str]] = {}
        for c in self.by_key.values():
            if c.get("outcome") == "passed":
                pair = (str(c.get("subject")), str(c.get("target")))
                out.setdefault(pair, set()).add(channel_of(str(c.get("layer")), str(c.get("protocol"))))
        return out

    @cached_property
    def _working_pairs(self) -> dict[tuple[str, str, str], set[tuple[str, str]]]:
        """The node pairs measured working (passed or flaky), per (family, target class, channel)."""
        out: dict[tuple[str, str, str], set[tuple[str, str]]] = {}
        for p in points_of(self.by_key.values()):
            if p.outcome != "failed" and p.pair:
                out.setdefault((p.family, p.target_class, p.channel), set()).add(p.pair)
        return out

    def working_pairs(self, scope: Scope) -> set[tuple[str, str]]:
        """The node pairs measured working by any of the kinds of traffic (family, target class and
        channel) the scope's points are: what a partition sentence may say still works."""
        kinds = {(p.family, p.target_class, p.channel) for p in scope.points}
        return set().union(*(self._working_pairs.get(k, set()) for k in kinds))

    @cached_property
    def dns_tcp_passes_from_pods(self) -> bool:
        """Whether any pod's DNS query over TCP passed."""
        return any(
            c.get("layer") == "DNS" and c.get("protocol") == "tcp" and c.get("outcome") == "passed"
            for c in self.by_key.values()
            if str(c.get("subject", "")).startswith("pod@")
        )

    @cached_property
    def dns_servers(self) -> set[str]:
        """Every CoreDNS pod the run measured directly (``coredns@NODE``)."""
        return {
            str(c.get("target"))
            for c in self.by_key.values()
            if str(c.get("target", "")).startswith("coredns@")
        }


def suspects_for(
    scope: Scope, all_nodes: Sequence[str], run: RunCells, intermittent: bool = False
) -> tuple[list[Suspect], Partition | None]:
    """Suspects read off the scope's shape (first the most specific), and the node-pair shape when the
    scope is cross-node paths."""
    chans = scope.values("channel")
    classes = scope.values("target_class")
    fams = scope.values("family")
    paths = scope.values("path")
    worked = {c.coordinate for c in scope.contrasts}
    nodes = scope.nodes
    on = _on(nodes, all_nodes)
    cells = [run.by_key[p.key] for p in scope.points if p.key in run.by_key]
    errors = {str(c.get("error")) for c in cells}
    out: list[Suspect] = []
    shape = _pairs_partition(scope, all_nodes, run)
    if intermittent:
        where = f"on paths through {_nodes(nodes)}" if nodes else "on the paths in this scope"
        out.append(
            Suspect(
                "packet loss",
                ("FM-09", "FM-16", "FM-30"),
                where,
                "some attempts pass and others do not on the same paths: loss or a second "
                "device answering (IP conflict), not a configuration that refuses everything",
            )
        )
        return out, shape
    stale = [c for c in cells if c.get("classified_fm") == "FM-28" and c.get("layer") == "L2"]
    stale = stale or _stale_entries_between(scope, run)
    if stale:  # a wrong entry on A for B: what A sends to B, requests and replies, goes to the old MAC
        out.append(
            Suspect(
                "stale neighbour entry",
                ("FM-28", "FM-16", "FM-17"),
                str(stale[0].get("reason") or ""),
                "ARP is answered by another MAC than the one the node's neighbour cache holds: what the node "
                "sends to that address goes to the old MAC",
            )
        )
        return out, shape
    if chans <= {"L2 arp"}:
        fm = (
            ("FM-28",)
            if any("control-plane" in c for c in classes)
            else (("FM-06", "FM-16") if "lb-vip" in classes else ("FM-16",))
        )
        reasons = Counter(str(c.get("reason") or "ARP check failed") for c in cells)
        out.append(
            Suspect(
                "ARP / L2",
                fm,
                reasons.most_common(1)[0][0],
                "ARP answers are wrong or missing: an address conflict, a stale neighbour entry "
                "or the L2 announcer",
            )
        )
        return out, shape
    if chans <= {"L3 cni-ready"}:
        nodes_down = {p.target_node for p in scope.points if p.target_node}
        out.append(
            Suspect(
                "CNI / node readiness",
                ("FM-27",),
                f"the network plugin on {_nodes(nodes_down)}",
                "the node reports its network plugin not ready (NetworkPluginNotReady): its CNI agent pod "
                "and the kubelet's CNI configuration",
            )
        )
        return out, shape
    if chans <= {"L3 mtu"}:
        out.append(
            Suspect(
                "MTU",
                ("FM-31",),
                f"path MTU{on}",
                "large packets with DF set fail while small ones on the same paths pass",
            )
        )
        return out, shape
    if chans <= {"L3 icmp"} and "channel" in worked:
        out.append(
            Suspect(
                "ICMP filter",
                ("FM-15", "FM-19"),
                f"a firewall rule dropping ICMP{on}",
                "TCP/UDP to the same addresses work, so routing (L3) is fine: not every address "
                "answers ping, something drops ICMP",
            )
        )
        return out, shape
    if chans <= {"L4 snat"} or all("FM-11" in (c.get("fm") or []) for c in cells):
        out.append(
            Suspect(
                "SNAT", ("FM-11",), f"egress masquerade{on}", "traffic leaves but not with the node's address"
            )
        )
        return out, shape
    dns_tcp_ok = run.dns_tcp_passes_from_pods
    channels_working = {w for c in scope.contrasts if c.coordinate == "channel" for w in c.working}
    udp_only = "DNS tcp" in channels_working
    if chans <= {"DNS resolve"} and "DNS udp" in channels_working:
        # the same pods' own DNS queries over UDP are answered: neither the network nor the servers
        out.append(
            Suspect(
                "system resolver",
                ("FM-21",),
                f"the pods' resolver{on}: resolv.conf's search list and ndots, and its time-outs",
                "DNS over UDP from the same pods to the same servers works: the network and the servers "
                "answer; only lookups through the system resolver (getaddrinfo, one query per search "
                "domain and address family) fail or run out of time",
            )
        )
        return out, shape
    # "every DNS server fails from every subject": only then may TCP through the Service stand for "TCP
    # to the same servers" (one silent server among several is the server, not UDP)
    servers = run.dns_servers
    failing_servers = {f"coredns@{p.target_node}" for p in scope.points if p.target_class == "coredns"}
    all_servers = (
        classes <= {"coredns"}
        and bool(servers)
        and failing_servers == servers
        and scope.box.subject_nodes is None
        and scope.box.involves is None
    )
    if chans <= {"DNS udp", "DNS resolve"} and (udp_only or (all_servers and dns_tcp_ok)):
        out.append(
            Suspect(
                "DNS over UDP",
                ("FM-33", "FM-21", "FM-19"),
                f"UDP port 53 between the clients and the DNS servers{on}",
                "DNS over TCP to the same servers works: the servers answer, UDP 53 is dropped "
                "(a firewall rule or a network policy)",
            )
        )
        return out, shape
    if classes and all(c.startswith(("ingress:", "gateway:")) for c in classes):
        return [_ingress_suspect(classes, cells, worked)], shape
    if errors <= {"reset"}:
        out.append(
            Suspect(
                "conntrack / NAT state",
                ("FM-02",),
                f"the connection's state{on}",
                "the far end or a middlebox answers with a reset: L4 state, not routing",
            )
        )
    elif errors <= {"http-status", "tls"}:
        out.append(
            Suspect(
                "application (L7)",
                ("FM-01",),
                f"the HTTP server{on}",
                "the connection works and the server answers with an error: L7",
            )
        )
    elif errors <= {"refused"} and classes <= {"pod"}:
        out.append(
            Suspect(
                "backend pods",
                ("FM-03",),
                f"the pods{on}",
                "the packet reached the pod and was refused: nothing listens on the port",
            )
        )
    if out:
        return out, shape
    # small UDP lost with the large datagrams of the MTU check (UDP to the same port): a port, not a size
    port_chans = chans - {"L3 mtu"} if "L4 udp" in chans else chans
    direct = classes <= {"pod", "node"}  # a Service's own failures are judged against its backends below
    filtered = direct and "channel" in worked and errors <= NO_ANSWER and port_chans <= set(PORT_CHANNELS)
    working = _other_channels_on_the_same_pairs(cells, run) if filtered and port_chans else []
    if working:
        out.append(
            Suspect(
                "port filter",
                ("FM-19", "FM-03"),
                f"a firewall rule or a network policy dropping {_ports_text(cells)}{on}",
                f"{join_words(channel_words(w) for w in working)} on the same paths work: the routes and "
                "the tunnel deliver, only these ports get no answer",
            )
        )
        return out, shape
    one_way = (
        shape is not None
        and shape.edges
        and all(d != "both" for _, _, d in shape.edges)
        and shape.reverse_works()  # measured, not merely left out of a sampled mesh
    )
    if classes <= {"pod", "coredns", "node"} and paths <= {"cross-node"} and one_way:
        where = f"new connections{_on(nodes, all_nodes)}"
        why = (
            "the reverse direction works over the same nodes and tunnel: something (a firewall rule, "
            "a network policy) drops connections opened in this direction"
        )
        out.append(Suspect("one-way filter", ("FM-19", "FM-13"), where, why))
        return out, shape
    if classes <= {"pod", "coredns", "node"} and classes & {"pod", "node"} and paths <= {"cross-node"}:
        if "node" in classes:
            out.append(
                Suspect(
                    "node network",
                    ("FM-13", "FM-17"),
                    f"node network{_of(nodes, all_nodes)}",
                    "node-to-node traffic fails between the same nodes: routes, neighbours, "
                    "firewall between the nodes (a partition)",
                )
            )
        else:
            out.append(
                Suspect(
                    "tunnel",
                    ("FM-09", "FM-13"),
                    f"the tunnel (overlay, UDP 6081){on}",
                    "cross-node pod traffic fails while same-node traffic works and the nodes "
                    "reach each other directly",
                )
            )
        return out, shape
    if classes <= {"pod"} and paths <= {"same-node"}:
        out.append(
            Suspect(
                "pod network",
                ("FM-10", "FM-27"),
                f"the pods' route/veth or the CNI{on}",
                "pods are unreachable even from their own node",
            )
        )
        return out, shape
    if classes <= {"coredns"}:
        servers = {p.target_node for p in scope.points if p.target_node}
        subjects = scope.box.subject_nodes
        if subjects is not None:
            out.append(
                Suspect(
                    "path to the DNS server",
                    ("FM-22", "FM-13"),
                    f"from pods on {_nodes(subjects)} to the CoreDNS pod on {_nodes(servers)}",
                    "the server answers other subjects: the path between them drops",
                )
            )
        else:
            out.append(
                Suspect(
                    "DNS server",
                    ("FM-22",),
                    f"the CoreDNS pod on {_nodes(servers)}",
                    "it does not answer from any subject, its peers do",
                )
            )
        return out, shape
    if classes <= {"nameserver", "dns-external"}:
        out.append(
            Suspect(
                "upstream DNS",
                ("FM-23", "FM-24"),
                "the nodes' upstream nameservers",
                "external names fail while cluster names resolve",
            )
        )
        return out, shape
    if classes <= {"dns-internal", "dns-external"}:
        out.append(
            Suspect(
                "cluster DNS",
                ("FM-21", "FM-08"),
                f"the kube-dns Service{on}",
                "names fail through the Service while the CoreDNS pods answer directly",
            )
        )
        return out, shape
    if classes & SERVICES and classes <= SERVICES | {"dns-internal", "dns-external"}:
        if fams == {"external"}:
            out.append(
                Suspect(
                    "load balancer path",
                    ("FM-05", "FM-06"),
                    "the path to the LB VIP or its announcement",
                    "only the outside client fails",
                )
            )
        else:
            out.append(
                Suspect(
                    "service NAT",
                    ("FM-08",),
                    f"kube-proxy / the dataplane's service NAT{on}",
                    "the Service fails while its backend pods answer directly",
                )
            )
        return out, shape
    if classes <= {"outside", "internet"}:
        if fams == {"pod"} and "family" in worked:
            out.append(
                Suspect(
                    "egress",
                    ("FM-11", "FM-12"),
                    f"pod egress{on} (forwarding, masquerade)",
                    "the node itself reaches the same destination; its pods do not",
                )
            )
        else:
            out.append(
                Suspect(
                    "egress route",
                    ("FM-12",),
                    f"the route to the outside or the router{on}",
                    "the outside does not answer",
                )
            )
        return out, shape
    if all(c.startswith("component:") for c in classes):
        names = sorted(c.split(":", 1)[1] for c in classes)
        fms = tuple(dict.fromkeys(first_fm(c) for c in cells))
        reason = str(cells[0].get("reason") or "") if cells else ""
        out.append(Suspect(join_words(names), fms, reason, "the component check fails"))
        return out, shape
    # the flowchart's hops, one suspect per (FM, hop without its addresses): the same missing route to
    # two pods of one node is one suspect, not "one of 2"
    hops: Counter[tuple[str, str]] = Counter()
    for c in cells:
        diagnosis = c.get("diagnosis")
        if isinstance(diagnosis, dict) and diagnosis.get("hop"):
            hop_fm = str(diagnosis.get("fm") or first_fm(c))
            hops[(hop_fm, _ADDRESS_TAIL.sub("", str(diagnosis["hop"])))] += 1
    for (hop_fm, hop), _ in hops.most_common(2):
        why = "the flowchart's first broken hop for these cells"
        out.append(Suspect("first broken hop", (hop_fm,), hop, why))
    fms = tuple(fm for fm, _ in Counter(first_fm(c) for c in cells).most_common(2))
    if not out:
        out.append(Suspect("other", fms, "", "no single component fits this scope"))
    return out, shape


def _stale_entries_between(scope: Scope, run: RunCells) -> list[Cell]:
    """The run's stale-neighbour cells (host@A -> node@B) whose two nodes hold every path of `scope`:
    both directions between A and B break (A's replies go to the old MAC too), one cause, said once."""
    found = []
    for c in run.stale_neighbours:
        a, b = (str(c.get(side) or "").partition("@")[2] for side in ("subject", "target"))
        pair = {a, b}
        if a and b and all(p.subject_node in pair and p.target_node in pair for p in scope.points):
            found.append(c)
    return found


def _other_channels_on_the_same_pairs(cells: Sequence[Cell], run: RunCells) -> list[str]:
    """The channels that pass between the very same subject and target as each failing cell, when every
    failing cell has one ([] otherwise): the evidence that the path itself delivers. A scope's channel
    contrast is weaker (node pings passing say nothing about the pod paths' tunnel).
    """
    found: set[str] = set()
    for c in cells:
        own = channel_of(str(c.get("layer")), str(c.get("protocol")))
        others = run.passing_channels.get((str(c.get("subject")), str(c.get("target"))), set())
        others = others & set(PATH_CHANNELS) - {own}
        if not others:
            return []
        found |= others
    return [ch for ch in PATH_CHANNELS if ch in found]


NO_ANSWER = frozenset({"timeout", "host-unreachable", "net-unreachable"})  # dropped or rejected on the way


def _ports_text(cells: Sequence[Cell]) -> str:
    """The transports and ports the cells' own checks sent to: "HTTP (TCP port 8080)", "UDP port 9001".

    >>> _ports_text([{"protocol": "http", "evidence": {"checks": [{"url": "http://10.0.0.1:8080/"}]}}])
    'HTTP (TCP port 8080)'
    """
    by_channel: dict[str, set[int]] = {}
    for c in cells:
        proto = "udp" if c.get("protocol") == "mtu" else str(c.get("protocol") or "")
        checks = (c.get("evidence") or {}).get("checks") or []
        port = _check_port(checks[0]) if checks and isinstance(checks[0], dict) else None
        ports = by_channel.setdefault(proto, set())
        if port is not None:
            ports.add(port)
    words = []
    for proto, ports in sorted(by_channel.items()):
        listed = f"port{'s' if len(ports) > 1 else ''} {join_words(str(n) for n in sorted(ports))}"
        if proto in ("http", "https"):
            words.append(f"{proto.upper()} (TCP {listed})" if ports else proto.upper())
        else:
            words.append(f"{proto.upper()} {listed}" if ports else proto.upper())
    return join_words(words)


def _check_port(check: Mapping[str, Any]) -> int | None:
    if isinstance(check.get("port"), int):
        return int(check["port"])
    url = check.get("url")
    if isinstance(url, str):
        try:
            parts = urlsplit(url)
            return parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
    return None


_ADDRESS_TAIL = re.compile(r"( -> [0-9.]+(:\d+)?| [0-9.]+:\d+)$")  # "pod route on node-3 -> 10.244.3.2"

INGRESS_PARTS = {
    "FM-34": "its routing, the proxy has no route for the host",
    "FM-35": "its backends, the proxy cannot use an endpoint",
    "FM-36": "its address, no L4 answer from the ingress",
}


def _ingress_suspect(classes: set[str], cells: Sequence[Cell], worked: set[str]) -> Suspect:
    """Only the ingress path fails: the controller of those classes, and which part of it (the cells'
    classified FM: routing, backends or its address)."""
    kinds = {c.split(":", 1)[0] for c in classes}
    names = join_words(
        sorted(
            f"Gateway {c.split(':', 1)[1]}" if c.startswith("gateway:") else c.split(":", 1)[1]
            for c in classes
        )
    )
    fms = tuple(dict.fromkeys(str(c.get("classified_fm") or first_fm(c)) for c in cells))
    parts = join_words(INGRESS_PARTS[f] for f in fms if f in INGRESS_PARTS) or "its configuration"
    why = (
        "the same echo backends answer without it"
        if "target_class" in worked
        else "only the ingress cells were measured"
    )
    if kinds == {"gateway"}:
        return Suspect(f"the controller of {names}", fms, parts, why)
    what = "the ingress controller of class" if kinds == {"ingress"} else "the ingress controllers of"
    return Suspect(f"{what} {names}", fms, parts, why)


def _of(nodes: set[str], all_nodes: Sequence[str]) -> str:
    return f" of {_nodes(nodes)}" if nodes and len(nodes) < len(all_nodes) else " between the nodes"


# ---- sentences --------------------------------------------------------------------------------------


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _scope_text(scope: Scope, shape: Partition | None, all_nodes: Sequence[str]) -> str:
    text = scope.describe()
    if shape is not None and shape.shape != "none":
        what = (
            "cross-node pod traffic"
            if "node" not in scope.values("target_class")
            else "traffic between nodes"
        )
        text += f" ({shape.describe(what)})"
    return text


def _finding(
    scope: Scope,
    all_nodes: Sequence[str],
    run: RunCells,
    intermittent: bool,
    flaky: Sequence[Point] = (),
) -> Finding:
    suspects, shape = suspects_for(scope, all_nodes, run, intermittent)
    nodes = scope.nodes
    if not intermittent and nodes and any(p.involved & nodes for p in flaky):
        # the same nodes also flicker: a failure on every attempt may be the same loss, unlucky twice
        suspects = [*suspects, Suspect("packet loss", ("FM-09", "FM-16"), f"on paths through {_nodes(nodes)}",
                    "cells on the same nodes pass on some attempts only")]  # fmt: skip
    scope_text = _scope_text(scope, shape, all_nodes)
    contrasts = tuple(c.text for c in scope.contrasts)
    n = len(scope.points)
    noun = "intermittent" if intermittent else "failing"
    head = f"{n} {noun} cell{'s' if n != 1 else ''}: {scope_text}"
    ratio = scope.fail_ratio() if intermittent else None
    if ratio is not None:
        head += f" ({round(100 * ratio)}% of attempts fail)"
    parts = [head]
    if contrasts:
        parts.append("; ".join(contrasts))
    if scope.consequences:
        k = len(scope.consequences)
        parts.append(
            f"{k} Service/DNS check{'s' if k != 1 else ''} fail or flicker with it (their backend "
            "or server is behind the same cut)"
        )
    confidence = ONLY if len(suspects) == 1 else f"one of {len(suspects)}"
    suspect_text = " or ".join(
        f"{s.component} ({s.hop}: {s.why})" if s.hop else s.component for s in suspects
    )
    fms = tuple(dict.fromkeys(fm for s in suspects for fm in s.fm))
    summary = f"{': '.join(parts[:1])}; {'; '.join(parts[1:])}" if len(parts) > 1 else parts[0]
    summary += f". Suspect {suspect_text}, {'/'.join(fms)}: {confidence}"
    return Finding(
        summary,
        fms,
        suspects[0].component,
        scope.keys,
        scope_text,
        contrasts,
        tuple(suspects),
        confidence,
        shape,
        intermittent,
        ratio,
    )


def _merge(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """Scopes with the very same suspects become one finding (one cause, said once)."""
    out: list[Finding] = []
    for f in findings:
        same = next((i for i, g in enumerate(out) if g.suspects == f.suspects), None)
        if same is None:
            out.append(f)
            continue
        g = out[same]
        head, _, tail = g.summary.partition(". Suspect ")
        other = f.summary.partition(". Suspect ")[0]
        out[same] = Finding(
            f"{head}; and {other}. Suspect {tail}",
            g.fm,
            g.component,
            g.keys + f.keys,
            f"{g.scope}; {f.scope}",
            g.contrasts + f.contrasts,
            g.suspects,
            g.confidence,
            g.partition or f.partition,
            g.intermittent,
            g.fail_ratio,
        )
    return tuple(out)


def _unmeasured_text(groups: Sequence[Unmeasured]) -> str:
    if not groups:
        return ""
    total = sum(len(g.keys) for g in groups)
    shown = []
    for g in groups[:3]:
        when = f" (from {g.at[0]})" if g.at else ""
        shown.append(
            f"{len(g.keys)} from {len(g.subjects)} subject{'s' if len(g.subjects) != 1 else ''}: "
            f"{g.reason}{when}"
        )
    more = f"; and {len(groups) - 3} other reasons" if len(groups) > 3 else ""
    return (
        f"{total} cell{'s were' if total != 1 else ' was'} not measured (the probe could not run, so "
        f"they say nothing about the network) — {'; '.join(shown)}{more}"
    )


def _skip_note(cells: Sequence[Cell]) -> str:
    skipped = [c for c in cells if c.get("outcome") == "skipped"]
    if not skipped:
        return ""
    reasons = Counter(str(c.get("reason") or "no reason given") for c in skipped)
    top = [r for r, _ in reasons.most_common(2)]
    others = len(reasons) - 2
    more = f" and {others} other reason{'s' if others > 1 else ''}" if others > 0 else ""
    return f" {len(skipped)} skipped ({'; '.join(top)}{more})."


def compute_verdict(results: Mapping[str, Any]) -> RunVerdict:
    """The verdict for one run; deterministic for a given results dict (cell order does not matter)."""
    cells = canonical_cells(results)
    nodes = nodes_of(results)
    if not cells:
        return RunVerdict("No results: the run produced no cells (was anything selected?).", "failing")
    counts = count_outcomes(cells)
    run = RunCells({key_of(c): c for c in cells})
    lost = tuple(unmeasured(cells))
    lost_text = _unmeasured_text(lost)
    failed: Inference = infer(cells, "failed")
    flaky: Inference = infer(cells, "flaky", roots=failed)
    folded = sum(1 for c in cells if c.get("outcome") == "flaky") - sum(len(s.points) for s in flaky.scopes)
    # direct paths that flicker (a Service flickering because its backend is cut off says nothing new)
    flaky_points = [p for p in points_of(cells) if p.outcome == "flaky" and not indirect(p.target_class)]
    findings = tuple(_finding(s, nodes, run, False, flaky_points) for s in failed.scopes)
    flickers = _merge(tuple(_finding(s, nodes, run, True) for s in flaky.scopes))
    findings = _merge(findings)
    ran = len(cells) - counts["skipped"]
    sentences = []
    if lost_text:
        sentences.append(_sentence(lost_text))
    sentences += [_sentence(f.summary) for f in findings]
    sentences += [_sentence(f.summary) for f in flickers]
    if folded:
        sentences.append(_sentence(f"{folded} intermittent cells are explained by the failures above"))
    tally = (
        f"{counts['failed']} failed, {counts['error']} not measured, {counts['flaky']} flaky, "
        f"{counts['passed']} passed of {ran} cells run on {len(nodes)} nodes."
    )
    if not findings and not flickers and not lost and not folded:
        text = f"All {counts['passed']} cells run on {len(nodes)} nodes passed.{_skip_note(cells)}"
        return RunVerdict(text.strip(), "healthy")
    # failed cells that only a flicker explains (a Service unlucky on every attempt) still fail the run
    status = "failing" if findings or lost or counts["failed"] else "degraded"
    text = " ".join([*sentences, tally]) + _skip_note(cells)
    return RunVerdict(text, status, findings, flickers, lost, lost_text)


def verdict_text(results: Mapping[str, Any]) -> str:
    return compute_verdict(results).text


def verdict_data(results: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict as stored in ``results.json`` (computed when an older writer left it out)."""
    stored = results.get("verdict")
    if isinstance(stored, dict) and "status" in stored and "text" in stored:
        return stored
    return compute_verdict(results).to_json()


def channel_text(channel: str) -> str:
    return channel_words(channel)


def target_text(target_class: str) -> str:
    return class_words(target_class)


__all__ = ["Finding", "Point", "RunVerdict", "Suspect", "compute_verdict", "verdict_data", "verdict_text"]
