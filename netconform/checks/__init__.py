"""Checks: what is measured and what passes — the catalogue, expectations, parsers — and the API users
write their own checks with.

>>> from netconform.checks import Check, KIT_PODS, Endpoint, tcp, reachable
>>> db = Check.to("db-reachable", KIT_PODS, Endpoint("db.prod.svc", 5432), tcp(), reachable)
>>> db.layer, db.probe.kind, db.user
('L4', 'tcp', True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from netconform.checks.api import (
    CLUSTER,
    HOST_PROBES,
    KIT_PODS,
    OUTSIDE_CLIENT,
    REGISTRY,
    Check,
    Expectation,
    ProbeSpec,
    Subjects,
    register,
)
from netconform.checks.expectations import blocked, reachable
from netconform.checks.user import DnsName, Endpoint, ServiceRef, Url, dns, http, icmp, tcp, udp

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "CLUSTER", "HOST_PROBES", "KIT_PODS", "OUTSIDE_CLIENT", "REGISTRY", "Check", "DnsName", "Endpoint",
    "Expectation", "ProbeSpec", "ServiceRef", "Subjects", "Url", "blocked", "check", "dns", "http", "icmp",
    "reachable", "register", "tcp", "udp",
]  # fmt: skip


def check(value: Check) -> Callable[[F], F]:
    """Parametrize a test over a check's cells and carry its FM ids (registers the check).

    >>> from netconform.checks.catalogue.pods import POD_POD_TCP
    >>> @check(POD_POD_TCP)
    ... def test_pod_to_pod_tcp(cell, conformance):
    ...     conformance.expect(cell)
    >>> [m.name for m in test_pod_to_pod_tcp.pytestmark]
    ['fm', 'check']
    """
    register(value)

    def mark(fn: F) -> F:
        marked: F = pytest.mark.check(value)(pytest.mark.fm(*value.fm)(fn))
        return marked

    return mark
