"""Named, reversible faults of the lab; each reproduces one entry of docs/failure-modes.md.

API for the control plane::

    faults.names() -> list[str]
    faults.describe(name) -> str
    faults.add(name, ctx, node=None) -> str      # one line saying what was broken where
    faults.clear(name, ctx) -> str               # restores exactly the healthy state
    faults.clear_all(ctx) -> list[str]
    faults.active(ctx) -> dict[str, str]         # fault name -> where ("node-3", "all nodes", ...)
    faults.pod_started(ctx, pod) -> list[str]    # a pod's network came up: active pod-scoped faults apply
    faults.pod_stopped(ctx, pod) -> list[str]    # a pod's network is going: their per-pod part is undone

`ctx` is a `FaultContext`: the lab's `Netplane`, a callable listing pods (`PodInfo`), and the control
plane's `set_node_condition(node, ready, reason, message)`. Bad names, nodes or missing targets raise
`FaultError` (one line). Active faults are recorded in the data plane's state file, so a fault added
by one process can be cleared by another, and `destroy` removes them with the lab.

Fault (FM) — what `--node` picks (default) — what is changed:
- tunnel-blocked (FM-09) — whose tunnel (all) — the fabric drops UDP 6081 (br_netfilter)
- node-partition (FM-13) — the node cut off (last) — the fabric drops IPv4 between it and the others
- pod-route-missing (FM-10) — node (last) — its per-pod /32 routes are deleted
- service-nat-missing (FM-08) — node (all) — service DNAT/REJECT rules removed
- snat-missing (FM-11) — node (all) — pod egress MASQUERADE removed
- snat-port-exhaustion (FM-30) — node (all) — MASQUERADE limited to 4 ports, all held by conntrack
- coredns-down (FM-22) — node of the DNS pod (first) — one DNS pod there drops udp/tcp 53 (follows pods)
- upstream-dns-servfail (FM-23) — none — the upstream DNS answers SERVFAIL
- node-nameserver-mismatch (FM-24) — node (last) — its resolv.conf names 203.0.113.99 (dead)
- lb-arp-silent (FM-06) — announcing node (all) — its VIPs (also later ones) on lo, arp_ignore=1
- ip-conflict (FM-16) — node whose IP is claimed (last) — a rogue netns (MAC 00:50:56:…) claims it
- stale-arp (FM-28) — node (all but node-1) — permanent wrong MAC for 10.89.0.2
- tcp-reset (FM-02) — node of the echo pods (all) — echo pods answer non-SYN TCP with RST (follows pods)
- http-503 (FM-01) — node of the echo pods (all) — echo HTTP port REDIRECTed to a 503 server (follows pods)
- mtu-blackhole (FM-31) — node (all) — vx0 MTU 1300 and ICMP frag-needed dropped
- cni-not-ready (FM-27) — node (last) — condition Ready=False, reason NetworkPluginNotReady
- ingress-no-route (FM-34) — none — the ingress controller ignores Ingresses created from now on (404)
- ingress-backend-down (FM-35) — none — the ingress controller sends every request to a dead port (502)
- ingress-down (FM-36) — none — the ingress proxy stops listening (connections refused)
- netpol-not-enforced (FM-37) — node (all) — its data plane ignores NetworkPolicies (no NC-POLICY rules)
- netpol-stale (FM-38) — node (all) — its policy rules stop following the API (a deleted policy stays)

Component faults (only on a lab with that component, `lab up --dataplane cilium` / `--lb metallb|f5`;
they switch marker files the component programs read, see `netconform.lab.components`):
- cilium-health-down (FM-14) — node (last) — its agent's health endpoint (TCP 4240) stops answering
- ebpf-map-full (FM-26) — node (all) — cilium_lb4_services_v2 filled to 95 % of its maximum
- cilium-rate-limit (FM-25) — node (all) — the endpoint API admits 1 PUT per 30 s: pod bursts get 429
- f5-partition-shared (FM-07) — none — a second cluster's virtual servers in this cluster's partition
- f5-configmap-missing (FM-07) — none — load-balancer-f5 writes no ConfigMap (and removes its own)
- metallb-speaker-down (FM-06) — node (all) — its speaker crash-loops; the node announces nothing

A fault is a state of the cluster, not a one-off change. The node- and fabric-level faults are
rendered into the node's rules and routes, so pods started later get them by construction. The
pod-scoped ones (tcp-reset, http-503, coredns-down) follow pods: besides the pods matching when they
are added, the control plane reports every pod whose network namespace comes up (`pod_started`, before
its containers start) or goes away (`pod_stopped`), and the fault applies or undoes its per-pod part;
so a pod started or recreated after `fault add` is broken too, and removing a pod leaves nothing of
the fault behind. coredns-down keeps exactly one DNS pod on its node broken, whichever runs there.
`clear` puts back exactly what was changed, on every pod the fault reached.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netconform.lab import components as comp
from netconform.lab.components import cilium as cilium_component
from netconform.lab.control import ingress
from netconform.lab.net import addressing as A
from netconform.lab.net import iptrules, netpol
from netconform.lab.net.netplane import FABRIC_BRIDGE, FLAG_NO_POD_ROUTES, Netplane
from netconform.lab.net.nsexec import (
    NetplaneError,
    in_ns,
    ip_batch,
    iptables_restore_cmd,
    netns_exists,
    run,
    run_parallel,
)

ECHO_ROLE_LABEL = ("netconform.io/role", "echo")
DNS_LABEL = ("k8s-app", "kube-dns")
ROGUE_MAC = "00:50:56:9a:0e:16"  # VMware's OUI, so FM-16's vendor lookup has something to show
STALE_MAC = "02:00:00:00:0f:28"  # locally administered: nobody on the fabric has it
BLACKHOLE_MTU = 1300
RESPONDER_PORT = 18503
CNI_MESSAGE = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)
# FM-30: the destinations whose masquerade ports are held (the outside and internet echo servers)
EXHAUSTED_DESTINATIONS = (
    ("tcp", A.OUTSIDE_ECHO_IP, 80),
    ("tcp", A.OUTSIDE_ECHO_IP, 7),
    ("udp", A.OUTSIDE_ECHO_IP, 7),
    ("tcp", A.INTERNET_ECHO_IP, 80),
    ("tcp", A.INTERNET_ECHO_IP, 7),
    ("udp", A.INTERNET_ECHO_IP, 7),
)
EXHAUSTION_TIMEOUT_S = 3600  # the held entries expire on their own even if nobody clears the fault


class FaultError(ValueError):
    """A fault cannot be added or cleared; the message is one line for the user."""


@dataclass(frozen=True)
class PodPort:
    port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class PodInfo:
    """What faults need to know of a pod (the control plane builds these from its store)."""

    name: str
    namespace: str
    node: str
    netns: str | None  # None for hostNetwork or not yet started pods
    ip: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PodPort, ...] = ()
    uid: str = ""  # tells a recreated pod (same name, so the same netns name) from the one a fault saw

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _no_pods() -> list[PodInfo]:
    return []


def is_kube_dns(pod: PodInfo) -> bool:
    key, value = DNS_LABEL
    return pod.namespace == "kube-system" and pod.labels.get(key) == value


def is_echo(pod: PodInfo) -> bool:
    key, value = ECHO_ROLE_LABEL
    return pod.labels.get(key) == value


@dataclass
class FaultContext:
    netplane: Netplane
    pods: Callable[[], list[PodInfo]] = _no_pods
    set_node_condition: Callable[[str, bool, str, str], None] | None = None
    kick: Callable[[], None] | None = None  # reconcile the control plane now (component faults)

    @property
    def nodes(self) -> list[str]:
        return self.netplane.nodes

    def kube_dns_pods(self) -> list[PodInfo]:
        return [p for p in self.pods() if is_kube_dns(p)]

    def echo_pods(self) -> list[PodInfo]:
        return [p for p in self.pods() if is_echo(p)]


Record = dict[str, Any]


@dataclass(frozen=True)
class PodPart:
    """The per-pod part of a pod-scoped fault, kept on every matching pod while the fault is active.

    `matches(record, pod)` says whether the fault (as recorded by its `add`) covers a pod; `apply`
    breaks one pod and returns what `undo` needs to heal it; `limit` caps how many pods are broken at
    once (coredns-down: one). Applied pods are kept in the record under "pods" (pod key -> item).
    """

    what: str  # "echo", "kube-dns": for messages
    matches: Callable[[Record, PodInfo], bool]
    apply: Callable[[FaultContext, PodInfo], Record]
    undo: Callable[[FaultContext, Record], None]
    limit: int | None = None


@dataclass(frozen=True)
class Fault:
    name: str
    fm: str
    description: str
    add: Callable[[FaultContext, str | None], Record]
    clear: Callable[[FaultContext, Record], None]
    pods: PodPart | None = None  # set for pod-scoped faults: they follow pods (see the module doc)


# ---------------------------------------------------------------------------------------- helpers
def _node(ctx: FaultContext, node: str | None, default: str) -> str:
    if node is None:
        return ctx.nodes[-1] if default == "last" else ctx.nodes[0]
    if node not in ctx.nodes:
        raise FaultError(f"unknown node {node!r}: this lab has {', '.join(ctx.nodes)}")
    return node


def _nodes(ctx: FaultContext, node: str | None) -> list[str]:
    return list(ctx.nodes) if node is None else [_node(ctx, node, "last")]


def _where(nodes: Sequence[str], ctx: FaultContext) -> str:
    return "all nodes" if list(nodes) == list(ctx.nodes) and len(nodes) > 1 else ", ".join(nodes)


def _table_exists(netns: str, table: str) -> bool:
    """Whether the pod namespace already has this iptables (nf_tables) table; pods start with none.

    Plain `iptables-save` lists only the tables that exist (`iptables-save -t nat` would create it).
    """
    saved = run(in_ns(netns, ["iptables-save"])).stdout
    return any(line.strip() == f"*{table}" for line in saved.splitlines())


def _pod_chain(netns: str, table: str, hook: str, chain: str, rules: Sequence[str]) -> bool:
    """Insert a fault chain at the top of `hook` in a pod namespace (one atomic restore).

    Returns whether the table existed before, so clearing can remove a table the fault created.
    """
    existed = _table_exists(netns, table)
    if not existed and shutil.which("nft") is None:
        # iptables can make a table but not delete one: without nft, clear could not restore the pod
        raise FaultError("nft: not installed (install nftables); the lab's faults need it to clean up")
    lines = [
        f"*{table}",
        f":{chain} - [0:0]",
        *(f"-A {chain} {r}" for r in rules),
        f"-I {hook} 1 -j {chain}",
        "COMMIT",
    ]
    run_parallel([iptables_restore_cmd(netns, "\n".join(lines) + "\n", noflush=True)])
    return existed


def _drop_pod_chain(netns: str, table: str, hook: str, chain: str, existed: bool) -> None:
    if not netns_exists(netns):
        return  # the pod is gone, and its rules with it
    for args in (["-D", hook, "-j", chain], ["-F", chain], ["-X", chain]):
        run(in_ns(netns, ["iptables", "-w", "5", "-t", table, *args]), check=False)
    if not existed:
        # the fault made the table: it goes too, so the pod's rules are exactly as before (iptables
        # itself cannot delete a table; adding the fault checked that `nft` is here)
        run(in_ns(netns, ["nft", "delete", "table", "ip", table]), check=False)


# ---------------------------------------------------------------------------------------- faults
def _tunnel_add(ctx: FaultContext, node: str | None) -> Record:
    target = "*" if node is None else _node(ctx, node, "last")
    ctx.netplane.set_fabric_fault("tunnel", target, True)
    return {"target": target, "where": "all nodes" if target == "*" else target}


def _tunnel_clear(ctx: FaultContext, rec: Record) -> None:
    ctx.netplane.set_fabric_fault("tunnel", rec["target"], False)


def _partition_add(ctx: FaultContext, node: str | None) -> Record:
    target = _node(ctx, node, "last")
    if len(ctx.nodes) < 2:
        raise FaultError("node-partition needs at least two nodes")
    ctx.netplane.set_fabric_fault("partition", target, True)
    return {"target": target, "where": target}


def _partition_clear(ctx: FaultContext, rec: Record) -> None:
    ctx.netplane.set_fabric_fault("partition", rec["target"], False)


def _flag_fault(flag: str, default_all: bool) -> tuple[Callable[..., Record], Callable[..., None]]:
    def add(ctx: FaultContext, node: str | None) -> Record:
        nodes = _nodes(ctx, node) if default_all else [_node(ctx, node, "last")]
        ctx.netplane.set_node_flag(nodes, flag, True)
        return {"nodes": nodes, "where": _where(nodes, ctx)}

    def clear(ctx: FaultContext, rec: Record) -> None:
        ctx.netplane.set_node_flag(rec["nodes"], flag, False)

    return add, clear


def _exhaustion_entries(node: str) -> list[list[str]]:
    """conntrack -I argv holding every allowed masquerade port of `node` for each destination."""
    gateway, node_ip = A.pod_gateway(node), A.node_ip(node)
    low, high = iptrules.EXHAUSTED_PORTS
    entries = []
    for proto, dst, dport in EXHAUSTED_DESTINATIONS:
        for offset, port in enumerate(range(low, high + 1)):
            state = ["--state", "ESTABLISHED"] if proto == "tcp" else []
            entries.append(
                [
                    *("conntrack", "-I", "-p", proto, "-s", gateway, "-d", dst),
                    *("--sport", str(40000 + offset), "--dport", str(dport)),
                    *(
                        "-r",
                        dst,
                        "-q",
                        node_ip,
                        "--reply-port-src",
                        str(dport),
                        "--reply-port-dst",
                        str(port),
                    ),
                    *state,
                    *("-u", "SEEN_REPLY,ASSURED", "-t", str(EXHAUSTION_TIMEOUT_S)),
                ]
            )
    return entries


def _exhaustion_add(ctx: FaultContext, node: str | None) -> Record:
    nodes = _nodes(ctx, node)
    commands = [
        (in_ns(ctx.netplane.node_netns(n), argv), None) for n in nodes for argv in _exhaustion_entries(n)
    ]
    try:
        run_parallel(commands)
    except NetplaneError as exc:
        _release_ports(ctx, nodes)
        raise FaultError(f"snat-port-exhaustion: could not hold the masquerade ports: {exc}") from exc
    ctx.netplane.set_node_flag(nodes, iptrules.FLAG_SNAT_EXHAUSTED, True)
    return {"nodes": nodes, "where": _where(nodes, ctx)}


def _release_ports(ctx: FaultContext, nodes: Sequence[str]) -> None:
    for n in nodes:
        for proto in ("tcp", "udp"):
            argv = ["conntrack", "-D", "-p", proto, "-s", A.pod_gateway(n), "-q", A.node_ip(n)]
            run(in_ns(ctx.netplane.node_netns(n), argv), check=False)  # exit 1: nothing left


def _exhaustion_clear(ctx: FaultContext, rec: Record) -> None:
    ctx.netplane.set_node_flag(rec["nodes"], iptrules.FLAG_SNAT_EXHAUSTED, False)
    _release_ports(ctx, rec["nodes"])


def _coredns_add(ctx: FaultContext, node: str | None) -> Record:
    """Pick the node whose DNS pod stops answering: --node, else the node of the first DNS pod."""
    if node is None:
        running = sorted((p for p in ctx.kube_dns_pods() if p.netns), key=lambda p: (p.node, p.name))
        if not running:
            raise FaultError("coredns-down: no running kube-dns pod to pick a node from; give --node")
        node = running[0].node
    else:
        _node(ctx, node, "last")
    return {"node": node, "scope": f"one kube-dns pod on {node}"}


def _dns_matches(rec: Record, pod: PodInfo) -> bool:
    return is_kube_dns(pod) and pod.node == rec["node"]


def _dns_apply(ctx: FaultContext, pod: PodInfo) -> Record:
    assert pod.netns is not None
    rules = ["-p udp -m udp --dport 53 -j DROP", "-p tcp -m tcp --dport 53 -j DROP"]
    return {"netns": pod.netns, "existed": _pod_chain(pod.netns, "filter", "INPUT", "NC-FAULT-DNS", rules)}


def _dns_undo(ctx: FaultContext, item: Record) -> None:
    _drop_pod_chain(item["netns"], "filter", "INPUT", "NC-FAULT-DNS", item["existed"])


def _pod_scoped_clear(ctx: FaultContext, rec: Record) -> None:
    """Nothing beyond the per-pod parts, which `clear` undoes on every pod the fault reached."""


def _servfail_add(ctx: FaultContext, node: str | None) -> Record:
    if node is not None:
        raise FaultError("upstream-dns-servfail applies to the upstream server, not to a node")
    ctx.netplane.upstream_control_file().write_text("servfail\n")
    return {"where": A.UPSTREAM_DNS_IP}


def _servfail_clear(ctx: FaultContext, rec: Record) -> None:
    ctx.netplane.upstream_control_file().unlink(missing_ok=True)


def _nameserver_add(ctx: FaultContext, node: str | None) -> Record:
    target = _node(ctx, node, "last")
    before = ctx.netplane.node_resolv_conf(target)
    ctx.netplane.set_node_nameserver(target, A.DEAD_NAMESERVER_IP)
    return {"node": target, "before": before, "where": target}


def _nameserver_clear(ctx: FaultContext, rec: Record) -> None:
    from netconform.lab.net.nsexec import NETNS_ETC, write_in_place

    write_in_place(NETNS_ETC / ctx.netplane.node_netns(rec["node"]) / "resolv.conf", rec["before"])


def _arp_silent_add(ctx: FaultContext, node: str | None) -> Record:
    """FM-06 as a state: every VIP the scope's nodes announce, now or later, gets no ARP answer."""
    if not ctx.netplane.lb:
        raise FaultError("lb-arp-silent: this lab has no load balancer (--no-lb)")
    scope = "*" if node is None else _node(ctx, node, "last")
    vips = ctx.netplane.set_arp_silent(scope, True)
    where = "VIPs announced by " + ("any node" if scope == "*" else scope)
    return {"scope": scope, "where": where + (f" (now {', '.join(vips)})" if vips else " (none yet)")}


