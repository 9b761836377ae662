"""Plans every selected cell's probes up front and runs them as one batch per subject per phase.

Phase 1 carries every probe known before anything ran (the selected cells plus the evidence cells the
diagnosis needs); phase 2 carries what depends on phase 1 (e.g. each nameserver a node lists) and
probes that must come after it (an ARP request that would refresh the cache phase 1 read). Subjects
run concurrently, each in one exec with one deadline, so a run costs about one probe timeout x
attempts per phase, however many cells fail. The verdicts are stored by cell id for the tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.stream import stream

from netconform.agent.probe_agent import MAX_CONCURRENT
from netconform.checks import components as components
from netconform.checks.api import REGISTRY, Check
from netconform.checks.context import NO_OUTSIDE_CLIENT, Context, Skip
from netconform.checks.judging import evidence
from netconform.checks.probes import Probe, ProbeResult
from netconform.engine.diagnose import Addresses, diagnose, evidence_cells
from netconform.kube.connect import Cluster, api_error_line, call
from netconform.kube.exec import ExecError, exec_batch, run_local
from netconform.kube.workloads import run_batch
from netconform.model.cell import Cell
from netconform.model.refs import Ref
from netconform.model.sampling import FOLLOWUP_ROUNDS, followup_pairs, peer_pairs
from netconform.model.verdict import Verdict

Runner = Callable[[str, dict[str, Any], float], dict[str, Any]]
EXEC_OVERHEAD_S = 15.0
# subjects whose exec runs at once (each is a process in a pod plus a websocket here): above it, e.g.
# the 200 subjects of 100 nodes, the batches queue, so the nodes' CPUs and the API are not swamped
MAX_PARALLEL_EXECS = 64


@dataclass
class EngineReport:
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, stats: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
        return json.dumps(
            {
                "cells": {k: v.as_dict() for k, v in sorted(self.verdicts.items())},
                "phases": self.phases,
                "stats": stats,
                **(extra or {}),
            },
            # compact: the run folder's own file, read back by pytest's workers; `indent=` would take
            # Python's encoder instead of C's (issue 15: 1.4 s for a 20-node run)
            separators=(",", ":"),
        )


class KubeComponentApi:
    """`components.ComponentApi` over the cluster (logs, exec of a command, ConfigMaps)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def pod_log(self, namespace: str, name: str, tail_lines: int) -> str:
        return str(
            self.cluster.core.read_namespaced_pod_log(
                name, namespace, tail_lines=tail_lines, _request_timeout=self.cluster.request_timeout
            )
        )

    def exec_command(self, namespace: str, name: str, command: list[str], deadline_s: float) -> str:
        self.cluster.counters.add("exec_sessions")
        api = client.CoreV1Api(self.cluster.exec_client())
        with self.cluster.exec_lock:
            resp = stream(
                api.connect_get_namespaced_pod_exec,
                name,
                namespace,
                command=command,
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
                _request_timeout=self.cluster.request_timeout,
            )
        out: list[str] = []
        end = time.monotonic() + deadline_s
        try:
            while resp.is_open() and time.monotonic() < end:
                resp.update(timeout=min(1.0, max(0.0, end - time.monotonic())))
                if resp.peek_stdout():
                    out.append(resp.read_stdout())
        finally:
            resp.close()
        return "".join(out)

    def config_maps(self, namespace: str) -> list[dict[str, Any]]:
        items = call(self.cluster, "list_namespaced_config_map", namespace).get("items") or []
        return [{"name": cm["metadata"]["name"], "data": cm.get("data") or {}} for cm in items]


def kube_runner(cluster: Cluster, ctx: Context) -> Runner:
    """Run a subject's batch: exec into its probe pod, or locally for the external subject."""

    def run(subject: str, plan: dict[str, Any], deadline_s: float) -> dict[str, Any]:
        if subject == "external":
            # never this machine unless asked: it may sit in another network than the cluster
            outside = ctx.opts.outside_client
            if outside is None:
                raise ExecError(f"external subject: {NO_OUTSIDE_CLIENT}")
            return run_local(None if outside == "local" else outside, plan, deadline_s)
        ref = Ref.parse(subject)
        if ref.head == "workload":  # a user's workload pod, through its ephemeral container
            workload = ctx.topo.workload(ref.name or "")
            if workload is None:
                raise ExecError(f"{subject}: not a workload subject of this run")
            return run_batch(cluster, workload, ref.node or "", plan, deadline_s)
        pod = ctx.kit.pods[f"{'probe' if ref.head == 'pod' else ref.head}@{ref.node}"]["name"]
        return exec_batch(cluster, ctx.kit.namespace, pod, plan, deadline_s)

    return run


