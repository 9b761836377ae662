"""The verdict names the pattern and the component, not N² symptoms."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from netconform.model.partition import analyze
from netconform.report.verdict import compute_verdict
from tests.report_synth import Fault, synth_results

NODES = ["node-1", "node-2", "node-3", "node-4"]


def test_healthy_run_says_so_and_names_skip_reasons() -> None:
    verdict = compute_verdict(synth_results(3, None))
    assert verdict.status == "healthy"
    assert verdict.text.startswith("All 168 cells run on 3 nodes passed.")
    assert "no Cilium-based dataplane (anetd/cilium) runs in this cluster" in verdict.text
    assert "and 8 other reasons" in verdict.text  # 6, and the two --policy-table checks without a table
    assert not verdict.findings


@pytest.mark.parametrize("nodes", [3, 12])
def test_one_node_tunnel_blocked_names_the_node_and_the_tunnel(nodes: int) -> None:
    verdict = compute_verdict(synth_results(nodes, Fault("tunnel-blocked", "node-3")))
    assert verdict.status == "failing"
    first = verdict.findings[0]
    assert first.component == "tunnel" and "FM-09" in first.fm
    assert "node-3" in first.summary and "same-node traffic works" in first.summary
    assert "node-3 is cut off" in verdict.text
    # ClusterIP/DNS symptoms are folded into the tunnel finding, not reported as separate causes
    assert len(verdict.findings) == 1, [f.summary for f in verdict.findings]


def test_every_node_tunnel_blocked_is_one_cluster_wide_tunnel_finding() -> None:
    verdict = compute_verdict(synth_results(3, Fault("tunnel-blocked")))
    assert "fails between all 3 nodes" in verdict.text
    assert verdict.findings[0].component == "tunnel"


@pytest.mark.parametrize("node", ["node-3", None])
def test_a_tunnel_measured_by_pod_tcp_and_node_pings_only_is_the_tunnel_not_a_port_filter(
    node: str | None,
) -> None:
    """`-k "pod_to_pod_tcp or node_ping"` under a blocked tunnel (a CI run): the scope is "TCP only" and
    ICMP works, but the ICMP is node to node, over the underlay, not the pod paths. Only a channel that
    passes between the very same subject and target makes a port filter."""
    results = synth_results(12 if node else 3, Fault("tunnel-blocked", node))
    results["cells"] = [
        c
        for c in results["cells"]
        if (c["subject"].startswith("pod@") and c["target"].startswith("pod@") and c["protocol"] == "tcp")
        or (c["subject"].startswith("host@") and c["target"].startswith("node@") and c["protocol"] == "icmp")
    ]
    verdict = compute_verdict(results)
    assert "TCP only" in verdict.text and "ICMP (ping) on the same paths work" in verdict.text, verdict.text
    assert [f.component for f in verdict.findings] == ["tunnel"], verdict.text
    assert "port filter" not in verdict.text and "FM-09" in verdict.text, verdict.text


def test_partition_with_underlay_down_points_at_the_node_network() -> None:
    fault = Fault("partition", groups=[["node-1", "node-2"], ["node-3", "node-4"]])
    verdict = compute_verdict(synth_results(4, fault))
    first = verdict.findings[0]
    assert "{node-1, node-2} | {node-3, node-4}" in first.summary
    assert first.component == "node network" and "FM-13" in first.fm


def test_service_nat_on_one_node() -> None:
    verdict = compute_verdict(synth_results(3, Fault("service-nat", "node-2")))
    assert [f.component for f in verdict.findings] == ["service NAT"]
    assert "node-2" in verdict.findings[0].summary and "FM-08" in verdict.text
    assert "backend pods answer directly" in verdict.text


def test_dns_server_specific() -> None:
    verdict = compute_verdict(synth_results(3, Fault("coredns-down", "node-2")))
    assert verdict.findings[0].component == "DNS server"
    assert "the CoreDNS pod on node-2: it does not answer from any subject" in verdict.text
    assert "FM-22" in verdict.text and "the same checks to node-1 work" in verdict.text


def test_upstream_dns() -> None:
    verdict = compute_verdict(synth_results(3, Fault("upstream-dns")))
    assert verdict.findings[0].component == "upstream DNS"
    assert "FM-23" in verdict.text and "FM-24" in verdict.text


def test_snat_missing_on_one_node() -> None:
    verdict = compute_verdict(synth_results(3, Fault("snat-missing", "node-1")))
    assert [f.component for f in verdict.findings] == ["SNAT"]
    assert "SNAT (egress masquerade on node-1: traffic leaves but not with the node's address" in verdict.text


def test_arp_conflict_names_both_macs() -> None:
    verdict = compute_verdict(synth_results(3, Fault("arp-conflict")))
    assert verdict.findings[0].component == "ARP / L2"
    assert "00:50:56:9a:11:22" in verdict.text and "FM-16" in verdict.text


def test_only_flaky_is_degraded() -> None:
    results = synth_results(2, None)
    results["cells"][0]["outcome"] = "flaky"
    verdict = compute_verdict(results)
    assert verdict.status == "degraded" and "intermittent" in verdict.text


def test_internet_unreachable_is_an_egress_route_finding() -> None:
    results = synth_results(3, None)
    for cell in results["cells"]:
        if cell["target"] == "internet":
            cell["outcome"], cell["reason"] = "failed", "http 198.51.100.10:80: timeout"
    verdict = compute_verdict(results)
    # old text "the outside is unreachable" was wrong: only the internet fails, the outside answers
    assert verdict.text.startswith("3 failing cells: to the internet"), verdict.text
    assert "the outside" in verdict.findings[0].contrasts[0]
    assert verdict.findings[0].component == "egress route"


def test_leftovers_are_described_by_what_they_share() -> None:
    results = synth_results(3, None)
    for cell in results["cells"]:
        if cell["protocol"] == "cni-ready" and cell["target"] == "node@node-2":
            cell["outcome"], cell["reason"] = "failed", "node-2 NotReady: NetworkPluginNotReady"
            cell["diagnosis"] = {"hop": "CNI pod on node-2", "summary": "", "fm": "FM-27", "capture": []}
    verdict = compute_verdict(results)
    assert verdict.text.startswith("1 failing cell: "), verdict.text
    assert verdict.findings[0].component == "CNI / node readiness" and "NetworkPluginNotReady" in verdict.text
    assert "FM-27" in verdict.text


def test_no_cells() -> None:
    assert compute_verdict({"schema": "netconform/v1", "run": {}, "cells": []}).status == "failing"


def test_verdict_does_not_depend_on_cell_order() -> None:
    results = synth_results(4, Fault("tunnel-blocked", "node-2"))
    shuffled = copy.deepcopy(results)
    random.Random(3).shuffle(shuffled["cells"])
    assert compute_verdict(results) == compute_verdict(shuffled)


@pytest.mark.parametrize(
    ("bad", "expected", "blamed"),
    [
        ({(a, "node-4") for a in NODES if a != "node-4"}, "fails to node-4 from all other nodes", {"node-4"}),
        ({("node-2", b) for b in NODES if b != "node-2"}, "fails from node-2 to all other nodes", {"node-2"}),
        (
            {("node-1", "node-2"), ("node-3", "node-2")},
            "fails on 2 node pairs only: node-1 → node-2 only; node-3 → node-2 only; "
            "each still reaches node-4",
            {"node-2"},
        ),
        (
            {("node-1", "node-2"), ("node-3", "node-4")},
            "fails on 2 node pairs only: node-1 → node-2 only; node-3 → node-4 only",
            set(NODES),
        ),
        (
            {("node-1", "node-3"), ("node-3", "node-1")},
            "fails only between node-1 and node-3 (both directions); each still reaches node-2 and node-4",
            {"node-1", "node-3"},
        ),
        ({(a, b) for a in NODES for b in NODES if a != b}, "fails between all 4 nodes", set(NODES)),
    ],
)
def test_partition_shapes(bad: set[tuple[str, str]], expected: str, blamed: set[str]) -> None:
    shape = analyze(NODES, bad)
    assert expected in shape.describe("x")
    assert set(shape.blamed) == blamed


def test_one_intermittent_check_is_named_in_plain_words() -> None:
    results = synth_results(3, None)
    cell = next(c for c in results["cells"] if c["outcome"] == "passed" and c["subject"] == "pod@node-2")
    cell["outcome"], cell["reason"] = "flaky", "intermittent: 1/2 attempts passed"
    verdict = compute_verdict(results)
    assert verdict.status == "degraded"
    assert verdict.text.startswith("1 intermittent cell: "), verdict.text
    assert "from pods on node-2" in verdict.text and "Suspect packet loss" in verdict.text
    assert "1 checks" not in verdict.text and "subject(s)" not in verdict.text


def test_one_unlucky_service_check_from_a_healthy_node_folds_into_the_partition() -> None:
    """With node-7 cut off, a healthy node's only check of a Service kind can land on node-7's backend
    on every attempt: that is the partition again, not service NAT on the healthy node."""
    nodes = [f"node-{i}" for i in range(1, 13)]
    doc = synth_results(12, Fault("partition", groups=[["node-7"], [n for n in nodes if n != "node-7"]]))
    template = next(c for c in doc["cells"] if c["target_kind"] == "T-CLUSTERIP" and c["protocol"] == "tcp")
    lonely = copy.deepcopy(template)  # the host probe's single ClusterIP check, as the real suite has
    lonely.update(
        subject="host@node-4",
        subject_kind="S-NODE",
        test=template["test"].replace(template["subject"], "host@node-4"),
        key=template["key"].replace(template["subject"], "host@node-4"),
        outcome="failed",
        error="timeout",
        classified_layer="L3",
    )
    doc["cells"].append(lonely)
    verdict = compute_verdict(doc)
    assert "service NAT" not in [f.component for f in verdict.findings], verdict.text
    assert "node-7" in verdict.findings[0].summary


def _set(doc: dict[str, Any], subject: str, target: str, protocol: str, outcome: str) -> None:
    want = (subject, target, protocol, "passed")
    cell = next(c for c in doc["cells"] if (c["subject"], c["target"], c["protocol"], c["outcome"]) == want)
    cell["outcome"], cell["error"] = outcome, "timeout"
    cell["reason"] = "intermittent: 1/2 attempts passed" if outcome == "flaky" else "timeout on every attempt"


@pytest.mark.parametrize("direct", ["flaky", "passed"])
def test_a_service_failing_while_the_subjects_direct_paths_flicker_is_the_loss_not_service_nat(
    direct: str,
) -> None:
    """Loss on node-2's overlay (a hand-made fault in a CI run): pod@node-1's ClusterIP and NodePort TCP
    checks failed on both attempts while its own TCP paths to node-2's pods flickered. "The backend pods
    answer directly" would be false: the Service cells go with the flicker. With the direct paths clean,
    the same Service failure is service NAT on node-1 (so the first case can fail)."""
    doc = synth_results(3, None)
    if direct == "flaky":
        _set(doc, "pod@node-1", "pod@node-2", "tcp", "flaky")
        _set(doc, "pod@node-2", "pod@node-1", "tcp", "flaky")
    for target in ("clusterip", "nodeport@node-1", "nodeport@node-2", "nodeport@node-3"):
        _set(doc, "pod@node-1", target, "tcp", "failed")
    verdict = compute_verdict(doc)
    if direct == "passed":
        assert [f.component for f in verdict.findings] == ["service NAT"], verdict.text
        return
    assert "service NAT" not in verdict.text, verdict.text
    assert not verdict.findings, verdict.text  # nothing failed that a flicker does not explain
    assert [s.component for s in verdict.intermittent[0].suspects] == ["packet loss"], verdict.text
    assert "4 Service/DNS checks fail or flicker with it" in verdict.text, verdict.text
    assert "4 failed" in verdict.text and verdict.status == "failing"  # cells failed: not just degraded


def test_api_frozen_cells_are_unmeasured_first_and_never_a_network_diagnosis() -> None:
    results = synth_results(3, None)
    lost = [c for c in results["cells"] if c["outcome"] == "passed" and c["subject"] != "cluster"][:120]
    for c in lost:
        c["outcome"], c["error"] = "error", "other"
        c["reason"] = f"exec into {c['subject']} failed: the API server did not answer in 10 s"
    verdict = compute_verdict(results)
    assert verdict.text.startswith("120 cells were not measured"), verdict.text
    assert "the API server did not answer" in verdict.text
    assert not verdict.findings and not verdict.intermittent, verdict.text
    for words in ("tunnel", "SNAT", "partition", "cut off", "Suspect"):
        assert words not in verdict.text, words
    assert verdict.to_json()["unmeasured"]["groups"][0]["cells"]


def test_resolver_lookups_failing_while_dns_over_udp_works_is_the_resolver_not_udp_53() -> None:
    """A 100-node run under load: one pod's getaddrinfo timed out while its own DNS queries over UDP
    and TCP to the same servers passed. The contrast says UDP 53 works, so the suspect is not UDP 53."""
    results = synth_results(3, None)
    resolve = [c for c in results["cells"] if c["protocol"] == "resolve" and c["subject"] == "pod@node-2"]
    assert resolve and any(
        c["protocol"] == "udp" and c["layer"] == "DNS" and c["subject"] == "pod@node-2"
        for c in results["cells"]
    )
    for c in resolve:
        c["outcome"], c["error"] = "failed", "timeout"
    verdict = compute_verdict(results)
    first = verdict.findings[0]
    assert first.component == "system resolver" and "FM-21" in first.fm, verdict.text
    assert "UDP port 53" not in verdict.text and "DNS over UDP" in first.summary, verdict.text
