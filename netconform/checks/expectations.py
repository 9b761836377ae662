"""Expectations: the rules that turn a cell's measurements into its verdict (what "works" means).

This is where the catalogue's expectations live: a ClusterIP that does not answer ping is not a failure
when VIP:port answers (FM-15); a node resolver that does not know `cluster.local` is expected (FM-24);
exactly one MAC must answer ARP for an address (FM-06/16); egress must carry the node's address (FM-11);
an MTU problem is a size that vanishes while smaller ones pass (FM-31).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

from netconform.checks import probes as P
from netconform.checks.api import Expectation, Judge
from netconform.checks.context import Context
from netconform.checks.judging import Results, all_pass, attempt_outcome, failure
from netconform.checks.parsers import iptables_save as ipt
from netconform.checks.parsers.procfs import cached_macs, is_local, route_table
from netconform.checks.plans import RESOLV, l7_entry, node_nameservers
from netconform.checks.probes import Attempt, Probe, ProbeResult
from netconform.model.cell import Cell
from netconform.model.refs import Ref
from netconform.model.verdict import Verdict

SNAT_PORT_BUDGET = 32767  # 32768-65535 per protocol and destination (FM-30)


CONNTRACK_WARN = 0.9


TOO_BIG_BY = {
    "emsgsize": "refused by the sender's kernel (EMSGSIZE: route, device or learnt path MTU)",
    "enobufs": "dropped by a device on the way out (ENOBUFS: a link with a smaller MTU)",
    "frag-needed": "a router answered 'fragmentation needed'",
}


def too_big_text(attempt: Attempt) -> str:
    """'1500 (dropped by a device ...)' per size, grouped by why the size could not go."""
    by = attempt.get("too_big_by") or {}
    groups: dict[str, list[str]] = {}
    for size in attempt.get("sizes_too_big") or []:
        why = by.get(str(size), "")
        groups.setdefault(TOO_BIG_BY.get(why, why or "too big"), []).append(str(size))
    return "; ".join(f"{', '.join(sizes)} {why}" for why, sizes in groups.items())


def judge_mtu(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-31: a size that is too big and says so is PMTUD working; a size that vanishes is a black hole."""
    probe = probes[0]
    result = results.get(probe)
    if result is None:
        return Verdict("error", "no result for the MTU probe", error="other")
    if attempt_outcome(result) == "error":
        return failure(probe, result)
    best: Attempt | None = None
    for attempt in result.get("attempts", []):
        if attempt.get("largest_ok") is not None and (
            best is None or (attempt.get("largest_ok") or 0) > (best.get("largest_ok") or 0)
        ):
            best = attempt
    if best is None:
        return failure(probe, result)
    largest = best.get("largest_ok") or 0
    lost = [s for s in best.get("sizes_lost", []) if s > largest]
    too_big = too_big_text(best)
    if lost:
        return Verdict(
            "failed",
            f"path MTU black hole to {probe.fields['host']}: IP packets up to {best['largest_ok']} bytes "
            f"pass, {', '.join(map(str, lost))} with DF set vanish without an ICMP 'fragmentation needed'"
            + (f" (too big and said so: {too_big})" if too_big else ""),
            error="timeout",
            classified_layer="L3",
            meaning="large packets vanish silently: an MTU black hole (FM-31)",
            classified_fm="FM-31",
        )
    note = f"largest DF packet {best['largest_ok']} bytes" + (f"; too big: {too_big}" if too_big else "")
    failed = best.get("send_errors") or {}
    if failed:
        note += "; could not send: " + ", ".join(f"{s} ({e})" for s, e in failed.items())
    return Verdict("passed", note)


