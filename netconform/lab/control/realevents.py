"""The lab kubelet's and controllers' Events, posted to the real API server (real control plane).

On the emulated control plane the kubelet records Events (Scheduled, Pulling, Started, Failed, BackOff,
Killing ...) in the API's own store. With the real control plane the kubelet still writes them into the
lab's local store; this forwarder posts each new one to the real API, as a real kubelet's event recorder
does, so `kubectl describe pod` and `kubectl get events` show them. One worker posts them in order; a
burst beyond QUEUE_MAX is dropped (best effort, as the kubelet's recorder is), and every request has the
real API client's time-out.

    forwarder = EventForwarder(real_api); store.listeners.append(forwarder.on_store_event)
    forwarder.start(); ...; await forwarder.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

from netconform.lab.api.store import WatchEvent
from netconform.lab.control.realmirror import RealApi, RealApiError

log = logging.getLogger("netconform.lab.control.realevents")

Obj = dict[str, Any]
QUEUE_MAX = 1000
FIELDS = (
    "involvedObject",
    "reason",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "type",
    "reportingComponent",
    "reportingInstance",
)


def real_event(local: Obj) -> Obj:
    """The Event as the real API takes it: the local store's name and namespace, none of its metadata."""
    meta = local["metadata"]
    body: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
    }
    body.update({k: local[k] for k in FIELDS if k in local})
    involved = dict(body.get("involvedObject") or {})
    involved.pop("resourceVersion", None)  # the local copy's, not the real object's
    body["involvedObject"] = involved
    return body


class EventForwarder:
    def __init__(self, real: RealApi) -> None:
        self.real = real
        self.queue: asyncio.Queue[Obj] = asyncio.Queue(maxsize=QUEUE_MAX)
        self.task: asyncio.Task[None] | None = None
        self.posted = 0
        self.dropped = 0

    def on_store_event(self, ev: WatchEvent) -> None:
        if ev.resource != "events" or ev.type != "ADDED":
            return
        try:
            self.queue.put_nowait(real_event(ev.obj))
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        while True:
            body = await self.queue.get()
            namespace = body["metadata"]["namespace"]
            try:
                await self.real.request("POST", f"/api/v1/namespaces/{namespace}/events", body)
                self.posted += 1
            except (RealApiError, aiohttp.ClientError, OSError, TimeoutError) as err:  # e.g. 403: ns deleted
                self.dropped += 1
                log.debug("event %s not posted: %s", body["metadata"]["name"], err)
