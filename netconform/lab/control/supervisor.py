"""The lab's long-running daemon: data plane, API server, controllers and kubelet in one process.

Started detached by `netconform lab up` as ``python -m netconform.lab.control.supervisor --name N --nodes 3``;
it records itself in `<state>/state.json` (pid, API URL, tokens, phase), writes the kubeconfig, and on
SIGTERM stops every pod and destroys the data plane before exiting. `lab down` works without it too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from netconform.lab import components as comp
from netconform.lab.api.apiserver import ApiServer, User
from netconform.lab.api.store import ApiError, Store
from netconform.lab.api.tls import make_serving_cert
from netconform.lab.control import procs as procs
from netconform.lab.control.controllers import Controllers, Ipam
from netconform.lab.control.ingress import API_SOCKET, INGRESS_TOKEN_FILE
from netconform.lab.control.kubelet import Kubelet
from netconform.lab.faults.bridge import FaultBridge
from netconform.lab.faults.conditions import LabConditions
from netconform.lab.net.addressing import check_lab_name, node_ip, node_names, pod_cidr
from netconform.lab.net.dataplane import DataPlane, NetplaneDataPlane
from netconform.lab.net.nsexec import STATE_ROOT
from netconform.lab.statefiles import KUBECONFIG_FILE, LOG_FILE, STATE_FILE  # noqa: F401 (re-exported)

log = logging.getLogger("netconform.lab.control.supervisor")


def state_dir_for(name: str) -> Path:
    return STATE_ROOT / name


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def kubeconfig(name: str, server: str, ca_pem: bytes, admin_token: str, viewer_token: str) -> dict[str, Any]:
    """Two contexts: `lab-NAME` (admin, may do anything) and `lab-NAME-viewer` (read-only, for RBAC tests)."""
    cluster = f"lab-{name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [
            {"name": f"{cluster}-admin", "user": {"token": admin_token}},
            {"name": f"{cluster}-viewer", "user": {"token": viewer_token}},
        ],
        "contexts": [
            {
                "name": cluster,
                "context": {"cluster": cluster, "user": f"{cluster}-admin", "namespace": "default"},
            },
            {
                "name": f"{cluster}-viewer",
                "context": {"cluster": cluster, "user": f"{cluster}-viewer", "namespace": "default"},
            },
        ],
        "current-context": cluster,
        "preferences": {},
    }


class LabBackend:
    """What the API server needs beyond the store: kubelet hooks, faults and the lab's status."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    async def exec_argv(
        self, namespace: str, pod: str, container: str | None, command: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        return await self.sup.kubelet.exec_argv(namespace, pod, container, command)

    def log_file(self, namespace: str, pod: str, container: str | None, previous: bool) -> Path:
        return self.sup.kubelet.log_file(namespace, pod, container, previous)

    def container_alive(self, namespace: str, pod: str, container: str | None) -> bool:
        return self.sup.kubelet.container_alive(namespace, pod, container)

    def attach_target(self, namespace: str, pod: str, container: str | None) -> tuple[Any, Path]:
        return self.sup.kubelet.attach_target(namespace, pod, container)

    def lab_status(self) -> dict[str, Any]:
        return self.sup.status()

    async def fault_list(self) -> list[dict[str, Any]]:
        return await self.sup.faults.catalogue()

    async def fault_add(self, name: str, node: str | None) -> dict[str, Any]:
        return await self.sup.faults.add(name, node)

    async def fault_clear(self, name: str | None) -> list[str]:
        return await self.sup.faults.clear(name)


