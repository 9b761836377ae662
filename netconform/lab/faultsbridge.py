"""Connects the lab API's fault endpoints (`/lab/v1/faults`) to the data plane's fault catalogue.

The faults themselves live in `netconform.lab.faults` (data-plane side): `add(name, ctx, node)`,
`clear(name, ctx)`, `names()`. This bridge builds their context from live API state (pods with
netns/labels/IP/node, the kube-dns pods, LB VIPs) and gives them `set_node_condition` for node-level
faults; it runs their (blocking) work in an executor so the API keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

from netconform.lab.store import ApiError, now_iso

if TYPE_CHECKING:
    from netconform.lab.supervisor import Supervisor

log = logging.getLogger("netconform.lab.faults")


class FaultBridge:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.applied: dict[str, dict[str, Any]] = {}  # name -> {"name", "node", "since"}
        self.lock = asyncio.Lock()

    @staticmethod
    def _module() -> ModuleType:
        try:
            return importlib.import_module("netconform.lab.faults")
        except ImportError as err:
            raise ApiError(
                501, "NotImplemented", f"the lab's fault catalogue is not available: {err}"
            ) from None

    # ------------------------------------------------------------------ context for the fault module
    def pods(self) -> list[dict[str, Any]]:
        out = []
        for p in self.sup.store.select("pods"):
            meta, st = p["metadata"], p.get("status", {})
            out.append(
                {
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "labels": meta.get("labels", {}),
                    "node": p["spec"].get("nodeName"),
                    "ip": st.get("podIP"),
                    "host_network": bool(p["spec"].get("hostNetwork")),
                    "netns": self.sup.kubelet.pod_netns(meta["namespace"], meta["name"]),
                    "phase": st.get("phase"),
                }
            )
        return out

    def lb_vips(self) -> list[str]:
        return sorted(self.sup.controllers.announced)

    def set_node_condition(self, node: str, ready: bool, reason: str, message: str) -> None:
        """Thread-safe: faults run in an executor, the store lives on the event loop."""
        loop = self.sup.api_loop
        fut = asyncio.run_coroutine_threadsafe(self._set_condition(node, ready, reason, message), loop)
        fut.result(timeout=10)

    async def _set_condition(self, node: str, ready: bool, reason: str, message: str) -> None:
        self.sup.controllers.set_node_condition(node, ready, reason, message)

    def _context(self, module: ModuleType) -> Any:
        ctx_cls = getattr(module, "FaultContext", None)
        if ctx_cls is None:
            raise ApiError(500, "InternalError", "netconform.lab.faults has no FaultContext")
        offered: dict[str, Any] = {
            "plane": self.sup.plane,
            "netplane": self.sup.plane,
            "lab": self.sup.name,
            "nodes": list(self.sup.node_list),
            "pods": self.pods(),
            "kube_dns_netns": [
                p["netns"] for p in self.pods() if p["labels"].get("k8s-app") == "kube-dns" and p["netns"]
            ],
            "lb_vips": self.lb_vips(),
            "vips": dict(self.sup.controllers.announced),
            "set_node_condition": self.set_node_condition,
            "state_dir": self.sup.state_dir,
        }
        params = inspect.signature(ctx_cls).parameters
        missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in offered]
        if missing:
            raise ApiError(
                500,
                "InternalError",
                f"FaultContext needs {', '.join(missing)}, which the control plane does not provide",
            )
        return ctx_cls(**{n: v for n, v in offered.items() if n in params})

    # ------------------------------------------------------------------ API
    async def catalogue(self) -> list[dict[str, Any]]:
        module = self._module()
        names = list(module.names())
        return [
            {
                "name": n,
                "active": n in self.applied,
                **(
                    {"node": self.applied[n]["node"], "since": self.applied[n]["since"]}
                    if n in self.applied
                    else {}
                ),
            }
            for n in names
        ]

    def active(self) -> list[dict[str, Any]]:
        return list(self.applied.values())

    async def add(self, name: str, node: str | None) -> dict[str, Any]:
        module = self._module()
        if name not in module.names():
            raise ApiError(404, "NotFound", f"no fault {name!r}; known: {', '.join(module.names())}")
        if node is not None and node not in self.sup.node_list:
            raise ApiError(422, "Invalid", f"node {node!r}: the lab has {', '.join(self.sup.node_list)}")
        async with self.lock:
            if name in self.applied:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f"fault {name!r} is already active (node {self.applied[name]['node']})",
                )
            ctx = self._context(module)
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(None, module.add, name, ctx, node)
            except (ValueError, KeyError) as err:
                raise ApiError(422, "Invalid", f"fault {name}: {err}") from None
            except Exception as err:
                log.exception("fault %s failed", name)
                raise ApiError(500, "InternalError", f"fault {name} could not be applied: {err}") from None
            applied_node = node
            if isinstance(result, dict) and result.get("node"):
                applied_node = result["node"]
            elif isinstance(result, str):
                applied_node = result
            record = {"name": name, "node": applied_node, "since": now_iso()}
            self.applied[name] = record
            log.info("fault %s added (node %s)", name, applied_node)
            return record

    async def clear(self, name: str | None) -> list[str]:
        if not self.applied and name is None:
            return []
        module = self._module()
        async with self.lock:
            names = [name] if name is not None else list(self.applied)
            if name is not None and name not in self.applied and name not in module.names():
                raise ApiError(404, "NotFound", f"no fault {name!r}")
            cleared = []
            loop = asyncio.get_running_loop()
            ctx = self._context(module)
            for n in names:
                try:
                    await loop.run_in_executor(None, module.clear, n, ctx)
                except Exception as err:
                    log.exception("clearing fault %s failed", n)
                    raise ApiError(500, "InternalError", f"fault {n} could not be cleared: {err}") from None
                if self.applied.pop(n, None) is not None or name is not None:
                    cleared.append(n)
            return cleared
