"""Your own checks from YAML (`netconform run --checks checks.yaml`): one matrix column per check.

Each check's cells are `SUBJECT->check:NAME/LAYER-PROTOCOL`; the address it probes and the expectation
(`reachable` or `blocked`) are in the verdict. See docs/checks.md for the file format.
"""

import pytest

from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture


@pytest.mark.user_checks
def test_user_check(cell: Cell, conformance: ConformanceFixture) -> None:
    """A check from a --checks file passes as its expectation says."""
    conformance.expect(cell)
