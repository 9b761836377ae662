"""Property tests: matrices made from a random *true scope* over a full grid of coordinates; the
inferred scope covers exactly the failing cells (and is no longer than the true one); measurement
errors added to the matrix never change the network scope."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from netconform.model.partition import analyze
from netconform.model.scope_inference import Box, infer, point_of, unmeasured

NODES = ["node-1", "node-2", "node-3"]
SUBJECTS = [f"{f}@{n}" for f in ("pod", "host") for n in NODES] + ["external"]
TARGETS = [f"pod@{n}" for n in NODES] + [f"node@{n}" for n in NODES] + ["outside"]
CHANNELS = [("L3", "icmp"), ("L4", "tcp"), ("L4", "udp")]


def cell(subject: str, target: str, layer: str, protocol: str, outcome: str) -> dict[str, Any]:
    return {"key": f"FM-00|{subject}|{target}|{layer}|{protocol}", "subject": subject, "target": target,
            "layer": layer, "protocol": protocol, "outcome": outcome, "fm": ["FM-00"]}  # fmt: skip


def subsets(values: list[str]) -> st.SearchStrategy[frozenset[str] | None]:
    return st.one_of(st.none(), st.frozensets(st.sampled_from(values), min_size=1))


@st.composite
def true_box(draw: st.DrawFn) -> Box:
    return Box(
        family=draw(subsets(["pod", "host", "external"])),
        subject_nodes=draw(subsets(NODES)),
        target_class=draw(subsets(["pod", "node", "outside"])),
        target_nodes=draw(subsets(NODES)),
        channel=draw(subsets([f"{lay} {p}" for lay, p in CHANNELS])),
    )


def grid(box: Box) -> list[dict[str, Any]]:
    out = []
    for s, t, (lay, p) in itertools.product(SUBJECTS, TARGETS, CHANNELS):
        probe = cell(s, t, lay, p, "passed")
        probe["outcome"] = "failed" if box.matches(point_of(probe)) else "passed"
        out.append(probe)
    return out


def covered(boxes: list[Box], cells: list[dict[str, Any]]) -> set[str]:
    return {c["key"] for c in cells if any(b.matches(point_of(c)) for b in boxes)}


@settings(max_examples=150, deadline=None)
@given(true_box())
def test_inferred_scope_is_the_true_scope(box: Box) -> None:
    cells = grid(box)
    failing = {c["key"] for c in cells if c["outcome"] == "failed"}
    inferred = infer(cells)
    if not failing:
        assert inferred.scopes == ()
        return
    boxes = inferred.boxes
    assert covered(boxes, cells) == failing  # every failing cell, no passing one
    assert len(boxes) == 1, [b.describe() for b in boxes]
    assert boxes[0].terms <= box.terms


@settings(max_examples=100, deadline=None)
@given(true_box(), st.lists(st.tuples(st.sampled_from(SUBJECTS), st.sampled_from(TARGETS)), max_size=12))
def test_measurement_errors_never_change_the_network_scope(box: Box, lost: list[tuple[str, str]]) -> None:
    cells = grid(box)
    before = infer(cells).boxes
    errors = [
        dict(cell(s, t, "L4", "exec", "error"), reason=f"exec into {s} failed: API timeout") for s, t in lost
    ]
    after = infer(cells + errors)
    assert after.boxes == before
    assert not {k for s in after.scopes for k in s.keys} & {e["key"] for e in errors}
    reported = {k for g in unmeasured(cells + errors) for k in g.keys}
    assert reported == {e["key"] for e in errors}


@settings(max_examples=100, deadline=None)
@given(true_box(), true_box())
def test_two_true_scopes_are_covered_exactly(a: Box, b: Box) -> None:
    cells = grid(a)
    for c in cells:
        if b.matches(point_of(c)):
            c["outcome"] = "failed"
    failing = {c["key"] for c in cells if c["outcome"] == "failed"}
    assert covered(infer(cells).boxes, cells) == failing


def test_pair_cut_is_only_the_pair_not_a_node_or_groups() -> None:
    shape = analyze(["a", "b", "c"], {("a", "c"), ("c", "a")})
    assert shape.shape == "pairs" and set(shape.blamed) == {"a", "c"}
    assert analyze(["a", "b", "c"], {(x, "c") for x in "ab"} | {("c", x) for x in "ab"}).shape == "isolated"
    four = {(x, y) for x in ("a", "b") for y in ("c", "d")}
    assert analyze(list("abcd"), four | {(y, x) for x, y in four}).shape == "groups"
