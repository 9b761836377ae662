"""One-line descriptions of the failure-mode catalogue, shipped as data.

The catalogue itself is ``FAILURE_MODES.md`` in the design folder, which is not installed with the
package; the "by FM" views need its titles anyway, so they live here. A test checks that these IDs
match the markdown file whenever it is present.
"""

from __future__ import annotations

import re

CATALOGUE: dict[str, str] = {
    "FM-01": "HTTP 4xx/5xx and TLS handshake errors mean L4 works: the problem is L7",
    "FM-02": "Connection reset by peer is L4: often conntrack/NAT state that does not match",
    "FM-03": "No route to host and connection time-outs mean L3 or L2: the packet cannot be routed",
    "FM-04": "DNS: a time-out is connectivity to the server; NXDOMAIN/SERVFAIL/REFUSED are its answer",
    "FM-05": "Does the packet leave the client? External client to the LB VIP (physical network)",
    "FM-06": "MetalLB: exactly one MAC answers ARP for each LB VIP inside its L2 segment",
    "FM-07": "F5 BIG-IP: one cluster per partition, controller pods run, a ConfigMap per LB Service port",
    "FM-08": "Destination NAT: a Service VIP that fails while its backend pod answers points at service NAT",
    "FM-09": "Cross-node traffic rides the tunnel (UDP 6081): cross-node fails while same-node works",
    "FM-10": "Each pod needs a route on its node to its veth: the node gets the packet, the pod does not",
    "FM-11": "Egress SNAT: pod traffic to the outside must leave with the node IP as source",
    "FM-12": "L3 reachability of an external host from a pod (ICMP echo)",
    "FM-13": "Pod-to-pod narrowed to nodes: one group of nodes cannot reach another (partition)",
    "FM-14": "Dataplane node-to-node health (cilium status --all-health), only with a Cilium dataplane",
    "FM-15": "Ping expectations: a ClusterIP need not answer ICMP; MetalLB, BGP and F5 VIPs do",
    "FM-16": "ARP: no answer on the same subnet is L2; more than one MAC for one IP is an IP conflict",
    "FM-17": "Routes, neighbours and addresses (ip r / ip n / ip a) that the dataplane manages",
    "FM-18": "Dataplane drop monitors (cilium monitor --type=drop, hubble observe) as evidence",
    "FM-19": "iptables DROP rules whose counters grow (privileged host probe, opt-in)",
    "FM-20": "Capture on both ends: exact tcpdump commands for each hop of a failing path",
    "FM-21": "Pods resolve internal and external names through the kube-dns Service",
    "FM-22": "Each CoreDNS pod queried directly from every node: find the pattern when some fail",
    "FM-23": "CoreDNS cannot resolve external names: check the upstream nameservers",
    "FM-24": "Host network uses the node's nameservers: same set on every node, each one answers",
    "FM-25": "Cilium endpoint PUT 429 (rate limit) under bursts: information, not a failure",
    "FM-26": "eBPF map fill levels (services, backends, conntrack) against their limits",
    "FM-27": "Node not Ready with NetworkPluginNotReady: node conditions and the CNI pod on each node",
    "FM-28": "Stale ARP entry for the control-plane VIP on other nodes (TLS handshake time-outs)",
    "FM-29": "F5 Service gets no traffic: see FM-07",
    "FM-30": "SNAT port budget: conntrack use against 32,767 NAT ports per node and protocol",
    "FM-31": "Path MTU: large DF packets pass pod-to-pod across nodes or fail as an MTU problem",
    "FM-32": "NodePort reachability from outside and from nodes",
    "FM-33": "UDP as well as TCP for Service traffic",
    # the project's additions (docs/failure-modes.md): the L7 ingress path
    "FM-34": "Ingress routing: the proxy answers but has no route for the host (404) or routes elsewhere",
    "FM-35": "Ingress backends: the proxy routes the host but has no healthy backend (503, 502, 504)",
    "FM-36": "Ingress address: no L4 answer from the ingress (controller down, or its LB/NodePort path)",
    # the project's additions: NetworkPolicy enforcement (issue 12)
    "FM-37": "NetworkPolicy not enforced: a flow a policy denies connects (on some or all nodes)",
    "FM-38": "NetworkPolicy stale: a node still enforces a deleted or changed policy (allowed flow blocked)",
}

_ID_IN_MARKDOWN = re.compile(r"^- (FM-\d{2}) ", re.MULTILINE)


def describe(fm: str) -> str:
    """The catalogue line for an FM ID, or an honest placeholder for an ID this version does not know."""
    return CATALOGUE.get(fm, "not in this version's catalogue")


def ids_in_markdown(text: str) -> list[str]:
    """The FM IDs a FAILURE_MODES.md defines (list items that start with the ID), in file order."""
    return _ID_IN_MARKDOWN.findall(text)


def fm_sort_key(fm: str) -> tuple[int, str]:
    """Numeric order for FM IDs (FM-9 before FM-10 should anyone write it that way)."""
    digits = "".join(ch for ch in fm if ch.isdigit())
    return (int(digits) if digits else 10_000, fm)
