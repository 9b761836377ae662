"""Turning agent results into verdicts: attempts into passed/flaky/failed/error, failures classified.

>>> attempt_outcome({"attempts": [{"ok": True}, {"ok": False}]})
'flaky'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netconform.checks import probes as P
from netconform.checks.probes import Probe, ProbeResult
from netconform.model.classify import classify
from netconform.model.verdict import Verdict

Results = Mapping[Probe, ProbeResult]


def attempt_outcome(result: ProbeResult) -> str:
    """passed (every attempt ok), flaky (some ok), failed (none ok), error (could not run)."""
    if result.get("exec_error"):
        return "error"
    attempts = result.get("attempts") or [result]
    oks = [bool(a.get("ok")) for a in attempts]
    if all(oks):
        return "passed"
    return "flaky" if any(oks) else "failed"


def _dns_rcode(result: ProbeResult) -> str | None:
    parsed = P.parse_dns(result.get("answer_b64"))
    return parsed.rcode if parsed else None


def failure(
    probe: Probe,
    result: ProbeResult,
    reason: str | None = None,
    *,
    error: str | None = None,
    layer: str | None = None,
    meaning: str | None = None,
    fm: str | None = None,
) -> Verdict:
    """A failed verdict classified by the catalogue's rules (FM-01..04) unless the recipe knows better."""
    code = error or result.get("error") or "other"
    cls = classify(code, probe.kind, dns_rcode=_dns_rcode(result), http_status=result.get("status"))
    attempts = result.get("attempts") or []
    msg = result.get("message") or code
    text = reason or f"{probe.describe()}: {msg} ({len(attempts)} attempt{'s' if len(attempts) != 1 else ''})"
    return Verdict(
        outcome="error" if result.get("exec_error") else "failed",
        reason=text,
        error=code,
        classified_layer=layer or cls.layer,
        meaning=meaning or cls.meaning,
        classified_fm=fm or cls.fm,
    )


def evidence(probes: list[Probe], results: Results) -> list[dict[str, Any]]:
    out = []
    for probe in probes:
        item: dict[str, Any] = {"id": probe.id, "subject": probe.subject, **probe.fields}
        item.pop("query_b64", None)
        item.pop("send_b64", None)
        item.pop("expect_b64", None)
        item.pop("payload_b64", None)
        result = results.get(probe)
        if result is not None:
            item.update(P.result_summary(result))
        out.append(item)
    return out


def all_pass(probes: list[Probe], results: Results, what: str) -> Verdict:
    """The default rule: every probe passes; any failure fails the cell, intermittent ones are flaky."""
    flaky: list[str] = []
    for probe in probes:
        result = results.get(probe)
        if result is None:
            return Verdict("error", f"{probe.describe()}: no result (the batch did not run)", error="other")
        outcome = attempt_outcome(result)
        if outcome in ("failed", "error"):
            return failure(probe, result)
        if outcome == "flaky":
            ok = sum(1 for a in result.get("attempts", []) if a.get("ok"))
            flaky.append(f"{probe.describe()}: {ok}/{len(result.get('attempts', []))} attempts passed")
    if flaky:
        return Verdict("flaky", "intermittent: " + "; ".join(flaky))
    return Verdict("passed", f"{what}: ok")