def _arp_silent_clear(ctx: FaultContext, rec: Record) -> None:
    ctx.netplane.set_arp_silent(rec.get("scope", "*"), False)


def _conflict_add(ctx: FaultContext, node: str | None) -> Record:
    target = _node(ctx, node, "last")
    plane = ctx.netplane
    rogue, fabric = plane.ns("rogue"), plane.fabric_netns()
    run(["ip", "netns", "add", rogue])
    try:
        run_parallel(
            [
                ip_batch(
                    fabric,
                    [
                        f"link add port-rogue type veth peer name eth0 netns {rogue}",
                        f"link set port-rogue master {FABRIC_BRIDGE} up",
                    ],
                )
            ]
        )
        run_parallel(
            [
                ip_batch(
                    rogue,
                    [
                        "link set lo up",
                        f"link set eth0 address {ROGUE_MAC}",
                        f"addr add {A.node_ip(target)}/{A.FABRIC_PREFIX} dev eth0",
                        "link set eth0 up",
                    ],
                )
            ]
        )
    except NetplaneError:
        run(["ip", "netns", "del", rogue], check=False)
        raise
    return {
        "node": target,
        "ip": A.node_ip(target),
        "mac": ROGUE_MAC,
        "where": f"{A.node_ip(target)} ({target})",
    }


