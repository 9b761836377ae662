"""A cell's verdict: outcome, reason, the layer and failure mode a failure points at, and evidence.

>>> Verdict("passed", "tcp 10.244.1.5:9000: ok").outcome
'passed'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Verdict:
    outcome: str
    reason: str
    error: str | None = None
    classified_layer: str | None = None
    meaning: str | None = None
    classified_fm: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    diagnosis: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "error": self.error,
            "classified_layer": self.classified_layer,
            "meaning": self.meaning,
            "classified_fm": self.classified_fm,
            "checks": self.checks,
            "notes": self.notes,
            "diagnosis": self.diagnosis,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(**data)
