"""Baseline comparison: ``netconform diff BEFORE.json AFTER.json`` and ``netconform run --baseline``.

Cells are matched by their stable key (``fm|subject|target|layer|protocol``), never by pytest node ids or
pod names, so a run after an upgrade lines up with the one before it. Every key gets one status:

- ``regressed``: worked before (passed, or flaky and now failing) and is worse now;
- ``fixed``: was failing or flaky, passes now;
- ``still-failing``: failing or flaky before and now;
- ``new``: not run before (absent or skipped) and run now;
- ``gone``: run before, absent now;
- ``now-skipped``: run before, skipped now (coverage lost, e.g. a controller disappeared);
- ``unchanged``: everything else (passed both times, skipped both times).

The gate (``--fail-on regressions``) fails on regressions *and* on new cells that fail, since neither is
a known-broken path; ``--fail-on failures`` fails on any failing cell, like a plain run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from netconform.report.results import FAILING, ResultsError, canonical_cells, key_of, load_results
from netconform.report.verdict import verdict_data

STATUSES = ("regressed", "fixed", "still-failing", "new", "gone", "now-skipped", "unchanged")
FAIL_ON = ("regressions", "failures")
# how broken an outcome is; skipped is "not measured" and stays out of the ordering
_RANK = {"passed": 0, "flaky": 1, "failed": 2, "error": 2}


@dataclass(frozen=True)
class Change:
    key: str
    status: str
    before: str | None  # outcome before, None when the key is new
    after: str | None  # outcome now, None when gone
    cell: Mapping[str, Any]  # the cell now (or before, when gone)

    @property
    def blocks_gate(self) -> bool:
        """Fails ``--fail-on regressions``: a regression, or a new cell that fails."""
        return self.status == "regressed" or (self.status == "new" and self.after in FAILING)


@dataclass(frozen=True)
class Comparison:
    changes: tuple[Change, ...]
    before_run: Mapping[str, Any] = field(default_factory=dict)
    after_run: Mapping[str, Any] = field(default_factory=dict)

    def by_status(self, status: str) -> list[Change]:
        return [c for c in self.changes if c.status == status]

    def counts(self) -> dict[str, int]:
        return {s: len(self.by_status(s)) for s in STATUSES}

    @property
    def gate_failures(self) -> list[Change]:
        return [c for c in self.changes if c.blocks_gate]

    def status_of(self) -> dict[str, str]:
        return {c.key: c.status for c in self.changes}


def classify_change(before: str | None, after: str | None) -> str:
    """The status of one key from its outcome before and now (None = absent)."""
    if after is None:
        return "gone" if before not in (None, "skipped") else "unchanged"
    if before is None or before == "skipped":
        return "unchanged" if after == "skipped" else "new"
    if after == "skipped":
        return "now-skipped"
    was, now = _RANK[before], _RANK[after]
    if now > was:
        return "regressed"
    if now == 0 and was > 0:
        return "fixed"
    if now > 0:
        return "still-failing"
    return "unchanged"


def compare(before: Mapping[str, Any], after: Mapping[str, Any]) -> Comparison:
    """Match two results documents cell by cell (by key) and give every key its status."""
    old = {key_of(c): c for c in canonical_cells(before)}
    new = {key_of(c): c for c in canonical_cells(after)}
    changes = []
    for key in [*new, *(k for k in old if k not in new)]:
        b, a = old.get(key), new.get(key)
        status = classify_change(b["outcome"] if b else None, a["outcome"] if a else None)
        cell = a if a is not None else b
        assert cell is not None
        changes.append(Change(key, status, b["outcome"] if b else None, a["outcome"] if a else None, cell))
    return Comparison(tuple(changes), before.get("run", {}), after.get("run", {}))


def annotate(results: dict[str, Any], comparison: Comparison, baseline_name: str = "") -> dict[str, Any]:
    """Add each cell's ``baseline`` status and ``run.baseline`` counts to a results dict (in place)."""
    status = comparison.status_of()
    for cell in results.get("cells", []):
        cell["baseline"] = status.get(key_of(cell), "new")
    results.setdefault("run", {})["baseline"] = {
        "file": baseline_name,
        "run": comparison.before_run.get("id"),
        "counts": comparison.counts(),
        "gone": [c.key for c in comparison.by_status("gone")],
    }
    return results