def _conflict_clear(ctx: FaultContext, rec: Record) -> None:
    run(["ip", "netns", "del", ctx.netplane.ns("rogue")], check=False)  # its veth goes with it
    ctx.netplane.forget_neighbour(rec["ip"])  # nobody keeps the rogue's MAC cached


def _stale_arp_add(ctx: FaultContext, node: str | None) -> Record:
    nodes = ctx.nodes[1:] if node is None else [_node(ctx, node, "last")]
    if not nodes or ctx.nodes[0] in nodes:
        raise FaultError(
            f"stale-arp needs a node other than {ctx.nodes[0]} (which holds {A.CONTROL_PLANE_VIP})"
        )
    for n in nodes:
        ctx.netplane.set_static_neighbour(n, A.CONTROL_PLANE_VIP, STALE_MAC)
    return {"nodes": nodes, "where": ", ".join(nodes)}


def _stale_arp_clear(ctx: FaultContext, rec: Record) -> None:
    for n in rec["nodes"]:
        ctx.netplane.set_static_neighbour(n, A.CONTROL_PLANE_VIP, None)


def _echo_add(ctx: FaultContext, node: str | None) -> Record:
    if node is not None:
        _node(ctx, node, "last")
    return {"node": node, "scope": f"echo pods on {node or 'all nodes'}"}


