"""Cells about cluster components, judged from the API rather than from packets.

CNI readiness per node (FM-27), the Cilium/anetd checks (FM-14, FM-18, FM-25, FM-26), F5 BIG-IP
(FM-07/29) and MetalLB's announcing node (FM-06). Components that are not installed give a skip that
names what is missing. The parsers read the real tools' output formats (Cilium v1.14 `cilium status`,
`cilium monitor`, bpftool `map show`/`map dump`, MetalLB v0.13 JSON logs, k8s-bigip-ctlr v1.x logs,
the F5 virtual-server ConfigMap schema v0.1.7); tests/test_components_parsers.py holds the samples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from netconform.checks.context import Skip
from netconform.model.cell import Cell
from netconform.model.topology import PodInfo, Topology
from netconform.model.verdict import Verdict

NETWORK_NOT_READY = re.compile(
    r"NetworkPluginNotReady|cni plugin not initialized|Network plugin (not installed|returns error)", re.I
)
RATE_LIMIT_MARK = "putEndpointIdTooManyRequests"
NO_CILIUM = "no Cilium-based dataplane (anetd or cilium pods) runs in kube-system"


class ComponentApi(Protocol):
    """What component checks need from the cluster (a small seam so they can be unit-tested)."""

    def pod_log(self, namespace: str, name: str, tail_lines: int) -> str: ...

    def exec_command(self, namespace: str, name: str, command: list[str], deadline_s: float) -> str: ...

    def config_maps(self, namespace: str) -> list[dict[str, Any]]: ...


def _pod_state(p: PodInfo) -> str:
    waiting = f"/{p.waiting_reason}" if p.waiting_reason else ""
    return f"{p.name} {p.phase}{waiting}{'' if p.ready else ' not ready'}"


def judge_cni_ready(cell: Cell, topo: Topology) -> Verdict:
    """FM-27: the node is Ready without NetworkPluginNotReady, and its CNI agent pod runs."""
    node_name = cell.target_node or ""
    node = topo.node(node_name)
    ready = node.conditions.get("Ready", {})
    agents = [p for pods in topo.cni.values() for p in pods if p.node == node_name]
    bad_agents = [p for p in agents if p.phase != "Running" or not p.ready]
    text = f"{ready.get('reason', '')} {ready.get('message', '')}".strip()
    if ready.get("status") != "True":
        network = bool(NETWORK_NOT_READY.search(text))
        advice = ""
        for p in bad_agents:
            if p.waiting_reason == "CrashLoopBackOff":
                advice = f"; {p.name} is crash-looping: read its logs"
            elif p.phase == "Pending":
                advice = f"; {p.name} is Pending: see its events (e.g. a missing volume)"
        if bad_agents and not advice:
            advice = "; CNI pods: " + ", ".join(_pod_state(p) for p in bad_agents)
        return Verdict(
            "failed",
            f"node {node_name} is not Ready: {text or 'no reason given'}{advice}",
            error="other",
            classified_layer="L3",
            meaning=(
                "the CNI plugin is not initialized on the node: no pod networking there (FM-27)"
                if network
                else "the node is not Ready (FM-27)"
            ),
            classified_fm="FM-27",
        )
    if bad_agents:
        return Verdict(
            "failed",
            f"node {node_name} is Ready but its CNI agent is not: "
            + ", ".join(_pod_state(p) for p in bad_agents),
            error="other",
            classified_layer="L3",
            meaning="the dataplane agent is not running on this node (FM-27)",
            classified_fm="FM-27",
        )
    names = ", ".join(sorted(p.name for p in agents)) or "no known CNI agent pod"
    return Verdict("passed", f"node {node_name} Ready; CNI agent: {names}")


def _cilium(topo: Topology) -> list[PodInfo]:
    pods = [p for p in topo.cilium_pods if p.phase == "Running"]
    if not topo.cilium_pods:
        raise Skip(NO_CILIUM)
    if not pods:
        raise Skip("no anetd/cilium pod is Running")
    return pods


HEALTH = re.compile(r"^Cluster health:\s+(\d+)/(\d+) reachable", re.M)
# rows: `Name IP Node Endpoints` with reachable/unreachable (Cilium >= 1.10), or the older
# `Name IP Reachable Endpoints reachable` with true/false; IP may be "v4,v6" on dual-stack nodes
HEALTH_ROW = re.compile(
    r"^\s+(?P<name>\S+)(?: \(localhost\))?\s+(?P<ip>[0-9a-fA-F.:,]+)\s+"
    r"(?P<node>reachable|unreachable|true|false)\s+(?P<endpoints>reachable|unreachable|true|false)\s*$",
    re.M,
)
_REACH = {"true": "reachable", "false": "unreachable"}


@dataclass
class HealthSummary:
    """`cilium status --all-health`'s "Cluster health" section: counts and the node rows shown."""

    reachable: int
    total: int
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # name, ip, node, endpoints

    def unreachable(self) -> list[str]:
        """Names (without the cluster prefix of Cilium >= 1.14) of nodes or endpoints not reachable."""
        return [r[0].rsplit("/", 1)[-1] for r in self.rows if "unreachable" in (r[2], r[3])]