def judge_arp_one_mac(ip_of: Callable[[], str], what: str, local_ok: bool = False) -> Judge:
    """Exactly one MAC must answer (FM-06/16); several = IP conflict with each MAC's vendor."""

    def judge(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
        from netconform.checks.parsers.oui import vendor

        arp_probe = next(p for p in probes if p.kind == "arp")
        result = results.get(arp_probe)
        if result is None:
            return Verdict("error", "no result for the ARP probe", error="other")
        if local_ok:
            trie = next((results.get(p) for p in probes if p.kind == "read"), None)
            if trie and is_local(ip_of(), trie.get("content") or ""):
                return Verdict("passed", f"{what} {ip_of()} is held by this node itself")
        macs: list[str] = []
        for attempt in result.get("attempts", []):
            for mac in attempt.get("macs") or []:
                if mac not in macs:
                    macs.append(mac)
        if len(macs) > 1:
            listed = ", ".join(f"{m} ({vendor(m) or 'unknown vendor'})" for m in macs)
            return Verdict(
                "failed",
                f"IP conflict: {len(macs)} MACs answer ARP for {what} {ip_of()}: {listed}",
                error="protocol",
                classified_layer="L2",
                meaning="more than one device claims the address: intermittent failures (FM-16)",
                classified_fm="FM-16",
            )
        if not macs:
            return failure(
                arp_probe,
                result,
                f"no ARP reply for {what} {ip_of()} on the node's segment",
                layer="L2",
                meaning="same subnet but no ARP answer: an L2 problem (FM-16)",
                fm="FM-06" if cell.target == "lb-vip" else "FM-16",
            )
        outcome = attempt_outcome(result)
        text = f"{what} {ip_of()} is at {macs[0]} ({vendor(macs[0]) or 'unknown vendor'})"
        if outcome == "flaky":
            return Verdict(
                "flaky", f"ARP answered only in some attempts: {text}", error="timeout", classified_layer="L2"
            )
        return Verdict("passed", text)

    return judge


def judge_routes(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-17/10: every pod of this node has a specific route; every node and pod is routable at all."""
    result = results.get(probes[0])
    if result is None or attempt_outcome(result) in ("failed", "error"):
        return failure(probes[0], result or {"error": "other"})
    routes = route_table(result.get("content") or "")
    node = cell.subject_node
    problems: list[str] = []
    for ref, pod in sorted(ctx.kit.pods.items()):
        if not pod.get("ip") or ref.startswith("host@"):
            continue
        addr = ipaddress.IPv4Address(pod["ip"])
        matches = [r for r in routes if addr in r[0]]
        specific = [r for r in matches if r[0].prefixlen > 0]
        if pod.get("node") == node and not specific:
            problems.append(f"no route for local pod {pod['name']} {pod['ip']} (only the default route)")
        elif not matches:
            problems.append(f"no route at all for pod {pod['name']} {pod['ip']} on {pod.get('node')}")
    if problems:
        return Verdict(
            "failed",
            f"{node}: " + "; ".join(problems[:4]),
            error="net-unreachable",
            classified_layer="L3",
            meaning="a missing route: the node gets the packet but cannot deliver it (FM-10/17)",
            classified_fm="FM-17",
        )
    return Verdict("passed", f"{node}: {len(routes)} routes; every probe-kit pod is routable")


def judge_conntrack(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    count_r, max_r = (results.get(p) for p in probes)
    if not count_r or not count_r.get("ok"):
        unreadable = (count_r or {}).get("error") in ("name-not-found", "other", "permission")
        if unreadable:
            return Verdict(
                "skipped",
                "conntrack counters are not readable on this node "
                "(nf_conntrack not loaded in the host network namespace)",
            )
        return failure(probes[0], count_r or {"error": "other"})
    try:
        count = int((count_r.get("content") or "0").strip())
        limit = int(((max_r or {}).get("content") or "0").strip() or 0)
    except ValueError:
        return Verdict("error", "conntrack counters are not numbers", error="protocol")
    budget = min(SNAT_PORT_BUDGET, limit) if limit else SNAT_PORT_BUDGET
    use = count / budget
    text = (
        f"{count} conntrack entries, {use:.0%} of the SNAT port budget ({budget}; nf_conntrack_max {limit})"
    )
    if use >= CONNTRACK_WARN:
        return Verdict(
            "failed",
            f"near exhaustion: {text}",
            error="timeout",
            classified_layer="L4",
            meaning="NAT needs a conntrack entry and a source port per connection: new ones are "
            "dropped near the budget (FM-30)",
            classified_fm="FM-30",
        )
    return Verdict("passed", text)


def judge_vip_icmp(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-15: a VIP need not answer ping; it must answer on VIP:port. Ping answered is noted."""
    icmp_r, tcp_r = results.get(probes[0]), results.get(probes[1])
    if icmp_r is None or tcp_r is None:
        return Verdict("error", "no result for the VIP probes", error="other")
    pinged = attempt_outcome(icmp_r) == "passed"
    tcp_outcome = attempt_outcome(tcp_r)
    if tcp_outcome in ("failed", "error") and not pinged:
        return failure(
            probes[1],
            tcp_r,
            f"{probes[1].describe()} does not answer (and ping gets no reply): "
            f"{tcp_r.get('message') or tcp_r.get('error')}",
        )
    what = "ClusterIP" if cell.target == "clusterip" else "LB VIP"
    if pinged:
        return Verdict(
            "passed",
            f"{what} answers ping"
            + ("" if tcp_outcome == "passed" else f"; but {probes[1].describe()}: {tcp_r.get('error')}"),
        )
    return Verdict(
        "passed",
        f"{what} does not answer ping and answers on VIP:port: expected, not a failure (FM-15)",
        notes=["no ICMP reply from the VIP is expected for ClusterIP and pure-L4 load balancers"],
    )


def judge_snat(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-11: the outside must see the node's address as the source, never the pod's."""
    verdict = all_pass(probes, results, "egress")
    if verdict.outcome != "passed":
        return verdict
    result = results[probes[0]]
    echo = result.get("echo") or {}
    seen = echo.get("client_ip")
    assert cell.subject_node is not None
    node_ip = ctx.node_ip(cell.subject_node)
    if seen is None:
        return Verdict(
            "error",
            f"{probes[0].describe()} is not an echo that reflects the caller's address",
            error="protocol",
            classified_layer="L7",
        )
    if seen != node_ip:
        pod_ip = ctx.kit.ip(f"probe@{cell.subject_node}")
        who = "the pod's own address: not masqueraded" if seen == pod_ip else "neither the node nor the pod"
        return Verdict(
            "failed",
            f"egress from {cell.subject} reached the outside as {seen} ({who}); "
            f"expected the node address {node_ip}",
            error="protocol",
            classified_layer="L3",
            meaning="source NAT (masquerade) to the node address is missing (FM-11)",
            classified_fm="FM-11",
        )
    return Verdict("passed", f"the outside sees {seen}, the address of {cell.subject_node}")


def judge_dns_answers(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-04/21/22: the server answers, with NOERROR and at least one address."""
    verdict = all_pass(probes, results, "dns")
    if verdict.outcome in ("failed", "error"):
        return verdict
    answered = []
    for probe in probes:
        result = results[probe]
        parsed = P.parse_dns(result.get("answer_b64"))
        if parsed is None:
            return failure(
                probe, result, f"{probe.describe()}: the answer is not a DNS message", error="protocol"
            )
        if parsed.rcode != "NOERROR" or not parsed.addresses:
            code = "name-not-found" if parsed.rcode in ("NXDOMAIN", "NOERROR") else "resolver-failure"
            return failure(
                probe,
                result,
                f"{probe.describe()}: {parsed.rcode}"
                + (" without an address" if parsed.rcode == "NOERROR" else ""),
                error=code,
            )
        answered.append(f"{probe.fields['server']} -> {', '.join(parsed.addresses)}")
    if verdict.outcome == "flaky":
        return verdict
    return Verdict("passed", "; ".join(answered))


def judge_host_internal(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-24: the node's resolver does not know cluster.local (expected); it must still answer."""
    result = results.get(probes[0])
    if result is None:
        return Verdict("error", "no result", error="other")
    if result.get("ok"):
        return Verdict(
            "passed",
            f"the node resolver answers {ctx.internal_name} "
            f"({', '.join(result.get('addresses') or [])}): it is configured with cluster DNS",
        )
    if result.get("error") == "name-not-found":
        return Verdict(
            "passed",
            f"{ctx.internal_name} is unknown to the node's nameservers: expected for "
            "host-network pods and nodes, not a failure (FM-24)",
            notes=["hostNetwork pods with dnsPolicy Default use the node's nameservers"],
        )
    return failure(
        probes[0],
        result,
        f"the node's nameservers do not answer for {ctx.internal_name}: "
        f"{result.get('message') or result.get('error')}",
    )


def judge_nameservers(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-24/23: every nameserver of the node answers when asked on its own."""
    servers = node_nameservers(probes[:2], results)
    if servers is None:
        return failure(
            probes[0], results.get(probes[0]) or {"error": "other"}, f"cannot read {RESOLV} on the node"
        )
    if not servers:
        return Verdict(
            "failed",
            f"{cell.subject_node} has no nameserver in {RESOLV}",
            error="name-not-found",
            classified_layer="DNS",
            meaning="the node has no upstream nameserver (FM-24)",
            classified_fm="FM-24",
        )
    queries = probes[2:]
    if not ctx.opts.external_name:
        verdict = all_pass(queries, results, "nameservers")
    else:
        verdict = judge_dns_answers(cell, ctx, queries, results)
    if verdict.outcome == "passed":
        verdict.reason = f"{cell.subject_node} nameservers {', '.join(servers)}: each answers"
    return verdict


def judge_nameserver_sets(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    sets: dict[str, tuple[str, ...]] = {}
    for i in range(0, len(probes), 2):
        node = Ref.parse(probes[i].subject).node or probes[i].subject
        servers = node_nameservers(probes[i : i + 2], results)
        if servers is None:
            return failure(
                probes[i], results.get(probes[i]) or {"error": "other"}, f"cannot read {RESOLV} on {node}"
            )
        sets[node] = tuple(sorted(servers))
    distinct = sorted(set(sets.values()))
    if len(distinct) > 1:
        groups = "; ".join(
            f"{', '.join(sorted(n for n, v in sets.items() if v == d))}: {' '.join(d) or 'none'}"
            for d in distinct
        )
        return Verdict(
            "failed",
            f"nodes use different nameservers ({groups})",
            error="resolver-failure",
            classified_layer="DNS",
            meaning="differing nameserver sets give inconsistent resolution across nodes (FM-24)",
            classified_fm="FM-24",
        )
    return Verdict("passed", f"every node uses {' '.join(distinct[0]) if distinct else 'no'} nameserver(s)")


def stale_neighbour(
    cell: Cell, ip: str, what: str, probes: list[Probe], results: Results, table: Probe
) -> Verdict | None:
    """A failed verdict when the subject's neighbour cache maps `ip` to a MAC that does not answer ARP for
    it now (FM-28's stale entry, for any address on the node's link); None when they agree.

    A PERMANENT entry never heals; a learned one is wrong until the kernel re-probes it.
    """
    answered = {
        str(m).lower()
        for p in probes
        if p.kind == "arp"
        for a in (results.get(p) or {}).get("attempts", [])
        for m in a.get("macs") or []
    }
    content = str((results.get(table) or {}).get("content") or "")
    mac, dev = cached_macs(content).get(ip, ("", ""))
    if not mac or not answered or mac in answered:
        return None
    permanent = any(
        cols[0] == ip and cols[2] in ("0x6", "0x4")
        for cols in (ln.split() for ln in content.splitlines()[1:])
        if len(cols) > 2
    )
    fix = f"ip neigh del {ip} dev {dev}" if dev else f"ip neigh flush {ip} nud all"
    return Verdict(
        "failed",
        f"stale ARP entry on {cell.subject_node}: its neighbour cache maps {what} {ip} to {mac}"
        f"{' (PERMANENT)' if permanent else ''}, but {sorted(answered)[0]} answers for it now (fix: {fix})",
        error="protocol",
        classified_layer="L2",
        meaning=f"traffic from {cell.subject_node} to {ip} goes to a MAC that does not answer for it (FM-28)",
        classified_fm="FM-28",
    )


def judge_cp_vip(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-28: the cached MAC for the control-plane VIP must be the MAC that answers for it now."""
    vip = ctx.control_plane_vip()
    arp_table, trie, who_has = (results.get(p) or {} for p in probes)
    if is_local(vip, trie.get("content") or ""):
        return Verdict("passed", f"{cell.subject_node} holds the control-plane VIP {vip}")
    base = judge_arp_one_mac(lambda: vip, "the control-plane VIP")(cell, ctx, [probes[2]], results)
    if base.outcome != "passed":
        return base
    answered = next(iter(who_has.get("macs") or []), None)
    cached = None
    for line in (arp_table.get("content") or "").splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 4 and cols[0] == vip and cols[3] != "00:00:00:00:00:00":
            cached = cols[3].lower()
    if cached and answered and cached != answered.lower():
        return Verdict(
            "failed",
            f"stale ARP entry on {cell.subject_node}: the neighbour cache maps {vip} to "
            f"{cached}, but {answered} answers for it now (fix: ip neigh flush {vip})",
            error="timeout",
            classified_layer="L2",
            meaning="connections to the VIP go to an old MAC and time out (FM-28)",
            classified_fm="FM-28",
        )
    return Verdict(
        "passed", f"{vip} is at {answered}" + (f"; cache agrees ({cached})" if cached else "; not cached")
    )


def judge_apiserver_tcp(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """Every endpoint must accept the connection; a time-out with a stale neighbour entry names FM-28."""
    base = all_pass([p for p in probes if p.kind == "tcp"], results, "the API server endpoints")
    if base.outcome not in ("failed", "flaky") or base.error != "timeout":
        return base
    empty: ProbeResult = {}
    table = next((results.get(p) or empty for p in probes if p.kind == "read"), empty)
    cached = cached_macs(table.get("content") or "")
    for probe in (p for p in probes if p.kind == "tcp"):
        ip = str(probe.fields["host"])
        arps = (results.get(p) for p in probes if p.kind == "arp" and p.fields["ip"] == ip)
        who_has = next((r for r in arps if r is not None), empty)
        answered = [m.lower() for m in who_has.get("macs") or []]
        mac, dev = cached.get(ip, ("", ""))
        if mac and answered and mac not in answered:
            # `flush` keeps PERMANENT entries; `del` removes any kind
            fix = f"ip neigh del {ip} dev {dev}" if dev else f"ip neigh flush {ip} nud all"
            return Verdict(
                base.outcome,
                f"{base.reason}; stale ARP entry on {cell.subject_node}: its neighbour cache maps {ip} to "
                f"{mac}, but {answered[0]} answers for it now (fix: {fix})",
                error="timeout",
                classified_layer="L2",
                meaning="connections to the control-plane endpoint go to an old MAC and time out (FM-28)",
                classified_fm="FM-28",
            )
    return base


def judge_iptables(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """FM-19: fails when a DROP/REJECT rule (or DROP policy) counted packets during the window."""
    result = results.get(probes[0])
    node = cell.subject_node
    if result is None:
        return Verdict("error", "no result for the iptables snapshots", error="other")
    if not result.get("ok"):
        code = result.get("error") or "other"
        text = f"{node}: {result.get('message') or code}"
        if code == "other" and result.get("errno") == 2:  # ENOENT: no iptables-save in the image
            return Verdict("skipped", text)
        return Verdict("error", text, error=code)
    snapshots = result.get("snapshots") or []
    if len(snapshots) < 2:
        return Verdict(
            "error", f"{node}: the agent returned {len(snapshots)} snapshot(s), not 2", error="other"
        )
    first, last = snapshots[0], snapshots[-1]
    try:
        before = ipt.parse(first.get("iptables") or "") + ipt.parse(first.get("ip6tables") or "", "ipv6")
        after = ipt.parse(last.get("iptables") or "") + ipt.parse(last.get("ip6tables") or "", "ipv6")
    except ipt.ParseError as exc:
        return Verdict("error", f"{node}: cannot read iptables-save output: {exc}", error="protocol")
    window = float(last.get("at", 0)) - float(first.get("at", 0))
    grown = ipt.drop_growth(before, after)
    notes = [json.dumps(g.as_dict(), sort_keys=True) for g in grown]
    notes += [f"warning: {w}" for w in result.get("warnings") or []]
    if any(s.get("truncated") for s in snapshots):
        notes.append("warning: iptables-save output was truncated; later rules were not compared")
    drop_rules = sum(1 for r in after if r.drops)
    if grown:
        shown = "; ".join(g.describe() for g in grown[:5]) + (
            f"; +{len(grown) - 5} more" if len(grown) > 5 else ""
        )
        return Verdict(
            "failed",
            f"{node}: {len(grown)} DROP/REJECT rule(s) counted packets in {window:.1f} s: {shown}",
            error="timeout" if any(g.rule.target == "DROP" for g in grown) else "refused",
            classified_layer="L3",
            meaning="a firewall rule on the node is dropping packets right now (FM-19)",
            classified_fm="FM-19",
            notes=notes,
        )
    return Verdict(
        "passed",
        f"{node}: no DROP/REJECT counter grew in {window:.1f} s ({drop_rules} drop rule(s) of {len(after)})",
        notes=notes,
    )


INGRESS_FM = {"route": "FM-34", "backend": "FM-35", "address": "FM-36"}


def judge_ingress(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """HTTP with the kit's host through the ingress reaches an echo pod; else say which part failed.

    The proxy's own answers (404/503/502/504, its Server header) mean L4 to the ingress works and the
    problem is its routing (no route for the host, FM-34) or its backends (FM-35); no answer at all is the
    ingress address (controller down, or the path to its LoadBalancer/NodePort, FM-36).
    """
    entry, via = l7_entry(cell, ctx)
    probe = probes[0]
    result = results.get(probe)
    if result is None:
        return Verdict("error", f"{probe.describe()}: no result (the batch did not run)", error="other")
    outcome = attempt_outcome(result)
    notes = [f"address from {entry.get('source')}"] + ([entry["note"]] if entry.get("note") else [])
    if outcome == "error":
        return failure(probe, result)
    last = result
    if outcome in ("passed", "flaky"):
        echo = last.get("echo") or next(
            (a.get("echo") for a in last.get("attempts", []) if a.get("echo")), None
        )
        if not echo or "server_ip" not in echo:
            return Verdict(
                "failed",
                f"{probe.describe()}: HTTP {last.get('status')} but not from the echo backend "
                f"(Server: {last.get('server') or 'none'}): the ingress routes the host elsewhere",
                error="protocol",
                classified_layer="L7",
                meaning="the ingress routes the kit's host to something else than its Service (FM-34)",
                classified_fm=INGRESS_FM["route"],
                notes=notes,
            )
        seen = echo.get("forwarded_for") or "none"
        notes.append(
            f"backend {echo.get('server_ip')} ({echo.get('pod') or 'pod'} on {echo.get('node') or '?'}) "
            f"answered; the proxy {echo.get('client_ip')} forwarded for {seen}"
        )
        if outcome == "flaky":
            verdict = all_pass(probes, results, cell.id)
            verdict.notes += notes
            return verdict
        return Verdict("passed", f"{via} routes {entry['host']} to an echo pod", notes=notes)
    status = last.get("status")
    proxy = last.get("server") or "?"
    if last.get("error") == "http-status" and status is not None:
        what = {
            404: (
                "route",
                f"the proxy ({proxy}) has no route for host {entry['host']}: the controller did not "
                f"pick up the kit's {'HTTPRoute' if cell.target.startswith('gateway:') else 'Ingress'} "
                "(class, namespace watched, admission) or the rule does not match",
            ),
            503: (
                "backend",
                f"the proxy ({proxy}) has no healthy backend for the echo Service (no ready endpoint)",
            ),
            502: ("backend", f"the proxy ({proxy}) could not connect to the echo backend (refused or reset)"),
            504: ("backend", f"the proxy ({proxy}) got no answer from the echo backend in time"),
        }.get(int(status))
        if what is None:
            what = ("route", f"the proxy ({proxy}) answered HTTP {status} for {entry['host']}")
        part, text = what
        failing = "its routing fails" if part == "route" else "its backends fail"
        return failure(
            probe,
            result,
            f"{probe.describe()}: HTTP {status}: {text}",
            layer="L7",
            meaning=f"L4 to the ingress works; {failing} ({INGRESS_FM[part]})",
            fm=INGRESS_FM[part],
        )
    if last.get("error") == "tls":
        # L4 to the ingress works, the handshake for the kit's name does not: the controller serves no
        # (or another) certificate for the host, i.e. it did not take the Ingress's TLS section: FM-34
        return failure(
            probe,
            result,
            f"{probe.describe()}: TLS with SNI {entry['host']} failed against the run's CA: "
            f"{last.get('message') or 'handshake failed'}: {via} does not serve the kit's certificate "
            "for the host (Secret not picked up, or the Ingress ignored)",
            layer="L7",
            meaning=f"L4 to the ingress works; its TLS for the host fails ({INGRESS_FM['route']})",
            fm=INGRESS_FM["route"],
        )
    verdict = failure(probe, result)
    verdict.meaning = (
        f"the ingress address {entry['address']} does not answer at L4: the controller is down or the path "
        f"to its LoadBalancer/NodePort is broken ({INGRESS_FM['address']}); {verdict.meaning or ''}"
    ).rstrip("; ")
    verdict.classified_fm = INGRESS_FM["address"]
    verdict.notes += notes
    return verdict


# ------------------------------------------------------------------------------ named expectations
def _reachable(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    return all_pass(probes, results, cell.id)


BLOCKING_ERRORS = ("timeout", "refused")


def judge_blocked(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    """Passes only when every attempt was silently dropped or refused; an answer fails the cell, and a
    failure that is not about the path (DNS, exec, TLS...) leaves it unmeasured (`error`)."""
    for probe in probes:
        result = results.get(probe)
        if result is None or result.get("exec_error"):
            message = (result or {}).get("message") or "the batch did not run"
            return Verdict("error", f"{probe.describe()}: not measured: {message}", error="other")
        attempts = result.get("attempts") or [result]
        opened = [a for a in attempts if a.get("ok")]
        if opened:
            return Verdict(
                "failed",
                f"{probe.describe()}: expected blocked, but {len(opened)}/{len(attempts)} attempt(s) got "
                "through: the path is open",
                error="open",
                classified_layer=cell.layer,
                meaning="traffic that must be blocked gets through (policy not enforced)",
            )
        codes = sorted({str(a.get("error") or "other") for a in attempts})
        if any(c not in BLOCKING_ERRORS for c in codes):
            return Verdict(
                "error",
                f"{probe.describe()}: not measured: {', '.join(codes)} is not a drop or a refusal "
                f"({result.get('message') or ''})".rstrip(" ()"),
                error=codes[0],
            )
    how = (
        "dropped"
        if all(
            (a.get("error") == "timeout")
            for p in probes
            for a in (results[p].get("attempts") or [results[p]])
        )
        else "dropped or refused"
    )
    return Verdict("passed", f"{cell.id}: blocked as expected ({how})")


reachable = Expectation("reachable", _reachable, "every probe gets through (intermittent ones are flaky)")
blocked = Expectation("blocked", judge_blocked, "every attempt times out or is refused; never a DNS failure")
vip_port_not_ping = Expectation(
    "vip_port_not_ping", judge_vip_icmp, "a VIP need not answer ping if VIP:port answers (FM-15)"
)
source_is_node_ip = Expectation(
    "source_is_node_ip", judge_snat, "the outside sees the node's address, never the pod's (FM-11)"
)
dns_answers = Expectation("dns_answers", judge_dns_answers, "NOERROR with at least one address")
node_resolver_answers = Expectation(
    "node_resolver_answers", judge_host_internal, "cluster.local unknown to nodes is expected (FM-24)"
)
every_nameserver_answers = Expectation("every_nameserver_answers", judge_nameservers)
same_nameserver_sets = Expectation("same_nameserver_sets", judge_nameserver_sets)
routes_cover_pods = Expectation("routes_cover_pods", judge_routes)
conntrack_below_budget = Expectation("conntrack_below_budget", judge_conntrack)
no_drop_counter_grows = Expectation("no_drop_counter_grows", judge_iptables)
cp_vip_mac_current = Expectation("cp_vip_mac_current", judge_cp_vip)
apiserver_endpoints_accept = Expectation("apiserver_endpoints_accept", judge_apiserver_tcp)
ingress_reaches_echo = Expectation("ingress_reaches_echo", judge_ingress)


def one_mac(
    address: Callable[[Cell, Context], str], what: Callable[[Cell], str], local_ok: bool = False
) -> Expectation:
    """Exactly one MAC answers ARP for the address (FM-06/16); `local_ok`: held by the node itself. When
    the plan also read the subject's neighbour cache (/proc/net/arp), its entry for the address must be
    that MAC: another one is a stale entry, and traffic to the address goes to a MAC nobody answers for."""

    def judge(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
        base = judge_arp_one_mac(lambda: address(cell, ctx), what(cell), local_ok)(cell, ctx, probes, results)
        table = next(
            (p for p in probes if p.kind == "read" and p.fields.get("path") == "/proc/net/arp"), None
        )
        if base.outcome != "passed" or table is None:
            return base
        return stale_neighbour(cell, address(cell, ctx), what(cell), probes, results, table) or base

    return Expectation("one_mac", judge, "exactly one MAC answers ARP for the address (FM-06/FM-16)")


def largest_df_size_at_least(size: int) -> Expectation:
    """DF packets of `size` bytes and every size up to the largest that passes get through (FM-31)."""

    def judge(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
        verdict = judge_mtu(cell, ctx, probes, results)
        best = max(
            (a.get("largest_ok") or 0 for a in (results.get(probes[0]) or {}).get("attempts", [])), default=0
        )
        if verdict.outcome == "passed" and best < size:
            return Verdict(
                "failed",
                f"the largest DF packet that crosses is {best} bytes, less than {size}",
                error="protocol",
                classified_layer="L3",
                meaning="the path MTU is smaller than required (FM-31)",
                classified_fm="FM-31",
            )
        return verdict

    return Expectation(
        f"largest_df_size_at_least({size})", judge, "no MTU black hole, and the size gets through"
    )
