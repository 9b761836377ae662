"""Optional lab components that behave like the real ones at the interfaces the suite reads.

`netconform lab up --dataplane cilium` replaces the lab's CNI pods by `anetd-*` pods (hostNetwork, one
per node) running `cilium.py agent`, whose `cilium`/`cilium-dbg`/`bpftool` commands answer from real
probes, real drop counters and the real Services; `--lb metallb` adds MetalLB controller and speaker
pods (`app=metallb`) logging each VIP and the node announcing it; `--lb f5` adds `load-balancer-f5` and
`k8s-bigip-ctlr` pods and one ConfigMap per port of every LoadBalancer Service. The default lab has none.

The control plane talks to the component programs through files under `<state>/components/`:

    config.json                 {"dataplane", "lb", "lab", "node_ips"}
    bin/cilium, bin/bpftool     wrappers first in the anetd container's PATH (exec finds them)
    cilium/services.json        the Services as the lab's service proxy programs them
    cilium/NODE.endpoints       one JSON line per pod whose network came up on NODE (endpoint PUTs)
    cilium/NODE.health.json     written by the agent: its last probe of every node
    lb/allocations.json, lb/announcements.json   MetalLB's view: VIP -> service / announcing node
    f5/virtuals.json            the partition and the virtual servers of this cluster's ConfigMaps

Faults (netconform.lab.faults.catalogue) switch marker files there (e.g. `cilium/node-3.health-down`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netconform.lab.net.addressing import node_ip

Obj = dict[str, Any]
HERE = Path(__file__).resolve().parent
CILIUM_SCRIPT = HERE / "cilium.py"
METALLB_SCRIPT = HERE / "metallb.py"
BIGIP_SCRIPT = HERE / "bigip.py"
DATAPLANES = ("lab", "cilium")
LOAD_BALANCERS = ("lab", "metallb", "f5")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
F5_SCHEMA = "f5schemadb://bigip-virtual-server_v0.1.7.json"
F5_MANAGED_BY = "load-balancer-f5"
LB_POOL_NAME = "lab-pool"
TOLERATE_ALL = [{"operator": "Exists"}]


class ComponentError(ValueError):
    """A component option is not valid; one line for the user."""


@dataclass(frozen=True)
class ComponentConfig:
    """Which optional components a lab runs, e.g. `ComponentConfig("cilium", "metallb")`."""

    dataplane: str = "lab"
    lb: str = "lab"

    def __post_init__(self) -> None:
        if self.dataplane not in DATAPLANES:
            raise ComponentError(f"--dataplane {self.dataplane!r}: choose one of {', '.join(DATAPLANES)}")
        if self.lb not in LOAD_BALANCERS:
            raise ComponentError(f"--lb {self.lb!r}: choose one of {', '.join(LOAD_BALANCERS)}")

    @property
    def cilium(self) -> bool:
        return self.dataplane == "cilium"

    def extra_system_pods(self, nodes: int) -> int:
        """kube-system pods beyond the default lab's (anetd replaces lab-cni one for one)."""
        return {"lab": 0, "metallb": 1 + nodes, "f5": 2}[self.lb]


def components_dir(state_dir: Path) -> Path:
    return state_dir / "components"


