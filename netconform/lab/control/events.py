"""Kubernetes Events for what the lab's scheduler and kubelet do (Scheduled, Started, Failed, Killing ...)."""

from __future__ import annotations

import itertools
import time

from netconform.lab.api.store import Obj, Store, now_iso

MAX_EVENTS = 2000
_seq = itertools.count()


def record(
    store: Store,
    obj: Obj,
    type_: str,
    reason: str,
    message: str,
    component: str,
    host: str | None = None,
    field_path: str | None = None,
) -> None:
    """Store one core/v1 Event about `obj`; beyond MAX_EVENTS the oldest are dropped (best effort)."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace") or "default"
    now = now_iso()
    involved: Obj = {
        "kind": obj.get("kind", ""),
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "apiVersion": obj.get("apiVersion", "v1"),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if field_path:
        involved["fieldPath"] = field_path
    event: Obj = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            # nanosecond hex like the real API: names sort in creation order
            "name": f"{meta.get('name', 'object')}.{time.time_ns():x}{next(_seq) % 4096:03x}",
            "namespace": namespace,
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": {"component": component, **({"host": host} if host else {})},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": type_,
        "reportingComponent": component,
        "reportingInstance": host or "",
    }
    store.create("events", event, namespaced=True)
    events = store.objects.get("events", {})
    if len(events) > MAX_EVENTS:
        oldest = sorted(events.items(), key=lambda kv: int(kv[1]["metadata"]["resourceVersion"]))
        for (ns, name), _ in oldest[: len(events) - MAX_EVENTS]:
            store.delete("events", ns, name)