def parse_cilium_health(text: str) -> HealthSummary | None:
    """`Cluster health:   2/3 reachable   (...)` plus its table; None when the section is missing."""
    match = HEALTH.search(text)
    if not match:
        return None
    section = text[match.end() :]
    rows = [
        (m["name"], m["ip"], _REACH.get(m["node"], m["node"]), _REACH.get(m["endpoints"], m["endpoints"]))
        for m in HEALTH_ROW.finditer(section)
    ]
    return HealthSummary(int(match.group(1)), int(match.group(2)), rows)


def judge_cilium_health(topo: Topology, api: ComponentApi, deadline_s: float) -> Verdict:
    """FM-14: `cilium status --all-health` in every agent pod reports all nodes reachable."""
    problems, seen = [], []
    for pod in _cilium(topo):
        try:
            out = api.exec_command(pod.namespace, pod.name, ["cilium", "status", "--all-health"], deadline_s)
        except Exception as exc:
            return Verdict("error", f"cilium status in {pod.name}: {exc}", error="other")
        summary = parse_cilium_health(out)
        if summary is None:
            warning = next((ln.strip() for ln in out.splitlines() if ln.startswith("Cluster health")), "")
            problems.append(f"{pod.name} on {pod.node}: {warning or 'no Cluster health line'}")
            continue
        ok, total = summary.reachable, summary.total
        seen.append(f"{pod.node} {ok}/{total}")
        if ok < total:
            names = ", ".join(summary.unreachable()) or "?"
            problems.append(f"{pod.name} on {pod.node} reaches {ok}/{total} nodes (unreachable: {names})")
    if problems:
        return Verdict(
            "failed",
            "; ".join(problems),
            error="timeout",
            classified_layer="L3",
            meaning="the dataplane's node-to-node health check fails (FM-14/13)",
            classified_fm="FM-14",
        )
    return Verdict("passed", "cilium node health: " + ", ".join(seen))


def judge_cilium_rate_limit(topo: Topology, api: ComponentApi) -> Verdict:
    """FM-25: 429 putEndpointIdTooManyRequests is expected under bursts: information, not failure."""
    counts = {}
    for pod in _cilium(topo):
        try:
            counts[pod.name] = api.pod_log(pod.namespace, pod.name, 5000).count(RATE_LIMIT_MARK)
        except Exception as exc:
            return Verdict("error", f"reading the logs of {pod.name}: {exc}", error="other")
    total = sum(counts.values())
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if v) or "none"
    return Verdict(
        "passed",
        f"{total} rate-limited endpoint PUT(s) (429) in the agent logs ({detail}): "
        "expected under pod-creation bursts and self-healing, not a failure (FM-25)",
        notes=[f"429 count {total}"],
    )


