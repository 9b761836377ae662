"""The reports on real results.json files from lab runs (``NETCONFORM_REAL_RESULTS=path[:path...]``).

The synthetic generator stands in until the suite's lab runs are cheap enough for CI; point this at
the results.json of real runs (e.g. ``netconform demo --out DIR``) to check that they follow the schema
and that every report renders every cell of them.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from netconform.report.junit import render_junit
from netconform.report.matrix import DATA_ELEMENT_ID, render_matrix
from netconform.report.results import load_results, make_key
from netconform.report.terminal import render_terminal
from netconform.report.verdict import compute_verdict

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "results.schema.json").read_text())
PATHS = [p for p in os.environ.get("NETCONFORM_REAL_RESULTS", "").split(os.pathsep) if p]

pytestmark = pytest.mark.skipif(
    not PATHS, reason="no real lab results given (set NETCONFORM_REAL_RESULTS to results.json paths)"
)


@pytest.fixture(params=PATHS or ["none"], ids=lambda p: Path(p).parent.name or p)
def real(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load_results(request.param)


def test_real_results_follow_the_schema_and_key_rule(real: dict[str, Any]) -> None:
    errors = [
        f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(real)
    ]
    assert not errors, errors[:5]
    wrong = [c["key"] for c in real["cells"] if c["key"] != make_key(c)]
    assert not wrong, f"{len(wrong)} keys differ from fm[0]|subject|target|layer|protocol, e.g. {wrong[:3]}"


def test_real_results_render_every_cell(real: dict[str, Any]) -> None:
    page = render_matrix(real)
    blob = page.split(f'id="{DATA_ELEMENT_ID}">', 1)[1].split("</script>", 1)[0]
    assert len(json.loads(blob)["cells"]) == len(real["cells"])
    assert len(ET.fromstring(render_junit(real)).findall("testsuite/testcase")) == len(real["cells"])
    assert max(len(line) for line in render_terminal(real).splitlines()) <= 100
    assert compute_verdict(real).text
