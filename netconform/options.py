"""The run options every part of the suite reads (pytest option group, `netconform run`, engine)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_IMAGE = "docker.io/library/python:3.12-slim"


@dataclass
class SuiteOptions:
    kubeconfig: str | None = None
    context: str | None = None
    probe_image: str = DEFAULT_IMAGE
    external_name: str | None = None
    external_url: str | None = None
    external_ip: str | None = None
    internet_url: str | None = None
    external_runner: str | None = None
    control_plane_vip: str | None = None
    probe_timeout: float = 2.0
    attempts: int = 2
    allow_privileged: bool = False
    keep: bool = False
    out: str = "reports"
    ready_timeout: float = 120.0
    lb_timeout: float = 30.0
    delete_timeout: float = 60.0
    stale_ttl: float = 3600.0
    lab: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuiteOptions:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
