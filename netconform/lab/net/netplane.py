"""The lab's data plane: namespaces, links, overlay, routes and service NAT in the real kernel.

API (used by the control plane; every method may raise `NetplaneError` with a one-line message)::

    plane = Netplane(lab, nodes=3, lb=True, state_dir=None)   # state_dir: /run/netconform/lab/<lab>
    plane.build()                          # whole data plane + outside world + its programs, ~1 s
    plane.node_netns("node-2")             # "nc-<lab>-node-2": where hostNetwork pods run
    plane.add_pod(key, node, ip, resolv_conf) -> netns   # pod namespace with eth0 = ip/32
    plane.remove_pod(key)                  # kills what still runs in it, removes ns, veth, route
    plane.sync_services([ServiceNAT, ...]) # idempotent full resync of every node's NAT (kube-proxy)
    plane.announce_vip(vip, node) / plane.withdraw_vip(vip)   # L2 announcement (no-op with lb=False)
    plane.run_in_outside(argv) -> argv     # run argv as the external client (203.0.113.20)
    plane.destroy()                        # idempotent; also works via destroy_lab(lab) from any process
    Netplane.load(lab, state_dir=None)     # the same plane in another process (e.g. the CLI)
    destroy_lab(lab) / destroy_all()       # remove everything by namespace name, state file or not

Topology (docs/contracts.md §3): a fabric namespace holds the L2 switch `fab0`; each node namespace
has `eth0` = 10.89.0.(10+i)/22 on it, a pod bridge `cbr0` (10.244.i.1/32), and `vx0`, a VXLAN on UDP
6081 (Geneve's port) flooding to every peer (`bridge fdb append 00:00:00:00:00:00 dst PEER`) and
learning the rest; other nodes' pod CIDRs are routed via their `vx0` address 10.244.j.0. A pod has
`eth0` = IP/32 (MTU 1450) with its default route via the bridge address; its node reaches it only
through a per-pod /32 route, so a missing route really breaks it (FM-10). Pod ports of `cbr0` are in
hairpin mode and bridged traffic passes iptables, as on a real node, so a pod reaches a Service whose
chosen endpoint is the pod itself (kube-proxy's masquerade mark makes the source the bridge address).
A router connects the fabric to the outside world (`outside.py`). The control-plane VIP 10.89.0.2
sits on node-1's `eth0`.

State lives in `<state_dir>/netplane.json`; mutating calls take a file lock and re-read it first (when
another process replaced it), so the supervisor and a CLI process can both act on one lab. Rule syncs
(an `iptables-save` and an `iptables-restore` per changed node) run under a lock of their own, after
the state lock is released: at 100 nodes one took ~1 s and every pod being wired waited for it.
Nothing is ever created in the host's root namespace: veths are created inside one lab namespace with
their peer in another.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shlex
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from netconform.lab.net import addressing as A
from netconform.lab.net import hostguard, hostlimits, netpol, outside
from netconform.lab.net.iptrules import (
    FLAG_NO_SERVICE_NAT,
    NODE_FLAGS,
    Backend,
    OwnedRules,
    ServiceNAT,
    ServicePort,
    render_fabric_table,
    render_node_tables,
    restore_document,
)
from netconform.lab.net.nsexec import (
    NETNS_DIR,
    NETNS_ETC,
    STATE_ROOT,
    NetplaneError,
    bridge_batch,
    in_ns,
    ip_batch,
    iptables_restore_cmd,
    kill_pids,
    netns_exists,
    netns_list,
    pid_in_ns,
    run,
    run_parallel,
    spawn,
    sysctl_cmd,
    wait_for_log,
    write_in_place,
)

__all__ = [
    "Backend",
    "Netplane",
    "NetplaneError",
    "ServiceNAT",
    "ServicePort",
    "destroy_all",
    "destroy_lab",
]

STATE_FILE = "netplane.json"
LOCK_FILE = "netplane.lock"
RULES_LOCK_FILE = "netplane-rules.lock"  # held while rules are written: one writer at a time, any process
LOG_DIR = "netplane-logs"
FABRIC_BRIDGE = "fab0"
POD_BRIDGE = "cbr0"
OVERLAY_DEV = "vx0"
PROGRAM_START_TIMEOUT = 10.0
FLAG_NO_POD_ROUTES = "no-pod-routes"  # FM-10: add_pod on that node adds no route either

# the same on every lab namespace: forwarding where needed, no reverse-path filter surprises, and
# ARP answered for any local address (so the VIP on eth0 answers), whatever the host's defaults are
_NODE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.ipv4.conf.all.arp_ignore": "0",
    "net.ipv4.conf.all.arp_announce": "0",
    "net.ipv4.conf.eth0.arp_ignore": "0",
    # like a real node (kubeadm requires it): bridged pod traffic passes iptables, so Service NAT
    # between two pods of one node is bridged DNAT and the hairpin case goes through the bridge port
    "net.bridge.bridge-nf-call-iptables": "1",
    **outside.NO_IPV6,
}
_FABRIC_SYSCTLS = {"net.bridge.bridge-nf-call-iptables": "1", **outside.NO_IPV6}


def _silent(st: PlaneState, node: str) -> bool:
    """Whether VIPs announced by `node` are ARP-silent now (FM-06)."""
    return "*" in st.silent_scope or node in st.silent_scope


def pod_bridge_mac(node: str) -> str:
    """The pod bridge's own MAC: locally administered, derived from its gateway address."""
    return "02:00:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(A.pod_gateway(node)).packed)


