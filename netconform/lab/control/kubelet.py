"""The lab's kubelet: pod containers as real host processes in the pod's network namespace.

A pod gets its network namespace and IP from the data plane (`add_pod`), or the node's namespace when
`hostNetwork`; each container is
`ip netns exec NS unshare -m --propagation private PY -I -S podlaunch.py SPEC`, which mounts volumes
and the pod's resolv.conf in a private mount namespace, then execs the command.
The container is its own session (process group), its stdout/stderr go to a log file for `pods/log`,
a close-on-exec pipe tells whether the command could be started at all (else a waiting reason like a
real kubelet), and restartPolicy decides what happens when it exits. exec uses the same launcher, so
an exec sees exactly the container's view (volumes, resolv.conf, netns).

Images: the host filesystem stands in for every image, except one whose registry host is under the
reserved TLD `.invalid` (e.g. `registry.invalid/python:3.12`, see `images.py`): that one cannot be pulled,
and the pod stays Pending with ErrImagePull / ImagePullBackOff and the events a kubelet records.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import re
import select
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netconform.lab.api.store import ApiError, Obj, Store, WatchEvent, now_iso
from netconform.lab.control import events, images
from netconform.lab.control.controllers import Ipam
from netconform.lab.net.addressing import KUBE_DNS_IP, KUBERNETES_SERVICE_IP, node_ip
from netconform.lab.net.dataplane import DataPlane

log = logging.getLogger("netconform.lab.control.kubelet")

# Told when a pod's own network namespace is up ("up", before its containers start) or about to be
# removed ("down"): listener(change, pod object, netns). hostNetwork pods are not reported.
NetworkListener = Callable[[str, Obj, str], Awaitable[None]]

PODLAUNCH = Path(__file__).with_name("podlaunch.py")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT = 15.0
NETWORK_LISTENER_TIMEOUT = 30.0  # a listener (the fault layer) that hangs must not hold a pod forever
MAX_GRACE = 10.0
BACKOFF_CAP = 10.0
LAB_MARKER = "NETCONFORM_LAB"
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@dataclass
class ContainerRun:
    name: str
    spec: Obj
    spec_path: Path
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    restart_count: int = 0
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    done: bool = False  # terminated for good (restartPolicy says no restart)
    stdin: Any = None  # what pods/attach writes to: the stdin pipe, or a PtyStdin (`stdin` + `tty`)
    env: dict[str, str] = field(default_factory=dict)  # the container's environment (its launcher spec's)


class PtyStdin:
    """The client side of a container's terminal (`stdin: true, tty: true`): the pty's master.

    Writes go to the container's terminal; its output is copied to the container's log by the kubelet.
    Closing the client's stdin does not end a terminal (Ctrl-D is a byte in the stream), as with a runtime.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                os.write(self.fd, data)

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        return None


@dataclass
class PodRun:
    namespace: str
    name: str
    uid: str
    node: str
    dir: Path
    host_network: bool
    netns: str | None = None
    ip: str | None = None
    containers: dict[str, ContainerRun] = field(default_factory=dict)
    # ephemeral containers (pods/ephemeralcontainers): started once each, never restarted or removed
    ephemeral: dict[str, ContainerRun] = field(default_factory=dict)
    ephemeral_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    volumes: dict[str, Path] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    grace: float = MAX_GRACE
    task: asyncio.Task[None] | None = None
    network_ready: bool = False
    leaving: bool = False  # its network is being torn down: no longer offered to faults
    obj: Obj = field(default_factory=dict)  # the pod as started (labels, ports) for network listeners

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def cluster_resolv_conf(namespace: str) -> str:
    return (
        f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
        f"nameserver {KUBE_DNS_IP}\noptions ndots:5\n"
    )


def _expand(text: str, env: dict[str, str]) -> str:
    return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def _field_ref(pod: Obj, path: str) -> str:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    m = re.match(r"^metadata\.(labels|annotations)\['([^']+)'\]$", path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
        "status.hostIPs": status.get("hostIP"),
    }
    if path not in simple:
        raise ApiError(422, "Invalid", f"fieldRef {path!r} is not supported by the lab")
    return str(simple[path] or "")


