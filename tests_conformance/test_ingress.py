"""The L7 ingress path: HTTP through each IngressClass's controller with the kit's per-run host.

From the outside client (north-south), from every node's pods and from every node: the proxy must route
the host to one of the echo pods. A proxy's own 404 is routing (FM-34), its 503/502/504 are its backends
(FM-35), no L4 answer is the ingress address itself (FM-36).
"""

import pytest

from netconform.scope import Cell


@pytest.mark.fm("FM-34", "FM-35", "FM-36")
@pytest.mark.scope("ingress-http")
def test_ingress_http(cell: Cell, conformance) -> None:
    """HTTP with the kit's host through the ingress reaches an echo pod."""
    conformance.expect(cell)
