"""Counts what a run costs: API requests, exec sessions, probe checks, subjects.

The cost bounds of the suite (one exec per subject per phase; API requests that grow with nodes, not
with cells) are only credible when they are measured, so every request and exec goes through here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Counters:
    """Thread-safe counters for `results.json` -> `run.stats`."""

    api_requests: int = 0
    exec_sessions: int = 0
    probe_checks: int = 0
    subjects: int = 0
    phases: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def merge(self, other: dict[str, Any]) -> None:
        for key, value in other.items():
            if key in {"api_requests", "exec_sessions", "probe_checks", "subjects", "phases"}:
                self.add(key, int(value))


def count_requests(api_client: Any, counters: Counters) -> None:
    """Wrap `api_client.call_api` so every REST request made through it is counted."""
    original = api_client.call_api

    def counted(*args: Any, **kwargs: Any) -> Any:
        counters.add("api_requests")
        return original(*args, **kwargs)

    api_client.call_api = counted
