"""The one-paragraph verdict: what is broken, in plain words, and which component to suspect.

A fault rarely breaks one cell: a blocked tunnel fails every cross-node pod path of a node *and* makes
ClusterIP and DNS checks fail or flicker whenever their backend sits on the other side. The verdict
therefore looks for the root pattern first (pod overlay between nodes, node network, a single node's pod
network), lets it claim the cells it explains, and only then describes what is left (service NAT, DNS
servers, egress SNAT, ARP, MTU, anything else) — so the reader gets one cause, not N² symptoms.
Everything here is a pure function of the results dict.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netconform.report.layout import kind_label
from netconform.report.results import (
    FAILING,
    canonical_cells,
    count_outcomes,
    family_of,
    first_fm,
    key_of,
    natural_key,
    node_of,
    nodes_of,
)

Cell = Mapping[str, Any]
Pair = tuple[str, str]

SERVICE_KINDS = frozenset({"T-CLUSTERIP", "T-NODEPORT", "T-LB-VIP"})
DNS_KINDS = frozenset({"T-DNS-INTERNAL", "T-DNS-EXTERNAL", "T-DNS-SERVER"})


@dataclass(frozen=True)
class Finding:
    """One explained pattern: a sentence, the FM IDs it points at, the component to suspect."""

    summary: str
    fm: tuple[str, ...]
    component: str
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    text: str
    status: str  # "healthy" | "degraded" (only flaky) | "failing"
    findings: tuple[Finding, ...] = field(default_factory=tuple)


def _bad(cell: Cell) -> bool:
    return cell.get("outcome") in FAILING


def _noticed(cell: Cell) -> bool:
    return cell.get("outcome") in FAILING or cell.get("outcome") == "flaky"


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _nodes_text(nodes: Iterable[str]) -> str:
    return _join(sorted(nodes, key=_natural))


def _natural(text: str) -> tuple[Any, ...]:
    return natural_key(text)


def _pod_pair(cell: Cell) -> Pair | None:
    """(source node, destination node) of a cross-node pod-network path (pod or host to a pod)."""
    if family_of(cell["target"]) != "pod" or family_of(cell["subject"]) not in ("pod", "host"):
        return None
    src, dst = node_of(cell["subject"]), node_of(cell["target"])
    if src is None or dst is None or src == dst:
        return None
    return (src, dst)


def _node_pair(cell: Cell) -> Pair | None:
    if family_of(cell["target"]) != "node" or family_of(cell["subject"]) not in ("pod", "host"):
        return None
    src, dst = node_of(cell["subject"]), node_of(cell["target"])
    if src is None or dst is None or src == dst:
        return None
    return (src, dst)


def _components(nodes: Sequence[str], bad: set[Pair]) -> list[set[str]]:
    """Groups of nodes that reach each other both ways (union-find over working pairs)."""
    parent = {n: n for n in nodes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a in nodes:
        for b in nodes:
            if a < b and (a, b) not in bad and (b, a) not in bad:
                parent[find(a)] = find(b)
    groups: dict[str, set[str]] = defaultdict(set)
    for n in nodes:
        groups[find(n)].add(n)
    return sorted(groups.values(), key=lambda g: (len(g) == 1, _natural(min(g, key=_natural))))


def describe_pairs(nodes: Sequence[str], bad: set[Pair], what: str) -> tuple[str, set[str]]:
    """Plain words for a set of failing (source, destination) node pairs, and the nodes to blame.

    Recognises: every pair, a partition into groups (one node cut off is a group of one), one-way
    failures from or to some nodes, and otherwise names the node every failing pair involves.
    """
    involved = {n for pair in bad for n in pair}
    all_pairs = {(a, b) for a in nodes for b in nodes if a != b}
    if bad >= all_pairs and len(nodes) > 1:
        return f"{what} fails between all {len(nodes)} nodes", set(nodes)
    groups = _components(nodes, bad)
    partition = {
        (a, b) for a in nodes for b in nodes if a != b and not any(a in g and b in g for g in groups)
    }
    if len(groups) > 1 and partition == bad:
        singles = [min(g) for g in groups if len(g) == 1]
        big = [g for g in groups if len(g) > 1]
        if len(big) <= 1 and singles:
            rest = "the other nodes" if big else "any other node"
            cut = _nodes_text(singles)
            verb = "is" if len(singles) == 1 else "are"
            return f"{what} fails between {cut} and {rest}, in both directions ({cut} {verb} cut off)", set(
                singles
            )
        parts = " | ".join("{" + ", ".join(sorted(g, key=_natural)) + "}" for g in groups)
        return f"the nodes are partitioned: {what} fails between the groups {parts}, works inside each", set(
            involved
        )
    sources = {a for a, _ in bad}
    targets = {b for _, b in bad}
    from_all = {(a, b) for a in sources for b in nodes if a != b}
    to_all = {(a, b) for b in targets for a in nodes if a != b}
    if bad == from_all:
        return (
            f"{what} fails from {_nodes_text(sources)} to all other nodes (the other direction works)",
            sources,
        )
    if bad == to_all:
        return (
            f"{what} fails to {_nodes_text(targets)} from all other nodes (the other direction works)",
            targets,
        )
    common = set.intersection(*({a, b} for a, b in bad)) if bad else set()
    shown = sorted(bad, key=lambda p: (_natural(p[0]), _natural(p[1])))
    listed = ", ".join(f"{a}→{b}" for a, b in shown[:4]) + (
        f" and {len(shown) - 4} more" if len(shown) > 4 else ""
    )
    if common:
        node = sorted(common, key=_natural)[0]
        return f"{what} fails on {len(bad)} node pairs, all involving {node} ({listed})", {node}
    return f"{what} fails on {len(bad)} node pairs ({listed})", involved


class _Analysis:
    """Walks the findings in order; each claims the cells it explains."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        self.cells: list[Cell] = canonical_cells(results)
        self.nodes = nodes_of(results)
        self.claimed: set[str] = set()
        self.findings: list[Finding] = []
        self.by_key = {key_of(c): c for c in self.cells}

    def open_cells(self, pred: Any = _noticed) -> list[Cell]:
        return [c for c in self.cells if key_of(c) not in self.claimed and pred(c)]

    def claim(self, cells: Iterable[Cell]) -> tuple[str, ...]:
        keys = tuple(key_of(c) for c in cells)
        self.claimed.update(keys)
        return keys

    def add(self, summary: str, fm: Sequence[str], component: str, cells: Iterable[Cell]) -> None:
        self.findings.append(Finding(summary, tuple(fm), component, self.claim(cells)))

    # ---- root patterns -------------------------------------------------------------------------
    def pod_overlay(self) -> None:
        cross = [c for c in self.cells if _pod_pair(c) and c.get("protocol") != "mtu"]
        bad_cells = [c for c in cross if _bad(c)]
        if not bad_cells:
            return
        bad_pairs = {p for c in bad_cells if (p := _pod_pair(c))}
        text, blamed = describe_pairs(self.nodes, bad_pairs, "cross-node pod traffic")
        same = [
            c
            for c in self.cells
            if family_of(c["target"]) == "pod"
            and node_of(c["subject"])
            and node_of(c["subject"]) == node_of(c["target"])
        ]
        same_ok = bool(same) and not any(_bad(c) for c in same)
        under = [
            c
            for c in self.cells
            if ((p := _node_pair(c)) and p in bad_pairs) or (p and (p[1], p[0]) in bad_pairs)
        ]
        under_bad = [c for c in under if _bad(c)]
        clauses = [text]
        if same_ok:
            clauses.append("same-node traffic works")
        if under and not under_bad:
            clauses.append("the nodes reach each other directly")
        if under_bad:
            fm, component = ("FM-13", "FM-17"), "node network"
            # the underlay itself is broken between the same nodes: a partition, not the tunnel
            clauses.insert(1, "node-to-node traffic fails between the same nodes")
            where = f" of {_nodes_text(blamed)}" if len(blamed) < len(self.nodes) else " between the nodes"
            suspect = (
                f"suspect the node network{where} (routes, neighbours, firewall): a partition, FM-13/FM-17"
            )
            claimed = bad_cells + under_bad
        else:
            fm, component = ("FM-09", "FM-13"), "tunnel"
            where = f" on {_nodes_text(blamed)}" if len(blamed) < len(self.nodes) else " between the nodes"
            suspect = f"suspect the tunnel (overlay, UDP 6081){where}, FM-09"
            claimed = bad_cells
        mtu = [c for c in self.cells if _pod_pair(c) and c.get("protocol") == "mtu" and _bad(c)]
        # the suite's cluster-wide partition summary cell says the same thing once more
        mesh = [
            c
            for c in self.open_cells(_bad)
            if c["subject"] == "cluster"
            and (c["target"] == "component:pod-mesh" or c.get("protocol") == "partition")
        ]
        consequences = self._consequences(blamed)
        summary = "; ".join(clauses) + ": " + suspect
        if consequences:
            which = (
                f"(those that start on {_nodes_text(blamed)} or land on a backend there)"
                if len(blamed) < len(self.nodes)
                else "(those that cross those nodes)"
            )
            summary += f". {len(consequences)} Service/DNS checks fail or flicker with it {which}"
        cut_off: list[Cell] = []
        if under_bad and len(blamed) < len(self.nodes):
            # a node cut off from the node network cannot reach what lives on the others either
            # (the API server VIP, the control plane): same cause, not another finding
            cut_off = [
                c
                for c in self.open_cells(_bad)
                if family_of(c["target"]) == "component" and node_of(c["subject"]) in blamed
            ]
        if cut_off:
            names = sorted({c["target"].split(":", 1)[1] for c in cut_off})
            summary += f". From {_nodes_text(blamed)}, the {_join(names)} cannot be reached either"
        self.add(summary, fm, component, [*claimed, *mtu, *mesh, *consequences, *cut_off])

    def _consequences(self, blamed: set[str]) -> list[Cell]:
        """Service and DNS cells a broken node path explains: from or to a blamed node, flickering
        elsewhere, or failing *sporadically* elsewhere.

        A Service with a backend on a blamed node fails only when a connection lands there: from a
        healthy node some of its checks pass, some flicker, and now and then one fails on every attempt
        (seen on a real 12-node lab with one node partitioned). A subject whose checks of that Service
        kind *all* fail is a different problem (its own service NAT) and is left for the later steps,
        but only when it has several such checks: one check failing twice on the blamed node's backend
        is as likely as not (a 12-node run gave one such ClusterIP cell in about one run of five).
        """
        kinds = SERVICE_KINDS | DNS_KINDS
        working: set[tuple[str, str]] = {
            (c["subject"], str(c.get("target_kind")))
            for c in self.cells
            if c.get("target_kind") in kinds and c.get("outcome") in ("passed", "flaky")
        }
        checks_per_kind = Counter(
            (c["subject"], str(c.get("target_kind")))
            for c in self.cells
            if c.get("target_kind") in kinds and c.get("outcome") != "skipped"
        )
        out = []
        for c in self.open_cells():
            kind = c.get("target_kind")
            if kind not in kinds:
                continue
            src, dst = node_of(c["subject"]), node_of(c["target"])
            key = (c["subject"], str(kind))
            sporadic = key in working or checks_per_kind[key] < 2
            if src in blamed or dst in blamed or c.get("outcome") == "flaky" or sporadic:
                out.append(c)
        return out

    def node_network(self) -> None:
        bad_cells = [c for c in self.open_cells(_bad) if _node_pair(c)]
        if not bad_cells:
            return
        pairs = {p for c in bad_cells if (p := _node_pair(c))}
        text, _ = describe_pairs(self.nodes, pairs, "node-to-node traffic")
        self.add(
            f"{text}: suspect the node network (routes, neighbours, firewall), FM-13/FM-17",
            ("FM-13", "FM-17"),
            "node network",
            bad_cells,
        )

    def same_node(self) -> None:
        bad_cells = [
            c
            for c in self.open_cells(_bad)
            if family_of(c["target"]) == "pod"
            and node_of(c["subject"])
            and node_of(c["subject"]) == node_of(c["target"])
        ]
        if not bad_cells:
            return
        nodes = {node_of(c["target"]) or "" for c in bad_cells}
        if {c.get("error") for c in bad_cells} == {"refused"}:
            # the packet reached the pod and was refused: its network works, nothing listens on the port
            self.add(
                f"pods on {_nodes_text(nodes)} refuse connections even from their own node: the pod network "
                "delivers, but nothing listens on the port: check the backend pods there (started, "
                "listening, ready), FM-03",
                ("FM-03",),
                "backend pods",
                bad_cells,
            )
            return
        self.add(
            f"pods on {_nodes_text(nodes)} are unreachable even from their own node: suspect the pod's "
            "route/veth on the node or the CNI there, FM-10/FM-27",
            ("FM-10", "FM-27"),
            "pod network",
            bad_cells,
        )

    # ---- what is left ----------------------------------------------------------------------------
    def service_nat(self) -> None:
        bad_cells = [
            c
            for c in self.open_cells(_bad)
            if c.get("target_kind") in SERVICE_KINDS and c.get("layer") != "L2"
        ]
        if not bad_cells:
            return
        kinds = sorted({kind_label(str(c["target_kind"])) for c in bad_cells})
        subjects = {c["subject"] for c in bad_cells}
        involved = [{n for n in (node_of(c["subject"]), node_of(c["target"])) if n} for c in bad_cells]
        common = set.intersection(*involved) if involved else set()
        direct_ok = not any(_bad(c) for c in self.cells if family_of(c["target"]) == "pod")
        node_subjects = {c["subject"] for c in self.cells if node_of(c["subject"])}
        # DNS through the kube-dns Service IP rides the same NAT: claim it when CoreDNS answers directly
        coredns_ok = not any(_bad(c) for c in self.cells if family_of(c["target"]) == "coredns")
        via_service = [
            c
            for c in self.open_cells()
            if coredns_ok
            and c["target"] in ("dns-internal", "dns-external")
            and family_of(c["subject"]) == "pod"
        ]
        related: list[Cell] = []
        if common and len(self.nodes) > 1:
            node = sorted(common, key=_natural)[0]
            where = f"from or through {node} only"
            suspect = f"suspect service NAT (kube-proxy / the dataplane) on {node}"
            related = [c for c in via_service if node_of(c["subject"]) == node]
        elif subjects == {"external"}:
            where = "from the outside client only"
            suspect = "suspect the path to the load balancer (FM-05) or its announcement"
        else:
            where = "from every subject" if subjects >= node_subjects else f"from {len(subjects)} subjects"
            suspect = "suspect service NAT (kube-proxy / the dataplane) or the Services' endpoints"
            related = [c for c in via_service if c["subject"] in subjects]
        backends = "; backend pods answer directly" if direct_ok else ""
        also = (
            "; DNS through the kube-dns Service IP fails with it while CoreDNS answers directly"
            if related
            else ""
        )
        self.add(
            f"{_join(kinds)} traffic fails {where}{backends}{also}: {suspect}, FM-08",
            ("FM-08",),
            "service NAT",
            [*bad_cells, *related],
        )

    def dns(self) -> None:
        bad_cells = [
            c for c in self.open_cells(_bad) if c.get("target_kind") in DNS_KINDS or c.get("layer") == "DNS"
        ]
        if not bad_cells:
            return
        servers: dict[str, list[Cell]] = defaultdict(list)
        for c in bad_cells:
            if family_of(c["target"]) == "coredns":
                servers[c["target"]].append(c)
        sentences: list[str] = []
        fms: list[str] = []
        for target, cells in sorted(servers.items()):
            askers = {c["subject"] for c in self.cells if c["target"] == target}
            failing = {c["subject"] for c in cells}
            who = (
                "from any subject" if failing >= askers else f"from {len(failing)} of {len(askers)} subjects"
            )
            sentences.append(f"the CoreDNS pod on {node_of(target)} does not answer {who}")
            fms.append("FM-22")
        if servers:
            # with one server down, queries through the Service fail only when they land on it
            flicker = [
                c
                for c in self.open_cells(lambda c: c.get("outcome") == "flaky")
                if c.get("target_kind") in DNS_KINDS
            ]
            if flicker:
                sentences.append(
                    f"{len(flicker)} queries through the kube-dns Service fail intermittently as a result"
                )
                bad_cells += flicker
        internal = [c for c in bad_cells if c.get("target_kind") == "T-DNS-INTERNAL" and _bad(c)]
        external = [c for c in bad_cells if c.get("target_kind") == "T-DNS-EXTERNAL" and _bad(c)]
        nameservers = [c for c in bad_cells if family_of(c["target"]) == "nameserver" and _bad(c)]
        if external and not internal:
            sentences.append("external names do not resolve while cluster names do: check CoreDNS's upstream")
            fms += ["FM-23", "FM-24"]
        elif internal:
            subjects = {c["subject"] for c in internal}
            sentences.append(
                f"cluster DNS through the kube-dns Service fails from {len(subjects)} subject(s)"
            )
            fms.append("FM-21")
        for c in bad_cells:
            if family_of(c["target"]) == "component":
                name = c["target"].split(":", 1)[-1]
                sentences.append(f"{name}: {c.get('reason') or c.get('error') or 'failed'}")
                fms.append(first_fm(c))
        if nameservers:
            nodes = {node_of(c["target"]) or "" for c in nameservers}
            where = (
                f"any node ({_nodes_text(nodes)})" if len(nodes) == len(self.nodes) else _nodes_text(nodes)
            )
            sentences.append(f"the nodes' upstream nameservers do not answer from {where}")
            fms.append("FM-24")
        component = (
            "DNS server" if servers else "upstream DNS" if nameservers or not internal else "cluster DNS"
        )
        self.add(
            "; ".join(sentences) + f", {'/'.join(dict.fromkeys(fms))}",
            tuple(dict.fromkeys(fms)),
            component,
            bad_cells,
        )

    def egress(self) -> None:
        bad_cells = [c for c in self.open_cells(_bad) if c.get("target_kind") in ("T-OUTSIDE", "T-INTERNET")]
        snat = [c for c in bad_cells if "FM-11" in c.get("fm", []) or c.get("protocol") == "snat"]
        if snat:
            nodes = {n for c in snat if (n := node_of(c["subject"]))}
            where = "every node" if len(nodes) == len(self.nodes) else _nodes_text(nodes)
            self.add(
                f"pod traffic to the outside from {where} does not leave with the node's address: "
                "suspect egress masquerade (SNAT), FM-11",
                ("FM-11",),
                "SNAT",
                snat,
            )
        rest = [c for c in bad_cells if c not in snat]
        if rest:
            subjects = {c["subject"] for c in rest}
            self.add(
                f"the outside is unreachable from {len(subjects)} subject(s): suspect the egress route or "
                "the router, FM-12",
                ("FM-12",),
                "egress route",
                rest,
            )

    def arp(self) -> None:
        bad_cells = [c for c in self.open_cells() if c.get("layer") == "L2"]
        if not bad_cells:
            return
        reasons = Counter(str(c.get("reason") or c.get("error") or "ARP check failed") for c in bad_cells)
        reason, _ = reasons.most_common(1)[0]
        targets = sorted({c["target"] for c in bad_cells})
        fm = ("FM-28",) if any("FM-28" in c.get("fm", []) for c in bad_cells) else ("FM-06", "FM-16")
        # traffic to an address two devices claim works only when ARP picked the right one
        flicker = [
            c for c in self.open_cells(lambda c: c.get("outcome") == "flaky") if c["target"] in targets
        ]
        also = f"; {len(flicker)} checks to it are intermittent as a result" if flicker else ""
        self.add(
            f"ARP for {_join(targets)} is wrong ({reason}){also}: suspect an address conflict or the L2 "
            f"announcer, {'/'.join(fm)}",
            fm,
            "ARP / L2",
            [*bad_cells, *flicker],
        )

    def mtu(self) -> None:
        bad_cells = [c for c in self.open_cells(_bad) if c.get("protocol") == "mtu"]
        if bad_cells:
            self.add(
                "large packets with DF set fail across nodes while small ones pass: suspect the path MTU "
                "under encapsulation, FM-31",
                ("FM-31",),
                "MTU",
                bad_cells,
            )

    def leftovers(self) -> None:
        bad_cells = self.open_cells(_bad)
        if not bad_cells:
            return
        kinds = {str(c.get("target_kind")) for c in bad_cells}
        layers = {str(c.get("layer")) for c in bad_cells}
        nodes = [node_of(c["subject"]) or node_of(c["target"]) for c in bad_cells]
        fms = Counter(fm for c in bad_cells for fm in c.get("fm", [])[:1])
        top_fm = [fm for fm, _ in fms.most_common(2)]
        hops = Counter(
            str(c["diagnosis"]["hop"])
            for c in bad_cells
            if isinstance(c.get("diagnosis"), dict) and c["diagnosis"].get("hop")
        )
        n = len(bad_cells)
        if len(kinds) == 1:
            kind = kinds.pop()
            what = "component" if kind == "T-COMPONENT" else kind_label(kind)
            text = f"only {what} checks fail ({n})"
        elif len(layers) == 1:
            text = f"only {layers.pop()} checks fail ({n}, across {len(kinds)} target kinds)"
        elif nodes and all(nodes) and len(set(nodes)) == 1:
            text = f"{n} failures, all involving {nodes[0]}"
        else:
            text = f"{n} more failures across {len(kinds)} target kinds"
        if n <= 3:
            text += ": " + ", ".join(
                f"{c['subject']} → {c['target']} {c['layer']} {c['protocol']}" for c in bad_cells
            )
        if hops:
            text += f"; first broken hop reported: {hops.most_common(1)[0][0]}"
        self.add(f"{text}, {'/'.join(top_fm)}", tuple(top_fm), "other", bad_cells)

    def flaky(self) -> list[Cell]:
        return self.open_cells(lambda c: c.get("outcome") == "flaky")