MAP_LIMIT = 64000  # Cilium's default (FM-26); the map's own max_entries (bpftool map show) wins when known
MAP_FULL_RATIO = 0.9
BPF_GLOBALS = "/sys/fs/bpf/tc/globals/"
# (map, fallback name of older releases): Cilium >= 1.13 names the backend map _v3, older ones _v2
LB_MAPS = (("cilium_lb4_services_v2", None), ("cilium_lb4_backends_v3", "cilium_lb4_backends_v2"))
MAX_ENTRIES = re.compile(r"\bmax_entries (\d+)")
FOUND = re.compile(r"^Found (\d+) elements?\s*$", re.M)


def parse_map_max(text: str) -> int | None:
    """max_entries of `bpftool map show pinned PATH` (plain or `-j` JSON)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text).get("max_entries")
            return int(value) if value is not None else None
        except ValueError:
            return None
    match = MAX_ENTRIES.search(text)
    return int(match.group(1)) if match else None


def parse_map_count(text: str) -> int | None:
    """Entries of `bpftool map dump pinned PATH`: its "Found N elements" line, a `-j` JSON list, or the
    number of `key:` lines when the output was cut before the last line."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            return len(json.loads(stripped))
        except ValueError:
            return None
    found = FOUND.findall(text)
    if found:
        return int(found[-1])
    keys = sum(1 for ln in text.splitlines() if ln.startswith("key:"))
    return keys if keys else None


def judge_ebpf_maps(topo: Topology, api: ComponentApi, privileged: bool, deadline_s: float) -> Verdict:
    """FM-26: fill of the LB service/backend eBPF maps against their maximum (privileged: opt-in).

    Per agent pod: `bpftool map show pinned` (max_entries) and `bpftool map dump pinned` (the count, its
    last line when read by hand), e.g. `cilium_lb4_services_v2 3891/4096 (95 %)` fails at 90 %.
    """
    pods = _cilium(topo)
    if not privileged:
        raise Skip("reading eBPF map fill levels needs --allow-privileged (FM-26)")
    fills: list[tuple[float, str]] = []
    for pod in pods:
        for name, fallback in LB_MAPS:
            counted: tuple[int, int] | None = None
            for candidate in (name, fallback):
                if candidate is None:
                    continue
                path = BPF_GLOBALS + candidate
                try:
                    shown = api.exec_command(
                        pod.namespace, pod.name, ["bpftool", "map", "show", "pinned", path], deadline_s
                    )
                    dumped = api.exec_command(
                        pod.namespace, pod.name, ["bpftool", "map", "dump", "pinned", path], deadline_s
                    )
                except Exception as exc:
                    return Verdict("error", f"bpftool in {pod.name}: {exc}", error="other")
                count, limit = parse_map_count(dumped), parse_map_max(shown)
                if count is not None or limit is not None:
                    counted, name = (count or 0, limit or MAP_LIMIT), candidate
                    break
            if counted is None:
                return Verdict("error", f"{pod.name}: bpftool shows no map {name}", error="other")
            count, limit = counted
            fills.append((count / limit, f"{pod.node} {name} {count}/{limit} ({100 * count / limit:.0f} %)"))
    full = [text for ratio, text in fills if ratio >= MAP_FULL_RATIO]
    if full:
        return Verdict(
            "failed",
            "eBPF LB map near its limit: " + "; ".join(full),
            error="other",
            classified_layer="L4",
            meaning="a full eBPF map makes control and data plane diverge (FM-26)",
            classified_fm="FM-26",
        )
    _, text = max(fills)
    return Verdict("passed", f"fullest LB map: {text}", notes=[t for _, t in fills])


DROP_LINE = re.compile(r"^(?:xx|CPU \d+:)?\s*drop \((?P<reason>[^)]+)\)")
DROP_ADDRESSES = re.compile(r"identity \S+: (?P<src>\S+) -> (?P<dst>\S+) (?P<proto>\S+)")


@dataclass(frozen=True)
class Drop:
    reason: str
    src: str | None
    dst: str | None
    proto: str | None


def parse_drops(text: str) -> list[Drop]:
    """The drop events of `cilium monitor --type drop` (header lines and other events are skipped)."""
    out = []
    for line in text.splitlines():
        m = DROP_LINE.match(line.strip())
        if m:
            a = DROP_ADDRESSES.search(line)
            out.append(Drop(m["reason"], *((a["src"], a["dst"], a["proto"]) if a else (None, None, None))))
    return out


