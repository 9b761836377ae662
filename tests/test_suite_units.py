"""Pure parts of the suite: recipes' expectations, results collection, RBAC, options, connect errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from netconform.checks import probes as P
from netconform.checks.probes import ProbeResult
from netconform.cli.run import pytest_args, run_main, run_parser, split_argv
from netconform.engine.results_document import CELL_PROP, VERDICT_PROP, Collector, document
from netconform.kube.connect import KubeError, connect, server_version
from netconform.kube.preflight import RULES
from netconform.model.cell import Cell
from netconform.model.verdict import Verdict
from tests.suite_helpers import agent_result, context, judge, probes_for

ROOT = Path(__file__).resolve().parent.parent


def ok(**fields: Any) -> ProbeResult:
    return agent_result(
        {"ok": True, "error": None, "attempts": [{"ok": True, "elapsed_ms": 1.0, **fields}], **fields}
    )


def bad(error: str, **fields: Any) -> ProbeResult:
    att = {"ok": False, "error": error, "message": error, "elapsed_ms": 1000.0, **fields}
    return agent_result({"ok": False, "error": error, "message": error, "attempts": [att, att], **fields})


def run_cell(cell: Cell, answers: list[ProbeResult], **opts: Any) -> Verdict:
    """Judges `cell` from one answer per planned probe (a test giving more or fewer answers is wrong)."""
    ctx = context(**opts)
    probes = probes_for(cell, ctx)
    return judge(cell, ctx, probes, dict(zip(probes, answers, strict=True)))


def test_clusterip_without_ping_but_with_port_passes_and_both_silent_fails() -> None:
    cell = Cell("pod@node-1", "clusterip", "L3", "icmp")
    verdict = run_cell(cell, [bad("timeout"), ok()])
    assert verdict.outcome == "passed" and "not a failure (FM-15)" in verdict.reason
    verdict = run_cell(cell, [bad("timeout"), bad("timeout")])
    assert verdict.outcome == "failed" and verdict.classified_layer in ("L3", "L2")


def test_host_network_cannot_resolve_cluster_names_is_expected() -> None:
    cell = Cell("host@node-1", "dns-internal", "DNS", "resolve")
    assert run_cell(cell, [bad("name-not-found")]).outcome == "passed"
    failed = run_cell(cell, [bad("resolver-failure")])
    assert failed.outcome == "failed" and failed.classified_layer == "DNS"


def test_snat_needs_the_node_address() -> None:
    cell = Cell("pod@node-2", "outside", "L4", "snat")
    good = run_cell(cell, [ok(status=200, echo={"client_ip": "10.89.0.12"})])
    assert good.outcome == "passed"
    masq_missing = run_cell(cell, [ok(status=200, echo={"client_ip": "10.244.2.10"})])
    assert masq_missing.outcome == "failed" and "not masqueraded" in masq_missing.reason
    assert masq_missing.classified_layer == "L3"


def test_arp_conflict_lists_each_mac_and_silence_is_l2() -> None:
    cell = Cell("host@node-1", "node@node-2", "L2", "arp")
    no_cache = ok(content=ARP_HEADER)
    conflict = run_cell(cell, [ok(macs=["00:50:56:aa:bb:cc", "02:00:00:00:00:09"]), no_cache])
    assert conflict.outcome == "failed" and "00:50:56:aa:bb:cc" in conflict.reason
    assert conflict.classified_layer == "L2"
    silent = run_cell(cell, [bad("timeout", macs=[]), no_cache])
    assert silent.outcome == "failed" and silent.classified_layer == "L2"


ARP_HEADER = "IP address       HW type     Flags       HW address            Mask     Device\n"


def test_a_node_cached_at_another_mac_than_the_one_answering_is_a_stale_entry() -> None:
    cell = Cell("host@node-1", "node@node-2", "L2", "arp")
    ip = context().node_ip("node-2")
    answer = ok(macs=["02:00:00:00:00:02"])
    cache = f"{ARP_HEADER}{ip}  0x1  0x6  02:00:00:00:00:99  *  eth0\n"
    stale = run_cell(cell, [answer, ok(content=cache)])
    assert stale.outcome == "failed" and stale.classified_fm == "FM-28", stale
    assert f"maps node node-2 {ip} to 02:00:00:00:00:99 (PERMANENT)" in stale.reason, stale.reason
    assert f"fix: ip neigh del {ip} dev eth0" in stale.reason
    agrees = f"{ARP_HEADER}{ip}  0x1  0x2  02:00:00:00:00:02  *  eth0\n"
    assert run_cell(cell, [answer, ok(content=agrees)]).outcome == "passed"
    incomplete = f"{ARP_HEADER}{ip}  0x1  0x0  00:00:00:00:00:00  *  eth0\n"
    assert run_cell(cell, [answer, ok(content=incomplete)]).outcome == "passed"


def test_dns_rcodes_are_failures_with_the_dns_layer() -> None:
    cell = Cell("pod@node-1", "dns-external", "DNS", "udp")
    query = P.dns_wire("example.test")
    import dns.message
    import dns.rcode

    msg = dns.message.make_response(dns.message.from_wire(query))
    msg.set_rcode(dns.rcode.SERVFAIL)
    verdict = run_cell(cell, [ok(answer_b64=P.b64(msg.to_wire()))])
    assert verdict.outcome == "failed" and verdict.classified_layer == "DNS" and "SERVFAIL" in verdict.reason


def test_mtu_black_hole_is_named() -> None:
    cell = Cell("pod@node-1", "pod@node-2", "L3", "mtu")
    att = {
        "ok": True,
        "largest_ok": 1400,
        "sizes_ok": [576, 1200, 1400],
        "sizes_lost": [1450, 1500],
        "sizes_too_big": [],
    }
    verdict = run_cell(cell, [agent_result({"ok": True, "attempts": [att, att], **att})])
    assert verdict.outcome == "failed" and "MTU" in verdict.reason and verdict.classified_layer == "L3"


def test_nameserver_sets_must_be_equal() -> None:
    cell = Cell("cluster", "component:node-nameservers", "DNS", "config")
    same = [ok(content="nameserver 203.0.113.53\n"), bad("other")] * 3
    assert run_cell(cell, same).outcome == "passed"
    differ = [ok(content="nameserver 203.0.113.53\n"), bad("other")] * 2
    differ += [ok(content="nameserver 203.0.113.54\n"), bad("other")]
    verdict = run_cell(cell, differ)
    assert verdict.outcome == "failed" and "node-3: 203.0.113.54" in verdict.reason


def test_stale_control_plane_arp_entry() -> None:
    cell = Cell("host@node-2", "component:control-plane-vip", "L2", "arp")
    arp_table = (
        "IP address HW type Flags HW address Mask Device\n10.89.0.2 0x1 0x2 02:aa:00:00:00:01 * eth0\n"
    )
    verdict = run_cell(cell, [ok(content=arp_table), ok(content=""), ok(macs=["02:bb:00:00:00:01"])])
    assert verdict.outcome == "failed" and "stale ARP" in verdict.reason
    fine = run_cell(cell, [ok(content=arp_table), ok(content=""), ok(macs=["02:aa:00:00:00:01"])])
    assert fine.outcome == "passed"


def test_flaky_when_only_some_attempts_pass() -> None:
    cell = Cell("pod@node-1", "pod@node-2", "L4", "tcp")
    flaky: ProbeResult = {"ok": True, "attempts": [{"ok": False, "error": "timeout"}, {"ok": True}]}
    assert run_cell(cell, [flaky]).outcome == "flaky"


def test_missing_components_skip_with_a_reason() -> None:
    from netconform.checks.context import Skip

    ctx = context()
    ctx.kit.lb_ip, ctx.kit.lb_reason = None, "no LoadBalancer controller assigned an address"
    with pytest.raises(Skip, match="LoadBalancer"):
        probes_for(Cell("external", "lb-vip", "L4", "tcp"), ctx)
    with pytest.raises(Skip, match="--allow-privileged"):
        probes_for(Cell("host@node-1", "component:iptables", "L3", "drops"), ctx)
    ctx.kit.unavailable["host"] = "host-network probe host-node-1 rejected by admission: violates PodSecurity"
    with pytest.raises(Skip, match="PodSecurity"):
        probes_for(Cell("host@node-1", "node@node-2", "L3", "icmp"), ctx)


def test_the_outside_client_is_opt_in() -> None:
    """Without --external-client local, --external-runner or --lab the host never probes anything."""
    from netconform.checks.context import NO_OUTSIDE_CLIENT, Skip
    from netconform.engine.run import kube_runner
    from netconform.kube.exec import ExecError

    cell = Cell("external", "nodeport@node-1", "L4", "tcp")
    ctx = context(external_client=None)
    assert ctx.opts.outside_client is None
    with pytest.raises(Skip) as skipped:
        probes_for(cell, ctx)
    assert str(skipped.value) == NO_OUTSIDE_CLIENT and "--external-client local" in NO_OUTSIDE_CLIENT
    with pytest.raises(ExecError, match="no outside client"):
        kube_runner(None, ctx)("external", {"checks": []}, 5.0)  # type: ignore[arg-type]
    assert [p.subject for p in probes_for(cell, context())] == ["external"]  # local, when asked
    runner = context(external_client=None, external_runner="ip netns exec x")
    assert runner.opts.outside_client == "ip netns exec x" and probes_for(cell, runner)


def test_collector_builds_cells_with_outcomes_and_reasons() -> None:
    c = Collector()
    cell = {
        "key": "FM-09|pod@node-1|pod@node-2|L4|tcp",
        "fm": ["FM-09"],
        "subject": "pod@node-1",
        "subject_kind": "S-POD-NODE",
        "target": "pod@node-2",
        "target_kind": "T-POD-CLUSTER",
        "layer": "L4",
        "protocol": "tcp",
    }
    props: list[tuple[str, Any]] = [(CELL_PROP, cell)]
    c.add("t::a", "setup", "passed", None, 0.1, props)
    verdict = {
        "outcome": "flaky",
        "reason": "intermittent",
        "error": "timeout",
        "classified_layer": "L3",
        "meaning": "m",
        "checks": [{"id": "x"}],
        "notes": [],
        "diagnosis": None,
    }
    c.add("t::a", "call", "failed", "E flaky", 0.2, [*props, (VERDICT_PROP, verdict)])
    c.add("t::b", "setup", "skipped", ("f", 1, "Skipped: no LB controller"), 0.0, props)
    c.add("t::c", "setup", "failed", "E boom", 0.0, props)
    c.add("t::d", "call", "passed", None, 0.0, [("other", 1)])
    from datetime import UTC, datetime

    doc = document(c, run_id="r", started=datetime.now(UTC), duration_s=1.0, cluster={}, options={}, stats={})
    by_test = {x["test"]: x for x in doc["cells"]}
    assert by_test["t::a"]["outcome"] == "flaky" and by_test["t::a"]["evidence"]["checks"] == [{"id": "x"}]
    assert by_test["t::b"]["outcome"] == "skipped" and by_test["t::b"]["reason"] == "no LB controller"
    assert by_test["t::c"]["outcome"] == "error"
    assert "t::d" not in by_test
    assert doc["run"]["counts"] == {"passed": 0, "failed": 0, "flaky": 1, "skipped": 1, "error": 1}


def test_rbac_yaml_is_exactly_what_preflight_checks() -> None:
    role = yaml.safe_load((ROOT / "docs" / "rbac.yaml").read_text())
    rules = [
        (group, r, tuple(rule["verbs"]))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for r in rule["resources"]
    ]
    assert rules == list(RULES)
    assert all(len(rule["apiGroups"]) == 1 for rule in role["rules"])


def test_runner_arguments() -> None:
    own, extra = split_argv(["--lab", "x", "--attempts", "2", "--", "-n", "2", "-k", "dns"])
    ns = run_parser().parse_args(own)
    args = pytest_args(ns, extra)
    assert args[-4:] == ["-n", "2", "-k", "dns"]
    assert "--lab" in args and "--attempts" in args and any(a.startswith("--html=") for a in args)
    assert run_main(["--attempts", "0", "--lab", "x"]) == 4
    assert run_main(["--probe-timeout", "soon", "--lab", "x"]) == 4
    assert run_main(["--lab", "x", "--fail-on", "regressions"]) == 4
    assert run_main(["--lab", "x", "--external-client", "everywhere"]) == 4
    local = pytest_args(run_parser().parse_args(["--kubeconfig", "k", "--external-client", "local"]), [])
    assert local[local.index("--external-client") + 1] == "local"


def test_connect_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(KubeError, match="does not exist"):
        connect(str(tmp_path / "missing"))
    bad_yaml = tmp_path / "bad"
    bad_yaml.write_text("{{{ not yaml")
    with pytest.raises(KubeError, match="bad kubeconfig") as err:
        connect(str(bad_yaml))
    assert "\n" not in str(err.value)
    good = tmp_path / "k"
    good.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    with pytest.raises(KubeError, match="context 'nope' not found"):
        connect(str(good), "nope")
    cluster = connect(str(good), timeout=2.0)
    started = time.monotonic()
    with pytest.raises(KubeError, match="cannot be reached") as err:
        server_version(cluster)
    assert time.monotonic() - started < 5 and "\n" not in str(err.value)


def test_api_endpoint_tcp_timeout_with_a_stale_arp_entry_names_fm28() -> None:
    cell = Cell("host@node-2", "component:apiserver", "L4", "tcp")
    ctx = context()
    ctx.topo.api_endpoint_port = 6443
    probes = probes_for(cell, ctx)
    assert [(p.kind, p.fields.get("host") or p.fields.get("ip") or p.fields.get("path")) for p in probes] == [
        ("tcp", "10.89.0.2"),
        ("read", "/proc/net/arp"),
        ("arp", "10.89.0.2"),
    ]
    table = "IP address HW type Flags HW address Mask Device\n10.89.0.2 0x1 0x6 02:00:00:00:0f:28 * eth0\n"

    def verdict(tcp: ProbeResult, answered: str) -> Verdict:
        return judge(
            cell, ctx, probes, dict(zip(probes, [tcp, ok(content=table), ok(macs=[answered])], strict=True))
        )

    stale = verdict(bad("timeout"), "02:aa:00:00:00:02")
    assert (stale.outcome, stale.classified_layer, stale.classified_fm) == ("failed", "L2", "FM-28")
    assert "tcp 10.89.0.2:6443" in stale.reason and "ip neigh del 10.89.0.2 dev eth0" in stale.reason
    plain = verdict(bad("timeout"), "02:00:00:00:0f:28")  # the cache is right: some other L3 problem
    assert (plain.outcome, plain.classified_layer, plain.classified_fm) == ("failed", "L3", "FM-03")
    refused = verdict(bad("refused"), "02:aa:00:00:00:02")
    assert refused.classified_layer == "L4" and refused.classified_fm != "FM-28"
    assert verdict(ok(), "02:aa:00:00:00:02").outcome == "passed"
    ctx.topo.api_endpoint_port = None
    from netconform.checks.context import Skip

    with pytest.raises(Skip, match="kubernetes"):
        probes_for(cell, ctx)
