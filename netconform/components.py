"""Cells about cluster components, judged from the API rather than from packets.

CNI readiness per node (FM-27), the Cilium/anetd checks (FM-14, FM-18, FM-25, FM-26) and F5 BIG-IP
(FM-07/29). Components that are not installed give a skip that names what is missing.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from netconform.kube.topology import PodInfo, Topology
from netconform.recipes import Skip, Verdict
from netconform.scope import Cell

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


HEALTH = re.compile(r"Cluster health:\s+(\d+)/(\d+) reachable")


def judge_cilium_health(topo: Topology, api: ComponentApi, deadline_s: float) -> Verdict:
    """FM-14: `cilium status --all-health` in every agent pod reports all nodes reachable."""
    problems, seen = [], []
    for pod in _cilium(topo):
        try:
            out = api.exec_command(pod.namespace, pod.name, ["cilium", "status", "--all-health"], deadline_s)
        except Exception as exc:
            return Verdict("error", f"cilium status in {pod.name}: {exc}", error="other")
        match = HEALTH.search(out)
        if not match:
            problems.append(f"{pod.name}: no 'Cluster health' line")
            continue
        ok, total = int(match.group(1)), int(match.group(2))
        seen.append(f"{pod.node} {ok}/{total}")
        if ok < total:
            problems.append(f"{pod.name} on {pod.node} reaches {ok}/{total} nodes")
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


MAP_LIMIT = 64000


def judge_ebpf_maps(topo: Topology, api: ComponentApi, privileged: bool, deadline_s: float) -> Verdict:
    """FM-26: LB service/backend map fill against the 64k limit (privileged: opt-in)."""
    pods = _cilium(topo)
    if not privileged:
        raise Skip("reading eBPF map fill levels needs --allow-privileged (FM-26)")
    worst = []
    for pod in pods:
        try:
            out = api.exec_command(pod.namespace, pod.name, ["cilium", "bpf", "lb", "list"], deadline_s)
        except Exception as exc:
            return Verdict("error", f"cilium bpf lb list in {pod.name}: {exc}", error="other")
        entries = max(0, len([ln for ln in out.splitlines() if ln.strip()]) - 1)
        worst.append((entries, pod.name))
    entries, name = max(worst)
    if entries >= 0.9 * MAP_LIMIT:
        return Verdict(
            "failed",
            f"{name}: {entries} LB map entries, near the {MAP_LIMIT} limit",
            error="other",
            classified_layer="L4",
            meaning="a full eBPF map makes control and data plane diverge (FM-26)",
            classified_fm="FM-26",
        )
    return Verdict("passed", f"largest LB map: {entries} entries of {MAP_LIMIT} ({name})")


def judge_drop_monitor(topo: Topology, api: ComponentApi, deadline_s: float) -> Verdict:
    """FM-18: a bounded `cilium monitor --type drop` sample per agent, as evidence (count of drops)."""
    counts = {}
    for pod in _cilium(topo):
        cmd = ["timeout", "2", "cilium", "monitor", "--type", "drop"]
        try:
            out = api.exec_command(pod.namespace, pod.name, cmd, deadline_s)
        except Exception as exc:
            return Verdict("error", f"cilium monitor in {pod.name}: {exc}", error="other")
        counts[pod.node or pod.name] = sum(1 for ln in out.splitlines() if "drop" in ln.lower())
    text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    return Verdict("passed", f"drops seen in a 2 s sample per node: {text}", notes=[text])


F5_PODS = ("k8s-bigip-ctlr", "load-balancer-f5")


def judge_f5(topo: Topology, api: ComponentApi, lb_ip: str | None, ports: list[int]) -> Verdict:
    """FM-07/29: the F5 controller pods run and a ConfigMap holds the VIP:port of every LB port."""
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
    maps = api.config_maps("kube-system")
    missing_ports = [
        p
        for p in ports
        if not any(lb_ip in str(cm.get("data")) and str(p) in str(cm.get("data")) for cm in maps)
    ]
    if missing_ports:
        return Verdict(
            "failed",
            f"no F5 ConfigMap holds {lb_ip} for port(s) {missing_ports}",
            error="other",
            classified_layer="L4",
            meaning="F5 has no virtual server for the Service port (FM-07)",
            classified_fm="FM-07",
        )
    return Verdict("passed", f"F5 controllers run; ConfigMaps hold {lb_ip} for ports {ports}")