def gate_exit_code(after: Mapping[str, Any], comparison: Comparison | None, fail_on: str) -> int:
    """Exit status of the CI gate: 1 when ``fail_on`` finds something, else 0.

    ``regressions`` needs a comparison (a baseline); ``failures`` fails on any failed/error cell.
    """
    if fail_on not in FAIL_ON:
        raise ValueError(f"--fail-on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
    if fail_on == "regressions":
        if comparison is None:
            raise ValueError("--fail-on regressions needs --baseline")
        return 1 if comparison.gate_failures else 0
    return 1 if any(c.get("outcome") in FAILING for c in after.get("cells", [])) else 0


_TITLES = {
    "regressed": "Regressed",
    "new": "New",
    "still-failing": "Still failing",
    "fixed": "Fixed",
    "gone": "Gone",
    "now-skipped": "Now skipped (coverage lost)",
}


def _line(change: Change) -> tuple[str, str, str]:
    cell = change.cell
    path = f"{cell['subject']} -> {cell['target']} {cell['layer']} {cell['protocol']}"
    moved = f"{change.before or '-'} -> {change.after or '-'}"
    reason = str(cell.get("reason") or "") if change.after not in ("passed", None) else ""
    return path, moved, f"[{', '.join(cell['fm'])}] {reason}".strip()


def format_text(comparison: Comparison, limit: int = 200) -> str:
    counts = comparison.counts()
    head = "baseline {} -> run {}: ".format(
        comparison.before_run.get("id", "?"), comparison.after_run.get("id", "?")
    ) + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines = [head]
    for status in ("regressed", "new", "still-failing", "fixed", "gone", "now-skipped"):
        changes = comparison.by_status(status)
        if status == "new":
            changes = [c for c in changes if c.after in FAILING or c.after == "flaky"]
        if not changes:
            continue
        lines += ["", f"{_TITLES[status]} ({len(changes)}):"]
        for change in changes[:limit]:
            path, moved, note = _line(change)
            lines.append(f"  {path}  ({moved})  {note}".rstrip())
        if len(changes) > limit:
            lines.append(f"  ... and {len(changes) - limit} more")
    lines += [
        "",
        "gate: "
        + ("FAIL" if comparison.gate_failures else "pass")
        + f" ({len(comparison.gate_failures)} regressed or new failing cells)",
    ]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_markdown(
    comparison: Comparison, limit: int = 200, verdict: Mapping[str, Any] | None = None
) -> str:
    """A PR comment: headline with the gate result, the run's verdict (scopes, contrasts, suspects, from
    its stored data), a count table, one table per non-empty status."""
    counts = comparison.counts()
    gate = "❌ regressions" if comparison.gate_failures else "✅ no regressions"
    lines = [
        f"### netconform: {gate}",
        "",
        f"Baseline `{comparison.before_run.get('id', '?')}` → run `{comparison.after_run.get('id', '?')}`",
        "",
        "| status | cells |",
        "|---|---:|",
        *(f"| {s} | {n} |" for s, n in counts.items()),
    ]
    if verdict:
        lines += ["", f"**Verdict ({_md(str(verdict.get('status')))}).**"]
        lost = (verdict.get("unmeasured") or {}).get("text")
        if lost:
            lines.append(f"- not measured: {_md(lost)}")
        for kind in ("scopes", "intermittent"):
            for f in verdict.get(kind, []):
                suspects = ", ".join(f"{s['component']} ({'/'.join(s['fm'])})" for s in f.get("suspects", []))
                contrast = "; ".join(f.get("contrasts", []))
                lines.append(
                    f"- {'intermittent' if kind == 'intermittent' else 'scope'}: {_md(f['scope'])}"
                    + (f" — contrast: {_md(contrast)}" if contrast else "")
                    + f" — suspect: {_md(suspects)} ({_md(f.get('confidence', ''))})"
                )
    for status in ("regressed", "new", "still-failing", "fixed", "gone", "now-skipped"):
        changes = comparison.by_status(status)
        if status == "new":
            changes = [c for c in changes if c.after in FAILING or c.after == "flaky"]
        if not changes:
            continue
        lines += [
            "",
            f"#### {_TITLES[status]} ({len(changes)})",
            "",
            "| path | outcome | FM / reason |",
            "|---|---|---|",
        ]
        for change in changes[:limit]:
            path, moved, note = _line(change)
            lines.append(f"| `{_md(path)}` | {_md(moved)} | {_md(note)} |")
        if len(changes) > limit:
            lines.append(f"| … and {len(changes) - limit} more | | |")
    return "\n".join(lines) + "\n"


class _OneLineParser(argparse.ArgumentParser):
    """Bad options are one line on stderr and status 2, like every other bad input of the diff."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="netconform diff",
        description="Compare two results.json files cell by cell; exit 1 when the second has regressions "
        "(or new failing cells).",
    )
    parser.add_argument("before", help="baseline results.json (e.g. before the upgrade)")
    parser.add_argument("after", help="results.json to judge")
    parser.add_argument("--format", choices=("text", "markdown"), default="text", help="output format")
    parser.add_argument(
        "--limit",
        type=_limit,
        default=200,
        help="cells listed per status at most (default 200; 0 lists every cell)",
    )
    return parser


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``netconform diff``: 0 = no regressions, 1 = regressions, 2 = bad input (one line on stderr)."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        before = load_results(args.before)
        after = load_results(args.after)
    except ResultsError as exc:
        print(f"netconform diff: {exc}", file=sys.stderr)
        return 2
    comparison = compare(before, after)
    limit = args.limit or len(comparison.changes) + 1
    if args.format == "markdown":
        out = format_markdown(comparison, limit, verdict_data(after))
    else:
        out = format_text(comparison, limit)
    sys.stdout.write(out)
    return 1 if comparison.gate_failures else 0


if __name__ == "__main__":
    sys.exit(main())
