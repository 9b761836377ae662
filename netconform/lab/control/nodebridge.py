"""The lab kubelet's side of the node agents' unix socket (`lab-go/nodeagent`, real control plane).

One JSON request per line, one JSON answer per line (`{"ok": true, ...}` or `{"ok": false, "code": 404,
"message": "..."}`); every request names its `node`:

- `create {pod}`: the pod the real API bound to this node enters the kubelet's local store (real uid,
  status `Pending`), and the lab kubelet starts it exactly as in the emulated lab (netns, veth, IPAM from
  the node's pod CIDR, containers as processes).
- `delete {namespace, name, uid, grace}`: marks it deleted; the kubelet stops it with that grace.
- `get`, `list`: the pod(s) as the kubelet sees them, status included (phase, podIP, containers).
- `exec {command, container}`: the argv and environment of an exec session in the container's
  namespaces (the node agent runs it and streams it); `logs`: the log file's path; `alive`; `netns`: the
  path of the pod's network namespace (port-forward dials inside it).
- `attach {namespace, name, container}`: after the answer line the connection carries raw bytes: stdin
  to the container, its output back, until it exits (`pods/attach`, `kubectl debug -i`).
- `watch`: the connection stays open; one `{"pod": ...}` line per status change of this node's pods
  (a deleted pod is sent once with its containers terminated), `{"node": {"ready", "reason", "message"}}`
  when the lab changes the node's Ready condition (a fault; sent again to every new watcher, so an agent
  that reconnects keeps it), and `{}` every 5 s as a heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from pathlib import Path
from typing import Any

from netconform.lab.api.store import ApiError, Store, WatchEvent, now_iso
from netconform.lab.control.kubelet import Kubelet
from netconform.lab.net.nsexec import NETNS_DIR

log = logging.getLogger("netconform.lab.control.nodebridge")

Obj = dict[str, Any]
HEARTBEAT_S = 5.0
MAX_LINE = 8 << 20


def upsert(store: Store, resource: str, obj: Obj, namespaced: bool = True) -> None:
    """Put an object of the real API into the local store as it is (its uid and resourceVersion)."""
    meta = obj["metadata"]
    key = (meta.get("namespace", "") if namespaced else "", meta["name"])
    bucket = store._bucket(resource)
    kind = "MODIFIED" if key in bucket else "ADDED"
    if bucket.get(key) == obj:
        return
    obj = copy.deepcopy(obj)
    rv = store._next_rv()
    obj["metadata"].setdefault("resourceVersion", str(rv))
    bucket[key] = obj
    store._emit(WatchEvent(kind, resource, copy.deepcopy(obj), rv))


def remove(store: Store, resource: str, namespace: str, name: str) -> None:
    with contextlib.suppress(ApiError):
        store.delete(resource, namespace, name)


def terminated(pod: Obj) -> Obj:
    """The pod as a kubelet reports it once everything stopped (virtual-kubelet then deletes it)."""
    pod = copy.deepcopy(pod)
    status = pod.setdefault("status", {})
    now = now_iso()
    cstats = []
    for c in pod.get("spec", {}).get("containers", []):
        prev: Obj = next((s for s in status.get("containerStatuses") or [] if s["name"] == c["name"]), {})
        cstats.append(
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": prev.get("imageID", ""),
                "ready": False,
                "started": False,
                "restartCount": prev.get("restartCount", 0),
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}},
                "lastState": prev.get("lastState", {}),
            }
        )
    status["containerStatuses"] = cstats
    status["phase"] = "Succeeded" if pod["spec"].get("restartPolicy") != "Always" else "Failed"
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Ready", "ContainersReady"):
            cond["status"] = "False"
    return pod


class NodeBridge:
    def __init__(self, store: Store, kubelet: Kubelet, socket_path: Path) -> None:
        self.store = store
        self.kubelet = kubelet
        self.socket_path = socket_path
        self.server: asyncio.AbstractServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.followers: dict[str, set[asyncio.Queue[Obj]]] = {}
        self.readiness: dict[str, Obj] = {}  # node -> the Ready condition the lab set (absent: the agent's)
        self.requests = 0
        store.listeners.append(self._on_event)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.socket_path.unlink(missing_ok=True)
        self.server = await asyncio.start_unix_server(self._serve, str(self.socket_path), limit=MAX_LINE)
        self.socket_path.chmod(0o600)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    # -- status fan-out
    def set_ready(self, node: str, ready: bool, reason: str, message: str) -> None:
        """Have `node`'s agent report this Ready condition (called on the event loop or from a thread)."""
        readiness = {"ready": ready, "reason": reason, "message": message}
        if self.loop is None:
            raise RuntimeError("the node bridge is not started")
        self.loop.call_soon_threadsafe(self._publish_ready, node, readiness)

    def _publish_ready(self, node: str, readiness: Obj) -> None:
        self.readiness[node] = readiness
        for q in list(self.followers.get(node, ())):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait({"node": readiness})

    def _on_event(self, ev: WatchEvent) -> None:
        if ev.resource != "pods":
            return
        node = ev.obj.get("spec", {}).get("nodeName")
        queues = self.followers.get(node or "")
        if not queues:
            return
        pod = terminated(ev.obj) if ev.type == "DELETED" else ev.obj
        for q in list(queues):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait({"pod": pod})

    # -- requests
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            if not line:
                return
            req = json.loads(line)
            self.requests += 1
            if req.get("op") == "watch":
                await self._follow(req["node"], reader, writer)
                return
            if req.get("op") == "attach":
                await self._attach(req, reader, writer)
                return
            try:
                answer = await self._handle(req)
                answer["ok"] = True
            except ApiError as err:
                answer = {"ok": False, "code": err.code, "message": err.message}
            except Exception as err:
                log.exception("node bridge: %s failed", req.get("op"))
                answer = {"ok": False, "code": 500, "message": f"{type(err).__name__}: {err}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await asyncio.wait_for(writer.drain(), 10)
        except (TimeoutError, ConnectionError, ValueError) as err:
            log.debug("node bridge connection: %s", err)
        finally:
            writer.close()

    async def _attach(self, req: Obj, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """pods/attach through the node agent: after the `{"ok": true}` line the client's stdin comes in
        frames (to the container's stdin pipe or terminal; an empty frame closes a pipe) and the
        container's output from now on goes back as raw bytes, until the container exits or the agent
        closes the connection."""
        namespace, name, container = req["namespace"], req["name"], req.get("container") or None
        try:
            self._pod(req)
            stdin, log_path = self.kubelet.attach_target(namespace, name, container)
        except ApiError as err:
            writer.write(json.dumps({"ok": False, "code": err.code, "message": err.message}).encode() + b"\n")
            await asyncio.wait_for(writer.drain(), 10)
            return
        offset = log_path.stat().st_size if log_path.exists() else 0
        writer.write(b'{"ok": true}\n')
        await asyncio.wait_for(writer.drain(), 10)

        async def feed() -> None:
            """Frames of the client's stdin: 4-byte big-endian length, then the bytes; length 0 is the end
            of stdin (a pipe is closed), the end of the connection is the client gone."""
            while True:
                try:
                    size = int.from_bytes(await reader.readexactly(4), "big")
                    chunk = await reader.readexactly(size) if size else b""
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if not size:
                    if stdin is not None and not stdin.is_closing():
                        stdin.close()
                    continue
                if stdin is not None and not stdin.is_closing():
                    stdin.write(chunk)
                    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                        await stdin.drain()

        feeder = asyncio.ensure_future(feed())
        try:
            # the output while the container lives and the agent listens: both bound the loop
            while not writer.is_closing() and not feeder.done():
                with contextlib.suppress(FileNotFoundError):
                    with log_path.open("rb") as fh:
                        fh.seek(offset)
                        chunk = fh.read(1 << 20)
                    if chunk:
                        offset += len(chunk)
                        writer.write(chunk)
                        await asyncio.wait_for(writer.drain(), 10)
                        continue
                if not self.kubelet.container_alive(namespace, name, container):
                    break
                await asyncio.sleep(0.1)  # polling the log file's growth while attached
        finally:
            feeder.cancel()

    async def _follow(self, node: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        q: asyncio.Queue[Obj] = asyncio.Queue(maxsize=10000)
        if node in self.readiness:
            q.put_nowait({"node": self.readiness[node]})
        self.followers.setdefault(node, set()).add(q)
        try:
            while not reader.at_eof():
                try:
                    message = await asyncio.wait_for(q.get(), HEARTBEAT_S)
                    writer.write(json.dumps(message).encode() + b"\n")
                except TimeoutError:
                    writer.write(b"{}\n")
                await asyncio.wait_for(writer.drain(), 10)
        finally:
            self.followers[node].discard(q)

    def _pod(self, req: Obj) -> Obj:
        pod = self.store.find("pods", req.get("namespace", ""), req.get("name", ""))
        if pod is None or pod["spec"].get("nodeName") != req["node"]:
            name = req.get("name", "")
            raise ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        return pod

    async def _handle(self, req: Obj) -> Obj:
        op = req.get("op")
        if op == "create":
            return self._create(req["node"], req["pod"])
        if op == "update":
            self._update(req["node"], req["pod"])
            return {}
        if op == "delete":
            pod = self._pod(req)
            if req.get("uid") and pod["metadata"]["uid"] != req["uid"]:
                raise ApiError(404, "NotFound", f'pods "{req["name"]}" not found (other uid)')
            grace = int(req.get("grace", 30))

            def mark(o: Obj) -> None:
                o["metadata"].setdefault("deletionTimestamp", now_iso())
                o["metadata"]["deletionGracePeriodSeconds"] = grace

            self.store.mutate("pods", pod["metadata"]["namespace"], pod["metadata"]["name"], mark)
            return {}
        if op == "get":
            return {"pod": self._pod(req)}
        if op == "list":
            return {
                "pods": [p for p in self.store.select("pods") if p["spec"].get("nodeName") == req["node"]]
            }
        if op == "exec":
            self._pod(req)
            argv, env = await self.kubelet.exec_argv(
                req["namespace"], req["name"], req.get("container") or None, list(req.get("command") or [])
            )
            return {"argv": argv, "env": env}
        if op == "logs":
            self._pod(req)
            path = self.kubelet.log_file(
                req["namespace"], req["name"], req.get("container") or None, bool(req.get("previous"))
            )
            return {"path": str(path)}
        if op == "alive":
            return {
                "alive": self.kubelet.container_alive(req["namespace"], req["name"], req.get("container"))
            }
        if op == "netns":
            self._pod(req)
            netns = self.kubelet.pod_netns(req["namespace"], req["name"])
            if netns is None:
                raise ApiError(400, "BadRequest", f"pod {req['name']} has no network namespace yet")
            return {"netns": str(NETNS_DIR / netns)}
        raise ApiError(400, "BadRequest", f"unknown op {op!r}")

    def _update(self, node: str, pod: Obj) -> None:
        """What a pod may change once running (virtual-kubelet sends these): labels and annotations, which
        NetworkPolicy selects on, and new ephemeral containers, which the kubelet then starts."""
        meta = pod["metadata"]
        current = self.store.find("pods", meta["namespace"], meta["name"])
        if current is None or current["metadata"].get("uid") != meta.get("uid"):
            raise ApiError(404, "NotFound", f'pods "{meta["name"]}" not found')
        if current["spec"].get("nodeName") != node:
            raise ApiError(400, "BadRequest", f"pod {meta['name']} is not bound to {node}")

        def apply(o: Obj) -> None:
            o["metadata"]["labels"] = copy.deepcopy(meta.get("labels") or {})
            o["metadata"]["annotations"] = copy.deepcopy(meta.get("annotations") or {})
            ephemeral = (pod.get("spec") or {}).get("ephemeralContainers")
            if ephemeral:
                o["spec"]["ephemeralContainers"] = copy.deepcopy(ephemeral)

        self.store.mutate("pods", meta["namespace"], meta["name"], apply)

    def _create(self, node: str, pod: Obj) -> Obj:
        meta = pod["metadata"]
        if pod.get("spec", {}).get("nodeName") != node:
            raise ApiError(400, "BadRequest", f"pod {meta['name']} is not bound to {node}")
        current = self.store.find("pods", meta["namespace"], meta["name"])
        if current is not None:
            if current["metadata"]["uid"] == meta["uid"]:
                return {}
            raise ApiError(409, "Conflict", f"pod {meta['namespace']}/{meta['name']} still stopping")
        local = copy.deepcopy(pod)
        # the ServiceAccount token volume (kube-api-access-*, projected): the lab kubelet materialises
        # configMap, secret, emptyDir and hostPath only, and the pods cannot reach the API anyway; the
        # volume and its mounts are left out of the pod the lab kubelet runs (the real API keeps them)
        projected = {v["name"] for v in local["spec"].get("volumes") or [] if "projected" in v}
        if projected:
            local["spec"]["volumes"] = [v for v in local["spec"]["volumes"] if v["name"] not in projected]
            for c in [*local["spec"].get("containers", []), *local["spec"].get("initContainers", [])]:
                mounts = [m for m in c.get("volumeMounts") or [] if m["name"] not in projected]
                if mounts:
                    c["volumeMounts"] = mounts
                else:
                    c.pop("volumeMounts", None)
        local["status"] = {"phase": "Pending", "conditions": pod.get("status", {}).get("conditions") or []}
        upsert(self.store, "pods", local)
        return {}