def load_config(state_dir: Path) -> ComponentConfig:
    try:
        data = json.loads((components_dir(state_dir) / "config.json").read_text())
        return ComponentConfig(data.get("dataplane", "lab"), data.get("lb", "lab"))
    except (OSError, ValueError):
        return ComponentConfig()


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def install(state_dir: Path, config: ComponentConfig, nodes: list[str]) -> Path:
    """Write config.json and the CLI wrappers; returns the components directory."""
    d = components_dir(state_dir)
    for sub in ("bin", "cilium", "lb/speaker-down", "f5"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    _write_json(
        d / "config.json",
        {
            "dataplane": config.dataplane,
            "lb": config.lb,
            "lab": state_dir.name,
            "node_ips": {n: node_ip(n) for n in nodes},
        },
    )
    for name, role in (("cilium", "cli"), ("cilium-dbg", "cli"), ("bpftool", "bpftool")):
        path = d / "bin" / name
        path.write_text(f'#!/bin/sh\nexec {sys.executable} {CILIUM_SCRIPT} {role} "$@"\n')
        path.chmod(0o755)
    return d


def _suffix(seed: str, n: int = 5) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()[:n]


def _pod(name: str, node: str, labels: dict[str, str], container: Obj, host_network: bool) -> Obj:
    spec: Obj = {
        "nodeName": node,
        "tolerations": TOLERATE_ALL,
        "priorityClassName": "system-node-critical",
        "containers": [container],
    }
    if host_network:
        spec.update(hostNetwork=True, dnsPolicy="Default")
    return {"metadata": {"name": name, "namespace": "kube-system", "labels": labels}, "spec": spec}


def system_pods(state_dir: Path, config: ComponentConfig, nodes: list[str]) -> list[Obj]:
    """The component pods created at `lab up` (anetd per node replaces lab-cni; see `cni_pods`)."""
    d = str(components_dir(state_dir))
    py = sys.executable
    pods: list[Obj] = []
    if config.lb == "metallb":
        pods.append(
            _pod(
                f"metallb-controller-{_suffix('metallb-controller', 10)}-{_suffix('mc')}",
                nodes[0],
                {"app": "metallb", "component": "controller"},
                {
                    "name": "controller",
                    "image": "quay.io/metallb/controller:v0.13.12",
                    "command": [py, str(METALLB_SCRIPT), "controller", "--dir", d],
                },
                host_network=False,
            )
        )
        for node in nodes:
            pods.append(
                _pod(
                    f"metallb-speaker-{_suffix('speaker-' + node)}",
                    node,
                    {"app": "metallb", "component": "speaker"},
                    {
                        "name": "speaker",
                        "image": "quay.io/metallb/speaker:v0.13.12",
                        "command": [py, str(METALLB_SCRIPT), "speaker", "--dir", d, "--node", node],
                    },
                    host_network=True,
                )
            )
    if config.lb == "f5":
        for name, role in (
            (f"load-balancer-f5-{_suffix('lbf5', 10)}-{_suffix('lbf5-pod')}", "load-balancer-f5"),
            (f"k8s-bigip-ctlr-deployment-{_suffix('bigip', 10)}-{_suffix('bigip-pod')}", "k8s-bigip-ctlr"),
        ):
            pods.append(
                _pod(
                    name,
                    nodes[0],
                    {"app": role},
                    {
                        "name": role,
                        "image": f"gcr.io/gke-on-prem-release/{role}:lab",
                        "command": [py, str(BIGIP_SCRIPT), role, "--dir", d],
                    },
                    host_network=False,
                )
            )
    return pods


def cni_pods(state_dir: Path, config: ComponentConfig, nodes: list[str]) -> list[Obj] | None:
    """The anetd DaemonSet's pods (None: the default lab-cni pods)."""
    if not config.cilium:
        return None
    d = str(components_dir(state_dir))
    return [
        _pod(
            f"anetd-{_suffix('anetd-' + node)}",
            node,
            {"k8s-app": "cilium", "app.kubernetes.io/name": "anetd"},
            {
                "name": "cilium-agent",
                "image": "gcr.io/gke-on-prem-release/anetd:1.14-lab",
                "command": [sys.executable, str(CILIUM_SCRIPT), "agent", "--dir", d, "--node", node],
                "env": [
                    {"name": "PATH", "value": f"{d}/bin:{BASE_PATH}"},
                    {"name": "NC_COMPONENTS_DIR", "value": d},
                    {"name": "NC_NODE_NAME", "value": node},
                ],
            },
            host_network=True,
        )
        for node in nodes
    ]


# ------------------------------------------------------------------------------ control plane side
def write_services(state_dir: Path, services: list[Obj]) -> None:
    _write_json(components_dir(state_dir) / "cilium" / "services.json", services)


def record_endpoint(state_dir: Path, node: str, pod_key: str, uid: str) -> None:
    """An endpoint PUT to the node's agent: one JSON line the agent rate-limits like Cilium's API."""
    path = components_dir(state_dir) / "cilium" / f"{node}.endpoints"
    line = json.dumps({"time": time.time(), "pod": pod_key, "container_id": _suffix(uid or pod_key, 12)})
    with open(path, "a") as fh:
        fh.write(line + "\n")


def write_lb(state_dir: Path, allocations: dict[str, str], announcements: dict[str, tuple[str, str]]) -> None:
    """MetalLB's view: vip -> service, and vip -> (node, service) for the announced ones."""
    d = components_dir(state_dir) / "lb"
    _write_json(
        d / "allocations.json", {v: {"service": s, "pool": LB_POOL_NAME} for v, s in allocations.items()}
    )
    _write_json(
        d / "announcements.json",
        {v: {"node": n, "service": s, "pool": LB_POOL_NAME} for v, (n, s) in announcements.items()},
    )


def speakers_down(state_dir: Path) -> set[str]:
    d = components_dir(state_dir) / "lb" / "speaker-down"
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def f5_partition(state_dir: Path) -> str:
    return f"netconform-{state_dir.name}-admin"


def f5_configmaps_missing(state_dir: Path) -> bool:
    return (components_dir(state_dir) / "f5" / "configmap-missing").exists()


def f5_config_maps(state_dir: Path, services: list[Obj]) -> list[Obj]:
    """One ConfigMap per port of every LoadBalancer Service with an address, as k8s-bigip-ctlr reads them."""
    if f5_configmaps_missing(state_dir):
        return []
    partition = f5_partition(state_dir)
    out = []
    for svc in services:
        if svc["spec"].get("type") != "LoadBalancer":
            continue
        ingress = [
            i["ip"] for i in svc.get("status", {}).get("loadBalancer", {}).get("ingress") or [] if i.get("ip")
        ]
        if not ingress:
            continue
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        for port in svc["spec"].get("ports", []):
            proto = port.get("protocol", "TCP").lower()
            data = {
                "virtualServer": {
                    "backend": {
                        "serviceName": name,
                        "servicePort": int(port["port"]),
                        "healthMonitors": [{"protocol": "tcp", "interval": 5, "timeout": 16}],
                    },
                    "frontend": {
                        "virtualAddress": {"bindAddr": ingress[0], "port": int(port["port"])},
                        "partition": partition,
                        "balance": "ratio-member",
                        "mode": "udp" if proto == "udp" else "tcp",
                    },
                }
            }
            out.append(
                {
                    "kind": "ConfigMap",
                    "apiVersion": "v1",
                    "metadata": {
                        "name": f"{name}-{port['port']}-{proto}",
                        "namespace": ns,
                        "labels": {"f5type": "virtual-server", "app.kubernetes.io/managed-by": F5_MANAGED_BY},
                    },
                    "data": {"data": json.dumps(data, separators=(",", ":")), "schema": F5_SCHEMA},
                }
            )
    return out


def write_virtuals(state_dir: Path, config_maps: list[Obj]) -> None:
    names = sorted(f"{c['metadata']['namespace']}_{c['metadata']['name']}" for c in config_maps)
    _write_json(
        components_dir(state_dir) / "f5" / "virtuals.json",
        {"partition": f5_partition(state_dir), "virtuals": names},
    )


def marker(state_dir: Path, relative: str, content: str | None) -> None:
    """Create (content) or remove (None) a fault marker under the components directory."""
    path = components_dir(state_dir) / relative
    if content is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content)
    os.replace(tmp, path)
