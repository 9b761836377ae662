"""L7 ingress: HTTP(S) with the kit's host through each IngressClass's controller and each Gateway asked
for, from outside, from every node's pods and hosts (FM-34/35/36)."""

from __future__ import annotations

from netconform.checks import expectations as E
from netconform.checks import plans
from netconform.checks.api import HOST_PROBES, KIT_PODS, OUTSIDE_CLIENT, Check, L7Entries, ProbeSpec

FROM_EVERYWHERE = (OUTSIDE_CLIENT, KIT_PODS, HOST_PROBES)
NO_INGRESS = "no IngressClass in this cluster: no ingress controller to send traffic through"

INGRESS_HTTP = Check(
    "ingress-http",
    fm=("FM-34", "FM-35", "FM-36"),
    layer="L7",
    subjects=FROM_EVERYWHERE,
    targets=L7Entries("ingress"),
    probe=ProbeSpec("http", plans.ingress_target),
    expect=E.ingress_reaches_echo,
    needs=NO_INGRESS,
    about="HTTP with the kit's host through the ingress reaches an echo pod.",
)
INGRESS_HTTPS = Check(
    "ingress-https",
    fm=("FM-34", "FM-35", "FM-36"),
    layer="L7",
    subjects=FROM_EVERYWHERE,
    targets=L7Entries("ingress", tls=True),
    probe=ProbeSpec("https", plans.ingress_target),
    expect=E.ingress_reaches_echo,
    needs="HTTPS through the ingress is off (pass --ingress-tls), or no IngressClass in this cluster",
    about="HTTPS with SNI through the ingress presents the kit's certificate and reaches an echo pod.",
)
GATEWAY_HTTP = Check(
    "gateway-http",
    fm=("FM-34", "FM-35", "FM-36"),
    layer="L7",
    subjects=FROM_EVERYWHERE,
    targets=L7Entries("gateway"),
    probe=ProbeSpec("http", plans.ingress_target),
    expect=E.ingress_reaches_echo,
    needs="no Gateway asked for: pass --gateway NAMESPACE/NAME",
    about="HTTP with the kit's host through the Gateway (the kit's HTTPRoute) reaches an echo pod.",
)

CHECKS = (INGRESS_HTTP, INGRESS_HTTPS, GATEWAY_HTTP)
