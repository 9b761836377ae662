"""`lab status`'s API counters on the real control plane, read from the kube-apiserver's audit log.

The emulated API server counts every request it serves (by verb and resource, exec sessions, open exec
sessions and watches); tests and `make bench` compare those numbers before and after a run. With the real
control plane the same numbers come from the API server's own audit log (JSON lines, `--audit-log-mode
blocking`, so an event is written before its response completes) under POLICY: requests of the control
plane's own components, the node agents and the lab's supervisor are not logged, so what is counted is
what users, the suite and the in-cluster controllers asked, as on the emulated lab.

One request counts once: at `ResponseStarted` for a long-running one (watch, exec, attach, port-forward),
else at `ResponseComplete`. Verbs are the audit log's (get, list, watch, create, update, patch, delete,
deletecollection), except that exec, attach and port-forward count as `create` (the verb RBAC grants for
them; a WebSocket exec is a GET and is also authorized as get). Non-resource requests count under their
path, e.g. `get` `/api`.

    counters = AuditCounters(state_dir / "logs" / "audit.log"); counters.snapshot()["exec_sessions"]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from netconform.lab.api.apiserver import Counters

Obj = dict[str, Any]
SUPERVISOR_USER = "lab:supervisor"
STREAMS = ("exec", "attach", "portforward")
# kube-apiserver --audit-policy-file: the requests that the emulated lab's counters would have seen
POLICY: Obj = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "None",
            "users": [
                SUPERVISOR_USER,
                "system:kube-controller-manager",
                "system:kube-scheduler",
                "system:apiserver",
            ],
        },
        {"level": "None", "userGroups": ["system:nodes", "system:serviceaccounts:kube-system"]},
        {"level": "Metadata"},
    ],
}


class AuditCounters:
    """Counters like the emulated API server's (the same `Counters`), kept up to date from the audit log on
    each snapshot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.counters = Counters()
        self.open: dict[str, str] = {}  # auditID -> "exec" | "watch" | "other" for long-running requests open

    def snapshot(self) -> Obj:
        self._read()
        self.counters.exec_active = sum(1 for kind in self.open.values() if kind == "exec")
        self.counters.watches_active = sum(1 for kind in self.open.values() if kind == "watch")
        # in_cluster_requests stays 0: every client of the real API server reaches it on loopback
        return {**self.counters.snapshot(), "source": f"kube-apiserver audit log {self.path}"}

    def _read(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a line being written stays for the next read
        self.offset += end
        for line in data[:end].splitlines():
            try:
                self.count(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue

    def count(self, event: Obj) -> None:
        """One audit event (ResponseStarted, ResponseComplete or Panic)."""
        audit_id, stage = event["auditID"], event["stage"]
        ref = event.get("objectRef") or {}
        sub = ref.get("subresource")
        verb = "create" if sub in STREAMS else event["verb"]
        resource = (
            f"{ref['resource']}/{sub}" if ref.get("resource") and sub else ref.get("resource")
        ) or urlsplit(event.get("requestURI", "")).path
        kind = "exec" if sub in ("exec", "attach") else "watch" if event["verb"] == "watch" else "other"
        if stage == "ResponseStarted":
            self.counters.requests[(verb, resource)] += 1
            self.open[audit_id] = kind
            if kind == "exec":
                self.counters.exec_sessions += 1
        elif stage in ("ResponseComplete", "Panic") and self.open.pop(audit_id, None) is None:
            self.counters.requests[(verb, resource)] += 1  # not long-running, or refused before it streamed
