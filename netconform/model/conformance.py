"""What a conformance test receives as its `conformance` fixture, as a type the tests can import.

The fixture itself (`netconform.fixtures.plugin.Conformance`) lives in the pytest plugin, a layer that
the conformance tests and users' check modules may not import; this protocol is its shape::

    @check(pods.POD_POD_TCP)
    def test_pod_to_pod_tcp(cell: Cell, conformance: ConformanceFixture) -> None:
        conformance.expect(cell)
"""

from __future__ import annotations

from typing import Protocol

from netconform.model.cell import Cell
from netconform.model.verdict import Verdict


class ConformanceFixture(Protocol):
    def verdict(self, cell: Cell) -> Verdict:
        """The cell's verdict from this run (fails the test when the cell was not planned)."""
        ...

    def expect(self, cell: Cell) -> Verdict:
        """Pass, skip or fail the calling test as the cell's verdict says; returns the verdict."""
        ...
