"""Dataplane components, judged from the API: CNI readiness per node, cilium health, the API's rate limit,
eBPF map fill and the drop monitor (FM-14/18/25/26/27)."""

from __future__ import annotations

from collections.abc import Callable

from netconform.checks import components as K
from netconform.checks.api import CLUSTER, Check, Expectation, Fixed, Judge, PerNode, ProbeSpec
from netconform.checks.context import Context, Skip
from netconform.checks.judging import Results
from netconform.checks.probes import Probe
from netconform.model.cell import Cell
from netconform.model.verdict import Verdict

EXEC_OVERHEAD_S = 15.0  # as the engine's: an exec's start-up and teardown


def component_deadline(ctx: Context) -> float:
    return ctx.opts.probe_timeout * ctx.opts.attempts + EXEC_OVERHEAD_S


def api_judge(read: Callable[[Cell, Context], Verdict]) -> Judge:
    """A judge that reads the API (pods, logs, exec into component pods); skipped without API access."""

    def judge(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
        if ctx.api is None:
            raise Skip("component checks need API access")
        return read(cell, ctx)

    return judge


def _cni_ready(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Verdict:
    return K.judge_cni_ready(cell, ctx.topo)


CNI_READY = Check(
    "cni-ready",
    fm=("FM-27",),
    layer="L3",
    subjects=(CLUSTER,),
    targets=PerNode("node"),
    probe=ProbeSpec("cni-ready"),
    expect=Expectation(
        "node_ready_with_cni", _cni_ready, "Ready without NetworkPluginNotReady; CNI agent runs"
    ),
    about="Each node is Ready without NetworkPluginNotReady and its CNI agent runs.",
)
CILIUM_HEALTH = Check(
    "cilium-health",
    fm=("FM-14",),
    layer="L3",
    subjects=(CLUSTER,),
    targets=Fixed("component:cilium-health"),
    probe=ProbeSpec("health"),
    expect=Expectation(
        "every_node_reachable",
        api_judge(lambda c, x: K.judge_cilium_health(x.topo, x.api, component_deadline(x))),
    ),
    about="cilium status --all-health: every node reachable from every agent.",
)
CILIUM_RATE_LIMIT = Check(
    "cilium-rate-limit",
    fm=("FM-25",),
    layer="L7",
    subjects=(CLUSTER,),
    targets=Fixed("component:cilium-api"),
    probe=ProbeSpec("rate-limit"),
    expect=Expectation(
        "rate_limit_is_information", api_judge(lambda c, x: K.judge_cilium_rate_limit(x.topo, x.api))
    ),
    about="429 putEndpointIdTooManyRequests counted, never a failure.",
)
EBPF_MAPS = Check(
    "ebpf-maps",
    fm=("FM-26",),
    layer="L3",
    subjects=(CLUSTER,),
    targets=Fixed("component:ebpf-maps"),
    probe=ProbeSpec("map-fill"),
    expect=Expectation(
        "maps_below_limit",
        api_judge(
            lambda c, x: K.judge_ebpf_maps(x.topo, x.api, x.opts.allow_privileged, component_deadline(x))
        ),
    ),
    about="LB service/backend eBPF maps below the 64k limit (privileged).",
)
DROP_MONITOR = Check(
    "drop-monitor",
    fm=("FM-18",),
    layer="L3",
    subjects=(CLUSTER,),
    targets=Fixed("component:drop-monitor"),
    probe=ProbeSpec("drops"),
    expect=Expectation(
        "drops_sampled", api_judge(lambda c, x: K.judge_drop_monitor(x.topo, x.api, component_deadline(x)))
    ),
    about="A bounded drop-monitor sample per agent, as evidence.",
)

CHECKS = (CNI_READY, CILIUM_HEALTH, CILIUM_RATE_LIMIT, EBPF_MAPS, DROP_MONITOR)
