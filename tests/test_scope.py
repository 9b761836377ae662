"""The scope model: stable readable ids, kinds, families, sorted and identical for every process."""

from __future__ import annotations

import pytest

from netconform.checks import recipes as recipes
from netconform.model.cell import FAMILIES, Cell, all_cells, family
from tests.suite_helpers import topology


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


def test_every_family_cell_is_judged_by_a_recipe_or_a_component_check() -> None:
    component_targets = {
        "component:pod-mesh",
        "component:cilium-health",
        "component:cilium-api",
        "component:ebpf-maps",
        "component:drop-monitor",
        "component:f5",
        "component:metallb",
    }
    for cell in all_cells(topology(3)):
        assert recipes.has_recipe(cell) or cell.target in component_targets or cell.protocol == "cni-ready", (
            cell.id
        )


def test_ids_are_unique_across_families_and_stable() -> None:
    first = [c.id for c in all_cells(topology(3))]
    assert len(first) == len(set(first))
    assert first == [c.id for c in all_cells(topology(3))]
    assert len(FAMILIES) >= 40
