"""Connects the lab API's fault endpoints (`/lab/v1/faults`) to the data plane's fault catalogue.

The faults themselves live in `netconform.lab.faults` (data-plane side): `add(name, ctx, node)`,
`clear(name, ctx)`, `names()`. This bridge builds their context from live API state (pods with
netns/labels/IP/node, the kube-dns pods, LB VIPs) and gives them `set_node_condition` for node-level
faults; it runs their (blocking) work in an executor so the API keeps answering meanwhile. The kubelet
reports pods whose network comes up or goes (`pod_network`), so pod-scoped faults follow pods.

The same endpoints also switch the control plane's bad-input conditions (`netconform.lab.faults.conditions`:
`deny-host-network`, `namespace-stuck`); the catalogue lists them after the faults with `kind: condition`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

from netconform.lab.api.store import ApiError
from netconform.lab.faults import conditions as conditions

if TYPE_CHECKING:
    from netconform.lab.control.supervisor import Supervisor

log = logging.getLogger("netconform.lab.faults.catalogue")


class FaultBridge:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.lock = asyncio.Lock()

    @staticmethod
    def _module() -> ModuleType:
        try:
            return importlib.import_module("netconform.lab.faults.catalogue")
        except ImportError as err:
            raise ApiError(
                501, "NotImplemented", f"the lab's fault catalogue is not available: {err}"
            ) from None

    # ------------------------------------------------------------------ context for the fault module
    @staticmethod
    def _pod_info(module: ModuleType, pod: dict[str, Any], netns: str | None) -> Any:
        meta, spec, st = pod["metadata"], pod["spec"], pod.get("status", {})
        ports = tuple(
            module.PodPort(int(port["containerPort"]), port.get("name", ""), port.get("protocol", "TCP"))
            for c in spec.get("containers", [])
            for port in c.get("ports") or []
        )
        return module.PodInfo(
            name=meta["name"],
            namespace=meta["namespace"],
            node=spec.get("nodeName") or "",
            netns=None if spec.get("hostNetwork") else netns,
            ip=st.get("podIP"),
            labels=dict(meta.get("labels") or {}),
            ports=ports,
            uid=meta.get("uid", ""),
        )

    def _pod_infos(self, module: ModuleType) -> list[Any]:
        """A snapshot taken on the event loop (faults run in a thread and must not read the live store)."""
        kubelet = self.sup.kubelet
        return [
            self._pod_info(module, p, kubelet.pod_netns(p["metadata"]["namespace"], p["metadata"]["name"]))
            for p in self.sup.store.select("pods")
            if p["spec"].get("nodeName")
        ]

    def set_node_condition(self, node: str, ready: bool, reason: str, message: str) -> None:
        """Called from the fault's worker thread; the store lives on the event loop."""
        fut = asyncio.run_coroutine_threadsafe(
            self._set_condition(node, ready, reason, message), self.sup.api_loop
        )
        fut.result(timeout=10)

    async def _set_condition(self, node: str, ready: bool, reason: str, message: str) -> None:
        self.sup.controllers.set_node_condition(node, ready, reason, message)

    def _context(self, module: ModuleType) -> Any:
        snapshot = self._pod_infos(module)
        return module.FaultContext(
            netplane=self.sup.plane,
            pods=lambda: list(snapshot),
            set_node_condition=self.set_node_condition,
            kick=self.kick,
        )

    def kick(self) -> None:
        """Called from the fault's worker thread: reconcile now (component faults change what the
        controllers write, e.g. the F5 ConfigMaps or the MetalLB announcements)."""
        self.sup.api_loop.call_soon_threadsafe(self.sup.controllers.kick)

    async def _call(self, fn: Any, *args: Any) -> Any:
        module = self._module()
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        except module.FaultError as err:
            raise ApiError(422, "Invalid", str(err)) from None
        except Exception as err:
            log.exception("fault operation failed")
            raise ApiError(500, "InternalError", f"fault operation failed: {err}") from None

    # ------------------------------------------------------------------ pods coming and going
    async def pod_network(self, change: str, pod: dict[str, Any], netns: str) -> None:
        """The kubelet's report that a pod's network namespace came up ("up", before its containers
        start) or is about to go ("down"): pod-scoped faults apply or undo their per-pod part, so a
        fault follows pods started after it was added. Under the fault lock, so a concurrent
        `fault add` (which snapshots the pods) and this report never both miss or both break a pod."""
        module = self._module()
        info = self._pod_info(module, pod, netns)
        fn = module.pod_started if change == "up" else module.pod_stopped
        async with self.lock:
            if not self._pod_scoped_active(module):
                return  # nothing to follow (the common case): no snapshot of every pod, no worker thread
            context = self._context(module)
            done = await asyncio.get_running_loop().run_in_executor(None, fn, context, info)
        for line in done:
            log.info("fault follows pods: %s", line)

    def _pod_scoped_active(self, module: ModuleType) -> bool:
        """Is any pod-scoped fault active? Read on the event loop, under the fault lock (a small state
        file, `Netplane.fault_names`): a 20-node kit's pods each waited ~4 s for this lock while the
        worker thread that read the state competed with the pods being wired (issue 15)."""
        names = getattr(self.sup.plane, "fault_names", None)
        if names is None:
            return True  # no data plane to read: let the fault module decide, as before
        known = set(module.names())
        return any(n in known and module.follows_pods(n) for n in names())

    # ------------------------------------------------------------------ API
    async def catalogue(self) -> list[dict[str, Any]]:
        module = self._module()
        active = module.active(self._context(module))
        faults = [
            {
                "name": n,
                "kind": "fault",
                "description": module.describe(n),
                "follows_pods": module.follows_pods(n),
                "active": n in active,
                **({"where": active[n]} if n in active else {}),
            }
            for n in module.names()
        ]
        held = self.sup.conditions.active
        return faults + [
            {
                "name": n,
                "kind": "condition",
                "description": conditions.describe(n),
                "active": n in held,
                **({"where": held[n]} if n in held else {}),
            }
            for n in conditions.names()
        ]

    def active(self) -> list[dict[str, Any]]:
        held = [{"name": n, "where": w} for n, w in self.sup.conditions.active.items()]
        try:
            module = self._module()
            return [{"name": n, "where": w} for n, w in module.active(self._context(module)).items()] + held
        except ApiError:
            return held

    async def _conditions_changed(self) -> None:
        try:
            await self.sup.conditions_changed()
        except conditions.ConditionError as err:
            raise ApiError(500, "InternalError", str(err)) from None

    def _known(self, module: ModuleType) -> str:
        return ", ".join([*module.names(), *conditions.names()])

    async def add(self, name: str, node: str | None) -> dict[str, Any]:
        module = self._module()
        if name in conditions.names():
            if refusal := self.sup.condition_refusal(name):
                raise ApiError(422, "Invalid", refusal)
            try:
                summary = self.sup.conditions.add(name, node)
            except conditions.ConditionError as err:
                raise ApiError(422, "Invalid", str(err)) from None
            try:
                await self.sup.conditions_changed()
            except conditions.ConditionError as err:
                self.sup.conditions.clear(name)
                raise ApiError(500, "InternalError", str(err)) from None
            log.info("condition added: %s", summary)
            return {"name": name, "where": self.sup.conditions.active.get(name), "summary": summary}
        if name not in module.names():
            raise ApiError(404, "NotFound", f"no fault {name!r}; known: {self._known(module)}")
        if node is not None and node not in self.sup.node_list:
            raise ApiError(422, "Invalid", f"node {node!r}: the lab has {', '.join(self.sup.node_list)}")
        async with self.lock:
            summary = await self._call(module.add, name, self._context(module), node)
            where = module.active(self._context(module)).get(name)
            log.info("fault added: %s", summary)
            return {"name": name, "where": where, "summary": summary}

    async def clear(self, name: str | None) -> list[str]:
        module = self._module()
        held = self.sup.conditions
        if name is not None and name in conditions.names():
            if not held.is_active(name):
                return []
            log.info("condition cleared: %s", held.clear(name))
            await self._conditions_changed()
            return [name]
        if name is not None and name not in module.names():
            raise ApiError(404, "NotFound", f"no fault {name!r}; known: {self._known(module)}")
        cleared_conditions = []
        if name is None:
            for n in list(held.active):
                log.info("condition cleared: %s", held.clear(n))
                cleared_conditions.append(n)
            if cleared_conditions:
                await self._conditions_changed()
        async with self.lock:
            active = list(module.active(self._context(module)))
            targets = [name] if name is not None else active
            cleared = []
            for n in targets:
                if n not in active:
                    continue
                summary = await self._call(module.clear, n, self._context(module))
                log.info("fault cleared: %s", summary)
                cleared.append(n)
            return cleared + cleared_conditions