def _utc_now() -> str:
    """A timestamp for an unmeasured check, e.g. 2026-12-01T10:33:04Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Engine:
    """Plan, execute (one batch per subject per phase), judge and diagnose the selected cells."""

    def __init__(
        self,
        ctx: Context,
        runner: Runner,
        *,
        component_api: components.ComponentApi | None = None,
        counters: Any = None,
    ) -> None:
        self.ctx = ctx
        self.runner = runner
        self.component_api = component_api
        self.counters = counters
        self.results: dict[Probe, ProbeResult] = {}
        self.cell_probes: dict[Cell, list[Probe]] = {}
        self.skips: dict[Cell, str] = {}
        self._checks: dict[Cell, Check | None] = {}
        self.followups: list[Cell] = []  # cells added because sampled pairs failed (--peers K)
        self.report = EngineReport()

    # -- planning ---------------------------------------------------------------------------------
    def plan(self, selected: Iterable[Cell]) -> list[Cell]:
        """Probes for the selected cells and the evidence cells their diagnosis may need."""
        wanted: list[Cell] = []
        seen: set[Cell] = set()
        sampled = peer_pairs(self.ctx.topo) if self.ctx.topo.peers is not None else None
        for cell in sorted(set(selected)):
            evidence = evidence_cells(cell, self.ctx.topo)
            if sampled is not None:  # with --peers K, the evidence stays on the sampled pairs too
                evidence = [c for c in evidence if not _off_sample(c, sampled)]
            for c in [cell, *evidence]:
                if c not in seen:
                    seen.add(c)
                    wanted.append(c)
        self._plan_cells(wanted)
        return wanted

    def _plan_cells(self, cells: Iterable[Cell]) -> None:
        """Each cell's probes from its check (skipped with the reason when the cluster lacks something)."""
        for cell in cells:
            check = self.check_of(cell)
            if check is None or check.probe.plan is None:
                continue
            try:
                self.cell_probes[cell] = check.probe.plan(cell, self.ctx)
            except Skip as exc:
                self.skips[cell] = str(exc)

    # -- execution --------------------------------------------------------------------------------
    def _batch(self, probes: Iterable[Probe]) -> dict[str, list[Probe]]:
        by_subject: dict[str, list[Probe]] = defaultdict(list)
        for probe in sorted(set(probes)):
            if probe not in self.results:
                by_subject[probe.subject].append(probe)
        return by_subject

    def run_phase(self, number: int, probes: Iterable[Probe]) -> None:
        batches = self._batch(probes)
        started = time.monotonic()
        opts = self.ctx.opts
        # a check may bring its own timeout/attempts (e.g. FM-19's snapshot window): the exec waits for it
        longest = max(
            [opts.attempts * opts.probe_timeout]
            + [
                float(p.fields.get("timeout", opts.probe_timeout))
                * int(p.fields.get("attempts", opts.attempts))
                for batch in batches.values()
                for p in batch
            ]
        )
        # the agent runs MAX_CONCURRENT checks at a time: a bigger batch takes that many waves
        waves = max([-(-len(b) // MAX_CONCURRENT) for b in batches.values()] or [1])
        deadline = waves * longest + opts.probe_timeout + EXEC_OVERHEAD_S
        threads = []
        if self.counters is not None:
            self.counters.add("phases")
            self.counters.add("probe_checks", sum(len(v) for v in batches.values()))

        def work(subject: str, batch: list[Probe]) -> None:
            plan = {
                "checks": [{"id": p.id, "timeout": opts.probe_timeout, **p.fields} for p in batch],
                "attempts": opts.attempts,
                "attempt_gap": 0.0,
            }
            try:
                doc = self.runner(subject, plan, deadline)
                by_id: dict[str, ProbeResult] = {str(r.get("id")): r for r in doc.get("results", [])}
                for p in batch:
                    self.results[p] = by_id.get(p.id) or {
                        "ok": False,
                        "error": "other",
                        "exec_error": True,
                        "attempts": [],
                        "message": doc.get("message") or f"the agent returned no result for {p.id}",
                    }
            except (ExecError, Exception) as exc:  # one subject failing must not stop the others
                message = (
                    str(exc) if isinstance(exc, ExecError) else api_error_line(exc, f"batch for {subject}")
                )
                failed_at = _utc_now()  # when the measurement failed: the verdict reports it first
                for p in batch:
                    self.results[p] = {
                        "ok": False,
                        "error": "other",
                        "exec_error": True,
                        "attempts": [],
                        "message": message,
                        "at": failed_at,
                    }

        slots = threading.BoundedSemaphore(MAX_PARALLEL_EXECS)  # exec sessions open at once

        def gated(subject: str, batch: list[Probe]) -> None:
            with slots:
                work(subject, batch)

        for subject, batch in sorted(batches.items()):
            t = threading.Thread(target=gated, args=(subject, batch), name=f"batch-{subject}", daemon=True)
            t.start()
            threads.append(t)
        rounds = -(-len(batches) // MAX_PARALLEL_EXECS)
        end = time.monotonic() + rounds * deadline + 5.0
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        for subject, batch in batches.items():  # a thread stuck past every deadline: mark, don't wait
            for p in batch:
                self.results.setdefault(
                    p,
                    {
                        "ok": False,
                        "error": "timeout",
                        "exec_error": True,
                        "attempts": [],
                        "message": f"batch for {subject} did not finish in {deadline:.0f} s",
                        "at": _utc_now(),
                    },
                )
        if self.counters is not None:
            self.counters.add("subjects", 0)
        self.report.phases.append(
            {
                "phase": number,
                "subjects": len(batches),
                "checks": sum(len(b) for b in batches.values()),
                "duration_s": round(time.monotonic() - started, 3),
            }
        )

    # -- judging ----------------------------------------------------------------------------------
    def outcome(self, cell: Cell) -> str | None:
        verdict = self.report.verdicts.get(cell.id)
        return verdict.outcome if verdict else None

    def addresses(self) -> Addresses:
        kit, topo, opts = self.ctx.kit, self.ctx.topo, self.ctx.opts
        url = urlsplit(opts.external_url or "")
        return Addresses(
            node_ip={n.name: n.internal_ip or "?" for n in topo.nodes},
            echo_ip={
                v["node"]: v["ip"] for k, v in kit.pods.items() if k.startswith("echo@") and v.get("ip")
            },
            probe_ip={
                v["node"]: v["ip"] for k, v in kit.pods.items() if k.startswith("probe@") and v.get("ip")
            },
            clusterip=kit.clusterip,
            lb_ip=kit.lb_ip,
            nodeports=kit.nodeports,
            service_ports=kit.service_ports,
            echo_ports=kit.echo_ports,
            dns_ip=topo.dns_service_ip,
            coredns={n: [p.ip for p in topo.coredns if p.node == n and p.ip] for n in topo.coredns_nodes()},
            external_host=url.hostname or opts.external_ip,
            external_port=url.port or (80 if url.hostname else None),
            ingress={
                c: e["address"]
                for c, e in [*kit.ingresses.items(), *kit.gateways.items()]
                if e.get("address")
            },
        )

    def check_of(self, cell: Cell) -> Check | None:
        """The check a cell belongs to (the registry holds the catalogue and the users' checks)."""
        if cell not in self._checks:
            self._checks[cell] = REGISTRY.check_for(cell)
        return self._checks[cell]

    def _judge(self, cell: Cell, check: Check) -> Verdict:
        probes = self.cell_probes.get(cell, [])
        verdict = check.expect.judge(cell, self.ctx, probes, self.results)
        if probes:
            verdict.checks = evidence(probes, self.results)
        return verdict

    def _arp(self, node: str, ip: str) -> list[str]:
        """MACs answering ARP for `ip` from node `node`'s host probe (one small exec, bounded)."""
        opts = self.ctx.opts
        check = {"id": "arp-1", "kind": "arp", "ip": ip, "timeout": opts.probe_timeout, "window": 1.0}
        plan = {"checks": [check], "attempts": 1, "attempt_gap": 0.0}
        result = self.runner(f"host@{node}", plan, opts.probe_timeout + 1.0 + EXEC_OVERHEAD_S)
        found = (result.get("results") or [{}])[0]
        return [str(m) for m in found.get("macs") or []]

    def pair_followups(self) -> list[Cell]:
        """With --peers K: the node x node cells that tell "node X isolated" from "pair X-Y" once
        sampled pairs failed (netconform/model/sampling.py), per kind of direct cell (pod->pod TCP,
        host->node ICMP ...), planned; empty when nothing failed."""
        if self.ctx.topo.peers is None:
            return []
        probed: dict[tuple[str, str, str, str], set[tuple[str, str]]] = defaultdict(set)
        failing: dict[tuple[str, str, str, str], set[tuple[str, str]]] = defaultdict(set)
        for cell, probes in self.cell_probes.items():
            # direct paths only: a NodePort pair fails with its backends, not with the pair
            if not cell.cross_node or not cell.target.startswith(("pod@", "node@")) or not cell.subject_node:
                continue
            kind = (cell.subject.split("@")[0], cell.target.split("@")[0], cell.layer, cell.protocol)
            pair = (cell.subject_node, str(cell.target_node))
            probed[kind].add(pair)
            if any(p in self.results and not self.results[p].get("ok") for p in probes):
                failing[kind].add(pair)
        cells = [
            Cell(f"{s}@{a}", f"{t}@{b}", layer, proto)
            for (s, t, layer, proto), bad in sorted(failing.items())
            for a, b in sorted(followup_pairs(self.ctx.topo.node_names, probed[(s, t, layer, proto)], bad))
        ]
        self._plan_cells(cells)
        self.followups += cells
        return cells

    def run(self, selected: Iterable[Cell]) -> EngineReport:
        wanted = self.plan(selected)
        phase1 = [p for probes in self.cell_probes.values() for p in probes if p.phase == 1]
        self.run_phase(1, phase1)
        later: list[Probe] = [p for probes in self.cell_probes.values() for p in probes if p.phase == 2]
        for cell in list(self.cell_probes):
            check = self.check_of(cell)
            if check is not None and check.probe.followups is not None:
                extra = check.probe.followups(cell, self.ctx, self.results)
                self.cell_probes[cell] = self.cell_probes[cell] + extra
                later += extra
        followups = self.pair_followups()  # the first round rides along with phase 2
        for round_ in range(FOLLOWUP_ROUNDS):
            wanted += followups
            later += [p for c in followups for p in self.cell_probes.get(c, [])]
            if later:
                self.run_phase(len(self.report.phases) + 1, later)
            followups, later = (self.pair_followups() if round_ + 1 < FOLLOWUP_ROUNDS else []), []
            if not followups:
                break
        verdicts = self.report.verdicts
        self.ctx.outcome_of = self.outcome
        self.ctx.api = self.component_api
        self.ctx.arp = self._arp
        api_judged = [c for c in wanted if (k := self.check_of(c)) is not None and k.probe.plan is None]
        for cell in wanted:
            check = self.check_of(cell)
            if check is None:
                verdicts[cell.id] = Verdict("skipped", f"no check defines {cell.id}")
            elif cell in self.skips:
                verdicts[cell.id] = Verdict("skipped", self.skips[cell])
            elif cell in self.cell_probes:
                verdicts[cell.id] = self._judge(cell, check)
        for cell in api_judged:  # after the packet cells: pod-mesh reads their outcomes
            check = self.check_of(cell)
            assert check is not None
            try:
                verdicts[cell.id] = self._judge(cell, check)
            except Skip as exc:
                verdicts[cell.id] = Verdict("skipped", str(exc))
            except Exception as exc:
                verdicts[cell.id] = Verdict("error", api_error_line(exc, cell.id), error="other")
        addrs = self.addresses()
        for cell in wanted:
            verdict = verdicts.get(cell.id)
            if verdict and verdict.outcome in ("failed", "flaky") and verdict.diagnosis is None:
                found = diagnose(
                    cell, self.ctx.topo, addrs, self.outcome, verdict.error, fm=verdict.classified_fm
                )
                if found:
                    verdict.diagnosis = found.as_dict()
        return self.report


def _off_sample(cell: Cell, sampled: frozenset[tuple[str, str]]) -> bool:
    """A node x node cell on a pair --peers did not choose."""
    a, b = cell.subject_node, cell.target_node
    return a is not None and b is not None and a != b and (a, b) not in sampled


def save(
    report: EngineReport, path: Path, stats: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(report.to_json(stats, extra), encoding="utf-8")
    tmp.replace(path)