def judge_drop_monitor(topo: Topology, api: ComponentApi, deadline_s: float) -> Verdict:
    """FM-18: a bounded `cilium monitor --type drop` sample per agent, as evidence (drops by reason)."""
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for pod in _cilium(topo):
        cmd = ["timeout", "2", "cilium", "monitor", "--type", "drop"]
        try:
            out = api.exec_command(pod.namespace, pod.name, cmd, deadline_s)
        except Exception as exc:
            return Verdict("error", f"cilium monitor in {pod.name}: {exc}", error="other")
        drops = parse_drops(out)
        counts[pod.node or pod.name] = len(drops)
        for d in drops:
            key = f"{d.reason} -> {d.dst}" if d.dst else d.reason
            reasons[key] = reasons.get(key, 0) + 1
    text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    why = "; ".join(f"{n}x {k}" for k, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:5])
    return Verdict(
        "passed", f"drops seen in a 2 s sample per node: {text}" + (f" ({why})" if why else ""), notes=[text]
    )


F5_PODS = ("k8s-bigip-ctlr", "load-balancer-f5")
F5_SCHEMA = re.compile(r"^f5schemadb://bigip-virtual-server_v[0-9.]+\.json$")
# f5-cccl's resource lines are `<Verb> <Class>: /<partition>/<name>` (k8s-bigip-ctlr 1.x logs e.g.
# "Updating ApiApplicationService: /service/default_iapp-tcp"); virtual servers are ApiVirtualServer
BIGIP_VIRTUAL = re.compile(
    r"\b(?P<verb>Creating|Deleting|Updating) (?:Api|Icr)?Virtual(?:Server)?: "
    r"/(?P<partition>[^/\s]+)/(?P<name>\S+)"
)
# the end of one sync: the controller's "Wrote N Virtual Server and M IApp configs" (or f5-cccl's
# "apply config to partition P" at debug level)
BIGIP_SYNC = re.compile(r"Wrote \d+ Virtual Server and \d+ IApp configs|apply config to partition \S+")


@dataclass(frozen=True)
class VirtualServer:
    """One F5 virtual-server ConfigMap (schema bigip-virtual-server_v0.1.7): where and for what."""

    config_map: str
    bind_addr: str
    port: int
    partition: str
    service: str
    service_port: int


def parse_f5_config_map(cm: dict[str, Any]) -> VirtualServer | None:
    """`data.schema` f5schemadb://bigip-virtual-server_*.json and `data.data` the virtual server (JSON)."""
    data = cm.get("data") or {}
    if not F5_SCHEMA.match(str(data.get("schema", "")).strip()):
        return None
    try:
        vs = json.loads(data.get("data") or "{}")["virtualServer"]
        front, back = vs["frontend"], vs.get("backend") or {}
        return VirtualServer(
            str(cm.get("name", "")),
            str(front["virtualAddress"]["bindAddr"]),
            int(front["virtualAddress"]["port"]),
            str(front.get("partition", "")),
            str(back.get("serviceName", "")),
            int(back.get("servicePort") or 0),
        )
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class BigipSync:
    """What the k8s-bigip-ctlr log says: virtual servers deleted in its last complete sync, and every
    virtual server it created (in the lines read)."""

    deleted_last: list[tuple[str, str]] = field(default_factory=list)  # (partition, name)
    created: set[tuple[str, str]] = field(default_factory=set)


def parse_bigip_log(text: str) -> BigipSync:
    """`Creating ApiVirtualServer: /P/NAME` / `Deleting ApiVirtualServer: /P/NAME` lines; a sync ends with
    `Wrote N Virtual Server and M IApp configs` (or f5-cccl's `apply config to partition P`), so the last
    sync is what follows the one before it."""
    out = BigipSync()
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        m = BIGIP_VIRTUAL.search(line)
        if m:
            key = (m["partition"], m["name"])
            if m["verb"] in ("Creating", "Updating"):
                out.created.add(key)
            else:
                current.append(key)
        elif BIGIP_SYNC.search(line):
            out.deleted_last, current = current, []
    return out


