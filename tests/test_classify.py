"""classify(): FAILURE_MODES.md FM-01..FM-04 as a table, plus totality and determinism as properties."""

from __future__ import annotations

import itertools

import dns.message
import dns.rcode
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netconform.agent.probe_agent import ERROR_CODES, KINDS
from netconform.model.classify import OK, Classification, classify, dns_outcome

RCODES = [None, *(dns.rcode.to_text(r) for r in dns.rcode.Rcode)]
LAYERS = {None, "L2", "L3", "L4", "L7", "DNS"}


@pytest.mark.parametrize(
    ("error", "kind", "extra", "layer", "fm"),
    [
        # FM-01: HTTP status and TLS errors prove L4 works: L7
        ("http-status", "http", {"http_status": 503}, "L7", "FM-01"),
        ("http-status", "http", {"http_status": 404}, "L7", "FM-01"),
        (None, "http", {"http_status": 500}, "L7", "FM-01"),
        ("tls", "http", {}, "L7", "FM-01"),
        ("protocol", "tcp", {}, "L7", "FM-01"),
        # FM-02: reset (and refused, a RST to the SYN) are L4
        ("reset", "tcp", {}, "L4", "FM-02"),
        ("reset", "http", {}, "L4", "FM-02"),
        ("refused", "tcp", {}, "L4", "FM-02"),
        ("refused", "udp", {}, "L4", "FM-02"),
        # FM-03: no route / time-out are L3 (or L2)
        ("timeout", "tcp", {}, "L3", "FM-03"),
        ("timeout", "icmp", {}, "L3", "FM-03"),
        ("host-unreachable", "tcp", {}, "L3", "FM-03"),
        ("net-unreachable", "icmp", {}, "L3", "FM-03"),
        ("timeout", "arp", {}, "L2", "FM-16"),
        # FM-04: DNS no answer = connectivity; NXDOMAIN = no such name; SERVFAIL/REFUSED = server failed
        ("timeout", "dns", {}, "L3", "FM-04"),
        ("refused", "dns", {}, "L4", "FM-04"),
        ("name-not-found", "dns", {"dns_rcode": "NXDOMAIN"}, "DNS", "FM-04"),
        (None, "dns", {"dns_rcode": "NXDOMAIN"}, "DNS", "FM-04"),
        ("resolver-failure", "dns", {"dns_rcode": "SERVFAIL"}, "DNS", "FM-04"),
        (None, "dns", {"dns_rcode": "refused"}, "DNS", "FM-04"),
        ("name-not-found", "resolve", {}, "DNS", "FM-04"),
        ("resolver-failure", "resolve", {}, "DNS", "FM-04"),
        ("timeout", "resolve", {}, "L3", "FM-04"),
        ("protocol", "dns", {}, "DNS", "FM-04"),
        # not network verdicts
        (None, "tcp", {}, None, ""),
        (None, "dns", {"dns_rcode": "NOERROR"}, None, ""),
        ("bad-plan", "tcp", {}, None, ""),
        ("permission", "icmp", {}, None, ""),
        ("other", "read", {}, None, ""),
        ("no-such-code", "tcp", {}, None, ""),
    ],
)
def test_failure_mode_table(
    error: str | None, kind: str, extra: dict[str, object], layer: str, fm: str
) -> None:
    verdict = classify(error, kind, **extra)  # type: ignore[arg-type]
    assert (verdict.layer, verdict.fm) == (layer, fm), verdict


def test_meanings_say_what_was_seen() -> None:
    assert "503" in classify("http-status", "http", http_status=503).meaning
    assert "L4 works" in classify("tls", "http").meaning
    assert "NXDOMAIN" in classify(None, "dns", dns_rcode="NXDOMAIN").meaning
    assert "SERVFAIL" in classify("resolver-failure", "dns", dns_rcode="SERVFAIL").meaning
    assert "DNS server" in classify("timeout", "dns").meaning
    assert "UDP" in classify("refused", "udp").meaning
    assert classify(None, "tcp") == OK


@given(
    error=st.sampled_from([None, *ERROR_CODES]) | st.text(max_size=12),
    kind=st.sampled_from(list(KINDS)) | st.text(max_size=8),
    rcode=st.sampled_from(RCODES) | st.text(max_size=10),
    status=st.none() | st.integers(-1, 1000),
)
def test_total_and_deterministic(error: str | None, kind: str, rcode: str | None, status: int | None) -> None:
    first = classify(error, kind, dns_rcode=rcode, http_status=status)
    again = classify(error, kind, dns_rcode=rcode, http_status=status)
    assert isinstance(first, Classification) and first == again
    assert first.layer in LAYERS
    assert first.meaning and "\n" not in first.meaning and len(first.meaning) <= 120
    assert (first.fm == "") == (first.layer is None)
    assert first.fm == "" or first.fm.startswith("FM-")


def test_every_code_kind_rcode_combination() -> None:
    """Exhaustive over the real vocabulary: every combination gets a layer rule, never an exception."""
    for error, kind, rcode in itertools.product([None, *ERROR_CODES], KINDS, RCODES):
        assert_layer_rule(error, kind, rcode)


def assert_layer_rule(error: str | None, kind: str, rcode: str | None) -> None:
    verdict = classify(error, kind, dns_rcode=rcode)
    if rcode not in (None, "NOERROR"):
        assert verdict.layer == "DNS"  # the server answered: whatever else, it is a DNS finding
    elif error in ("timeout", "host-unreachable", "net-unreachable"):
        assert verdict.layer in ("L2", "L3")
    elif error in ("refused", "reset"):
        assert verdict.layer == "L4"
    elif error in ("tls", "http-status") or (error == "protocol" and kind != "dns"):
        assert verdict.layer == "L7"
    elif error in ("name-not-found", "resolver-failure") or error == "protocol":
        assert verdict.layer == "DNS"
    else:
        assert verdict.layer is None


def _answer(rcode: dns.rcode.Rcode) -> bytes:
    query = dns.message.make_query("x.test", "A")
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return bytes(response.to_wire())


@pytest.mark.parametrize(
    ("wire", "error", "expected"),
    [
        (_answer(dns.rcode.NOERROR), None, (None, "NOERROR")),
        (_answer(dns.rcode.NXDOMAIN), None, ("name-not-found", "NXDOMAIN")),
        (_answer(dns.rcode.SERVFAIL), None, ("resolver-failure", "SERVFAIL")),
        (_answer(dns.rcode.REFUSED), None, ("resolver-failure", "REFUSED")),
        (_answer(dns.rcode.FORMERR), None, ("resolver-failure", "FORMERR")),
        (None, "timeout", ("timeout", None)),
        (None, "refused", ("refused", None)),
        (None, None, ("protocol", None)),
        (b"\x00\x01garbage", None, ("protocol", None)),
    ],
    ids=[
        "noerror",
        "nxdomain",
        "servfail",
        "refused",
        "formerr",
        "timeout",
        "conn-refused",
        "nothing",
        "garbage",
    ],
)
def test_dns_outcome(wire: bytes | None, error: str | None, expected: tuple[str | None, str | None]) -> None:
    assert dns_outcome(wire, error) == expected


@given(st.binary(max_size=64))
def test_dns_outcome_total_on_any_bytes(wire: bytes) -> None:
    code, rcode = dns_outcome(wire, None)
    assert code in (None, "name-not-found", "resolver-failure", "protocol")
    classify(code, "dns", dns_rcode=rcode)
