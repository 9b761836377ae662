"""Example: your own checks in Python, with the suite's check API (`docs/checks.md`).

    netconform run --lab NAME -- tests/user_checks/my_checks.py

Each check is a value (who sends, to what, which probe, what must happen); `@check` parametrizes the
test over its cells, one per subject, shown as the column `check:NAME` of the matrix.
"""

from netconform.checks import KIT_PODS, Check, Endpoint, Url, blocked, check, http, reachable, tcp
from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture

# the lab's outside echo (203.0.113.10, a documentation address inside the lab's own namespaces)
OUTSIDE_WEB = Check.to(
    "py-outside-web", KIT_PODS, Url("http://203.0.113.10/"), http(), reachable, fm=("FM-12",)
)
# nothing in the outside world listens on 203.0.113.10:23: the connection is refused, i.e. blocked
NO_TELNET = Check.to("py-no-telnet", KIT_PODS, Endpoint("203.0.113.10", 23), tcp(timeout=1.0), blocked)


@check(OUTSIDE_WEB)
def test_my_pods_reach_the_outside_web(cell: Cell, conformance: ConformanceFixture) -> None:
    """Every node's pods get an HTTP answer from the outside echo."""
    conformance.expect(cell)


@check(NO_TELNET)
def test_my_pods_cannot_telnet_out(cell: Cell, conformance: ConformanceFixture) -> None:
    """Telnet to the outside is refused or dropped, never answered."""
    conformance.expect(cell)
