"""The lab's fixed addresses and names (docs/contracts.md §3), in one place.

Everything here is pure: the data plane, the control plane (IPAM, node objects) and the tests derive
addresses and namespace names from these helpers so they can never disagree.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

FABRIC_CIDR = "10.89.0.0/24"
ROUTER_FABRIC_IP = "10.89.0.1"
CONTROL_PLANE_VIP = "10.89.0.2"
LB_POOL_FIRST = "10.89.0.200"
LB_POOL_LAST = "10.89.0.239"
POD_SUPERNET = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBE_DNS_IP = "10.96.0.10"
KUBERNETES_SERVICE_IP = "10.96.0.1"
NODEPORT_RANGE = (30000, 32767)

OUTSIDE_CIDR = "203.0.113.0/24"
ROUTER_OUTSIDE_IP = "203.0.113.1"
OUTSIDE_ECHO_IP = "203.0.113.10"
UPSTREAM_DNS_IP = "203.0.113.53"
EXTERNAL_CLIENT_IP = "203.0.113.20"
DEAD_NAMESERVER_IP = "203.0.113.99"  # nothing answers here (node-nameserver-mismatch)
INTERNET_CIDR = "198.51.100.0/24"
ROUTER_INTERNET_IP = "198.51.100.1"
INTERNET_ECHO_IP = "198.51.100.10"
DOCUMENTATION_NETS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)

OVERLAY_PORT = 6081  # VXLAN on Geneve's port, the one Cilium-based Dataplane V2 uses (FM-09)
OVERLAY_VNI = 1
FABRIC_MTU = 1500
OVERLAY_MTU = 1450  # fabric MTU minus the 50 bytes of VXLAN encapsulation; pods get the same
MASQ_MARK = "0x4000/0x4000"  # kube-proxy's "masquerade this" mark

_LAB_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")
_NODE_NAME = re.compile(r"^node-([1-9][0-9]?)$")
MAX_NODES = 20

# the namespace suffixes a lab owns; anything else with the same prefix belongs to somebody else
NS_SUFFIXES = r"(fabric|router|outside|client|internet|rogue|node-[0-9]+|p-[0-9a-f]{8})"


class AddressError(ValueError):
    """A lab, node or address outside the contract."""


def check_lab_name(lab: str) -> str:
    if not _LAB_NAME.match(lab):
        raise AddressError(
            f"lab name {lab!r}: use 1-24 characters a-z, 0-9 and '-', starting with a letter/digit"
        )
    return lab


def node_names(count: int) -> list[str]:
    if not 1 <= count <= MAX_NODES:
        raise AddressError(f"node count {count}: the lab supports 1..{MAX_NODES} nodes")
    return [f"node-{i}" for i in range(1, count + 1)]


def node_index(node: str) -> int:
    match = _NODE_NAME.match(node)
    if not match:
        raise AddressError(f"node {node!r}: nodes are named node-1, node-2, ...")
    return int(match.group(1))


def node_ip(node: str) -> str:
    return f"10.89.0.{10 + node_index(node)}"


def pod_cidr(node: str) -> str:
    return f"10.244.{node_index(node)}.0/24"


def pod_gateway(node: str) -> str:
    """The node's bridge address, every pod's default gateway."""
    return f"10.244.{node_index(node)}.1"


def overlay_ip(node: str) -> str:
    """The node's address on its VXLAN device (flannel style: the pod CIDR's network address)."""
    return f"10.244.{node_index(node)}.0"


def lb_pool() -> list[str]:
    first = ipaddress.ip_address(LB_POOL_FIRST)
    last = ipaddress.ip_address(LB_POOL_LAST)
    return [str(first + i) for i in range(int(last) - int(first) + 1)]


def ns_prefix(lab: str) -> str:
    return f"nc-{check_lab_name(lab)}-"


def ns_name(lab: str, role: str) -> str:
    """`nc-<lab>-<role>` for role in fabric/router/outside/client/internet/rogue/node-N."""
    return ns_prefix(lab) + role


def pod_short(key: str) -> str:
    """Eight hex digits naming a pod's namespace and host-side veth (interface names are <= 15 chars)."""
    return hashlib.sha1(key.encode()).hexdigest()[:8]


def pod_netns(lab: str, key: str) -> str:
    return ns_prefix(lab) + "p-" + pod_short(key)


def pod_veth(key: str) -> str:
    return "veth" + pod_short(key)


def lab_namespace_pattern(lab: str | None = None) -> re.Pattern[str]:
    """Matches exactly the namespaces of `lab` (or of any lab when None); group 1 is the lab name."""
    lab_part = re.escape(check_lab_name(lab)) if lab is not None else r"[a-z0-9][a-z0-9-]{0,23}"
    return re.compile(rf"^nc-({lab_part})-{NS_SUFFIXES}$")


def is_documentation_address(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in net for net in DOCUMENTATION_NETS)