def _other_lab_nodes(lab: str) -> int:
    """How many nodes the other labs on this host have (their node namespaces)."""
    pattern = A.lab_namespace_pattern()
    return sum(
        1
        for n in netns_list()
        if (m := pattern.match(n)) and m.group(1) != lab and m.group(2).startswith("node-")
    )


def fabric_port(node: str) -> str:
    """The fabric bridge's port towards `node` (inside the fabric namespace)."""
    return f"port-{node}"


@dataclass
class PodRecord:
    node: str
    ip: str
    netns: str
    veth: str


@dataclass
class PlaneState:
    """Everything needed to resync or tear down a plane, persisted as JSON."""

    lab: str
    nodes: list[str]
    lb: bool
    built: bool = False
    pods: dict[str, PodRecord] = field(default_factory=dict)
    services: list[dict[str, Any]] = field(default_factory=list)
    vips: dict[str, str] = field(default_factory=dict)  # vip -> node announcing it
    node_flags: dict[str, list[str]] = field(default_factory=dict)
    tunnel_blocked: list[str] = field(default_factory=list)  # node names, "*" = every node
    partitioned: list[str] = field(default_factory=list)
    applied: dict[str, str] = field(default_factory=dict)  # netns -> hash of the rules it has
    udp_backends: dict[str, list[str]] = field(default_factory=dict)  # node -> UDP DNAT targets
    # FM-06: nodes ("*": all) whose VIPs sit on `lo`, so nobody answers ARP for them; a state, so
    # VIPs announced later on those nodes are silent too
    silent_scope: list[str] = field(default_factory=list)
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {pid, netns}
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)  # owned by faults.py
    # NetworkPolicy entries per node (netpol.compile_policies) and the snapshots netpol-stale keeps
    policies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    policies_frozen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON-ready values, sharing them: saved at once under the lock, never changed.

        `dataclasses.asdict` deep-copied every service and policy on each save (issue 15: a third of the
        supervisor's time while a 100-node kit's 200 pods were torn down, each removal one save).
        """
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["pods"] = {k: vars(v) for k, v in self.pods.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlaneState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["pods"] = {k: PodRecord(**v) for k, v in data.get("pods", {}).items()}
        return cls(**known)


class Netplane:
    """One lab's data plane. Thread-safe; several processes may share a lab through the state file."""

    def __init__(self, lab: str, nodes: int = 3, lb: bool = True, state_dir: Path | None = None) -> None:
        self.lab = A.check_lab_name(lab)
        self.state_dir = Path(state_dir) if state_dir else STATE_ROOT / lab
        self._lock = threading.RLock()
        self._state = PlaneState(lab=lab, nodes=A.node_names(nodes), lb=lb)
        self._pending: dict[str, PodRecord] = {}  # pods being wired (add_pod, outside the lock)
        self._removing: dict[str, PodRecord] = {}  # pods being torn down (remove_pod, outside the lock)
        self._local = threading.local()  # per thread: _mutate's depth, what to do after the lock
        self._rules_lock = threading.Lock()  # taken before the state lock, never while holding it
        self._saved: tuple[int, int, int] | None = None  # the state file as this process last wrote it
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ naming
    @property
    def nodes(self) -> list[str]:
        return list(self._state.nodes)

    @property
    def lb(self) -> bool:
        return self._state.lb

    def ns(self, role: str) -> str:
        return A.ns_name(self.lab, role)

    def node_netns(self, node: str) -> str:
        self._check_node(node)
        return self.ns(node)

    def fabric_netns(self) -> str:
        return self.ns("fabric")

    def router_netns(self) -> str:
        return self.ns(outside.ROUTER)

    def outside_netns(self) -> str:
        """Where the outside echo (203.0.113.10) and the upstream DNS (203.0.113.53) run."""
        return self.ns(outside.OUTSIDE)

    def client_netns(self) -> str:
        return self.ns(outside.CLIENT)

    def internet_netns(self) -> str:
        return self.ns(outside.INTERNET)

    def run_in_outside(self, argv: Sequence[str]) -> list[str]:
        """argv prefixed to run in the external client's namespace (source 203.0.113.20)."""
        return ["ip", "netns", "exec", self.client_netns(), *argv]

    def namespaces(self) -> list[str]:
        """Every namespace of this lab that exists now."""
        pattern = A.lab_namespace_pattern(self.lab)
        return [n for n in netns_list() if pattern.match(n)]

    # ------------------------------------------------------------------ state
    @classmethod
    def load(cls, lab: str, state_dir: Path | None = None) -> Netplane:
        """The plane of a lab built by another process (raises when there is no state file)."""
        plane = cls(lab, state_dir=state_dir)
        path = plane.state_dir / STATE_FILE
        try:
            plane._state = PlaneState.from_json(json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise NetplaneError(f"lab {lab!r} has no data plane state ({path} is missing)") from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise NetplaneError(f"lab {lab!r}: unreadable data plane state {path}: {exc}") from exc
        return plane

    @contextlib.contextmanager
    def _mutate(self) -> Iterator[PlaneState]:
        """Lock (thread + file), re-read the persisted state if another process changed it, let the
        caller change it, save it; then, with both locks released, sync the rules if `_apply_rules`
        asked to and run what `_after_unlock` queued in this thread."""
        local = self._local
        local.depth = getattr(local, "depth", 0) + 1
        failed = False
        try:
            with self._lock:
                self.state_dir.mkdir(parents=True, exist_ok=True)
                with open(self.state_dir / LOCK_FILE, "a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    try:
                        path = self.state_dir / STATE_FILE
                        on_disk = _signature(path)
                        if on_disk is not None and on_disk != self._saved:
                            self._state = PlaneState.from_json(json.loads(path.read_text()))
                        yield self._state
                    finally:
                        self._save()
                        fcntl.flock(lock, fcntl.LOCK_UN)
        except BaseException:
            failed = True
            raise
        finally:
            local.depth -= 1
            if local.depth == 0:
                self._after_outermost(failed)

    def _after_outermost(self, failed: bool) -> None:
        """What this thread's outermost `_mutate` left for after the state lock: the rule sync (its error
        is the caller's, unless the caller already failed), then the queued commands."""
        local = self._local
        rules, local.rules = getattr(local, "rules", False), False
        if rules:
            try:
                self._sync_rules()
            except NetplaneError:
                if not failed:
                    raise
        queued: list[tuple[Sequence[str], str | None]] = getattr(local, "queued", [])
        if queued:
            local.queued = []
            # stale conntrack entries only: never worth hiding the caller's own error behind
            with contextlib.suppress(NetplaneError):
                run_parallel(queued, timeout=30)

    def _after_unlock(self, commands: list[tuple[Sequence[str], str | None]]) -> None:
        """Commands that need the state changed but not the lock held (the outermost `_mutate` of this
        thread runs them once it released the lock; outside any, now)."""
        if getattr(self._local, "depth", 0) == 0:
            run_parallel(commands, timeout=30)
            return
        self._local.queued = [*getattr(self._local, "queued", []), *commands]

    def _save(self) -> None:
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        # compact: only the C encoder runs without indent (a 100-node lab's state: 7 ms -> 2 ms, twice
        # per pod, under the lock)
        tmp.write_text(json.dumps(self._state.to_json(), separators=(",", ":")))
        os.replace(tmp, path)
        self._saved = _signature(path)

    def state(self) -> PlaneState:
        """A snapshot of the persisted state (re-read from disk under a shared lock; never written)."""
        with self._lock:
            path = self.state_dir / STATE_FILE
            if not path.exists():
                return self._snapshot()
            with open(self.state_dir / LOCK_FILE, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_SH)
                try:
                    self._state = PlaneState.from_json(json.loads(path.read_text()))
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            return self._snapshot()

    def _snapshot(self) -> PlaneState:
        """A copy nothing shares with the live state (`to_json` shares; JSON's C codec copies fast)."""
        return PlaneState.from_json(json.loads(json.dumps(self._state.to_json())))

    def _check_node(self, node: str) -> None:
        if node not in self._state.nodes:
            raise NetplaneError(f"unknown node {node!r}: this lab has {', '.join(self._state.nodes)}")

    # ------------------------------------------------------------------ build
    def build(self) -> None:
        """Create the whole data plane; on failure everything created so far is removed again."""
        existing = self.namespaces()
        if existing:
            raise NetplaneError(
                f"lab {self.lab!r} already has namespaces ({existing[0]}, ...): destroy it first"
            )
        started = time.monotonic()
        # a state file without namespaces is a leftover (e.g. after a reboot): start from scratch
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)
        try:
            # before any lab address exists, the host's root namespace cannot reach them (hostguard)
            self.guard_warnings = hostguard.hold(self.lab)
            # every namespace shares one neighbour table and one receive backlog per CPU: room for this
            # lab and the others up now
            others = _other_lab_nodes(self.lab)
            hostlimits.ensure_neighbour_capacity(len(self._state.nodes), others)
            hostlimits.ensure_backlog_capacity(len(self._state.nodes), others)
            with self._mutate() as st:
                st.built = False
                self._build_links(st)
                self._start_programs(st)
                st.built = True
        except BaseException:
            with contextlib.suppress(NetplaneError):
                destroy_lab(self.lab, self.state_dir)
            raise
        self.timings["build"] = time.monotonic() - started

    def _timed(self, name: str, started: float) -> float:
        now = time.monotonic()
        self.timings[name] = now - started
        return now

    def _build_links(self, st: PlaneState) -> None:
        lab, nodes = self.lab, st.nodes
        fabric, router = self.fabric_netns(), self.router_netns()
        t = time.monotonic()
        all_ns = [fabric, *(self.ns(n) for n in nodes), *(self.ns(r) for r in outside.ROLES)]
        run_parallel([ip_batch(None, [f"netns add {n}" for n in all_ns])])
        t = self._timed("netns", t)
        # phase 1: links that cross namespaces (each created inside a lab namespace, never in root)
        fabric_lines = [
            "link set lo up",
            f"link add {FABRIC_BRIDGE} type bridge",
            f"link set {FABRIC_BRIDGE} up",
            f"link add {fabric_port('router')} type veth peer name eth0 netns {router}",
            f"link set {fabric_port('router')} master {FABRIC_BRIDGE} up",
        ]
        for node in nodes:
            fabric_lines += [
                f"link add {fabric_port(node)} type veth peer name eth0 netns {self.ns(node)}",
                f"link set {fabric_port(node)} master {FABRIC_BRIDGE} up",
            ]
        run_parallel([ip_batch(fabric, fabric_lines), ip_batch(router, outside.create_lines(lab))])
        t = self._timed("links", t)
        # phase 2: addresses, routes, overlay devices, sysctls
        commands: list[tuple[Sequence[str], str | None]] = []
        for ns_name, lines in outside.configure_lines(lab).items():
            commands.append(ip_batch(ns_name, lines))
        for node in nodes:
            commands.append(ip_batch(self.ns(node), self._node_lines(node, nodes)))
            commands.append(sysctl_cmd(self.ns(node), _NODE_SYSCTLS))
        for ns_name, settings in outside.sysctls(lab).items():
            commands.append(sysctl_cmd(ns_name, settings))
        commands.append(sysctl_cmd(fabric, _FABRIC_SYSCTLS))
        run_parallel(commands)
        t = self._timed("addresses", t)
        # phase 3: overlay flooding entries and the rule sets
        commands = []
        for node in nodes:
            peers = [
                f"fdb append 00:00:00:00:00:00 dev {OVERLAY_DEV} dst {A.node_ip(p)}"
                for p in nodes
                if p != node
            ]
            if peers:
                commands.append(bridge_batch(self.ns(node), peers))
        commands += self._rule_commands(st, force=True)
        run_parallel(commands)
        t = self._timed("rules", t)
        for ns_name, text in {
            **{self.ns(n): outside.resolv_conf() for n in nodes},
            **outside.resolv_files(lab),
        }.items():
            write_in_place(NETNS_ETC / ns_name / "resolv.conf", text)

    def _node_lines(self, node: str, nodes: list[str]) -> list[str]:
        ip = A.node_ip(node)
        lines = [
            "link set lo up",
            f"addr add {ip}/{A.FABRIC_PREFIX} dev eth0",
            "link set eth0 up",
            f"route add default via {A.ROUTER_FABRIC_IP}",
            # a fixed MAC: a bridge without one takes its lowest port's MAC, which changes as pod veths
            # come and go, and pods that cached the gateway's old MAC are cut off (their frames are
            # dropped as not addressed to the node)
            f"link add {POD_BRIDGE} address {pod_bridge_mac(node)} type bridge",
            f"addr add {A.pod_gateway(node)}/32 dev {POD_BRIDGE}",
            f"link set {POD_BRIDGE} up",
            f"link add {OVERLAY_DEV} type vxlan id {A.OVERLAY_VNI} dstport {A.OVERLAY_PORT} "
            f"local {ip} dev eth0 ttl 64",
            f"link set {OVERLAY_DEV} mtu {A.OVERLAY_MTU} up",
            f"addr add {A.overlay_ip(node)}/32 dev {OVERLAY_DEV}",
        ]
        for peer in nodes:
            if peer != node:
                lines.append(
                    f"route add {A.pod_cidr(peer)} via {A.overlay_ip(peer)} dev {OVERLAY_DEV} onlink"
                )
        if node == nodes[0]:
            lines.append(f"addr add {A.CONTROL_PLANE_VIP}/32 dev eth0")
        return lines

    def _start_programs(self, st: PlaneState) -> None:
        t = time.monotonic()
        logs = self.state_dir / LOG_DIR
        started = []
        (self.state_dir / outside.UPSTREAM_CONTROL_FILE).unlink(missing_ok=True)
        for program in outside.programs(self.state_dir):
            log = logs / f"{program.name}.log"
            log.unlink(missing_ok=True)
            ns_name = self.ns(program.role)
            pid = spawn(ns_name, program.argv, log, env=outside.program_env())
            st.processes[program.name] = {"pid": pid, "netns": ns_name}
            started.append((program, log, pid))
        for program, log, pid in started:
            wait_for_log(log, program.ready_marker, pid, timeout=PROGRAM_START_TIMEOUT, what=program.name)
        self._timed("programs", t)

    # ------------------------------------------------------------------ rules
    def _wanted_rules(self, st: PlaneState) -> dict[str, OwnedRules]:
        """What the lab owns in each namespace's iptables, from the services and the fault state."""
        services = [ServiceNAT.from_json(s) for s in st.services]
        wanted: dict[str, OwnedRules] = {}
        for node in st.nodes:
            flags = [f for f in st.node_flags.get(node, []) if f in NODE_FLAGS]
            entries = netpol.node_entries(node, st.node_flags.get(node, []), st.policies, st.policies_frozen)
            wanted[self.ns(node)] = netpol.with_policies(render_node_tables(services, flags), entries)
        ports = {n: fabric_port(n) for n in st.nodes}
        wanted[self.fabric_netns()] = render_fabric_table(
            st.tunnel_blocked, st.partitioned, {n: A.node_ip(n) for n in st.nodes}, ports
        )
        return wanted

    def _rule_commands(
        self, st: PlaneState, *, force: bool = False
    ) -> list[tuple[Sequence[str], str | None]]:
        """`iptables-restore --noflush` commands for every namespace whose lab rules changed.

        Each reads the namespace's current rules first (one `iptables-save` per changed namespace, all
        at once), so lab chains that are no longer wanted go and missing jumps come back, while rules
        and tables that are not the lab's stay exactly as they are.
        """
        changed = {
            ns_name: owned
            for ns_name, owned in self._wanted_rules(st).items()
            if force or st.applied.get(ns_name) != owned.digest()
        }
        commands = self._restore_commands(changed)
        st.applied.update({ns_name: owned.digest() for ns_name, owned in changed.items()})
        return commands

    @staticmethod
    def _restore_commands(changed: dict[str, OwnedRules]) -> list[tuple[Sequence[str], str | None]]:
        """The restores for `changed`, each made from its namespace's current rules (one `iptables-save`
        per namespace, all at once)."""
        saved = run_parallel([(in_ns(ns_name, ["iptables-save"]), None) for ns_name in changed])
        return [
            iptables_restore_cmd(ns_name, restore_document(owned, current), noflush=True)
            for (ns_name, owned), current in zip(changed.items(), saved, strict=True)
        ]

    def _apply_rules(self, st: PlaneState) -> None:
        """Make the lab's rules match `st` (changed by the caller) before the caller's `_mutate` returns,
        but after it released the state lock: `_sync_rules` re-reads the state then."""
        if getattr(self._local, "depth", 0) == 0:
            self._sync_rules()
            return
        self._local.rules = True

    def _sync_rules(self) -> None:
        """Write every namespace whose lab rules differ from the state's, one writer at a time.

        Whoever holds the rules lock reads the newest state, so a sync that waited never writes an older
        wish over a newer one; pods keep being wired meanwhile (they need only the state lock).
        """
        with self._rules_lock, open(self.state_dir / RULES_LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with self._mutate() as st:
                    changed = {
                        ns_name: owned
                        for ns_name, owned in self._wanted_rules(st).items()
                        if st.applied.get(ns_name) != owned.digest()
                    }
                try:
                    run_parallel(self._restore_commands(changed))
                except NetplaneError:
                    with self._mutate() as st:
                        st.applied.clear()  # unknown what was applied: the next sync rewrites everything
                    raise
                with self._mutate() as st:
                    st.applied.update({ns_name: owned.digest() for ns_name, owned in changed.items()})
                    self._forget_udp_nat(st)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _forget_udp_nat(self, st: PlaneState) -> None:
        """Drop UDP conntrack entries DNATed to backends a node no longer uses (kube-proxy does too).

        Otherwise a UDP flow (same 5-tuple, e.g. a resolver's fixed port) keeps its old translation.
        """
        services = [ServiceNAT.from_json(s) for s in st.services]
        commands: list[tuple[Sequence[str], str | None]] = []
        for node in st.nodes:
            if FLAG_NO_SERVICE_NAT in st.node_flags.get(node, []):
                now: set[str] = set()
            else:
                now = {
                    b.ip
                    for s in services
                    if s.cluster_ip
                    for p in s.ports
                    if p.protocol == "UDP"
                    for b in p.backends
                }
            before = set(st.udp_backends.get(node, []))
            gone = sorted(before - now)
            if gone:
                commands.append((in_ns(self.ns(node), ["sh", "-c", forget_udp_flows_script(gone)]), None))
            st.udp_backends[node] = sorted(now)
        # conntrack exits 1 when nothing matched: that is fine here (the shell exits 0 whatever). The rules
        # no longer lead to those backends, so the entries can go after the lock is released: pod
        # removals, which need it, no longer wait for every node's conntrack table walks (issue 15)
        if commands:
            self._after_unlock(commands)

    def sync_services(self, services: Sequence[ServiceNAT]) -> None:
        """Make every node's service NAT match `services` exactly (one atomic restore per changed node)."""
        for svc in services:
            for ip in [svc.cluster_ip or A.KUBE_DNS_IP, *svc.lb_ips]:
                try:
                    ipaddress.IPv4Address(ip)
                except ValueError as exc:
                    raise NetplaneError(f"service {svc.key}: {ip!r} is not an IPv4 address") from exc
            if svc.cluster_ip and ipaddress.ip_address(svc.cluster_ip) not in ipaddress.ip_network(
                A.SERVICE_CIDR
            ):
                raise NetplaneError(
                    f"service {svc.key}: ClusterIP {svc.cluster_ip} is outside {A.SERVICE_CIDR}"
                )
        with self._mutate() as st:
            st.services = [s.to_json() for s in services]
            self._apply_rules(st)

    def sync_policies(self, per_node: dict[str, list[dict[str, Any]]]) -> None:
        """Make every node's NetworkPolicy chains match `per_node` (netpol.compile_policies)."""
        with self._mutate() as st:
            st.policies = {n: list(per_node.get(n, [])) for n in st.nodes}
            netpol.freeze(st.node_flags, st.policies, st.policies_frozen)
            self._apply_rules(st)

    def services(self) -> list[ServiceNAT]:
        return [ServiceNAT.from_json(s) for s in self.state().services]

    # ------------------------------------------------------------------ pods
    def add_pod(self, key: str, node: str, ip: str, resolv_conf: str) -> str:
        """Create the pod's namespace and wire it to `node`; returns the namespace name.

        Idempotent for the same (key, node, ip). `resolv_conf` becomes the pod's /etc/resolv.conf
        for every process started with `ip netns exec <netns>`.
        """
        self._check_node(node)
        try:
            address = ipaddress.ip_address(ip)
        except ValueError as exc:
            raise NetplaneError(f"pod {key}: {ip!r} is not an IPv4 address") from exc
        cidr = ipaddress.ip_network(A.pod_cidr(node))
        if address not in cidr or address in (
            cidr.network_address,
            cidr.network_address + 1,
            cidr.broadcast_address,
        ):
            raise NetplaneError(f"pod {key}: IP {ip} is not a usable address of {node}'s pod CIDR {cidr}")
        netns, veth = A.pod_netns(self.lab, key), A.pod_veth(key)
        # the state is checked and the pod reserved under the lock; the wiring (three `ip` processes) runs
        # outside it, so pods of a big kit are wired several at once (issue 15: ~2 pods/s serialised)
        with self._mutate() as st:
            if not st.built:
                raise NetplaneError(f"lab {self.lab!r}: the data plane is not built")
            known = st.pods.get(key)
            if known:
                if (known.node, known.ip) == (node, ip) and netns_exists(netns):
                    write_in_place(NETNS_ETC / netns / "resolv.conf", resolv_conf)
                    return netns
                raise NetplaneError(f"pod {key} already exists on {known.node} with IP {known.ip}")
            if key in self._removing:
                raise NetplaneError(f"pod {key} is still being removed")
            for other_key, other in (*st.pods.items(), *self._pending.items(), *self._removing.items()):
                if other_key == key:
                    raise NetplaneError(f"pod {key} is being added already")
                if other.ip == ip:
                    raise NetplaneError(f"pod {key}: IP {ip} is already used by pod {other_key}")
                if other.netns == netns:
                    raise NetplaneError(f"pod {key}: namespace name collides with pod {other_key}")
            record = PodRecord(node=node, ip=ip, netns=netns, veth=veth)
            routes = FLAG_NO_POD_ROUTES not in st.node_flags.get(node, [])
            self._pending[key] = record
        try:
            if netns_exists(netns):  # a leftover of a crashed earlier attempt
                run(["ip", "netns", "del", netns], check=False)
            write_in_place(NETNS_ETC / netns / "resolv.conf", resolv_conf)
            run(["ip", "netns", "add", netns])
            try:
                node_lines = [
                    # both ends get the overlay MTU, as a CNI sets it on the pod's eth0
                    f"link add {veth} mtu {A.OVERLAY_MTU} type veth"
                    f" peer name eth0 mtu {A.OVERLAY_MTU} netns {netns}",
                    f"link set {veth} master {POD_BRIDGE} up",
                    # hairpin, as the CNI bridge plugin's hairpinMode: a Service packet that DNAT sends
                    # back to the pod it came from is bridged out of the port it came in on
                    f"link set {veth} type bridge_slave hairpin on",
                ]
                if routes:
                    node_lines.append(self._pod_route("replace", record))
                run_parallel([ip_batch(self.ns(node), node_lines)])
                gateway = A.pod_gateway(node)
                run_parallel(
                    [
                        ip_batch(
                            netns,
                            [
                                "link set lo up",
                                f"addr add {ip}/32 dev eth0",
                                "link set eth0 up",
                                f"route add {gateway}/32 dev eth0 scope link",
                                f"route add default via {gateway} dev eth0",
                            ],
                        )
                    ]
                )
            except NetplaneError:
                self._remove_pod_links(record)
                raise
        except BaseException:
            with self._lock:
                self._pending.pop(key, None)
            raise
        with self._mutate() as st:
            self._pending.pop(key, None)
            if (FLAG_NO_POD_ROUTES not in st.node_flags.get(node, [])) != routes:
                # FM-10 was turned on or off while the pod was wired: its route follows the flag now
                verb = "replace" if not routes else "del"
                run_parallel([ip_batch(self.ns(node), [self._pod_route(verb, record)], force=True)])
            st.pods[key] = record
            return netns

    def _pod_route(self, verb: str, pod: PodRecord) -> str:
        return f"route {verb} {pod.ip}/32 dev {POD_BRIDGE} scope link src {A.pod_gateway(pod.node)}"

    def _remove_pod_links(self, pod: PodRecord) -> None:
        if netns_exists(pod.netns):
            kill_pids(_pids_in([pod.netns]).get(pod.netns, []))
        if netns_exists(self.ns(pod.node)):
            # -force: the route is already gone when FM-10 is active; that is not an error here. The IP goes
            # back to the pool: its node forgets the old veth's MAC in the same `ip` process, or the next pod
            # given this IP is unreachable until the stale entry times out (seconds). Only the node's pod
            # bridge ever resolves a pod IP: the other nodes and the router route its CIDR via the node.
            lines = [f"link del {pod.veth}", self._pod_route("del", pod), f"neigh flush to {pod.ip}/32"]
            argv, stdin = ip_batch(self.ns(pod.node), lines, force=True)
            run(argv, input=stdin, check=False)
        run(["ip", "netns", "del", pod.netns], check=False)
        shutil.rmtree(NETNS_ETC / pod.netns, ignore_errors=True)

    def remove_pod(self, key: str) -> PodRecord | None:
        """Tear down a pod's network (processes still inside are killed); the pod's record, None for an
        unknown key (ignored).

        The pod leaves the state under the lock and stays reserved (`_removing`: its key, IP and
        namespace name are not given to another pod) while its processes, veth, route and namespace go
        outside it: a 20-node kit's 40 pods were torn down one at a time behind the lock, each waiting
        for the others' kills and `ip` processes (issue 15: the namespace deletion took 27 s).
        """
        with self._mutate() as st:
            pod = st.pods.pop(key, None)
            if pod is None:
                return None
            self._removing[key] = pod
        try:
            self._remove_pod_links(pod)
        finally:
            with self._lock:
                self._removing.pop(key, None)
        return pod

    def pods(self) -> dict[str, PodRecord]:
        return dict(self.state().pods)

    def pod_netns(self, key: str) -> str | None:
        pod = self.state().pods.get(key)
        return pod.netns if pod else None

    # ------------------------------------------------------------------ load balancer VIPs
    def announce_vip(self, vip: str, node: str) -> None:
        """Put `vip`/32 on `node`'s fabric interface so that node alone answers ARP for it."""
        self._check_node(node)
        if ipaddress.ip_address(vip) not in ipaddress.ip_network(A.FABRIC_CIDR):
            raise NetplaneError(f"VIP {vip} is not on the fabric {A.FABRIC_CIDR}")
        with self._mutate() as st:
            if not st.lb:
                return  # --no-lb: nobody announces, the Service stays pending
            current = st.vips.get(vip)
            if current == node:
                return
            if current:
                self._unplace_vip(vip, current)
            st.vips[vip] = node
            self._place_vip(vip, node, silent=_silent(st, node))
            self._forget_neighbour(vip, st)

    def withdraw_vip(self, vip: str) -> None:
        with self._mutate() as st:
            node = st.vips.pop(vip, None)
            if node:
                self._unplace_vip(vip, node)
                self._forget_neighbour(vip, st)

    def _place_vip(self, vip: str, node: str, *, silent: bool) -> None:
        """On eth0 (ARP answered), or with FM-06 on `lo` with eth0 answering only for its own
        addresses (arp_ignore=1): the node still accepts the VIP's traffic but never claims it."""
        device = "lo" if silent else "eth0"
        run(["ip", "-n", self.ns(node), "addr", "replace", f"{vip}/32", "dev", device])
        if silent:
            run_parallel([sysctl_cmd(self.ns(node), {"net.ipv4.conf.eth0.arp_ignore": "1"})])

    def _unplace_vip(self, vip: str, node: str) -> None:
        lines = [f"addr del {vip}/32 dev eth0", f"addr del {vip}/32 dev lo"]
        argv, stdin = ip_batch(self.ns(node), lines, force=True)
        run(argv, input=stdin, check=False)

    def set_arp_silent(self, scope: str, on: bool) -> list[str]:
        """FM-06 on the VIPs of node `scope` ("*": every node), now and announced later; returns the
        VIPs placed silent (on) or answered again (off). The VIPs stay on their nodes meanwhile."""
        if scope != "*":
            self._check_node(scope)
        with self._mutate() as st:
            before = {v: _silent(st, n) for v, n in st.vips.items()}
            if on and scope not in st.silent_scope:
                st.silent_scope.append(scope)
            if not on and scope in st.silent_scope:
                st.silent_scope.remove(scope)
            changed = sorted(v for v, n in st.vips.items() if _silent(st, n) != before[v])
            for vip in changed:
                self._unplace_vip(vip, st.vips[vip])
                self._place_vip(vip, st.vips[vip], silent=not before[vip])
            silent_nodes = {n for n in st.vips.values() if _silent(st, n)}
            commands = [
                sysctl_cmd(self.ns(n), {"net.ipv4.conf.eth0.arp_ignore": "0"})
                for n in st.nodes
                if n not in silent_nodes
            ]
            run_parallel(commands)
            for vip in changed:
                self._forget_neighbour(vip, st)
            return changed

    def vips(self) -> dict[str, str]:
        return dict(self.state().vips)

    def _forget_neighbour(self, ip: str, st: PlaneState | None = None) -> None:
        """Flush `ip` from the router's and every node's ARP cache so the next packet asks again."""
        nodes = st.nodes if st else self._state.nodes
        targets = [self.router_netns(), *(self.ns(n) for n in nodes)]
        run_parallel([(["ip", "-n", t, "neigh", "flush", "to", f"{ip}/32"], None) for t in targets])

    def forget_neighbour(self, ip: str) -> None:
        self._forget_neighbour(ip)

    def set_static_neighbour(self, node: str, ip: str, mac: str | None) -> None:
        """A permanent neighbour entry on `node`'s eth0 (FM-28), or remove it again (mac None)."""
        self._check_node(node)
        if mac:
            run(
                [
                    "ip",
                    "-n",
                    self.ns(node),
                    "neigh",
                    "replace",
                    ip,
                    "lladdr",
                    mac,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                ]
            )
        else:
            run(["ip", "-n", self.ns(node), "neigh", "del", ip, "dev", "eth0"], check=False)

    # ------------------------------------------------------------------ fault primitives
    def set_node_flag(self, nodes: Sequence[str], flag: str, on: bool) -> None:
        """Turn a rendering flag (iptrules.NODE_FLAGS or FLAG_NO_POD_ROUTES) on/off and resync."""
        for node in nodes:
            self._check_node(node)
        with self._mutate() as st:
            for node in nodes:
                flags = set(st.node_flags.get(node, []))
                (flags.add if on else flags.discard)(flag)
                st.node_flags[node] = sorted(flags)
            if flag == FLAG_NO_POD_ROUTES:
                verb = "del" if on else "replace"
                commands = []
                for node in nodes:
                    lines = [self._pod_route(verb, p) for p in st.pods.values() if p.node == node]
                    if lines:
                        commands.append(ip_batch(self.ns(node), lines, force=on))
                run_parallel(commands)
            else:
                if flag in netpol.FLAGS:
                    netpol.freeze(st.node_flags, st.policies, st.policies_frozen)
                self._apply_rules(st)

    def node_flags(self, node: str) -> list[str]:
        return list(self.state().node_flags.get(node, []))

    def set_fabric_fault(self, kind: str, node: str, on: bool) -> None:
        """kind "tunnel" (node name or "*") or "partition" (node name) on the fabric switch."""
        if node != "*" or kind != "tunnel":
            self._check_node(node)
        with self._mutate() as st:
            target = {"tunnel": st.tunnel_blocked, "partition": st.partitioned}.get(kind)
            if target is None:
                raise NetplaneError(f"unknown fabric fault {kind!r}")
            if on and node not in target:
                target.append(node)
            if not on and node in target:
                target.remove(node)
            self._apply_rules(st)

    def set_overlay_mtu(self, node: str, mtu: int) -> None:
        self._check_node(node)
        run(["ip", "-n", self.ns(node), "link", "set", OVERLAY_DEV, "mtu", str(mtu)])
        run(["ip", "-n", self.ns(node), "route", "flush", "cache"], check=False)

    def set_node_nameserver(self, node: str, nameserver: str) -> None:
        """Rewrite the node's resolv.conf in place (processes already inside see the change)."""
        self._check_node(node)
        write_in_place(NETNS_ETC / self.ns(node) / "resolv.conf", f"nameserver {nameserver}\n")

    def node_resolv_conf(self, node: str) -> str:
        self._check_node(node)
        return (NETNS_ETC / self.ns(node) / "resolv.conf").read_text()

    def upstream_control_file(self) -> Path:
        return self.state_dir / outside.UPSTREAM_CONTROL_FILE

    def fault_records(self) -> dict[str, dict[str, Any]]:
        return dict(self.state().faults)

    def fault_names(self) -> list[str]:
        """The active faults' names, read without the state lock: `_save` replaces the file atomically,
        so the read is a whole state; the kubelet asks this on its event loop for every pod, where
        waiting for the lock (held while pods are wired or removed) stalled the whole lab (issue 15)."""
        path = self.state_dir / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return sorted(self._state.faults)
        return sorted((data.get("faults") or {}).keys())

    def set_fault_record(self, name: str, record: dict[str, Any] | None) -> None:
        with self._mutate() as st:
            if record is None:
                st.faults.pop(name, None)
            else:
                st.faults[name] = record

    def start_program(self, name: str, ns_name: str, argv: Sequence[str], ready_marker: str) -> int:
        """Start a helper program in a lab namespace (faults use it), wait until it is ready."""
        log = self.state_dir / LOG_DIR / f"{name}.log"
        log.unlink(missing_ok=True)
        pid = spawn(ns_name, argv, log, env=outside.program_env())
        with self._mutate() as st:
            st.processes[name] = {"pid": pid, "netns": ns_name}
        wait_for_log(log, ready_marker, pid, timeout=PROGRAM_START_TIMEOUT, what=name)
        return pid

    def stop_program(self, name: str) -> None:
        with self._mutate() as st:
            info = st.processes.pop(name, None)
        if info and pid_in_ns(int(info["pid"]), info["netns"]):
            kill_pids([int(info["pid"])])

    # ------------------------------------------------------------------ teardown
    def destroy(self) -> None:
        """Remove every namespace, process, veth and rule of this lab. Safe to call twice."""
        with self._lock:
            destroy_lab(self.lab, self.state_dir)
            self._state = PlaneState(lab=self.lab, nodes=self._state.nodes, lb=self._state.lb)


def _signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of a file, None when it is missing: a writer's `os.replace` changes it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def forget_udp_flows_script(backends: Sequence[str]) -> str:
    """A shell script deleting a node's UDP conntrack entries translated to any of `backends`.

    The table is listed once and `conntrack -D` runs only for the backends it names (a reply tuple's
    `src=IP `): a kit's deletion removes every echo backend from every node's Services, and one
    `conntrack -D` (a whole table walk) per backend per node was nodes x pods processes, 95 of them
    running at once on 2 cores at 100 nodes (issue 15). Exits 0 whatever conntrack says.

    >>> script = forget_udp_flows_script(["10.244.1.5", "10.244.2.9"])
    >>> script.count("conntrack -L"), script.count("conntrack -D"), "in 10.244.1.5 10.244.2.9;" in script
    (1, 1, True)
    """
    ips = " ".join(shlex.quote(ip) for ip in backends)
    return (
        "t=$(conntrack -L -p udp 2>/dev/null) || exit 0; "
        f'for ip in {ips}; do case "$t" in *"src=$ip "*) '
        'conntrack -D -p udp --dst-nat "$ip" >/dev/null 2>&1;; esac; done; exit 0'
    )


def _pids_in(namespaces: Sequence[str]) -> dict[str, list[int]]:
    """Processes living in each of `namespaces` (what `ip netns pids` does, in one pass over /proc)."""
    inodes: dict[int, str] = {}
    for ns_name in namespaces:
        with contextlib.suppress(OSError):
            inodes[os.stat(NETNS_DIR / ns_name).st_ino] = ns_name
    found: dict[str, list[int]] = {}
    if not inodes:
        return found
    me = str(os.getpid())
    # plain strings and scandir: a 100-node lab has ~1,000 processes and a kit's deletion scans once per pod
    with os.scandir("/proc") as entries:
        for entry in entries:
            name = entry.name
            if not name.isdigit() or name == me:
                continue
            try:
                inode = os.stat(f"/proc/{name}/ns/net").st_ino
            except OSError:
                continue
            if inode in inodes:
                found.setdefault(inodes[inode], []).append(int(name))
    return found


def destroy_lab(lab: str, state_dir: Path | None = None) -> list[str]:
    """Remove everything of `lab` found by name: processes, namespaces (with their veths, bridges and
    rules), /etc/netns files and the data plane's own state files. Returns the removed namespaces."""
    pattern = A.lab_namespace_pattern(lab)
    namespaces = [n for n in netns_list() if pattern.match(n)]
    pids = [pid for group in _pids_in(namespaces).values() for pid in group]
    kill_pids(pids)
    if namespaces:
        run(
            ["ip", "-force", "-batch", "-"],
            input="".join(f"netns del {n}\n" for n in namespaces),
            check=False,
        )
    if NETNS_ETC.is_dir():
        for entry in NETNS_ETC.iterdir():
            if pattern.match(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
    directory = Path(state_dir) if state_dir else STATE_ROOT / lab
    for name in (STATE_FILE, LOCK_FILE, RULES_LOCK_FILE, outside.UPSTREAM_CONTROL_FILE):
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / LOG_DIR, ignore_errors=True)
    left = [n for n in namespaces if netns_exists(n)]
    if left:
        raise NetplaneError(f"lab {lab!r}: could not remove namespace {left[0]}")
    hostguard.let_go(lab)
    return namespaces


def destroy_all() -> list[str]:
    """Destroy every lab found on this host (by namespace names and state directories)."""
    pattern = A.lab_namespace_pattern()
    labs = {m.group(1) for n in netns_list() if (m := pattern.match(n))}
    if NETNS_ETC.is_dir():
        labs |= {m.group(1) for e in NETNS_ETC.iterdir() if (m := pattern.match(e.name))}
    if STATE_ROOT.is_dir():
        labs |= {d.name for d in STATE_ROOT.iterdir() if (d / STATE_FILE).exists()}
    removed: list[str] = []
    for lab in sorted(labs):
        with contextlib.suppress(A.AddressError):
            removed += destroy_lab(lab)
    return removed