def _cell_text(cell: Cell) -> str:
    return f"{cell['subject']} → {cell['target']} {cell['layer']} {cell['protocol']}"


def _skip_note(cells: Sequence[Cell]) -> str:
    skipped = [c for c in cells if c.get("outcome") == "skipped"]
    if not skipped:
        return ""
    reasons = Counter(str(c.get("reason") or "no reason given") for c in skipped)
    top = [r for r, _ in reasons.most_common(2)]
    others = len(reasons) - 2
    more = f" and {others} other reason{'s' if others > 1 else ''}" if others > 0 else ""
    return f" {len(skipped)} skipped ({'; '.join(top)}{more})."


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def compute_verdict(results: Mapping[str, Any]) -> Verdict:
    """The verdict for one run; deterministic for a given results dict."""
    analysis = _Analysis(results)
    cells = analysis.cells
    counts = count_outcomes(cells)
    nodes = analysis.nodes
    ran = len(cells) - counts["skipped"]
    if not cells:
        return Verdict("No results: the run produced no cells (was anything selected?).", "failing")
    for step in (
        analysis.pod_overlay,
        analysis.node_network,
        analysis.same_node,
        analysis.service_nat,
        analysis.dns,
        analysis.egress,
        analysis.arp,
        analysis.mtu,
        analysis.leftovers,
    ):
        step()
    flaky = analysis.flaky()
    sentences = [_sentence(f.summary) for f in analysis.findings]
    if flaky:
        subjects = {c["subject"] for c in flaky}
        sentences.append(
            _sentence(
                (
                    f"{len(flaky)} checks pass only on some attempts (intermittent, from "
                    f"{len(subjects)} subjects)"
                    if len(flaky) > 1
                    else f"one check passes only on some attempts ({_cell_text(flaky[0])}, intermittent)"
                )
                + ": look for an IP conflict (FM-16) or conntrack/NAT pressure (FM-30)"
            )
        )
    tally = (
        f"{counts['failed'] + counts['error']} failed, {counts['flaky']} flaky, "
        f"{counts['passed']} passed of {ran} cells run on {len(nodes)} nodes."
    )
    if not analysis.findings and not flaky:
        text = f"All {counts['passed']} cells run on {len(nodes)} nodes passed.{_skip_note(cells)}"
        return Verdict(text.strip(), "healthy")
    status = "failing" if analysis.findings else "degraded"
    return Verdict(" ".join([*sentences, tally]) + _skip_note(cells), status, tuple(analysis.findings))


def verdict_text(results: Mapping[str, Any]) -> str:
    return compute_verdict(results).text