def _echo_matches(rec: Record, pod: PodInfo) -> bool:
    return is_echo(pod) and rec["node"] in (None, pod.node)


def _reset_apply(ctx: FaultContext, pod: PodInfo) -> Record:
    assert pod.netns is not None
    rule = "-p tcp ! --syn -j REJECT --reject-with tcp-reset"
    return {"netns": pod.netns, "existed": _pod_chain(pod.netns, "filter", "INPUT", "NC-FAULT-RST", [rule])}


def _reset_undo(ctx: FaultContext, item: Record) -> None:
    _drop_pod_chain(item["netns"], "filter", "INPUT", "NC-FAULT-RST", item["existed"])


def _http_port(pod: PodInfo) -> int:
    named = [p.port for p in pod.ports if p.name.startswith("http") and p.protocol == "TCP"]
    return named[0] if named else 8080  # the probe kit's echo serves HTTP on 8080 (contracts §4)


def _http503_apply(ctx: FaultContext, pod: PodInfo) -> Record:
    """Start the 503 responder in the pod's namespace, then REDIRECT the pod's HTTP port to it."""
    assert pod.netns is not None
    program = f"http503-{pod.netns}"
    argv = [sys.executable, "-m", "netconform.lab.faults.http503", "--port", str(RESPONDER_PORT)]
    ctx.netplane.start_program(program, pod.netns, argv, "http503: listening")
    rule = f"-p tcp -m tcp --dport {_http_port(pod)} -j REDIRECT --to-ports {RESPONDER_PORT}"
    try:
        existed = _pod_chain(pod.netns, "nat", "PREROUTING", "NC-FAULT-503", [rule])
    except (NetplaneError, FaultError):
        ctx.netplane.stop_program(program)
        raise
    return {"netns": pod.netns, "program": program, "existed": existed}


