"""The deployed probe kit as the checks see it: pods per node with their IPs, Services, ports, entries.

Deployed by `netconform.kube.kit.KitDeployer`; JSON-serialisable so xdist workers read the same kit.

>>> Kit("netconform-x", "x", pods={"echo@node-1": {"ip": "10.244.1.5"}}).ip("echo@node-1")
'10.244.1.5'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ECHO_PORTS = {"http": 8080, "tcp": 9000, "udp": 9001}

SERVICE_PORTS = {"http": 80, "tcp": 9000, "udp": 9001}


@dataclass
class Kit:
    """What the checks need to know about the deployed kit (JSON-serialisable for xdist workers)."""

    namespace: str
    run_id: str
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # subject/echo id -> name, node, ip
    unavailable: dict[str, str] = field(default_factory=dict)  # "host" / "pod" -> reason
    unavailable_pods: dict[str, str] = field(default_factory=dict)  # "probe@node-3" -> reason
    clusterip: str | None = None
    service_ports: dict[str, int] = field(default_factory=lambda: dict(SERVICE_PORTS))
    echo_ports: dict[str, int] = field(default_factory=lambda: dict(ECHO_PORTS))
    nodeports: dict[str, int] = field(default_factory=dict)
    lb_ip: str | None = None
    lb_reason: str | None = None
    # per IngressClass: the kit's Ingress ("name", "host") and where to send it ("address", "source")
    ingresses: dict[str, dict[str, Any]] = field(default_factory=dict)
    ingress_unavailable: dict[str, str] = field(default_factory=dict)  # class -> reason
    # --ingress-tls, per class: "secret" and the run's CA ("ca_b64", base64 PEM) the probes verify with
    ingress_tls: dict[str, dict[str, Any]] = field(default_factory=dict)
    ingress_tls_unavailable: dict[str, str] = field(default_factory=dict)  # class -> reason
    # --gateway, per "ns/name": the kit's HTTPRoute ("name", "host") and where to send it ("address", ...)
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)
    gateway_unavailable: dict[str, str] = field(default_factory=dict)  # "ns/name" -> reason

    def ip(self, ref: str) -> str | None:
        pod = self.pods.get(ref)
        return pod.get("ip") if pod else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Kit:
        return cls(**data)
