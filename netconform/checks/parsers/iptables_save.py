"""`iptables-save -c` output as rules with counters, and which DROP/REJECT counters grew (FM-19).

The agent only runs `iptables-save -c` (twice, a window apart); reading the text is done here, where it
can be tested. A rule is identified across snapshots by family, table, chain, its text and its
occurrence among identical rules, not by position: kube-proxy inserts and rewrites rules all the time.
A built-in chain's DROP policy counts as a drop rule too (Docker's `FORWARD DROP` is a classic).
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

DROP_TARGETS = frozenset({"DROP", "REJECT"})
_COUNTERS = r"\[(\d+):(\d+)\]"
_TABLE = re.compile(r"^\*(\S+)$")
_CHAIN = re.compile(rf"^:(\S+) (\S+) {_COUNTERS}$")
_RULE = re.compile(rf"^{_COUNTERS} -A (\S+)(?: (.*))?$")


class ParseError(ValueError):
    """The text is not `iptables-save -c` output; the message names the line."""


@dataclass(frozen=True)
class Rule:
    family: str
    table: str
    chain: str
    packets: int
    bytes: int
    spec: str  # the rule after "-A CHAIN" (matches and target); for a policy: the policy
    target: str | None
    policy: bool = False  # a built-in chain's policy line (":FORWARD DROP [p:b]")

    @property
    def text(self) -> str:
        """The rule as iptables-save writes it (without counters)."""
        if self.policy:
            return f"{self.chain} policy {self.spec}"
        return f"-A {self.chain} {self.spec}".rstrip()

    @property
    def drops(self) -> bool:
        return self.target in DROP_TARGETS


@dataclass(frozen=True)
class Growth:
    """A drop rule whose packet counter grew between two snapshots."""

    rule: Rule  # as in the later snapshot
    packets: int
    bytes: int
    reset: bool  # the counter went down (rules rewritten): counted since the reset

    def as_dict(self) -> dict[str, object]:
        return {
            "family": self.rule.family,
            "table": self.rule.table,
            "chain": self.rule.chain,
            "rule": self.rule.text,
            "target": self.rule.target,
            "packets": self.packets,
            "bytes": self.bytes,
            "counter": self.rule.packets,
            "reset": self.reset,
        }

    def describe(self) -> str:
        return f"{self.rule.family} {self.rule.table} {self.rule.text}: +{self.packets} packets"


def target_of(spec: str) -> str | None:
    """The `-j`/`--jump` (or `-g`/`--goto`) target of a rule's text, None when it has none."""
    try:
        words = shlex.split(spec)
    except ValueError:  # an unbalanced quote in a comment: fall back to plain words
        words = spec.split()
    target = None
    for i, word in enumerate(words[:-1]):
        if word in ("-j", "--jump", "-g", "--goto"):
            target = words[i + 1]
    return target


def parse(text: str, family: str = "ipv4") -> list[Rule]:
    """Every rule and built-in chain policy with its counters, in file order."""
    rules: list[Rule] = []
    table: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "COMMIT":
            table = None
            continue
        match = _TABLE.match(line)
        if match:
            table = match.group(1)
            continue
        if table is None:
            raise ParseError(f"line {number}: {line[:80]!r} outside a *table ... COMMIT block")
        match = _CHAIN.match(line)
        if match:
            chain, policy, packets, nbytes = match.groups()
            if policy != "-":  # user-defined chains have no policy and no counters of their own
                rules.append(Rule(family, table, chain, int(packets), int(nbytes), policy, policy, True))
            continue
        match = _RULE.match(line)
        if match:
            packets, nbytes, chain, spec = match.groups()
            spec = spec or ""
            rules.append(Rule(family, table, chain, int(packets), int(nbytes), spec, target_of(spec)))
            continue
        if line.startswith("-A "):
            raise ParseError(f"line {number}: rule without [packets:bytes] counters (run iptables-save -c)")
        raise ParseError(f"line {number}: not iptables-save output: {line[:80]!r}")
    return rules


def _keyed(rules: Iterable[Rule]) -> dict[tuple[str, str, str, str, bool, int], Rule]:
    """Rules by (family, table, chain, text, policy, n-th occurrence of that same text)."""
    seen: Counter[tuple[str, str, str, str, bool]] = Counter()
    out = {}
    for rule in rules:
        base = (rule.family, rule.table, rule.chain, rule.spec, rule.policy)
        out[(*base, seen[base])] = rule
        seen[base] += 1
    return out


def drop_growth(before: Iterable[Rule], after: Iterable[Rule]) -> list[Growth]:
    """DROP/REJECT rules (and DROP policies) whose packet counter grew from `before` to `after`.

    A counter lower than before means the rule was rewritten in between (e.g. iptables-restore without
    counters): what it shows now was counted since then. A rule that is new counted only since then too.
    """
    old = _keyed(before)
    grown = []
    for key, rule in _keyed(after).items():
        if not rule.drops:
            continue
        prior = old.get(key)
        reset = prior is not None and rule.packets < prior.packets
        if prior is None or reset:
            packets, nbytes = rule.packets, rule.bytes
        else:
            packets, nbytes = rule.packets - prior.packets, max(0, rule.bytes - prior.bytes)
        if packets > 0:
            grown.append(Growth(rule, packets, nbytes, reset))
    return grown