def _http503_undo(ctx: FaultContext, item: Record) -> None:
    _drop_pod_chain(item["netns"], "nat", "PREROUTING", "NC-FAULT-503", item["existed"])
    ctx.netplane.stop_program(item["program"])


def _mtu_add(ctx: FaultContext, node: str | None) -> Record:
    nodes = _nodes(ctx, node)
    for n in nodes:
        ctx.netplane.set_overlay_mtu(n, BLACKHOLE_MTU)
    ctx.netplane.set_node_flag(nodes, iptrules.FLAG_DROP_FRAG_NEEDED, True)
    return {"nodes": nodes, "where": _where(nodes, ctx)}


def _mtu_clear(ctx: FaultContext, rec: Record) -> None:
    ctx.netplane.set_node_flag(rec["nodes"], iptrules.FLAG_DROP_FRAG_NEEDED, False)
    for n in rec["nodes"]:
        ctx.netplane.set_overlay_mtu(n, A.OVERLAY_MTU)


def _cni_add(ctx: FaultContext, node: str | None) -> Record:
    target = _node(ctx, node, "last")
    if ctx.set_node_condition is None:
        raise FaultError("cni-not-ready needs the control plane (node conditions live in the API)")
    ctx.set_node_condition(target, False, "NetworkPluginNotReady", CNI_MESSAGE)
    return {"node": target, "where": target}


def _cni_clear(ctx: FaultContext, rec: Record) -> None:
    if ctx.set_node_condition is not None:
        ctx.set_node_condition(rec["node"], True, "KubeletReady", "kubelet is posting ready status")


def _ingress_switch(key: str, value: Any) -> tuple[Callable[..., Record], Callable[..., None]]:
    """A fault of the lab's ingress controller: one key of its control file, re-read at every sync.

    A state: `ingress-no-route` ignores every Ingress created while it is active, the others act on
    every request; `clear` removes the key and the controller serves as before at its next sync.
    """

    def path(ctx: FaultContext) -> Path:
        return ctx.netplane.state_dir / ingress.CONTROL_FILE

    def update(ctx: FaultContext, set_to: Any) -> None:
        try:
            data = json.loads(path(ctx).read_text() or "{}")
        except (OSError, ValueError):
            data = {}
        if set_to is None:
            data.pop(key, None)
        else:
            data[key] = set_to
        tmp = path(ctx).with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path(ctx))

    def add(ctx: FaultContext, node: str | None) -> Record:
        if node is not None:
            raise FaultError("the ingress faults act on the lab's one ingress controller: no --node")
        if not any(ingress.LABELS.items() <= dict(p.labels).items() for p in ctx.pods()):
            raise FaultError("this lab has no ingress controller (it was started with --no-ingress)")
        update(ctx, time.time() if value == "now" else value)
        return {"where": f"{ingress.NAMESPACE}/{ingress.SERVICE_NAME}"}

    def clear(ctx: FaultContext, rec: Record) -> None:
        update(ctx, None)

    return add, clear


def _component(ctx: FaultContext, fault: str, *, dataplane: str | None = None, lb: str | None = None) -> Any:
    """The lab's components, or a one-line refusal naming the `lab up` flag the fault needs."""
    config = comp.load_config(ctx.netplane.state_dir)
    if dataplane and config.dataplane != dataplane:
        raise FaultError(f"{fault}: this lab runs no {dataplane} dataplane (lab up --dataplane {dataplane})")
    if lb and (config.lb != lb or not ctx.netplane.lb):
        raise FaultError(f"{fault}: this lab runs no {lb} load balancer (lab up --lb {lb})")
    return config


