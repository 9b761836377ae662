"""What a check's plan and expectation may read about the run: topology, the deployed kit, the options.

A plan raises `Skip` with the reason when the cluster lacks what the cell needs (no LB address, no
second node...), so a skipped cell always names what is missing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netconform.model.cell import Cell
from netconform.model.kit import Kit
from netconform.model.options import SuiteOptions
from netconform.model.refs import Ref
from netconform.model.topology import Topology


class Skip(Exception):
    """The cell cannot be measured on this cluster; the message names what is missing."""


NO_OUTSIDE_CLIENT = (
    "no outside client: pass --external-client local to probe from this machine, or --external-runner CMD "
    "to run the probes elsewhere (--lab NAME sets it for a lab)"
)


@dataclass
class Context:
    """The run as a check sees it; the engine adds what API-judged checks read (api, outcome_of, arp)."""

    topo: Topology
    kit: Kit
    opts: SuiteOptions
    api: Any = None  # netconform.checks.components.ComponentApi, or None without API access
    outcome_of: Callable[[Cell], str | None] = field(default=lambda cell: None)  # outcomes judged so far
    arp: Callable[[str, str], list[str]] | None = None  # (node, ip) -> MACs answering from that node

    # -- addresses ------------------------------------------------------------------------------
    def echo_ip(self, node: str) -> str:
        if f"echo@{node}" in self.kit.unavailable_pods:
            raise Skip(self.kit.unavailable_pods[f"echo@{node}"])
        ip = self.kit.ip(f"echo@{node}")
        if not ip:
            raise Skip(f"the echo pod on {node} has no IP")
        return ip

    def node_ip(self, node: str) -> str:
        ip = self.topo.node(node).internal_ip
        if not ip:
            raise Skip(f"node {node} has no InternalIP address")
        return ip

    def sender(self, subject: str) -> str:
        """The subject that sends a cell's probes, checked to be deployed (else Skip with the reason)."""
        if subject == "external":
            if self.opts.outside_client is None:
                raise Skip(NO_OUTSIDE_CLIENT)
            return "external"
        parsed = Ref.parse(subject)
        role, node = parsed.head, parsed.node or ""
        if role == "workload":
            return self.workload_sender(parsed)
        kit_role = "probe" if role == "pod" else role
        if kit_role in self.kit.unavailable:
            raise Skip(self.kit.unavailable[kit_role])
        ref = f"{kit_role}@{node}"
        if ref in self.kit.unavailable_pods:
            raise Skip(self.kit.unavailable_pods[ref])
        if ref not in self.kit.pods:
            raise Skip(f"no {kit_role} pod on {node}")
        return subject

    def workload_sender(self, ref: Ref) -> str:
        """A workload's pod on a node (`--subject`), or Skip with why it cannot be probed."""
        workload = self.topo.workload(ref.name or "")
        node = ref.node or ""
        if workload is None or workload.pod_on(node) is None:
            raise Skip(f"no pod of {ref.name} was chosen on {node}")
        if node in workload.unavailable:
            raise Skip(workload.unavailable[node])
        return str(ref)

    @property
    def iptables_window(self) -> float:
        """FM-19's counting window: as long as the phase's probes take, within 2-30 s."""
        return max(2.0, min(30.0, self.opts.probe_timeout * self.opts.attempts))

    @property
    def arp_window(self) -> float:
        """How long an ARP check listens per attempt for every MAC that answers (FM-06/FM-16 count them).

        0.5 s by default (0.4 x probe timeout, 0.2-0.5 s): a neighbour answers within milliseconds, a
        second owner of the address as fast, and the agent counts every reply the kernel stamped inside
        the window, however late its thread reads them. Every attempt listens the whole window, so this
        is most of a healthy run's phase 2 (2 attempts: 1 s; it was 1 s per attempt until issue 15).
        """
        return max(0.2, min(0.5, self.opts.probe_timeout * 0.4))

    def dns_server(self) -> str:
        if not self.topo.dns_service_ip:
            raise Skip("no kube-dns Service in kube-system")
        return self.topo.dns_service_ip

    @property
    def internal_name(self) -> str:
        return f"kubernetes.default.svc.{self.topo.cluster_domain}"

    def external_name(self) -> str:
        if not self.opts.external_name:
            raise Skip("no external name configured (--external-name)")
        return self.opts.external_name

    def external_url(self) -> str:
        if not self.opts.external_url:
            raise Skip(
                "no external echo URL configured (--external-url, an echo that reflects the caller's address)"
            )
        return self.opts.external_url

    def ingress(self, ingress_class: str) -> dict[str, Any]:
        """The kit's Ingress of a class with the address to send it to; Skip with the reason if none."""
        if ingress_class in self.kit.ingress_unavailable:
            raise Skip(self.kit.ingress_unavailable[ingress_class])
        entry = self.kit.ingresses.get(ingress_class)
        if not entry or not entry.get("address"):
            raise Skip(f"no Ingress of class {ingress_class} was deployed")
        return entry

    def gateway(self, ref: str) -> dict[str, Any]:
        """The kit's HTTPRoute on Gateway `ref` ("ns/name") with the Gateway's address; Skip if none."""
        if ref in self.kit.gateway_unavailable:
            raise Skip(self.kit.gateway_unavailable[ref])
        entry = self.kit.gateways.get(ref)
        if not entry or not entry.get("address"):
            raise Skip(f"no HTTPRoute was attached to Gateway {ref}")
        return entry

    def ingress_ca(self, ingress_class: str) -> str:
        """The run's CA (base64 PEM) of the class's TLS Secret; Skip with the reason if there is none."""
        if ingress_class in self.kit.ingress_tls_unavailable:
            raise Skip(self.kit.ingress_tls_unavailable[ingress_class])
        tls = self.kit.ingress_tls.get(ingress_class)
        if not tls:
            raise Skip(f"no TLS Secret for the Ingress of class {ingress_class} (pass --ingress-tls)")
        return str(tls["ca_b64"])

    def lb_ip(self) -> str:
        if not self.kit.lb_ip:
            raise Skip(self.kit.lb_reason or "the LoadBalancer Service got no address")
        return self.kit.lb_ip

    def coredns_ips(self, node: str) -> list[str]:
        return sorted(p.ip for p in self.topo.coredns if p.node == node and p.ip)

    def control_plane_vip(self) -> str:
        """The control-plane VIP (FM-28): --control-plane-vip, or an API endpoint that is no node's IP."""
        if self.opts.control_plane_vip:
            return self.opts.control_plane_vip
        node_ips = {n.internal_ip for n in self.topo.nodes}
        for ip in self.topo.api_endpoints:
            if ip not in node_ips and any(same_subnet(ip, n) for n in node_ips if n):
                return ip
        raise Skip(
            "no control-plane VIP on the node network (kubernetes endpoints are node addresses or "
            "off-subnet); pass --control-plane-vip to check it"
        )


def same_subnet(a: str, b: str, prefix: int = 24) -> bool:
    try:
        return ipaddress.ip_network(f"{a}/{prefix}", strict=False) == ipaddress.ip_network(
            f"{b}/{prefix}", strict=False
        )
    except ValueError:
        return False