def judge_f5(
    topo: Topology,
    api: ComponentApi,
    lb_ip: str | None,
    ports: list[int],
    namespace: str | None = None,
    service: str = "echo-lb",
) -> Verdict:
    """FM-07/29: the F5 controller pods run, a virtual-server ConfigMap holds VIP:port for every LB
    port, and the BIG-IP partition is not shared: k8s-bigip-ctlr deleting virtual servers in its
    partition that no ConfigMap of this cluster declares means another cluster writes there."""
    pods = topo.lb_controllers.get("f5", [])
    if not pods:
        raise Skip("F5 BIG-IP is not in use (no k8s-bigip-ctlr / load-balancer-f5 pod in kube-system)")
    down = [p for p in pods if p.phase != "Running" or not p.ready]
    kinds = {name for name in F5_PODS if any(p.name.startswith(name) for p in pods)}
    if down or len(kinds) < len(F5_PODS):
        missing = ", ".join(sorted(set(F5_PODS) - kinds))
        return Verdict(
            "failed",
            "F5 controller pods: "
            + ", ".join(_pod_state(p) for p in down)
            + (f"; missing: {missing}" if missing else ""),
            error="other",
            classified_layer="L4",
            meaning="the F5 controller does not run: LB Services get no traffic (FM-07/29)",
            classified_fm="FM-07",
        )
    if not lb_ip:
        raise Skip("F5 in use but the LoadBalancer Service echo-lb got no address")
    spaces = sorted({namespace or "kube-system", "kube-system"})
    servers: list[tuple[str, VirtualServer]] = []
    for ns in spaces:
        for cm in api.config_maps(ns):
            vs = parse_f5_config_map(cm)
            if vs is not None:
                servers.append((ns, vs))
    missing_ports = [p for p in ports if not any(vs.bind_addr == lb_ip and vs.port == p for _, vs in servers)]
    if missing_ports:
        return Verdict(
            "failed",
            f"no F5 virtual-server ConfigMap holds {lb_ip} for port(s) {missing_ports} of Service "
            f"{service} ({len(servers)} virtual-server ConfigMap(s) in {', '.join(spaces)})",
            error="other",
            classified_layer="L4",
            meaning="F5 has no virtual server for the Service port: it gets no traffic (FM-07/29)",
            classified_fm="FM-07",
        )
    ours = {f"{ns}_{vs.config_map}" for ns, vs in servers}
    partitions = {vs.partition for _, vs in servers if vs.bind_addr == lb_ip}
    # The controller deletes the virtual servers of ConfigMaps that went (it created them); deleting in
    # its last sync ones it never created means someone else writes them: another cluster shares the
    # partition (FM-07: two clusters on one partition delete each other's virtual servers).
    foreign: dict[str, set[str]] = {}
    for ctlr in (p for p in pods if p.name.startswith("k8s-bigip-ctlr")):
        try:
            text = api.pod_log(ctlr.namespace, ctlr.name, 5000)
        except Exception as exc:
            return Verdict("error", f"reading the logs of {ctlr.name}: {exc}", error="other")
        sync = parse_bigip_log(text)
        for partition, name in sync.deleted_last:
            if partition in partitions and name not in ours and (partition, name) not in sync.created:
                foreign.setdefault(partition, set()).add(name)
    if foreign:
        text = "; ".join(f"{p}: {', '.join(sorted(n))}" for p, n in sorted(foreign.items()))
        return Verdict(
            "failed",
            f"BIG-IP partition shared with another cluster: k8s-bigip-ctlr deletes virtual servers it never "
            f"created and no ConfigMap of this cluster declares ({text})",
            error="other",
            classified_layer="L4",
            meaning="two clusters fight over one BIG-IP partition: intermittent outages (FM-07/29)",
            classified_fm="FM-07",
        )
    return Verdict(
        "passed",
        f"F5 controllers run; virtual-server ConfigMaps hold {lb_ip} for ports {ports}; partition "
        f"{', '.join(sorted(partitions))} used by this cluster only",
    )