def _marker_fault(
    fault: str,
    relative: Callable[[str | None], str],
    content: str,
    *,
    per_node: str | None,
    dataplane: str | None = None,
    lb: str | None = None,
) -> tuple[Callable[..., Record], Callable[..., None]]:
    """A fault that is one marker file per node (per_node "all"/"last") or one for the cluster."""

    def add(ctx: FaultContext, node: str | None) -> Record:
        _component(ctx, fault, dataplane=dataplane, lb=lb)
        if per_node is None:
            if node is not None:
                raise FaultError(f"{fault} applies to the cluster, not to a node")
            targets: list[str | None] = [None]
            where = "the cluster"
        else:
            nodes = _nodes(ctx, node) if per_node == "all" else [_node(ctx, node, "last")]
            targets, where = list(nodes), _where(nodes, ctx)
        for t in targets:
            comp.marker(ctx.netplane.state_dir, relative(t), content)
        if ctx.kick is not None:
            ctx.kick()
        return {"targets": targets, "where": where}

    def clear(ctx: FaultContext, rec: Record) -> None:
        for t in rec["targets"]:
            comp.marker(ctx.netplane.state_dir, relative(t), None)
        if ctx.kick is not None:
            ctx.kick()

    return add, clear


_ingress_no_route = _ingress_switch("ignore_created_after", "now")
_ingress_backend_down = _ingress_switch("dead_port", True)
_ingress_down = _ingress_switch("down", True)
_health_add, _health_clear = _marker_fault(
    "cilium-health-down", lambda n: f"cilium/{n}.health-down", "down\n", per_node="last", dataplane="cilium"
)
_mapfull_add, _mapfull_clear = _marker_fault(
    "ebpf-map-full",
    lambda n: f"cilium/{n}.lb4-fill",
    f"{int(0.95 * cilium_component.MAP_MAX)}\n",
    per_node="all",
    dataplane="cilium",
)
_ratelimit_add, _ratelimit_clear = _marker_fault(
    "cilium-rate-limit",
    lambda n: f"cilium/{n}.rate-limit",
    json.dumps({"parallel": 1, "hold_s": 30.0}),
    per_node="all",
    dataplane="cilium",
)
FOREIGN_VIRTUALS = ("other-cluster_web-443-tcp", "other-cluster_web-80-tcp")
_shared_add, _shared_clear = _marker_fault(
    "f5-partition-shared",
    lambda n: "f5/partition-shared",
    json.dumps(FOREIGN_VIRTUALS),
    per_node=None,
    lb="f5",
)
_cm_missing_add, _cm_missing_clear = _marker_fault(
    "f5-configmap-missing", lambda n: "f5/configmap-missing", "missing\n", per_node=None, lb="f5"
)
_speaker_add, _speaker_clear = _marker_fault(
    "metallb-speaker-down", lambda n: f"lb/speaker-down/{n}", "down\n", per_node="all", lb="metallb"
)

_route_add, _route_clear = _flag_fault(FLAG_NO_POD_ROUTES, default_all=False)
_svcnat_add, _svcnat_clear = _flag_fault(iptrules.FLAG_NO_SERVICE_NAT, default_all=True)
_snat_add, _snat_clear = _flag_fault(iptrules.FLAG_NO_EGRESS_SNAT, default_all=True)
_npoff_add, _npoff_clear = _flag_fault(netpol.FLAG_NOT_ENFORCED, default_all=True)
_npstale_add, _npstale_clear = _flag_fault(netpol.FLAG_STALE, default_all=True)

FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "tunnel-blocked", "FM-09", "UDP 6081 (overlay) dropped on the fabric", _tunnel_add, _tunnel_clear
        ),
        Fault(
            "node-partition",
            "FM-13",
            "one node cut off from the other nodes",
            _partition_add,
            _partition_clear,
        ),
        Fault("pod-route-missing", "FM-10", "per-pod routes of one node deleted", _route_add, _route_clear),
        Fault("service-nat-missing", "FM-08", "service DNAT rules removed", _svcnat_add, _svcnat_clear),
        Fault("snat-missing", "FM-11", "no masquerade for pod→outside traffic", _snat_add, _snat_clear),
        Fault(
            "snat-port-exhaustion",
            "FM-30",
            "masquerade ports exhausted: new pod→outside connections dropped",
            _exhaustion_add,
            _exhaustion_clear,
        ),
        Fault(
            "coredns-down",
            "FM-22",
            "one DNS pod stops answering",
            _coredns_add,
            _pod_scoped_clear,
            PodPart("kube-dns", _dns_matches, _dns_apply, _dns_undo, limit=1),
        ),
        Fault(
            "upstream-dns-servfail",
            "FM-23",
            "the upstream DNS answers SERVFAIL",
            _servfail_add,
            _servfail_clear,
        ),
        Fault(
            "node-nameserver-mismatch",
            "FM-24",
            f"one node's resolv.conf points at a dead nameserver ({A.DEAD_NAMESERVER_IP})",
            _nameserver_add,
            _nameserver_clear,
        ),
        Fault(
            "lb-arp-silent",
            "FM-06",
            "LB VIPs stay but ARP for them is not answered",
            _arp_silent_add,
            _arp_silent_clear,
        ),
        Fault(
            "ip-conflict", "FM-16", "a second MAC answers ARP for a node IP", _conflict_add, _conflict_clear
        ),
        Fault(
            "stale-arp",
            "FM-28",
            f"nodes cache a wrong MAC for the control-plane VIP {A.CONTROL_PLANE_VIP}",
            _stale_arp_add,
            _stale_arp_clear,
        ),
        Fault(
            "tcp-reset",
            "FM-02",
            "echo backends answer established TCP with RST",
            _echo_add,
            _pod_scoped_clear,
            PodPart("echo", _echo_matches, _reset_apply, _reset_undo),
        ),
        Fault(
            "http-503",
            "FM-01",
            "echo backends answer HTTP 503",
            _echo_add,
            _pod_scoped_clear,
            PodPart("echo", _echo_matches, _http503_apply, _http503_undo),
        ),
        Fault(
            "mtu-blackhole",
            "FM-31",
            f"overlay MTU {BLACKHOLE_MTU} with ICMP frag-needed suppressed",
            _mtu_add,
            _mtu_clear,
        ),
        Fault("cni-not-ready", "FM-27", "a node reports NetworkPluginNotReady", _cni_add, _cni_clear),
        Fault(
            "ingress-no-route",
            "FM-34",
            "the ingress controller ignores Ingresses created from now on (404 for their hosts)",
            *_ingress_no_route,
        ),
        Fault(
            "ingress-backend-down",
            "FM-35",
            f"the ingress controller routes to a dead port ({ingress.DEAD_PORT}): 502 from the proxy",
            *_ingress_backend_down,
        ),
        Fault("ingress-down", "FM-36", "the ingress proxy stops listening", *_ingress_down),
        Fault(
            "cilium-health-down",
            "FM-14",
            "one node's Cilium health endpoint stops answering (--dataplane cilium)",
            _health_add,
            _health_clear,
        ),
        Fault(
            "ebpf-map-full",
            "FM-26",
            "the eBPF LB service map filled to 95 % of its maximum (--dataplane cilium)",
            _mapfull_add,
            _mapfull_clear,
        ),
        Fault(
            "cilium-rate-limit",
            "FM-25",
            "the agents' endpoint API admits one PUT per 30 s: pod bursts get 429 (--dataplane cilium)",
            _ratelimit_add,
            _ratelimit_clear,
        ),
        Fault(
            "f5-partition-shared",
            "FM-07",
            "a second cluster's virtual servers in this cluster's BIG-IP partition (--lb f5)",
            _shared_add,
            _shared_clear,
        ),
        Fault(
            "f5-configmap-missing",
            "FM-07",
            "load-balancer-f5 writes no per-port ConfigMap (--lb f5)",
            _cm_missing_add,
            _cm_missing_clear,
        ),
        Fault(
            "metallb-speaker-down",
            "FM-06",
            "MetalLB speakers crash-loop: no announcement, no ARP for the VIPs (--lb metallb)",
            _speaker_add,
            _speaker_clear,
        ),
        Fault(
            "netpol-not-enforced",
            "FM-37",
            "the node's data plane ignores NetworkPolicies: what they deny passes",
            _npoff_add,
            _npoff_clear,
        ),
        Fault(
            "netpol-stale",
            "FM-38",
            "the node's policy rules stop following the API: a policy deleted later is still enforced",
            _npstale_add,
            _npstale_clear,
        ),
    )
}


# faults of the optional components: refused on a lab without them (`lab up --dataplane/--lb`)
# the faults of the lab's ingress controller (a whole lab's kube-system pod; not on a bare data plane)
INGRESS_FAULTS = ("ingress-no-route", "ingress-backend-down", "ingress-down")
# the NetworkPolicy faults (issue 12): node flags read by the policy rendering of netplane.py
NETPOL_FAULTS = ("netpol-not-enforced", "netpol-stale")
COMPONENT_FAULTS = (
    "cilium-health-down",
    "ebpf-map-full",
    "cilium-rate-limit",
    "f5-partition-shared",
    "f5-configmap-missing",
    "metallb-speaker-down",
)


def names() -> list[str]:
    return list(FAULTS)


def follows_pods(name: str) -> bool:
    """Whether fault `name` is pod-scoped: it also breaks matching pods started after it was added."""
    return _lookup(name).pods is not None


def describe(name: str) -> str:
    fault = _lookup(name)
    follows = f"; follows pods (also {fault.pods.what} pods started later)" if fault.pods else ""
    return f"{fault.name} ({fault.fm}): {fault.description}{follows}"


def _lookup(name: str) -> Fault:
    fault = FAULTS.get(name)
    if fault is None:
        raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    return fault


# ------------------------------------------------------------------------------- pod-scoped faults
def _pods_where(record: Record) -> str:
    """Where a pod-scoped fault acts now: its scope and the pods it currently breaks."""
    names = sorted(item["pod"] for item in record["pods"].values())
    if not names:
        now = "none running now"
    elif len(names) <= 3:
        now = ", ".join(names)
    else:
        now = f"{len(names)} pods"
    return f"{record['scope']}: {now}"


def _undo_quietly(part: PodPart, ctx: FaultContext, item: Record) -> None:
    """Undo one pod's part where the pod may already be gone (its rules went with its namespace)."""
    with contextlib.suppress(NetplaneError, FaultError):
        part.undo(ctx, item)


