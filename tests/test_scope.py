"""Cells and checks: stable readable ids, kinds, checks' cells sorted and identical for every process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netconform.checks.api import REGISTRY, Check
from netconform.checks.catalogue import CATALOGUE
from netconform.model.cell import Cell
from netconform.model.topology import Topology
from tests.suite_helpers import topology

DATA = Path(__file__).resolve().parent / "data"


def family(name: str) -> Check:
    return REGISTRY.get(name)


def all_cells(topo: Topology) -> list[Cell]:
    return REGISTRY.all_cells(topo, [c.name for c in CATALOGUE])


def test_cell_id_is_readable_and_round_trips() -> None:
    cell = Cell("pod@node-1", "pod@node-2", "L4", "tcp")
    assert cell.id == "pod@node-1->pod@node-2/L4-tcp"
    assert Cell.parse(cell.id) == cell
    assert cell.key("FM-09") == "FM-09|pod@node-1|pod@node-2|L4|tcp"
    assert Cell.parse("cluster->component:pod-mesh/L3-partition").target == "component:pod-mesh"
    with pytest.raises(ValueError):
        Cell.parse("pod@node-1 to pod@node-2")


@pytest.mark.parametrize(
    ("subject", "target", "s_kind", "t_kind"),
    [
        ("pod@node-1", "pod@node-1", "S-POD-NODE", "T-POD-NODE"),
        ("pod@node-1", "pod@node-2", "S-POD-NODE", "T-POD-CLUSTER"),
        ("host@node-1", "node@node-2", "S-NODE", "T-NODE"),
        ("external", "lb-vip", "S-EXTERNAL", "T-LB-VIP"),
        ("pod@node-1", "coredns@node-2", "S-POD-NODE", "T-DNS-SERVER"),
        ("cluster", "component:f5", "S-CLUSTER", "T-COMPONENT"),
        ("pod@node-1", "nodeport@node-3", "S-POD-NODE", "T-NODEPORT"),
    ],
)
def test_kinds(subject: str, target: str, s_kind: str, t_kind: str) -> None:
    cell = Cell(subject, target, "L4", "tcp")
    assert (cell.subject_kind, cell.target_kind) == (s_kind, t_kind)


def test_families_grow_with_nodes_and_are_sorted() -> None:
    three, one = topology(3), topology(1, coredns_on=(1,))
    pairs = family("pod-pod-tcp").cells(three)
    assert len(pairs) == 9 and pairs == sorted(pairs)
    assert len(family("pod-pod-mtu").cells(three)) == 6
    assert family("pod-pod-mtu").cells(one) == []
    assert "second node" in family("pod-pod-mtu").needs
    assert [c.id for c in family("pod-coredns-udp").cells(three)][:2] == [
        "pod@node-1->coredns@node-1/DNS-udp",
        "pod@node-1->coredns@node-2/DNS-udp",
    ]


def test_every_catalogue_cell_finds_its_own_check_back() -> None:
    """Evidence cells of a diagnosis are planned through `check_for`: it must return the cell's check."""
    topo = Topology.from_dict(json.loads((DATA / "cells_before_topology.json").read_text()))
    for check in CATALOGUE:
        for cell in check.cells(topo):
            assert REGISTRY.check_for(cell) is check, cell.id


def test_the_checks_make_exactly_the_cells_of_the_families_they_replaced() -> None:
    """Cell ids per check equal the ids the scope families made before checks were values (a topology
    with 3 nodes, 2 CoreDNS pods, an IngressClass with TLS and a Gateway: all 53 checks have cells)."""
    topo = Topology.from_dict(json.loads((DATA / "cells_before_topology.json").read_text()))
    before: dict[str, list[str]] = json.loads((DATA / "cells_before.json").read_text())
    # the --policy-table checks came later: without a table they have no cell
    assert sorted(before) == sorted(c.name for c in CATALOGUE if not c.name.startswith("policy-table-"))
    for name, ids in before.items():
        assert [c.id for c in REGISTRY.get(name).cells(topo)] == ids, name
    assert sum(map(len, before.values())) == len(all_cells(topo)) == 200


def test_ids_are_unique_across_checks_and_stable() -> None:
    first = [c.id for c in all_cells(topology(3))]
    assert len(first) == len(set(first))
    assert first == [c.id for c in all_cells(topology(3))]


def test_every_evidence_cell_of_a_diagnosis_is_planned_by_some_check() -> None:
    """The diagnosis asks for cells no check lists (host -> pod over HTTP for a host's ingress cell):
    each is measured like the check with the same target kind, layer and protocol, never dropped."""
    from netconform.engine.diagnose import evidence_cells

    topo = Topology.from_dict(json.loads((DATA / "cells_before_topology.json").read_text()))
    evidence = {e for c in all_cells(topo) for e in evidence_cells(c, topo)}
    unplanned = sorted(e.id for e in evidence if (k := REGISTRY.check_for(e)) is None or k.probe.plan is None)
    assert not unplanned, unplanned
    host_http = Cell("host@node-1", "pod@node-2", "L7", "http")
    assert host_http in evidence and REGISTRY.get("pod-pod-http") is REGISTRY.check_for(host_http)
