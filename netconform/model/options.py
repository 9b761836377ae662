"""The run options every part of the suite reads (pytest option group, `netconform run`, engine)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_IMAGE = "docker.io/library/python:3.12-slim"


@dataclass
class SuiteOptions:
    kubeconfig: str | None = None
    context: str | None = None
    probe_image: str = DEFAULT_IMAGE
    external_name: str | None = None
    external_url: str | None = None
    external_ip: str | None = None
    internet_url: str | None = None
    external_runner: str | None = None
    external_client: str | None = None  # "local": this machine is the outside client (opt-in)
    control_plane_vip: str | None = None
    probe_timeout: float = 2.0
    attempts: int = 2
    allow_privileged: bool = False
    keep: bool = False
    out: str = "reports"
    ready_timeout: float = 120.0
    lb_timeout: float = 30.0
    delete_timeout: float = 60.0
    stale_ttl: float = 3600.0
    lab: str | None = None
    gateway: list[str] | None = None  # --gateway NS/NAME[,NS/NAME] as given (repeatable)
    checks: list[str] | None = None  # --checks FILE.yaml: users' own checks (repeatable)
    ingress_tls: bool = False
    peers: str | None = None  # --peers K|all; None: full mesh up to 20 nodes, K=8 above
    subject: list[str] | None = None  # --subject deployment/NS/NAME ... (repeatable): workload subjects
    workload_pods: int | None = None  # --workload-pods K: at most K pods (nodes) per workload
    allow_ephemeral: bool = False  # --allow-ephemeral: may add the netconform-probe ephemeral container
    nodes: str | None = None  # --nodes NAME,...: the run's node set (kube/nodesets.py)
    node_selector: str | None = None  # --node-selector LABEL=VALUE: the node set by label
    policy_table: str | None = None  # --policy-table FILE.yaml (checks/policy_table.py, docs/policy.md)
    policy_check: bool = False  # --policy-check: the table derived from the NetworkPolicies

    @property
    def gateways(self) -> list[str]:
        """The Gateways named by every --gateway, in order, without repeats.

        >>> SuiteOptions(gateway=["a/gw,b/gw", "a/gw"]).gateways
        ['a/gw', 'b/gw']
        """
        out: list[str] = []
        for text in self.gateway or []:
            out += [g for g in gateway_refs(text).split(",") if g not in out]
        return out

    @property
    def outside_client(self) -> str | None:
        """Who runs the outside client's probes: a runner prefix, "local", or None (not enabled).

        >>> SuiteOptions().outside_client is None
        True
        >>> SuiteOptions(external_client="local").outside_client
        'local'
        """
        if self.external_runner:
            return self.external_runner
        return "local" if self.external_client == "local" else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuiteOptions:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def positive_float(text: str) -> float:
    """A number of seconds that must be > 0 (argparse and pytest both call it)."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def peers_spec(text: str) -> str:
    """`--peers`: 'all' or K >= 1 (netconform/model/sampling.py).

    >>> peers_spec("8"), peers_spec("all")
    ('8', 'all')
    """
    from netconform.model.sampling import parse_peers

    try:
        return parse_peers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def workload_subject(text: str) -> str:
    """`--subject`: a workload (model/workload.py), checked.

    >>> workload_subject("deployment/shop/checkout")
    'deployment/shop/checkout'
    """
    from netconform.model.workload import parse_subject

    try:
        return str(parse_subject(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def node_names(text: str) -> str:
    """`--nodes`: comma-separated node names, normalised.

    >>> node_names(" node-1, node-2 ")
    'node-1,node-2'
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if not _DNS_SUBDOMAIN.match(n)]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME[,NAME...] of nodes (e.g. node-1,node-2)")
    return ",".join(names)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def gateway_refs(text: str) -> str:
    """`NS/NAME[,NS/NAME...]` of Gateway API Gateways, checked (namespace: a DNS label, name: a DNS
    subdomain), normalised to comma-joined without blanks.

    >>> gateway_refs(" kube-system/lab-gateway , infra/gw.v1")
    'kube-system/lab-gateway,infra/gw.v1'
    >>> gateway_refs("nonsense")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: 'nonsense' is not NAMESPACE/NAME of a Gateway (e.g. kube-system/lab-gateway)
    """
    out = []
    for part in (p.strip() for p in text.split(",")):
        ns, sep, name = part.partition("/")
        if not (
            sep and _DNS_LABEL.match(ns) and len(ns) <= 63 and _DNS_SUBDOMAIN.match(name) and len(name) <= 253
        ):
            raise argparse.ArgumentTypeError(
                f"{part!r} is not NAMESPACE/NAME of a Gateway (e.g. kube-system/lab-gateway)"
            )
        out.append(part)
    return ",".join(out)


@dataclass(frozen=True)
class OptionSpec:
    """One run option, declared once for the pytest option group and for `netconform run`."""

    flag: str
    attr: str
    help: str
    type: Callable[[str], Any] = str
    switch: bool = False  # a flag without a value (store_true)
    choices: tuple[str, ...] | None = None
    multiple: bool = False  # may be given several times (the values are a list)


RUN_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "--kubeconfig", "kubeconfig", "kubeconfig file(s) (default: KUBECONFIG, ~/.kube/config, in-cluster)"
    ),
    OptionSpec("--context", "context", "kubeconfig context (default: the current context)"),
    OptionSpec("--lab", "lab", "run against the lab NAME (fills kubeconfig and the external options)"),
    OptionSpec(
        "--probe-image", "probe_image", "image with python3 for the probe pods (mirror it when air-gapped)"
    ),
    OptionSpec("--external-name", "external_name", "an external DNS name every pod and node must resolve"),
    OptionSpec(
        "--external-url", "external_url", "an outside HTTP echo that reflects the caller's address (SNAT)"
    ),
    OptionSpec("--external-ip", "external_ip", "an outside address that answers ping"),
    OptionSpec("--internet-url", "internet_url", "an internet HTTP endpoint pods must reach"),
    OptionSpec(
        "--external-runner", "external_runner", "command prefix that runs the agent as the external client"
    ),
    OptionSpec(
        "--external-client",
        "external_client",
        "'local': this machine is the outside client (off by default: outside cells skip unless this, "
        "--external-runner or --lab is given)",
        choices=("local",),
    ),
    OptionSpec(
        "--control-plane-vip", "control_plane_vip", "the control-plane VIP on the node network (FM-28)"
    ),
    OptionSpec("--probe-timeout", "probe_timeout", "seconds per probe attempt (default 2)", positive_float),
    OptionSpec(
        "--attempts", "attempts", "attempts per probe; some passing = flaky (default 2)", positive_int
    ),
    OptionSpec(
        "--ready-timeout", "ready_timeout", "seconds to wait for the probe pods (default 120)", positive_float
    ),
    OptionSpec(
        "--lb-timeout",
        "lb_timeout",
        "seconds to wait for a LoadBalancer address (default 30)",
        positive_float,
    ),
    OptionSpec(
        "--delete-timeout",
        "delete_timeout",
        "seconds to wait for the namespace to go (default 60)",
        positive_float,
    ),
    OptionSpec(
        "--stale-ttl", "stale_ttl", "sweep netconform namespaces older than this many seconds", positive_float
    ),
    OptionSpec("--out", "out", "folder for results.json and the reports (default reports/)"),
    OptionSpec(
        "--allow-privileged",
        "allow_privileged",
        "opt in to privileged host probes (iptables counters, eBPF maps)",
        switch=True,
    ),
    OptionSpec(
        "--gateway",
        "gateway",
        "NS/NAME of a Gateway API Gateway to send traffic through (an HTTPRoute per run; repeatable, "
        "or comma-separated)",
        gateway_refs,
        multiple=True,
    ),
    OptionSpec(
        "--checks",
        "checks",
        "a YAML file of your own checks (from, to, protocol, expect: reachable/blocked; repeatable); "
        "see docs/checks.md",
        multiple=True,
    ),
    OptionSpec(
        "--ingress-tls",
        "ingress_tls",
        "also probe each IngressClass over HTTPS with SNI (a throwaway CA, a kubernetes.io/tls Secret)",
        switch=True,
    ),
    OptionSpec(
        "--peers",
        "peers",
        "node pairs: each node probes K peers and is probed by K (a stable hash ring, across zones "
        "first), 'all' = every pair (default: every pair up to 20 nodes, K=8 above)",
        peers_spec,
    ),
    OptionSpec(
        "--subject",
        "subject",
        "also probe from a workload's pods: deployment/NS/NAME, daemonset/NS/NAME, statefulset/NS/NAME or "
        "pods/NS/SELECTOR (repeatable); through an ephemeral container, see docs/workloads.md",
        workload_subject,
        multiple=True,
    ),
    OptionSpec(
        "--workload-pods",
        "workload_pods",
        "at most K pods per --subject workload, one per node (default: one on every node it runs on)",
        positive_int,
    ),
    OptionSpec(
        "--allow-ephemeral",
        "allow_ephemeral",
        "opt in to adding the ephemeral container netconform-probe to --subject pods (it cannot be "
        "removed; later runs reuse it)",
        switch=True,
    ),
    OptionSpec(
        "--nodes",
        "nodes",
        "only these nodes (NAME,...): subjects and node targets there; DNS and Services still reached",
        node_names,
    ),
    OptionSpec(
        "--node-selector",
        "node_selector",
        "only the nodes with these labels (LABEL=VALUE[,...], a label selector); with --nodes: both",
    ),
    OptionSpec(
        "--policy-table",
        "policy_table",
        "a YAML truth table of what must be allowed and denied between workloads (NetworkPolicy), "
        "reported as expected-vs-observed grids; see docs/policy.md",
    ),
    OptionSpec(
        "--policy-check",
        "policy_check",
        "derive the allowed and denied flows between the --subject workloads from the NetworkPolicies of "
        "their namespaces and check them (grids per port, counts per policy); see docs/policy.md",
        switch=True,
    ),
    OptionSpec("--keep", "keep", "keep the probe namespace after the run", switch=True),
    OptionSpec("--baseline", "baseline", "a previous results.json to diff against"),
    OptionSpec(
        "--fail-on",
        "fail_on",
        "with --baseline: fail only on regressions, or on any failure",
        choices=("regressions", "failures"),
    ),
)