def _follow(part: PodPart, ctx: FaultContext, record: Record, candidates: Sequence[PodInfo]) -> list[str]:
    """Apply the per-pod part to every candidate pod that matches and lacks it; returns their keys.

    Entries of pods whose namespace is gone are dropped first (a pod removal that was not reported),
    and an entry for the same pod name with another uid (the pod was recreated) is replaced.
    """
    applied: dict[str, Record] = record.setdefault("pods", {})
    for key, item in list(applied.items()):
        if not netns_exists(item["netns"]):
            _undo_quietly(part, ctx, item)
            del applied[key]
    done = []
    for pod in sorted(candidates, key=lambda p: (p.node, p.namespace, p.name)):
        if not pod.netns or not part.matches(record, pod):
            continue
        known = applied.get(pod.key)
        if known is not None:
            if known.get("uid") == pod.uid and known["netns"] == pod.netns:
                continue
            _undo_quietly(part, ctx, known)
            del applied[pod.key]
        if part.limit is not None and len(applied) >= part.limit:
            continue
        applied[pod.key] = {**part.apply(ctx, pod), "pod": pod.name, "uid": pod.uid}
        done.append(pod.key)
    record["where"] = _pods_where(record)
    return done


def _pod_scoped(ctx: FaultContext) -> Iterator[tuple[str, PodPart, Record]]:
    for name, record in ctx.netplane.fault_records().items():
        fault = FAULTS.get(name)
        if fault is not None and fault.pods is not None:
            yield name, fault.pods, record


def pod_started(ctx: FaultContext, pod: PodInfo) -> list[str]:
    """A pod's network namespace is up (its containers not yet started): every active pod-scoped fault
    that covers it breaks it now. Returns one line per fault applied."""
    done = []
    for name, part, record in _pod_scoped(ctx):
        before = json.dumps(record, sort_keys=True)
        try:
            if _follow(part, ctx, record, [pod]):
                done.append(f"{name}: applied to {pod.key} on {pod.node}")
        finally:
            if json.dumps(record, sort_keys=True) != before:
                ctx.netplane.set_fault_record(name, record)
    return done


def pod_stopped(ctx: FaultContext, pod: PodInfo) -> list[str]:
    """A pod's network namespace is about to go: undo what the active faults did to it (the 503
    responder stops, the record forgets the pod); a fault with a limit moves on to another matching
    pod (`ctx.pods()`, the dying pod excluded). Returns one line per fault undone."""
    done = []
    for name, part, record in _pod_scoped(ctx):
        item = record.get("pods", {}).get(pod.key)
        if item is None or (pod.uid and item.get("uid") and item["uid"] != pod.uid):
            continue
        del record["pods"][pod.key]
        try:
            _undo_quietly(part, ctx, item)
            done.append(f"{name}: undone on {pod.key}")
            if part.limit is not None:
                done += [
                    f"{name}: applied to {key}"
                    for key in _follow(part, ctx, record, [p for p in ctx.pods() if p.key != pod.key])
                ]
        finally:
            record["where"] = _pods_where(record)
            ctx.netplane.set_fault_record(name, record)
    return done


# ---------------------------------------------------------------------------------------- catalogue
def add(name: str, ctx: FaultContext, node: str | None = None) -> str:
    """Inject fault `name` (on `node` where that applies); returns a one-line summary."""
    fault = _lookup(name)
    current = ctx.netplane.fault_records().get(name)
    if current is not None:
        if current.get("requested_node") == node:
            return f"{name}: already active on {current.get('where')}"
        raise FaultError(f"{name} is already active on {current.get('where')}: clear it first")
    try:
        record = fault.add(ctx, node)
        if fault.pods is not None:
            try:
                _follow(fault.pods, ctx, record, ctx.pods())
            except (NetplaneError, FaultError):
                for item in record.get("pods", {}).values():
                    _undo_quietly(fault.pods, ctx, item)
                raise
    except NetplaneError as exc:
        raise FaultError(f"{name}: {exc}") from exc
    record["requested_node"] = node
    ctx.netplane.set_fault_record(name, record)
    follows = "; pods started later get it too" if fault.pods is not None else ""
    return f"{name} ({fault.fm}) active on {record.get('where')}{follows}"


def clear(name: str, ctx: FaultContext) -> str:
    """Undo fault `name` exactly (on every pod it reached); a fault that is not active is left alone."""
    fault = _lookup(name)
    record = ctx.netplane.fault_records().get(name)
    if record is None:
        return f"{name}: not active"
    try:
        if fault.pods is not None:
            for item in record.get("pods", {}).values():
                fault.pods.undo(ctx, item)
        fault.clear(ctx, record)
    except NetplaneError as exc:
        raise FaultError(f"{name}: clearing failed: {exc}") from exc
    ctx.netplane.set_fault_record(name, None)
    return f"{name}: cleared"


def clear_all(ctx: FaultContext) -> list[str]:
    done = []
    for name in list(ctx.netplane.fault_records()):
        with contextlib.suppress(FaultError):
            done.append(clear(name, ctx))
    return done


def active(ctx: FaultContext) -> dict[str, str]:
    return {name: str(rec.get("where")) for name, rec in ctx.netplane.fault_records().items()}
