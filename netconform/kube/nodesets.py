"""Node sets: `--nodes NAME,...` and `--node-selector LABEL=VALUE` limit a run to some nodes.

The topology keeps only the selected nodes, so the kit is deployed there, the subjects (kit pods, host
probes, workload pods) and the node targets (echo pods, node IPs, NodePorts) are theirs; what is not a
node's stays reached as before: the DNS Service and every CoreDNS pod wherever it runs, the ClusterIP
and the LoadBalancer VIP (whose backends are then the selected nodes' echo pods), the outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubernetes.client.exceptions import ApiException

from netconform.kube.connect import Cluster, KubeError, api_error_line, call
from netconform.model.topology import Topology


@dataclass
class NodeSet:
    """What was selected and how (for results.json's `run.node_set` and the run's output)."""

    by: str  # "--nodes node-1,node-2" / "--node-selector rack=r1" (both: both, the intersection)
    selected: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"by": self.by, "selected": self.selected, "excluded": self.excluded}

    def line(self) -> str:
        return (
            f"node set ({self.by}): {len(self.selected)} of {len(self.selected) + len(self.excluded)} "
            f"nodes: {', '.join(self.selected)}"
        )


def names_option(text: str) -> list[str]:
    """`--nodes a,b , c` -> ["a", "b", "c"] (empty parts dropped)."""
    return [n.strip() for n in text.split(",") if n.strip()]


def select(cluster: Cluster, topo: Topology, nodes: list[str] | None, selector: str | None) -> NodeSet | None:
    """Restrict `topo.nodes` to the node set (None when no option was given); one-line KubeError when a
    named node does not exist or nothing is selected."""
    if not nodes and not selector:
        return None
    known = topo.node_names
    chosen = set(known)
    how = []
    if nodes:
        unknown = [n for n in nodes if n not in known]
        if unknown:
            raise KubeError(
                f"--nodes: no node {', '.join(unknown)} in the cluster (nodes: {', '.join(known)})"
            )
        chosen &= set(nodes)
        how.append(f"--nodes {','.join(nodes)}")
    if selector:
        try:
            items = call(cluster, "list_node", label_selector=selector).get("items") or []
        except ApiException as exc:
            raise KubeError(api_error_line(exc, f"--node-selector {selector}: listing the nodes")) from None
        chosen &= {str(n["metadata"]["name"]) for n in items}
        how.append(f"--node-selector {selector}")
    if not chosen:
        raise KubeError(f"{' and '.join(how)}: no node is selected (nodes: {', '.join(known)})")
    topo.nodes = [n for n in topo.nodes if n.name in chosen]
    return NodeSet(" and ".join(how), sorted(chosen), [n for n in known if n not in chosen])