class Kubelet:
    """Runs the pods bound to the lab's nodes (one instance serves every node)."""

    def __init__(self, store: Store, dataplane: DataPlane, ipam: Ipam, state_dir: Path, lab: str) -> None:
        self.store = store
        self.dataplane = dataplane
        self.ipam = ipam
        self.pods_dir = state_dir / "pods"
        self.lab = lab
        self.runs: dict[str, PodRun] = {}
        self.python = sys.executable
        self.closing = False
        self.network_listeners: list[NetworkListener] = []
        store.listeners.append(self._on_event)

    # ------------------------------------------------------------------ event handling
    def _on_event(self, ev: WatchEvent) -> None:
        if ev.resource != "pods" or self.closing:
            return
        meta = ev.obj["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        run = self.runs.get(key)
        if ev.type == "DELETED":
            if run is not None and run.uid == meta["uid"]:
                run.grace = 0.0
                run.stop.set()
            return
        node = ev.obj.get("spec", {}).get("nodeName")
        if (
            run is None
            and node
            and not meta.get("deletionTimestamp")
            and ev.obj["status"].get("phase") == "Pending"
        ):
            self._start(ev.obj)
        elif (
            run is not None
            and run.uid == meta["uid"]
            and not meta.get("deletionTimestamp")
            and not run.stop.is_set()
            and ev.obj.get("spec", {}).get("ephemeralContainers")
        ):
            self._start_ephemeral(run, ev.obj)
        elif run is not None and meta.get("deletionTimestamp") and not run.stop.is_set():
            run.grace = min(float(meta.get("deletionGracePeriodSeconds", MAX_GRACE)), MAX_GRACE)
            run.stop.set()
        elif run is None and meta.get("deletionTimestamp"):
            # nothing runs for it (never started, or already finished): finish the deletion now
            with contextlib.suppress(ApiError):
                self.store.delete("pods", meta["namespace"], meta["name"])

    def _start(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        run = PodRun(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            node=spec["nodeName"],
            dir=self.pods_dir / f"{meta['namespace']}_{meta['name']}",
            host_network=bool(spec.get("hostNetwork")),
            obj=pod,
        )
        self.runs[run.key] = run
        run.task = asyncio.ensure_future(self._pod_main(run, pod))

    # ------------------------------------------------------------------ pod lifecycle
    async def _pod_main(self, run: PodRun, pod: Obj) -> None:
        loop = asyncio.get_running_loop()
        try:
            try:
                await self._setup(run, pod)
            except Exception as err:  # a pod that cannot be set up shows why, like a real kubelet
                log.exception("pod %s: setup failed", run.key)
                events.record(
                    self.store,
                    pod,
                    "Warning",
                    "FailedCreatePodSandBox",
                    f"Failed to create pod sandbox: {err}",
                    "kubelet",
                    run.node,
                )
                self._publish(run, sandbox_error=str(err))
                await run.stop.wait()
                return
            tasks = [
                asyncio.ensure_future(self._container_loop(run, c, pod)) for c in run.containers.values()
            ]
            # ephemeral containers added while the sandbox was being set up start now
            self._start_ephemeral(run, self.store.find("pods", run.namespace, run.name) or pod)
            await asyncio.gather(*tasks)
        finally:
            await self._teardown(run, loop)

    async def _setup(self, run: PodRun, pod: Obj) -> None:
        loop = asyncio.get_running_loop()
        run.dir.mkdir(parents=True, exist_ok=True)
        spec = pod["spec"]
        if run.host_network:
            run.netns = self.dataplane.node_netns(run.node)
            run.ip = node_ip(run.node)
        else:
            ip = self.ipam.allocate(run.node, run.key)
            resolv = self._resolv_text(pod)
            try:
                run.netns = await loop.run_in_executor(
                    None, self.dataplane.add_pod, run.key, run.node, ip, resolv
                )
            except Exception:
                self.ipam.release(run.key)
                raise
            run.ip = ip
        run.network_ready = True
        if not run.host_network:
            await self._network_changed("up", run, pod)  # pod-scoped faults, before any container runs
        self._publish(run)  # podIP/hostIP are visible before the containers start (downward API needs them)
        pod = self.store.find("pods", run.namespace, run.name) or pod
        (run.dir / "resolv.conf").write_text(self._resolv_text(pod))
        (run.dir / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{run.ip}\t{run.name}\n"
        )
        run.volumes = self._materialise_volumes(run, pod)
        for c in spec.get("containers", []):
            run.containers[c["name"]] = self._container_run(run, pod, c, c["name"])

    def _container_run(self, run: PodRun, pod: Obj, c: Obj, file_name: str) -> ContainerRun:
        """A container's launcher spec written next to its log (exec uses the same spec)."""
        cr = ContainerRun(c["name"], c, run.dir / f"{file_name}.spec.json", run.dir / f"{file_name}.log")
        cr.env = self._env(pod, c)
        launch = {
            "env": cr.env,
            "command": self._command(c, pod),
            "workdir": c.get("workingDir") or "/",
            "scratch_dir": str(run.dir / f"{file_name}.scratch"),
            "mounts": self._mounts(c, run.volumes),
            "resolv_conf": self._resolv_mount(run, pod),
            "hosts": str(run.dir / "hosts") if not run.host_network else None,
        }
        cr.spec_path.write_text(json.dumps(launch))
        return cr

    # ------------------------------------------------------------------ ephemeral containers
    def _start_ephemeral(self, run: PodRun, pod: Obj) -> None:
        """Start every ephemeral container of `pod` not started yet (once the sandbox is up)."""
        if not run.network_ready or not run.containers or run.stop.is_set():
            return
        added = False
        for c in pod.get("spec", {}).get("ephemeralContainers") or []:
            name = c.get("name")
            if not name or name in run.ephemeral:
                continue
            try:
                cr = self._container_run(run, pod, c, f"ephemeral-{name}")
            except (RuntimeError, KeyError, ApiError) as err:
                cr = ContainerRun(
                    name, c, run.dir / f"ephemeral-{name}.spec.json", run.dir / f"ephemeral-{name}.log"
                )
                cr.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(err)}}
                cr.done = True
                run.ephemeral[name] = cr
                added = True
                continue
            run.ephemeral[name] = cr
            added = True
            run.ephemeral_tasks.append(asyncio.ensure_future(self._ephemeral_main(run, cr, pod)))
        if added:
            self._publish(run)

    async def _ephemeral_main(self, run: PodRun, cr: ContainerRun, pod: Obj) -> None:
        """One run of an ephemeral container: no restart, whatever the pod's restartPolicy."""
        field_path = f"spec.ephemeralContainers{{{cr.name}}}"
        image = str(cr.spec.get("image", ""))
        pull_error = images.pull_error(image)
        if pull_error is not None:
            await self._pull_back_off(run, cr, pod, image, pull_error)
            return
        events.record(
            self.store,
            pod,
            "Normal",
            "Pulled",
            f'Container image "{image}" already present on machine',
            "kubelet",
            run.node,
            field_path,
        )
        started_at = now_iso()
        start_error = await self._spawn(
            run, cr, stdin=bool(cr.spec.get("stdin")), tty=bool(cr.spec.get("stdin") and cr.spec.get("tty"))
        )
        if start_error is not None:
            message = start_error.get("message", "cannot start the container")
            events.record(
                self.store, pod, "Warning", "Failed", f"Error: {message}", "kubelet", run.node, field_path
            )
            cr.proc = None
            self._cannot_run(run, cr, start_error, message, started_at)
            return
        exit_code = await self._run_started(run, cr, pod, field_path, started_at)
        cr.proc = None
        cr.done = True
        cr.state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": started_at,
                "finishedAt": now_iso(),
            }
        }
        if not run.stop.is_set():
            self._publish(run)

    def attach_target(self, namespace: str, pod: str, container: str | None) -> tuple[Any, Path]:
        """For pods/attach: the container's stdin (None when it has none) and its log file."""
        run = self._run_for(namespace, pod)
        cr = self._container(run, container)
        if "running" not in cr.state or cr.proc is None:
            raise ApiError(
                400, "BadRequest", f'unable to upgrade connection: container not found ("{cr.name}")'
            )
        return cr.stdin, cr.log_path

    def _resolv_text(self, pod: Obj) -> str:
        spec = pod["spec"]
        policy = spec.get("dnsPolicy", "ClusterFirst")
        host_net = bool(spec.get("hostNetwork"))
        if policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_net):
            return cluster_resolv_conf(pod["metadata"]["namespace"])
        if policy == "None":
            cfg = spec.get("dnsConfig") or {}
            lines = [f"nameserver {n}" for n in cfg.get("nameservers", [])]
            if cfg.get("searches"):
                lines.append("search " + " ".join(cfg["searches"]))
            opts = [o["name"] + (f":{o['value']}" if o.get("value") else "") for o in cfg.get("options", [])]
            if opts:
                lines.append("options " + " ".join(opts))
            return "\n".join(lines) + "\n"
        node_file = self.dataplane.node_resolv_path(spec["nodeName"])
        if node_file is not None and node_file.exists():
            return node_file.read_text()
        return Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() else ""

    def _resolv_mount(self, run: PodRun, pod: Obj) -> str | None:
        """What to bind over /etc/resolv.conf (None: the namespace's own, kept live by the data plane)."""
        policy = pod["spec"].get("dnsPolicy", "ClusterFirst")
        if run.host_network and policy in ("Default", "ClusterFirst"):
            return None
        if not run.host_network and policy == "Default":
            node_file = self.dataplane.node_resolv_path(run.node)
            if node_file is not None:
                return str(node_file)  # the node's live file: node faults show up in such pods too
        return str(run.dir / "resolv.conf")

    def _materialise_volumes(self, run: PodRun, pod: Obj) -> dict[str, Path]:
        out: dict[str, Path] = {}
        ns = run.namespace
        for vol in pod["spec"].get("volumes") or []:
            name = vol["name"]
            target = run.dir / "volumes" / name
            if "configMap" in vol or "secret" in vol:
                src = vol.get("configMap") or vol.get("secret") or {}
                ref = src.get("name") or src.get("secretName", "")
                resource = "configmaps" if "configMap" in vol else "secrets"
                obj = self.store.find(resource, ns, ref)
                if obj is None:
                    if src.get("optional"):
                        target.mkdir(parents=True, exist_ok=True)
                        out[name] = target
                        continue
                    kind = "configmap" if resource == "configmaps" else "secret"
                    raise RuntimeError(
                        f'MountVolume.SetUp failed for volume "{name}": {kind} "{ref}" not found'
                    )
                data: dict[str, bytes] = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
                if resource == "secrets":
                    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
                data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
                items = src.get("items") or [{"key": k, "path": k} for k in data]
                mode = int(src.get("defaultMode", 0o644))
                target.mkdir(parents=True, exist_ok=True)
                for item in items:
                    if item["key"] not in data:
                        raise RuntimeError(f'volume "{name}": key {item["key"]!r} not found in {ref}')
                    path = target / item["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data[item["key"]])
                    path.chmod(int(item.get("mode", mode)))
            elif "emptyDir" in vol:
                target.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in vol:
                target = Path(vol["hostPath"]["path"])
                if not target.exists():
                    raise RuntimeError(
                        f'hostPath volume "{name}": {target} does not exist (the lab creates none)'
                    )
            else:
                raise RuntimeError(
                    f'volume "{name}": only configMap, secret, emptyDir and hostPath are supported'
                )
            out[name] = target
        return out

    @staticmethod
    def _mounts(container: Obj, volumes: dict[str, Path]) -> list[Obj]:
        mounts = []
        for m in container.get("volumeMounts") or []:
            src = volumes[m["name"]]
            if m.get("subPath"):
                src = src / m["subPath"]
            mounts.append({"source": str(src), "target": m["mountPath"], "readOnly": bool(m.get("readOnly"))})
        return mounts

    def _env(self, pod: Obj, container: Obj) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        env: dict[str, str] = {
            "PATH": BASE_PATH,
            "HOSTNAME": pod["metadata"]["name"]
            if not pod["spec"].get("hostNetwork")
            else pod["spec"]["nodeName"],
            "HOME": "/root",
            "KUBERNETES_SERVICE_HOST": KUBERNETES_SERVICE_IP,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for src in container.get("envFrom") or []:
            ref = src.get("configMapRef") or src.get("secretRef")
            if not ref:
                continue
            resource = "configmaps" if "configMapRef" in src else "secrets"
            obj = self.store.find(resource, ns, ref.get("name", ""))
            for k, v in ((obj or {}).get("data") or {}).items():
                env[src.get("prefix", "") + k] = base64.b64decode(v).decode() if resource == "secrets" else v
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item:
                env[name] = _expand(str(item["value"]), env)
            elif "valueFrom" in item:
                vf = item["valueFrom"]
                if "fieldRef" in vf:
                    env[name] = _field_ref(pod, vf["fieldRef"]["fieldPath"])
                elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
                    ref = vf.get("configMapKeyRef") or vf.get("secretKeyRef")
                    resource = "configmaps" if "configMapKeyRef" in vf else "secrets"
                    obj = self.store.find(resource, ns, ref.get("name", "")) or {}
                    value = (obj.get("data") or {}).get(ref.get("key", ""))
                    if value is not None:
                        env[name] = base64.b64decode(value).decode() if resource == "secrets" else value
                    elif not ref.get("optional"):
                        raise RuntimeError(
                            f"couldn't find key {ref.get('key')} in {resource} {ns}/{ref.get('name')}"
                        )
                else:
                    env[name] = ""
        env[LAB_MARKER] = self.lab
        return env

    def _command(self, container: Obj, pod: Obj) -> list[str]:
        env = self._env(pod, container)
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        return [_expand(str(a), env) for a in argv]

    # ------------------------------------------------------------------ containers
    def _launch_argv(self, run: PodRun, spec_path: Path, extra: list[str]) -> list[str]:
        inner = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            self.python,
            # the launcher uses only the standard library: no site-packages (a .pth importing certifi
            # made it 52 instead of 37 ms), and it starts once per container and once per exec
            "-I",
            "-S",
            str(PODLAUNCH),
            str(spec_path),
            *extra,
        ]
        if run.netns is None:
            return inner
        return ["ip", "netns", "exec", run.netns, *inner]

    async def _container_loop(self, run: PodRun, cr: ContainerRun, pod: Obj) -> None:
        policy = pod["spec"].get("restartPolicy", "Always")
        field_path = f"spec.containers{{{cr.name}}}"
        first = True
        image = str(cr.spec.get("image", ""))
        pull_error = images.pull_error(image)
        if pull_error is not None:
            await self._pull_back_off(run, cr, pod, image, pull_error)
            return
        while not run.stop.is_set():
            if not first:
                # rotate the log so `logs --previous` shows the last run
                with contextlib.suppress(FileNotFoundError):
                    cr.log_path.replace(cr.log_path.with_suffix(".previous.log"))
            first = False
            if cr.restart_count == 0 and not cr.last_state:
                events.record(
                    self.store,
                    pod,
                    "Normal",
                    "Pulled",
                    f'Container image "{cr.spec.get("image")}" already present on machine',
                    "kubelet",
                    run.node,
                    field_path,
                )
            started_at = now_iso()
            start_error = await self._spawn(run, cr)
            if start_error is not None:
                message = start_error.get("message", "cannot start the container")
                events.record(
                    self.store, pod, "Warning", "Failed", f"Error: {message}", "kubelet", run.node, field_path
                )
                cr.proc = None
                if policy == "Never":
                    self._cannot_run(run, cr, start_error, message, started_at)
                    return
                cr.state = {
                    "waiting": {"reason": start_error.get("reason", "ContainerCannotRun"), "message": message}
                }
                self._publish(run)
                if await self._backoff(run, cr):
                    return
                cr.restart_count += 1
                continue
            exit_code = await self._run_started(run, cr, pod, field_path, started_at)
            cr.last_state = {}
            terminated = {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": started_at,
                "finishedAt": now_iso(),
            }
            cr.proc = None
            if run.stop.is_set():
                cr.state = {"terminated": terminated}
                return
            restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
            if not restart:
                cr.state = {"terminated": terminated}
                cr.done = True
                self._publish(run)
                return
            cr.last_state = {"terminated": terminated}
            cr.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off restarting failed container {cr.name} in pod "
                    f"{run.name}_{run.namespace}({run.uid})",
                }
            }
            events.record(
                self.store,
                pod,
                "Warning",
                "BackOff",
                "Back-off restarting failed container",
                "kubelet",
                run.node,
                field_path,
            )
            self._publish(run)
            if await self._backoff(run, cr):
                return
            cr.restart_count += 1

    async def _backoff(self, run: PodRun, cr: ContainerRun) -> bool:
        """Wait the restart back-off (0.5 s doubling up to 10 s); True when the pod is being stopped."""
        return await self._wait_stop(run, cr.restart_count)

    @staticmethod
    async def _wait_stop(run: PodRun, attempt: int) -> bool:
        """Wait the back-off of `attempt` (0.5 s doubling up to 10 s); True when the pod is being stopped."""
        delay = min(BACKOFF_CAP, 0.5 * (2 ** min(attempt, 6)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.stop.wait(), delay)
        return run.stop.is_set()

    async def _pull_back_off(self, run: PodRun, cr: ContainerRun, pod: Obj, image: str, error: str) -> None:
        """An image that cannot be pulled: ErrImagePull, then ImagePullBackOff, retried until the pod goes.

        Like a kubelet: the pod stays Pending, restartCount stays 0, and every attempt records the events
        `Pulling`, `Failed` (the registry's error), `Failed` (Error: ErrImagePull), then `BackOff` and
        `Failed` (Error: ImagePullBackOff) while it waits.
        """
        field_path = f"spec.containers{{{cr.name}}}"

        def event(type_: str, reason: str, message: str) -> None:
            events.record(self.store, pod, type_, reason, message, "kubelet", run.node, field_path)

        attempt = 0
        while not run.stop.is_set():
            event("Normal", "Pulling", f'Pulling image "{image}"')
            event("Warning", "Failed", images.pull_failed_message(image, error))
            event("Warning", "Failed", "Error: ErrImagePull")
            cr.state = {"waiting": {"reason": "ErrImagePull", "message": error}}
            self._publish(run)
            if await self._wait_stop(run, attempt):
                return
            cr.state = {"waiting": {"reason": "ImagePullBackOff", "message": images.backoff_message(image)}}
            event("Normal", "BackOff", images.backoff_message(image))
            event("Warning", "Failed", "Error: ImagePullBackOff")
            self._publish(run)
            attempt += 1
            if await self._wait_stop(run, attempt):
                return

    async def _spawn(
        self, run: PodRun, cr: ContainerRun, stdin: bool = False, tty: bool = False
    ) -> dict[str, Any] | None:
        """Start the container; returns the launcher's start error, or None when the command is running.

        `stdin`: the container gets a stdin pipe (for pods/attach); with `tty` a pseudo-terminal instead,
        whose output the kubelet copies to the container's log.
        """
        read_fd, write_fd = os.pipe()
        argv = self._launch_argv(run, cr.spec_path, ["--error-fd", str(write_fd)])
        master: int | None = None
        slave: int | None = None
        if tty:
            master, slave = os.openpty()
        try:
            with cr.log_path.open("ab") as out:
                cr.proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=slave
                    if slave is not None
                    else (asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL),
                    stdout=slave if slave is not None else out,
                    stderr=slave if slave is not None else asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(write_fd,),
                    env={"PATH": BASE_PATH, LAB_MARKER: self.lab, "LANG": "C.UTF-8"},
                )
        except OSError as err:
            os.close(read_fd)
            if master is not None:
                os.close(master)
            return {"reason": "ContainerCannotRun", "message": f"{argv[0]}: {err}"}
        finally:
            os.close(write_fd)
            if slave is not None:
                os.close(slave)
        if master is not None:
            cr.stdin = PtyStdin(master)
            self._copy_terminal(master, cr)
        elif stdin:
            cr.stdin = cr.proc.stdin
        (run.dir / f"{cr.name}.pid").write_text(str(cr.proc.pid))
        data = await asyncio.get_running_loop().run_in_executor(None, _read_until_eof, read_fd, START_TIMEOUT)
        if not data:
            return None
        with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
            await asyncio.wait_for(cr.proc.wait(), 5)
        try:
            parsed: dict[str, Any] = json.loads(data.decode().splitlines()[0])
            return parsed
        except (ValueError, IndexError):
            return {"reason": "ContainerCannotRun", "message": data.decode(errors="replace").strip()}

    @staticmethod
    def _copy_terminal(master: int, cr: ContainerRun) -> None:
        """Copy a container terminal's output to its log until the terminal closes (the container ended)."""
        loop = asyncio.get_running_loop()
        sink: PtyStdin = cr.stdin

        def readable() -> None:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(master)
                sink.closed = True
                os.close(master)
                return
            with cr.log_path.open("ab") as out:
                out.write(data)

        loop.add_reader(master, readable)

    def _cannot_run(
        self, run: PodRun, cr: ContainerRun, start_error: dict[str, Any], message: str, started_at: str
    ) -> None:
        """A container that could not be started and will not be retried: terminated, exit code 128."""
        reason = start_error.get("reason", "ContainerCannotRun")
        cr.state = {
            "terminated": {
                "exitCode": 128,
                "reason": reason,
                "message": message,
                "startedAt": started_at,
                "finishedAt": now_iso(),
            }
        }
        cr.done = True
        self._publish(run)

    async def _run_started(
        self, run: PodRun, cr: ContainerRun, pod: Obj, field_path: str, started_at: str
    ) -> int:
        """A spawned container: event Started, state running, then wait for its exit (or the pod's stop,
        which stops it); returns the exit code as the kubelet reports it (128 + signal when killed)."""
        events.record(
            self.store,
            pod,
            "Normal",
            "Started",
            f"Started container {cr.name}",
            "kubelet",
            run.node,
            field_path,
        )
        cr.state = {"running": {"startedAt": started_at}}
        self._publish(run)
        assert cr.proc is not None
        wait_exit = asyncio.ensure_future(cr.proc.wait())
        wait_stop = asyncio.ensure_future(run.stop.wait())
        await asyncio.wait({wait_exit, wait_stop}, return_when=asyncio.FIRST_COMPLETED)
        if not wait_exit.done():
            await self._stop_container(run, cr, pod)
        wait_stop.cancel()
        code: int = await wait_exit
        return code if code >= 0 else 128 - code

    async def _stop_container(self, run: PodRun, cr: ContainerRun, pod: Obj) -> None:
        proc = cr.proc
        if proc is None or proc.returncode is not None:
            return
        if run.grace > 0:
            events.record(
                self.store,
                pod,
                "Normal",
                "Killing",
                f"Stopping container {cr.name}",
                "kubelet",
                run.node,
                f"spec.containers{{{cr.name}}}",
            )
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), max(run.grace, 0.01))
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        # processes the container left behind in its group go too
        _signal_group(proc.pid, signal.SIGKILL)

    async def _teardown(self, run: PodRun, loop: asyncio.AbstractEventLoop) -> None:
        """After the pod is stopped (deleted) or all containers ended for good."""
        if not run.stop.is_set():
            self._publish(run)
            await run.stop.wait()  # finished pods keep their netns and IP until deleted, like a real kubelet
        pod = self.store.find("pods", run.namespace, run.name)
        for cr in [*run.containers.values(), *run.ephemeral.values()]:
            if pod is not None:
                await self._stop_container(run, cr, pod)
        for task in run.ephemeral_tasks:
            task.cancel()
        if not run.host_network and run.network_ready:
            run.leaving = True
            await self._network_changed("down", run, pod or run.obj)
            try:
                await loop.run_in_executor(None, self.dataplane.remove_pod, run.key)
            except Exception:
                log.exception("pod %s: removing its network failed", run.key)
            self.ipam.release(run.key)
        # in a worker thread, still before the run leaves `runs` (a pod of the same name starts after): on
        # the event loop, a 20-node kit's deletion spent 7.6 s removing pod folders while the API waited
        try:
            await loop.run_in_executor(None, functools.partial(shutil.rmtree, run.dir, ignore_errors=True))
        except RuntimeError:  # the executor is shut down (the lab is stopping): here, then
            shutil.rmtree(run.dir, ignore_errors=True)
        if self.runs.get(run.key) is run:
            del self.runs[run.key]
        if pod is not None and pod["metadata"]["uid"] == run.uid and not self.closing:
            with contextlib.suppress(ApiError):
                self.store.delete("pods", run.namespace, run.name)
        # a pod of the same name created while this one was torn down (deleted with grace 0, then created
        # again, possibly after the read above): its ADDED event found this run in the way, so start it now
        current = self.store.find("pods", run.namespace, run.name)
        if (
            current is not None
            and current["metadata"]["uid"] != run.uid
            and not self.closing
            and run.key not in self.runs
        ):
            self._on_event(WatchEvent("ADDED", "pods", current, self.store.rv))

    async def _network_changed(self, change: str, run: PodRun, pod: Obj) -> None:
        """Tell the listeners; one that fails or hangs is logged and never stops the pod's lifecycle."""
        if run.netns is None:
            return
        for listener in self.network_listeners:
            try:
                await asyncio.wait_for(listener(change, pod, run.netns), NETWORK_LISTENER_TIMEOUT)
            except Exception as err:
                log.error(
                    "pod %s: network %s listener failed: %s: %s", run.key, change, type(err).__name__, err
                )

    # ------------------------------------------------------------------ status
    def _publish(self, run: PodRun, sandbox_error: str | None = None) -> None:
        def apply(pod: Obj) -> None:
            if pod["metadata"]["uid"] != run.uid:
                return
            status = pod.setdefault("status", {})
            now = now_iso()
            status["hostIP"] = node_ip(run.node)
            status["hostIPs"] = [{"ip": node_ip(run.node)}]
            if run.ip:
                status["podIP"] = run.ip
                status["podIPs"] = [{"ip": run.ip}]
            status.setdefault("startTime", now)
            cstats = []
            for c in pod["spec"].get("containers", []):
                cr = run.containers.get(c["name"])
                state = cr.state if cr else {"waiting": {"reason": "ContainerCreating"}}
                if sandbox_error:
                    state = {"waiting": {"reason": "ContainerCreating", "message": sandbox_error}}
                cs: Obj = {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": "running" in state and not run.stop.is_set(),
                    "restartCount": cr.restart_count if cr else 0,
                    "started": "running" in state,
                    "state": state,
                    "lastState": cr.last_state if cr else {},
                }
                if cr and cr.proc is not None:
                    cs["containerID"] = f"lab://{cr.proc.pid}"
                cstats.append(cs)
            status["containerStatuses"] = cstats
            estats = []
            for c in pod["spec"].get("ephemeralContainers") or []:
                er = run.ephemeral.get(c["name"])
                estate = er.state if er else {"waiting": {"reason": "ContainerCreating"}}
                es: Obj = {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": estate,
                    "lastState": {},
                }
                if er and er.proc is not None:
                    es["containerID"] = f"lab://{er.proc.pid}"
                estats.append(es)
            if estats:
                status["ephemeralContainerStatuses"] = estats
            phase = _phase(cstats, pod["spec"].get("restartPolicy", "Always"))
            status["phase"] = phase
            ready = bool(cstats) and all(c["ready"] for c in cstats)
            reason = (
                None
                if ready
                else ("PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady")
            )
            conds = [
                ("Initialized", True, None),
                ("Ready", ready, reason),
                ("ContainersReady", ready, reason),
                ("PodScheduled", True, None),
            ]
            old = {c["type"]: c for c in status.get("conditions", [])}
            status["conditions"] = []
            for ctype, ok, why in conds:
                value = "True" if ok else "False"
                prev = old.get(ctype)
                cond: Obj = {
                    "type": ctype,
                    "status": value,
                    "lastTransitionTime": prev["lastTransitionTime"]
                    if prev and prev["status"] == value
                    else now,
                    "lastProbeTime": None,
                }
                if why:
                    cond["reason"] = why
                status["conditions"].append(cond)

        self.store.mutate("pods", run.namespace, run.name, apply)

    # ------------------------------------------------------------------ API backend hooks
    def _run_for(self, namespace: str, pod: str) -> PodRun:
        obj = self.store.find("pods", namespace, pod)
        if obj is None:
            raise ApiError(404, "NotFound", f'pods "{pod}" not found', {"name": pod, "kind": "pods"})
        run = self.runs.get(f"{namespace}/{pod}")
        phase = obj.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise ApiError(
                400,
                "BadRequest",
                f"cannot exec into a container in a completed pod; current phase is {phase}",
            )
        if run is None or run.uid != obj["metadata"]["uid"] or not run.containers:
            raise ApiError(
                400, "BadRequest", f"pod {pod} does not have a host assigned or is not running yet"
            )
        return run

    def _container(self, run: PodRun, container: str | None) -> ContainerRun:
        if container is None:
            if len(run.containers) > 1:
                names = " ".join(run.containers)
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {run.name}, choose one of: [{names}]",
                )
            return next(iter(run.containers.values()))
        cr = run.containers.get(container) or run.ephemeral.get(container)
        if cr is None:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {run.name}")
        return cr

    async def exec_argv(
        self, namespace: str, pod: str, container: str | None, command: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        run = self._run_for(namespace, pod)
        cr = self._container(run, container)
        if "running" not in cr.state:
            raise ApiError(
                400, "BadRequest", f'unable to upgrade connection: container not found ("{cr.name}")'
            )
        if cr.proc is not None and cr.proc.returncode is None and cr.env:
            # as a runtime does: join the running container's mount and network namespaces, where the
            # launcher already mounted its volumes and resolv.conf, and its working directory. One small
            # C program instead of `ip netns exec`, `unshare` and the Python launcher again: ~45 ms of CPU
            # less per exec, and a 100-node run makes 300 (issue 15). Not reaped yet, the pid is still it.
            argv = ["nsenter", f"--target={cr.proc.pid}", "--mount", "--net", "--wd", "--", *command]
            return argv, dict(cr.env)
        return self._launch_argv(run, cr.spec_path, ["--", *command]), {
            "PATH": BASE_PATH,
            LAB_MARKER: self.lab,
            "LANG": "C.UTF-8",
        }

    def log_file(self, namespace: str, pod: str, container: str | None, previous: bool) -> Path:
        obj = self.store.find("pods", namespace, pod)
        if obj is None:
            raise ApiError(404, "NotFound", f'pods "{pod}" not found', {"name": pod, "kind": "pods"})
        run = self.runs.get(f"{namespace}/{pod}")
        if run is None or not run.containers:
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container or ""}" in pod "{pod}" is waiting to start: ContainerCreating',
            )
        cr = self._container(run, container)
        if previous:
            prev = cr.log_path.with_suffix(".previous.log")
            if not prev.exists():
                raise ApiError(
                    400, "BadRequest", f'previous terminated container "{cr.name}" in pod "{pod}" not found'
                )
            return prev
        return cr.log_path

    def container_alive(self, namespace: str, pod: str, container: str | None) -> bool:
        run = self.runs.get(f"{namespace}/{pod}")
        if run is None:
            return False
        try:
            cr = self._container(run, container)
        except ApiError:
            return False
        return cr.proc is not None and cr.proc.returncode is None

    def pod_netns(self, namespace: str, pod: str) -> str | None:
        """The pod's network namespace; None while it has none or is being torn down."""
        run = self.runs.get(f"{namespace}/{pod}")
        return run.netns if run and not run.leaving else None

    # ------------------------------------------------------------------ shutdown
    async def shutdown(self, timeout: float = 15.0) -> None:
        """Stop every pod (fast: 1 s grace) and remove their networks; used when the lab goes down."""
        for run in list(self.runs.values()):
            run.grace = min(run.grace, 1.0)
            run.stop.set()
        tasks = [r.task for r in self.runs.values() if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        self.closing = True


def _phase(cstats: list[Obj], policy: str) -> str:
    states = [c["state"] for c in cstats]
    if any("running" in s for s in states):
        return "Running"
    if states and all("terminated" in s for s in states):
        if all(s["terminated"].get("exitCode") == 0 for s in states):
            return "Succeeded"
        return "Failed"
    if policy != "Never" and any(c.get("lastState") for c in cstats):
        return "Running"
    return "Pending"


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _read_until_eof(fd: int, timeout: float) -> bytes:
    """Read the launcher's error pipe: EOF with no data means the command was exec'd successfully."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return (
                    b'{"reason": "ContainerCannotRun", "message": "the container did not start within 15 s"}'
                )
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)
