"""Loading results.json: clear one-line errors, stable keys, and the JSON Schema of contracts §5."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from netconform.report.results import (
    FULL_VALIDATION_CELLS,
    ResultsError,
    canonical_cells,
    check_results,
    key_of,
    load_results,
    make_key,
    natural_key,
    nodes_of,
    schema,
)
from tests.report_synth import Fault, synth_results

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "results.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    "fault",
    [None, Fault("tunnel-blocked", "node-3"), Fault("arp-conflict"), Fault("snat-missing")],
    ids=lambda f: f.name if f else "healthy",
)
def test_synthetic_results_follow_the_schema(validator: jsonschema.Validator, fault: Fault | None) -> None:
    results = synth_results(3, fault)
    errors = sorted(validator.iter_errors(results), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    for cell in results["cells"]:
        assert cell["key"] == make_key(cell)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda r: r["cells"][0].update(outcome="weird"), "outcome"),
        (lambda r: r["cells"][0].pop("key"), "key"),
        (lambda r: r["cells"][0].update(fm=["FM9"]), "fm"),
        (lambda r: r["cells"][0].update(layer="L5"), "layer"),
        (lambda r: r["run"]["counts"].pop("flaky"), "counts"),
        (lambda r: r.update(schema="netconform/v0"), "schema"),
        (lambda r: r["cells"][0]["evidence"]["checks"].append({"kind": "tcp"}), "ok"),
    ],
)
def test_schema_rejects_broken_documents(validator: jsonschema.Validator, mutate: Any, where: str) -> None:
    results = synth_results(2, None)
    mutate(results)
    messages = [f"{list(e.path)} {e.message}" for e in validator.iter_errors(results)]
    assert messages and any(where in m for m in messages), messages


def test_load_results_round_trip(tmp_path: Path) -> None:
    results = synth_results(2, None)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results), encoding="utf-8")
    assert load_results(path) == results


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ("[]", "$: [] is not of type 'object'"),
        ('{"schema": "other", "run": {}, "cells": []}', "$.schema: 'netconform/v1' was expected"),
        ('{"schema": "netconform/v1", "cells": []}', "$: 'run' is a required property"),
        ('{"schema": "netconform/v1", "run": {}, "cells": {}}', "$.cells: {} is not of type 'array'"),
        (
            json.dumps({**synth_results(2, None), "cells": [{"subject": "a"}]}),
            "$.cells[0]: 'test' is a required",
        ),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ResultsError) as info:
        load_results(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


def test_bad_outcome_is_named() -> None:
    results = synth_results(2, None)
    results["cells"][3]["outcome"] = "meh"
    with pytest.raises(ResultsError, match=r"^\$\.cells\[3\]\.outcome: 'meh' is not one of \['passed', "):
        check_results(results)


def test_the_shipped_schema_is_the_documented_one() -> None:
    """netconform/report/results.schema.json (package data) is a copy of docs/results.schema.json."""
    assert schema() == json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    packaged = Path(__file__).resolve().parents[1] / "netconform" / "report" / "results.schema.json"
    assert packaged.read_bytes() == SCHEMA_PATH.read_bytes()


def test_big_documents_are_checked_on_a_sample_that_holds_every_failing_cell() -> None:
    results = synth_results(2, None)
    passed = [c for c in results["cells"] if c["outcome"] == "passed"]
    total = 3 * FULL_VALIDATION_CELLS
    results["cells"] = [copy.deepcopy(passed[i % len(passed)]) for i in range(total)]
    step = total // FULL_VALIDATION_CELLS
    off = next(i for i in range(FULL_VALIDATION_CELLS, total) if i % step)  # a cell off the sample
    bad = results["cells"][off]
    bad.update(outcome="failed", layer="L5")
    with pytest.raises(ResultsError, match=rf"^\$\.cells\[{off}\]\.layer: 'L5' is not one of"):
        check_results(results)
    # a broken passed cell off the sample is only found by the full check
    bad.update(outcome="passed")
    assert check_results(results) is results
    with pytest.raises(ResultsError, match=rf"^\$\.cells\[{off}\]\.layer"):
        check_results(results, full=True)


def test_key_falls_back_to_fields_and_untagged_cells() -> None:
    cell = {"fm": ["FM-09", "FM-13"], "subject": "pod@node-1", "target": "pod@node-2", "layer": "L4",
            "protocol": "tcp"}  # fmt: skip
    assert key_of(cell) == "FM-09|pod@node-1|pod@node-2|L4|tcp"
    assert key_of({**cell, "fm": []}) == "FM-00|pod@node-1|pod@node-2|L4|tcp"
    assert key_of({**cell, "key": "explicit"}) == "explicit"


def test_nodes_are_in_natural_order() -> None:
    results = synth_results(12, None)
    assert nodes_of(results)[:3] == ["node-1", "node-2", "node-3"]
    assert nodes_of(results)[-1] == "node-12"
    assert natural_key("node-2") < natural_key("node-10")


def test_canonical_order_ignores_arrival_order() -> None:
    results = synth_results(3, Fault("tunnel-blocked", "node-3"))
    shuffled = copy.deepcopy(results)
    random.Random(7).shuffle(shuffled["cells"])
    assert canonical_cells(results) == canonical_cells(shuffled)
