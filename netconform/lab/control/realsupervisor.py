"""The supervisor of a lab with the real control plane (`lab up --control-plane real`).

Same data plane, kubelet, faults and lab API (`/lab/v1/status`, faults: served by the lab's own aiohttp
app on a second loopback port, recorded as `api` in state.json) as the emulated lab; the kubeconfig points
at the real kube-apiserver instead (`kube_api`). Order at start: data plane, PKI, etcd, kube-apiserver
(`/readyz`), controller-manager and scheduler (`/healthz`), RBAC additions, the Gateway API CRDs (until
Established), the ingress controller's ServiceAccount, token and `api.sock` proxy, the mirror of the real API
into the local store, the node bridge socket, one node agent per node (each registers its Node; node-1
gets the control-plane label and taint as in the emulated lab), then kube-system's objects. At stop, in
reverse; `lab down` also finds every one of these processes by their `NETCONFORM_LAB` marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from netconform.lab import components as comp
from netconform.lab.api.apiserver import ApiServer, User
from netconform.lab.api.tls import make_serving_cert
from netconform.lab.control.controllers import Ipam
from netconform.lab.control.ingress import API_SOCKET, INGRESS_TOKEN_FILE
from netconform.lab.control.kubelet import Kubelet
from netconform.lab.control.nodebridge import NodeBridge
from netconform.lab.control.realaudit import AuditCounters
from netconform.lab.control.realcp import GATEWAY_API_VERSION, ControlPlane, gateway_api_dir
from netconform.lab.control.realevents import EventForwarder
from netconform.lab.control.realingress import ApiProxy, ingress_token, install_gateway_api
from netconform.lab.control.realmirror import (
    Mirror,
    RealApi,
    RealApiError,
    RealControllers,
    bootstrap_objects,
    create_all,
    rbac_objects,
    scratch_bootstrap,
    wait_for,
)
from netconform.lab.control.realwebhook import ConditionWebhook
from netconform.lab.control.supervisor import LabBackend, Supervisor, kubeconfig
from netconform.lab.faults.bridge import FaultBridge
from netconform.lab.faults.conditions import ConditionError
from netconform.lab.net.dataplane import NetplaneDataPlane
from netconform.lab.statefiles import KUBECONFIG_FILE

log = logging.getLogger("netconform.lab.control.realsupervisor")

NODE_SOCKET = "nodes.sock"
SETUP_TIMEOUT = 60.0


class RealSupervisor(Supervisor):
    control_plane_kind = "real"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state["control_plane"] = "real"
        self.cp: ControlPlane | None = None
        self.mirror: Mirror | None = None
        self.real: RealApi | None = None
        self.bridge: NodeBridge | None = None
        self.webhook: ConditionWebhook | None = None
        self.events: EventForwarder | None = None
        self.audit: AuditCounters | None = None
        self.proxy: ApiProxy | None = None
        self.timings: dict[str, float] = {}

    async def serve(self) -> int:
        loop = self._begin()
        t0 = time.monotonic()
        runner: web.AppRunner | None = None
        reconciler: asyncio.Future[None] | None = None
        try:
            await loop.run_in_executor(None, self.plane.build)
            self.timings["data_plane_s"] = round(time.monotonic() - t0, 2)
            self.dataplane = NetplaneDataPlane(self.plane)
            comp.install(self.state_dir, self.components, self.node_list)
            self.cp = ControlPlane(self.name, self.state_dir, self.node_list)
            self.cp.prepare()
            self._save_state(control_plane_pki=str(self.cp.pki))
            t1 = time.monotonic()
            await loop.run_in_executor(None, self.cp.start)
            self.timings["control_plane_s"] = round(time.monotonic() - t1, 2)
            self.timings.update({f"{k}_ready_s": v for k, v in self.cp.timings.items()})
            self.real = RealApi(self.cp.url, self.cp.pki / "ca.crt", *self.cp.supervisor_cert)
            self.audit = AuditCounters(self.cp.audit_log)
            await self.real.open()
            for path, obj in rbac_objects():
                with contextlib.suppress(RealApiError):  # 409: already there
                    await self.real.request("POST", path, obj)
            # the Gateway API, served by the real API server through its CRDs
            t_crd = time.monotonic()
            crds = await install_gateway_api(self.real, gateway_api_dir(), SETUP_TIMEOUT)
            self.timings["gateway_api_crds_s"] = round(time.monotonic() - t_crd, 2)
            log.info("Gateway API %s: %d CRDs Established", GATEWAY_API_VERSION, len(crds))
            if self.ingress:  # the controller's identity, and api.sock: a proxy to the real API
                await ingress_token(self.real, self.state_dir / INGRESS_TOKEN_FILE, SETUP_TIMEOUT)
                self.proxy = ApiProxy(self.cp.url, self.cp.pki / "ca.crt", self.state_dir / API_SOCKET)
                await self.proxy.start()
            # local store, kubelet, lab controllers over the mirror of the real API
            ipam = Ipam()
            self.kubelet = Kubelet(self.store, self.dataplane, ipam, self.state_dir, self.name)
            self.events = EventForwarder(self.real)
            self.store.listeners.append(self.events.on_store_event)
            self.events.start()
            self.mirror = Mirror(self.real, self.store)
            self.mirror.start()
            await self.mirror.wait_synced(SETUP_TIMEOUT)
            self.controllers = RealControllers(
                self.mirror,
                self.store,
                self.dataplane,
                self.node_list,
                self.state_dir,
                self.lb,
                self._no_delete,
                self.conditions,
                self.components,
                ingress=False,
            )
            self.faults = FaultBridge(self)
            self.webhook = ConditionWebhook(self.real, self.cp.ca, self.conditions)
            await self.webhook.start()
            if self.components.cilium:
                self.kubelet.network_listeners.append(self._endpoint_put)
            self.kubelet.network_listeners.append(self.faults.pod_network)
            self.bridge = NodeBridge(self.store, self.kubelet, self.state_dir / NODE_SOCKET)
            await self.bridge.start()
            self.controllers.report_node_ready = self.bridge.set_ready
            reconciler = asyncio.ensure_future(self.controllers.run())
            self.controllers.kick()
            # nodes
            t2 = time.monotonic()
            for i, node in enumerate(self.node_list):
                taints = "node-role.kubernetes.io/control-plane:NoSchedule" if i == 0 else ""
                self.cp.start_agent(self.cp.agent_component(node, self.state_dir / NODE_SOCKET, taints))
            await self._label_nodes()
            self.timings["nodes_registered_s"] = round(time.monotonic() - t2, 2)
            # kube-system as the emulated lab has it
            scratch = scratch_bootstrap(
                self.node_list, self.state_dir, self.lb, self.dataplane, self.components, ingress=self.ingress
            )
            self.controllers.last_zone = None  # the scratch bootstrap wrote its own zone file
            self.controllers.kick()
            created = await create_all(self.real, bootstrap_objects(scratch), SETUP_TIMEOUT)
            log.info("created %d kube-system objects in the real API", len(created))
            runner = await self._serve_lab_api()
        except Exception as err:
            log.exception("real control plane start failed")
            self._save_state(phase="failed", error=f"{type(err).__name__}: {err}")
            await self._teardown(runner, reconciler, loop)
            return 1
        self._save_state(phase="running", started=time.time(), timings=self.timings)
        log.info("lab up with the real control plane in %.2f s: %s", time.monotonic() - t0, self.timings)
        try:
            await self.stop.wait()
        finally:
            await self._teardown(runner, reconciler, loop)
        return 0

    def condition_refusal(self, name: str) -> str | None:
        return ConditionWebhook.refusal(name)

    async def conditions_changed(self) -> None:
        """The real API server refuses and keeps namespaces through the lab's admission webhook."""
        if self.webhook is None:
            raise ConditionError("the lab's admission webhook is not started yet")
        await self.webhook.sync()

    @staticmethod
    def _no_delete(*_: Any) -> dict[str, Any]:
        return {}

    async def _label_nodes(self) -> None:
        """Wait until every node agent registered its Node; give node-1 its control-plane role label
        (NodeRestriction refuses `node-role.kubernetes.io/*` labels from the node itself)."""
        assert self.real is not None
        for i, node in enumerate(self.node_list):
            await wait_for(self.real, f"/api/v1/nodes/{node}", SETUP_TIMEOUT)
            if i == 0:
                await self.real.request(
                    "PATCH",
                    f"/api/v1/nodes/{node}",
                    {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}},
                    "application/merge-patch+json",
                )

    async def _serve_lab_api(self) -> web.AppRunner:
        """The lab's own API (status, faults) on loopback; the kubeconfig names the real API server."""
        assert self.cp is not None
        tokens = {self.admin_token: User("admin", ("system:masters",), read_only=False)}
        self.api = ApiServer(self.store, LabBackend(self), tokens, self.conditions)
        runner = web.AppRunner(self.api.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        cert = make_serving_cert(self.state_dir / "lab-api-pki", self.name)
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=64, ssl_context=cert.server_context())
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        kc_path = self.state_dir / KUBECONFIG_FILE
        kc_tmp = kc_path.with_suffix(".tmp")
        kc_tmp.write_text(
            yaml.safe_dump(
                kubeconfig(
                    self.name, self.cp.url, self.cp.ca.ca_pem, self.cp.admin_token, self.cp.viewer_token
                ),
                sort_keys=False,
            )
        )
        os.chmod(kc_tmp, 0o600)
        kc_tmp.replace(kc_path)
        self._save_state(
            api=f"https://127.0.0.1:{port}",
            ca_file=str(self.state_dir / "lab-api-pki" / "ca.crt"),
            token=self.admin_token,
            kube_api=self.cp.url,
            kube_ca_file=str(self.cp.pki / "ca.crt"),
            viewer_token=self.cp.viewer_token,
            kubeconfig=str(kc_path),
        )
        return runner

    async def _teardown(
        self,
        runner: web.AppRunner | None,
        reconciler: asyncio.Future[None] | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        log.info("stopping")
        self._save_state(phase="stopping")
        if self.cp is not None:  # node agents first: nothing recreates pods while they stop
            for agent in self.cp.agents.values():
                if agent.proc is not None and agent.proc.poll() is None:
                    agent.proc.terminate()
        if reconciler is not None:
            reconciler.cancel()
        with contextlib.suppress(Exception):
            await self.faults.clear(None)
        with contextlib.suppress(Exception):
            await self.kubelet.shutdown()
        if self.mirror is not None:
            await self.mirror.stop()
        if self.bridge is not None:
            await self.bridge.close()
        if self.webhook is not None:
            await self.webhook.close()
        if self.events is not None:
            await self.events.close()
        if self.proxy is not None:
            with contextlib.suppress(Exception):
                await self.proxy.close()
        if self.real is not None:
            await self.real.close()
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        if self.cp is not None:
            await loop.run_in_executor(None, self.cp.stop)
        try:
            await loop.run_in_executor(None, self.plane.destroy)
        except Exception as err:
            log.error("data plane destroy failed: %s", err)
        self._save_state(phase="stopped")

    def status(self) -> dict[str, Any]:
        out = super().status()
        if self.cp is not None:
            out["api_url"] = self.cp.url  # the kubeconfig's server
        if self.audit is not None:
            out["api"] = self.audit.snapshot()  # the real API server's requests, as the emulated counts them
        out["control_plane"] = {
            "kind": "real",
            "api_url": self.cp.url if self.cp else None,
            "timings": self.timings,
            "pids": self.cp.pids() if self.cp else [],
            "mirror": self.mirror.summary() if self.mirror else {},
            "node_bridge_requests": self.bridge.requests if self.bridge else 0,
            "events_posted": self.events.posted if self.events else 0,
            "events_dropped": self.events.dropped if self.events else 0,
            "webhook_reviews": self.webhook.reviews if self.webhook else 0,
            "api_socket_requests": self.proxy.requests if self.proxy else 0,
        }
        return out


def state_paths(state_dir: Path) -> dict[str, Path]:
    return {"nodes_socket": state_dir / NODE_SOCKET}
