"""The built-in catalogue: one module per area, each a list of `Check` values (importing registers them).

>>> from netconform.checks.catalogue import CATALOGUE
>>> "pod-pod-tcp" in {c.name for c in CATALOGUE}
True
"""

from __future__ import annotations

from netconform.checks.api import Check, register
from netconform.checks.catalogue import (
    dataplane,
    dns,
    egress,
    ingress,
    load_balancer,
    nodes,
    pods,
    policy,
    services,
)

CATALOGUE: tuple[Check, ...] = (
    *pods.CHECKS,
    *nodes.CHECKS,
    *services.CHECKS,
    *load_balancer.CHECKS,
    *ingress.CHECKS,
    *egress.CHECKS,
    *dns.CHECKS,
    *dataplane.CHECKS,
    *policy.CHECKS,
)
register(*CATALOGUE)
