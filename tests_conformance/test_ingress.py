"""The L7 ingress path: HTTP through each IngressClass's controller with the kit's per-run host.

From the outside client (north-south), from every node's pods and from every node: the proxy must route
the host to one of the echo pods. A proxy's own 404 is routing (FM-34), its 503/502/504 are its backends
(FM-35), no L4 answer is the ingress address itself (FM-36).

With --ingress-tls the same path over HTTPS: SNI = the kit's host, the certificate verified against a CA
made for the run (a failed handshake: the controller does not serve the host's certificate, FM-34).
With --gateway NS/NAME the same checks through a Gateway API Gateway and the kit's HTTPRoute on it.
"""

from netconform.checks import check
from netconform.checks.catalogue import ingress
from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture


@check(ingress.INGRESS_HTTP)
def test_ingress_http(cell: Cell, conformance: ConformanceFixture) -> None:
    """HTTP with the kit's host through the ingress reaches an echo pod."""
    conformance.expect(cell)


@check(ingress.INGRESS_HTTPS)
def test_ingress_https(cell: Cell, conformance: ConformanceFixture) -> None:
    """HTTPS with SNI through the ingress presents the kit's certificate and reaches an echo pod."""
    conformance.expect(cell)


@check(ingress.GATEWAY_HTTP)
def test_gateway_http(cell: Cell, conformance: ConformanceFixture) -> None:
    """HTTP with the kit's host through the Gateway (the kit's HTTPRoute) reaches an echo pod."""
    conformance.expect(cell)