class Supervisor:
    def __init__(
        self,
        name: str,
        nodes: int,
        lb: bool,
        state_dir: Path,
        components: comp.ComponentConfig | None = None,
        *,
        ingress: bool = True,
    ) -> None:
        self.name = name
        self.ingress = ingress
        self.components = components or comp.ComponentConfig()
        self.node_list = node_names(nodes)
        self.lb = lb
        self.state_dir = state_dir
        self.started = time.monotonic()
        self.admin_token = secrets.token_hex(24)
        self.viewer_token = secrets.token_hex(24)
        self.ingress_token = secrets.token_hex(24)  # the lab's ingress controller, over API_SOCKET only
        self.store = Store()
        self.conditions = LabConditions()
        self.stop = asyncio.Event()
        self.state: dict[str, Any] = {
            "name": name,
            "supervisor_pid": os.getpid(),
            "nodes": self.node_list,
            "lb": lb,
            "ingress": ingress,
            "dataplane": self.components.dataplane,
            "lb_kind": self.components.lb if lb else None,
            "phase": "starting",
            "state_dir": str(state_dir),
        }
        self.plane: Any = None
        self.api_loop: asyncio.AbstractEventLoop
        self.dataplane: DataPlane
        self.kubelet: Kubelet
        self.controllers: Controllers
        self.api: ApiServer
        self.faults: FaultBridge

    def condition_refusal(self, name: str) -> str | None:
        """Why this control plane cannot have bad-input condition `name` (None: it can)."""
        return None

    async def conditions_changed(self) -> None:
        """After a condition was added or cleared: the emulated API reads `self.conditions` itself."""

    def _save_state(self, **changes: Any) -> None:
        self.state.update(changes)
        write_json_atomic(self.state_dir / STATE_FILE, self.state)

    def _begin(self) -> asyncio.AbstractEventLoop:
        """What every supervisor does first: signals stop it, the state file exists, the data plane object."""
        loop = asyncio.get_running_loop()
        self.api_loop = loop
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._save_state()
        from netconform.lab.net.netplane import Netplane

        self.plane = Netplane(self.name, nodes=len(self.node_list), lb=self.lb, state_dir=self.state_dir)
        return loop

    async def serve(self) -> int:
        loop = self._begin()
        t0 = time.monotonic()
        try:
            await loop.run_in_executor(None, self.plane.build)
        except Exception as err:
            log.error("data plane build failed: %s", err)
            self._save_state(phase="failed", error=f"data plane build failed: {err}")
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, self.plane.destroy)
            return 1
        log.info("data plane built in %.2f s", time.monotonic() - t0)
        self.dataplane = NetplaneDataPlane(self.plane)
        comp.install(self.state_dir, self.components, self.node_list)
        ipam = Ipam()
        self.kubelet = Kubelet(self.store, self.dataplane, ipam, self.state_dir, self.name)
        tokens = {
            self.admin_token: User("admin", ("system:masters",), read_only=False),
            self.viewer_token: User("viewer", ("lab:viewers",), read_only=True),
            self.ingress_token: User(
                "system:serviceaccount:kube-system:lab-ingress-controller",
                ("lab:ingress",),
                read_only=False,
                in_cluster=True,
            ),
        }
        token_file = self.state_dir / INGRESS_TOKEN_FILE
        token_file.write_text(self.ingress_token)
        os.chmod(token_file, 0o600)
        self.api = ApiServer(self.store, LabBackend(self), tokens, self.conditions)
        self.controllers = Controllers(
            self.store,
            self.dataplane,
            self.node_list,
            self.state_dir,
            self.lb,
            self.api.delete_object,
            self.conditions,
            self.components,
            ingress=self.ingress,
        )
        self.faults = FaultBridge(self)
        if self.components.cilium:
            self.kubelet.network_listeners.append(self._endpoint_put)
        self.kubelet.network_listeners.append(self.faults.pod_network)  # pod-scoped faults follow pods
        runner = web.AppRunner(self.api.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        cert = make_serving_cert(self.state_dir / "pki", self.name)
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=256, ssl_context=cert.server_context())
        await site.start()
        # pods' network namespaces cannot reach the host's loopback; in-cluster controllers (the lab's
        # ingress controller) talk to the API over this unix socket, which no network namespace hides
        socket_path = self.state_dir / API_SOCKET
        socket_path.unlink(missing_ok=True)
        unix_site = web.UnixSite(runner, str(socket_path))
        await unix_site.start()
        os.chmod(socket_path, 0o600)
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        url = f"https://127.0.0.1:{port}"
        kc_path = self.state_dir / KUBECONFIG_FILE
        kc_tmp = kc_path.with_suffix(".tmp")
        kc_tmp.write_text(
            yaml.safe_dump(
                kubeconfig(self.name, url, cert.ca_pem, self.admin_token, self.viewer_token), sort_keys=False
            )
        )
        os.chmod(kc_tmp, 0o600)
        kc_tmp.replace(kc_path)
        self.controllers.bootstrap()
        reconciler = asyncio.ensure_future(self.controllers.run())
        self._save_state(
            phase="running",
            ca_file=str(self.state_dir / "pki" / "ca.crt"),
            api=url,
            token=self.admin_token,
            viewer_token=self.viewer_token,
            kubeconfig=str(kc_path),
            started=time.time(),
        )
        log.info("API on %s (%.2f s after start)", url, time.monotonic() - t0)
        try:
            await self.stop.wait()
        finally:
            log.info("stopping")
            self._save_state(phase="stopping")
            reconciler.cancel()
            with contextlib.suppress(Exception):
                await self.faults.clear(None)
            await self.kubelet.shutdown()
            with contextlib.suppress(Exception):
                await runner.cleanup()
            try:
                await loop.run_in_executor(None, self.plane.destroy)
            except Exception as err:
                log.error("data plane destroy failed: %s", err)
            self._save_state(phase="stopped")
        return 0

    async def _endpoint_put(self, change: str, pod: dict[str, Any], netns: str) -> None:
        """The CNI's endpoint PUT to the node's anetd agent, which rate-limits it (FM-25)."""
        if change != "up":
            return
        meta = pod["metadata"]
        comp.record_endpoint(
            self.state_dir,
            pod["spec"]["nodeName"],
            f"{meta['namespace']}/{meta['name']}",
            meta.get("uid", ""),
        )

    def status(self) -> dict[str, Any]:
        nodes = []
        for n in self.store.select("nodes"):
            ready: dict[str, Any] = next((c for c in n["status"]["conditions"] if c["type"] == "Ready"), {})
            name = n["metadata"]["name"]
            nodes.append(
                {
                    "name": name,
                    "ready": ready.get("status") == "True",
                    "reason": ready.get("reason"),
                    "message": ready.get("message"),
                    "ip": node_ip(name),
                    "pod_cidr": pod_cidr(name),
                    "roles": sorted(
                        k.split("/", 1)[1]
                        for k in n["metadata"].get("labels", {})
                        if k.startswith("node-role.kubernetes.io/")
                    ),
                }
            )
        pods = []
        for p in self.store.select("pods"):
            st = p.get("status", {})
            cstats = st.get("containerStatuses") or []
            waiting = next((c["state"]["waiting"] for c in cstats if "waiting" in c.get("state", {})), None)
            pods.append(
                {
                    "namespace": p["metadata"]["namespace"],
                    "name": p["metadata"]["name"],
                    "node": p["spec"].get("nodeName"),
                    "phase": st.get("phase"),
                    "ip": st.get("podIP"),
                    "ready": bool(cstats) and all(c.get("ready") for c in cstats),
                    "restarts": sum(c.get("restartCount", 0) for c in cstats),
                    "reason": waiting.get("reason") if waiting else None,
                    "netns": self.kubelet.pod_netns(p["metadata"]["namespace"], p["metadata"]["name"]),
                }
            )
        services = []
        for s in self.store.select("services"):
            spec = s["spec"]
            services.append(
                {
                    "namespace": s["metadata"]["namespace"],
                    "name": s["metadata"]["name"],
                    "type": spec.get("type"),
                    "cluster_ip": spec.get("clusterIP"),
                    "external_ips": [
                        i.get("ip") for i in s.get("status", {}).get("loadBalancer", {}).get("ingress") or []
                    ],
                    "ports": [
                        f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}"
                        f"/{p.get('protocol', 'TCP')}"
                        for p in spec.get("ports", [])
                    ],
                }
            )
        pids = procs.lab_pids(self.name, [os.getpid()])
        return {
            "name": self.name,
            "phase": self.state.get("phase"),
            "supervisor_pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "api_url": self.state.get("api"),
            "lb": self.lb,
            "dataplane": self.components.dataplane,
            "lb_kind": self.components.lb if self.lb else None,
            "nodes": nodes,
            "pods": pods,
            "services": services,
            "faults": self.faults.active(),
            "controllers": self.controllers.lab_summary(),
            "memory": {"processes": len(pids), "rss_bytes": procs.rss_bytes(pids)},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netconform.lab.control.supervisor")
    parser.add_argument("--name", default="default")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--no-lb", action="store_true")
    parser.add_argument("--no-ingress", action="store_true")
    parser.add_argument("--dataplane", default="lab", choices=comp.DATAPLANES)
    parser.add_argument("--lb", default="lab", choices=comp.LOAD_BALANCERS)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--control-plane", default="emulated", choices=("emulated", "real"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        check_lab_name(args.name)
        node_names(args.nodes)
    except ValueError as err:
        log.error("%s", err)
        return 2
    state_dir = args.state_dir or state_dir_for(args.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # one pidfd per child instead of one waiting thread per child (dozens of pods and exec sessions)
        with contextlib.suppress(AttributeError, NotImplementedError):
            asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    try:
        components = comp.ComponentConfig(args.dataplane, args.lb)
        cls = Supervisor
        if args.control_plane == "real":
            from netconform.lab.control.realsupervisor import RealSupervisor

            cls = RealSupervisor
        supervisor = cls(
            args.name, args.nodes, not args.no_lb, state_dir, components, ingress=not args.no_ingress
        )
        return asyncio.run(supervisor.serve())
    except ApiError as err:
        log.error("%s", err.message)
        return 1


if __name__ == "__main__":
    sys.exit(main())
