"""What the control plane needs from the data plane, and an in-memory stand-in for API-only tests.

The real implementation is `netconform.lab.net.netplane.Netplane` (built by the data-plane side); the
control plane only talks to this protocol so the API server, scheduler and kubelet can be tested on
machines (or CI stages) where network namespaces cannot be made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from netconform.lab.net.iptrules import ServiceNAT
from netconform.lab.net.nsexec import NETNS_ETC


class DataPlane(Protocol):
    def node_netns(self, node: str) -> str | None: ...

    def node_resolv_path(self, node: str) -> Path | None: ...

    def add_pod(self, key: str, node: str, ip: str, resolv_conf: str) -> str | None: ...

    def remove_pod(self, key: str) -> None: ...

    def sync_services(self, services: list[ServiceNAT]) -> None: ...

    def sync_policies(self, per_node: dict[str, list[dict[str, Any]]]) -> None: ...

    def announce_vip(self, vip: str, node: str) -> None: ...

    def withdraw_vip(self, vip: str) -> None: ...

    def destroy(self) -> None: ...


class FakeDataPlane:
    """Records calls; pods run in the host's network namespace (no netns), for API and kubelet tests."""

    def __init__(self) -> None:
        self.pods: dict[str, tuple[str, str]] = {}
        self.services: list[ServiceNAT] = []
        self.vips: dict[str, str] = {}
        self.policies: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, Any]] = []

    def node_netns(self, node: str) -> str | None:
        return None

    def node_resolv_path(self, node: str) -> Path | None:
        return None

    def add_pod(self, key: str, node: str, ip: str, resolv_conf: str) -> str | None:
        self.pods[key] = (node, ip)
        self.calls.append(("add_pod", key))
        return None

    def remove_pod(self, key: str) -> None:
        self.pods.pop(key, None)
        self.calls.append(("remove_pod", key))

    def sync_services(self, services: list[ServiceNAT]) -> None:
        self.services = list(services)
        self.calls.append(("sync_services", len(services)))

    def sync_policies(self, per_node: dict[str, list[dict[str, Any]]]) -> None:
        self.policies = dict(per_node)
        self.calls.append(("sync_policies", sum(len(v) for v in per_node.values())))

    def announce_vip(self, vip: str, node: str) -> None:
        self.vips[vip] = node
        self.calls.append(("announce_vip", (vip, node)))

    def withdraw_vip(self, vip: str) -> None:
        self.vips.pop(vip, None)
        self.calls.append(("withdraw_vip", vip))

    def destroy(self) -> None:
        self.calls.append(("destroy", None))


class NetplaneDataPlane:
    """The real data plane (`Netplane`) seen through this protocol; the node resolv.conf as a live path."""

    def __init__(self, plane: Any) -> None:
        self.plane = plane

    def node_netns(self, node: str) -> str | None:
        return str(self.plane.node_netns(node))

    def node_resolv_path(self, node: str) -> Path | None:
        # `ip netns exec` bind-mounts this file; the data plane rewrites it in place (faults), so a pod that
        # bind-mounts it too keeps seeing the node's current nameservers
        return NETNS_ETC / str(self.plane.node_netns(node)) / "resolv.conf"

    def add_pod(self, key: str, node: str, ip: str, resolv_conf: str) -> str | None:
        return str(self.plane.add_pod(key, node, ip, resolv_conf))

    def remove_pod(self, key: str) -> None:
        # the removal also flushes the pod IP's neighbour entry on its node, in the same `ip` process: it
        # was one `ip` per node besides (issue 15: 101 per pod, 20,000 for a 100-node kit's deletion)
        self.plane.remove_pod(key)

    def sync_services(self, services: list[ServiceNAT]) -> None:
        self.plane.sync_services(services)

    def sync_policies(self, per_node: dict[str, list[dict[str, Any]]]) -> None:
        self.plane.sync_policies(per_node)

    def announce_vip(self, vip: str, node: str) -> None:
        self.plane.announce_vip(vip, node)

    def withdraw_vip(self, vip: str) -> None:
        self.plane.withdraw_vip(vip)

    def destroy(self) -> None:
        self.plane.destroy()