# ------------------------------------------------------------------------------------------ MetalLB
@dataclass(frozen=True)
class Announcement:
    event: str  # serviceAnnounced | serviceWithdrawn
    ips: tuple[str, ...]
    service: str
    node: str | None


def parse_metallb_log(text: str) -> list[Announcement]:
    """serviceAnnounced / serviceWithdrawn events of MetalLB's JSON logs (`ips` in v0.13, `ip` in
    older releases, a list or a string); other lines are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") not in ("serviceAnnounced", "serviceWithdrawn"):
            continue
        ips = ev.get("ips", ev.get("ip")) or []
        ips = [ips] if isinstance(ips, str) else ips
        out.append(
            Announcement(ev["event"], tuple(str(i) for i in ips), str(ev.get("service", "")), ev.get("node"))
        )
    return out


NO_METALLB = "MetalLB is not in use (no app=metallb controller/speaker pod in kube-system)"


def judge_metallb(
    topo: Topology,
    api: ComponentApi,
    lb_ip: str | None,
    arp: Callable[[str, str], list[str]],
) -> Verdict:
    """FM-06: the speaker logs name exactly one node announcing the VIP, and that node's MAC is the one
    answering ARP for it (by hand: `kubectl -n kube-system logs -l app=metallb | grep VIP`).

    `arp(from_node, ip)` returns the MACs answering ARP for ip on from_node's segment."""
    pods = topo.lb_controllers.get("metallb", [])
    if not pods:
        raise Skip(NO_METALLB)
    if not lb_ip:
        raise Skip("MetalLB in use but the LoadBalancer Service echo-lb got no address")
    speakers = [p for p in pods if "speaker" in p.name]
    announcing: list[str] = []
    unreadable = []
    for pod in speakers:
        try:
            text = api.pod_log(pod.namespace, pod.name, 5000)
        except Exception as exc:
            unreadable.append(f"{pod.name}: {str(exc).splitlines()[0][:120]}")
            continue
        state = None
        for ev in parse_metallb_log(text):
            if lb_ip in ev.ips:
                state = (ev.event, ev.node or pod.node)
        if state and state[0] == "serviceAnnounced" and state[1]:
            announcing.append(state[1])
    down = [_pod_state(p) for p in speakers if p.phase != "Running" or not p.ready or p.waiting_reason]
    if len(announcing) != 1:
        detail = "; ".join(filter(None, [", ".join(down), "; ".join(unreadable)]))
        what = "no MetalLB speaker announces" if not announcing else "several speakers announce"
        return Verdict(
            "failed",
            f"{what} {lb_ip} ({', '.join(announcing) or 'none'})"
            + (f"; speakers: {detail}" if detail else ""),
            error="timeout",
            classified_layer="L2",
            meaning="MetalLB does not announce the VIP from one node: nobody answers ARP for it (FM-06)",
            classified_fm="FM-06",
        )
    node = announcing[0]
    others = [n for n in topo.node_names if n != node]
    if not others:
        return Verdict("passed", f"{lb_ip} announced by {node} (one node: no ARP comparison)")
    peer = others[0]
    node_ip = topo.node(node).internal_ip or ""
    vip_macs, node_macs = arp(peer, lb_ip), arp(peer, node_ip)
    if len(vip_macs) == 1 and node_macs and vip_macs[0] == node_macs[0]:
        return Verdict(
            "passed",
            f"{lb_ip} announced by {node} (speaker log); ARP from {peer}: {vip_macs[0]}, "
            f"the MAC of {node} ({node_ip})",
        )
    return Verdict(
        "failed",
        f"the speaker log names {node} for {lb_ip}, but ARP from {peer} answers {vip_macs or 'nothing'} "
        f"while {node} ({node_ip}) is {node_macs or 'not answering'}",
        error="timeout" if not vip_macs else "other",
        classified_layer="L2",
        meaning="the node MetalLB says announces the VIP is not the one answering ARP (FM-06)",
        classified_fm="FM-06",
    )
