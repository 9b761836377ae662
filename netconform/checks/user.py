"""Users' own checks: targets anywhere (`host:port`, a URL, a Service, a DNS name) probed from the kit's
pods, the nodes or the outside client, expected `reachable` or `blocked`.

A user check's cells have the target `check:NAME`, so each check is its own column of the matrix and its
own JUnit cases; the address it probes is in the cell's evidence.

>>> from netconform.checks.api import KIT_PODS, Check
>>> from netconform.checks.expectations import blocked
>>> c = Check.to("no-metadata", KIT_PODS, Endpoint("169.254.169.254", 80), tcp(timeout=1.0), blocked)
>>> c.name, c.layer, c.expect.name, c.targets.describe()
('no-metadata', 'L4', 'blocked', '169.254.169.254:80')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from netconform.checks import probes as P
from netconform.checks.context import Context, Skip
from netconform.checks.probes import Probe
from netconform.model.cell import Cell
from netconform.model.topology import Topology

LAYER_OF = {"tcp": "L4", "udp": "L4", "http": "L7", "icmp": "L3", "dns": "DNS"}


@dataclass(frozen=True)
class Address:
    """Where a user check sends: a host (name or IP) and a port, or a URL."""

    host: str
    port: int | None = None
    url: str | None = None


class UserTarget:
    """A target of a user check: one `check:NAME` column whatever the subject."""

    head = "check"

    def refs(self, topo: Topology, subject: str) -> list[str]:  # the check names the column
        return []

    def matches(self, subject: str, target: str) -> bool:
        return target.startswith("check:")

    def address(self, ctx: Context) -> Address:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Endpoint(UserTarget):
    """`host:port` (a name is resolved by the subject's own resolver, as an application would)."""

    host: str
    port: int

    def address(self, ctx: Context) -> Address:
        return Address(self.host, self.port, f"http://{_bracket(self.host)}:{self.port}/")

    def describe(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Url(UserTarget):
    """An http(s) URL."""

    url: str

    def address(self, ctx: Context) -> Address:
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return Address(parts.hostname or "", port, self.url)

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class ServiceRef(UserTarget):
    """A Service `namespace/name:port`, reached by its cluster DNS name."""

    namespace: str
    name: str
    port: int

    def address(self, ctx: Context) -> Address:
        host = f"{self.name}.{self.namespace}.svc.{ctx.topo.cluster_domain}"
        return Address(host, self.port, f"http://{host}:{self.port}/")

    def describe(self) -> str:
        return f"Service {self.namespace}/{self.name}:{self.port}"


@dataclass(frozen=True)
class DnsName(UserTarget):
    """A DNS name, looked up with the subject's system resolver (what applications see)."""

    name: str

    def address(self, ctx: Context) -> Address:
        return Address(self.name)

    def describe(self) -> str:
        return f"DNS name {self.name}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _user_target(cell: Cell) -> UserTarget:
    from netconform.checks.api import REGISTRY

    check = REGISTRY.get(cell.target.split(":", 1)[1])
    assert isinstance(check.targets, UserTarget)
    return check.targets


@dataclass(frozen=True)
class Tuning:
    """A user check's own timeout (seconds) and attempts; None: the run's --probe-timeout / --attempts."""

    timeout: float | None = None
    attempts: int | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.attempts is not None:
            out["attempts"] = self.attempts
        return out


def user_plan(kind: str, tuning: Tuning, path: str = "/") -> Any:
    """The plan of a user probe: the check's target address, probed with `kind` from the cell's subject."""

    def plan(cell: Cell, ctx: Context) -> list[Probe]:
        subject = ctx.sender(cell.subject)
        target = _user_target(cell)
        addr = target.address(ctx)
        extra = tuning.fields()
        if kind == "dns":
            return [Probe.make(subject, kind="resolve", name=addr.host, **extra)]
        if kind == "icmp":
            return [Probe.make(subject, kind="icmp", host=addr.host, count=1, **extra)]
        if kind == "http":
            url = addr.url if isinstance(target, Url) else f"{(addr.url or '').rstrip('/')}{path}"
            return [Probe.make(subject, kind="http", url=url, **extra)]
        if addr.port is None:
            raise Skip(f"{target.describe()} has no port for a {kind} probe")
        if kind == "udp":
            return [
                Probe.make(
                    subject, kind="udp", host=addr.host, port=addr.port, payload_b64=P.b64(b"x"), **extra
                )
            ]
        return [Probe.make(subject, kind="tcp", host=addr.host, port=addr.port, **extra)]

    return plan


def _spec(kind: str, timeout: float | None, attempts: int | None, path: str = "/") -> Any:
    from netconform.checks.api import ProbeSpec

    tuning = Tuning(timeout, attempts)
    return ProbeSpec(kind, user_plan(kind, tuning, path), about=f"{kind} to the check's target")


def tcp(timeout: float | None = None, attempts: int | None = None) -> Any:
    """A TCP connect (no payload): `reachable` when it is accepted."""
    return _spec("tcp", timeout, attempts)


def udp(timeout: float | None = None, attempts: int | None = None) -> Any:
    """A UDP datagram that must be answered (an echo or a protocol that replies to one byte)."""
    return _spec("udp", timeout, attempts)


def http(path: str = "/", timeout: float | None = None, attempts: int | None = None) -> Any:
    """An HTTP GET; any status below 400 passes (an error status fails at L7)."""
    return _spec("http", timeout, attempts, path)


def icmp(timeout: float | None = None, attempts: int | None = None) -> Any:
    """One ICMP echo request per attempt."""
    return _spec("icmp", timeout, attempts)


def dns(timeout: float | None = None, attempts: int | None = None) -> Any:
    """A lookup with the subject's system resolver (getaddrinfo)."""
    return _spec("dns", timeout, attempts)
