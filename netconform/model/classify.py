"""Which layer a failed probe points at, by the catalogue's rules FM-01..FM-04 (docs/failure-modes.md).

The agent reports stable error codes (docs/agent.md); this module turns a code, the check kind and
what the orchestrator parsed (a DNS rcode with dnspython, an HTTP status) into a layer and a one-line
meaning that the report shows next to every failed cell. Pure, total and deterministic.

    >>> classify("reset", "tcp").layer
    'L4'
    >>> dns_outcome(None, "timeout")
    ('timeout', None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import dns.exception
import dns.message
import dns.rcode

from netconform.agent.probe_agent import ERROR_CODES

Layer = Literal["L2", "L3", "L4", "L7", "DNS"]

# codes that say "could not talk to the server at all": for a DNS query that is FM-04's "no answer"
_CONNECTIVITY = frozenset({"timeout", "refused", "reset", "host-unreachable", "net-unreachable"})
_UDP_KINDS = frozenset({"udp", "dns", "mtu"})


@dataclass(frozen=True)
class Classification:
    """layer None means "not a network verdict" (success, or a probe problem); fm is "" then."""

    layer: Layer | None
    meaning: str
    fm: str


OK = Classification(None, "no error", "")


def classify(
    error: str | None, kind: str, *, dns_rcode: str | None = None, http_status: int | None = None
) -> Classification:
    """Layer and meaning for one failed (or successful) check; any input gives an answer."""
    rcode = " ".join(dns_rcode.upper().split())[:20] if dns_rcode else None  # one line, short
    rcode = rcode or None
    if rcode is not None and rcode != "NOERROR":
        return _dns_rcode(rcode)
    if error is None:
        if http_status is not None and http_status >= 400:
            return classify("http-status", kind, http_status=http_status)
        return OK
    if error == "http-status":
        status = f"HTTP {http_status}" if http_status is not None else "an HTTP error status"
        return Classification("L7", f"the server answered {status}: L4 works, the problem is L7", "FM-01")
    if error == "tls":
        return Classification("L7", "the TLS handshake failed: L4 works, the problem is L7 (TLS)", "FM-01")
    if error == "protocol":
        if kind == "dns":
            return Classification("DNS", "the DNS server sent an answer that is not a valid reply", "FM-04")
        return Classification("L7", "connected, but the answer is not what the protocol expects: L7", "FM-01")
    if error in ("name-not-found", "resolver-failure"):
        return _resolver(error)
    if error in _CONNECTIVITY:
        verdict = _connectivity(error, kind)
        if kind in ("dns", "resolve"):
            return Classification(verdict.layer, "no answer from the DNS server: " + verdict.meaning, "FM-04")
        return verdict
    if error == "permission":
        return Classification(
            None, "the probe was not allowed to send (EPERM/EACCES): local policy or capability", ""
        )
    if error == "bad-plan":
        return Classification(None, "the probe plan was invalid: a suite bug, not a network finding", "")
    if error == "other":
        return Classification(None, "unexpected probe error: see its errno and message", "")
    return Classification(None, f"unknown error code {error!r}", "")


def _dns_rcode(rcode: str) -> Classification:
    if rcode == "NXDOMAIN":
        return Classification("DNS", "the DNS server answered NXDOMAIN: the name does not exist", "FM-04")
    if rcode in ("SERVFAIL", "REFUSED"):
        return Classification(
            "DNS", f"the DNS server answered {rcode}: it works but could not resolve the name", "FM-04"
        )
    return Classification("DNS", f"the DNS server answered {rcode}: it works but rejected the query", "FM-04")


def _resolver(error: str) -> Classification:
    if error == "name-not-found":
        return Classification("DNS", "the resolver says the name does not exist (NXDOMAIN)", "FM-04")
    return Classification(
        "DNS", "the resolver failed: servers answered SERVFAIL/REFUSED or none could be reached", "FM-04"
    )


def _connectivity(error: str, kind: str) -> Classification:
    if error == "reset":
        return Classification(
            "L4", "connection reset by peer: L4, often conntrack/NAT state that does not match", "FM-02"
        )
    if error == "refused":
        if kind in _UDP_KINDS:
            return Classification(
                "L4", "port unreachable: nothing listens on the UDP port, or a firewall rejects it", "FM-02"
            )
        return Classification(
            "L4", "connection refused: nothing listens on the port, or a firewall rejects it", "FM-02"
        )
    if error == "timeout" and kind == "arp":
        return Classification("L2", "no ARP reply: the address is not present on this L2 segment", "FM-16")
    if error == "timeout":
        return Classification(
            "L3", "no answer in time: the packet is dropped or not routed (L3, or L2)", "FM-03"
        )
    if error == "host-unreachable":
        return Classification(
            "L3", "no route to host: ICMP host unreachable or no ARP answer (L3, or L2)", "FM-03"
        )
    return Classification("L3", "network unreachable: no route to the destination network (L3)", "FM-03")


def dns_outcome(answer_wire: bytes | None, error: str | None) -> tuple[str | None, str | None]:
    """(error code, rcode text) of a raw DNS exchange: the agent's error wins, else the parsed rcode.

    NOERROR -> (None, "NOERROR"); NXDOMAIN -> ("name-not-found", ...); any other rcode (SERVFAIL,
    REFUSED, ...) -> ("resolver-failure", ...); no answer -> (agent error, None); garbage -> "protocol".
    """
    if error is not None:
        return error, None
    if answer_wire is None:
        return "protocol", None
    try:
        message = dns.message.from_wire(answer_wire)
    except (dns.exception.DNSException, ValueError):
        return "protocol", None
    rcode = dns.rcode.to_text(message.rcode())
    if rcode == "NOERROR":
        return None, rcode
    if rcode == "NXDOMAIN":
        return "name-not-found", rcode
    return "resolver-failure", rcode


__all__ = ["ERROR_CODES", "OK", "Classification", "Layer", "classify", "dns_outcome"]
