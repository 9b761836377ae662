"""DNS: through kube-dns and each CoreDNS pod from every node's pods; the nodes' own nameservers.

Host-network pods and nodes use the node's nameservers and cannot resolve cluster.local: that is
expected, not a failure (FM-24); every node must list the same nameservers and each must answer.
"""

import pytest

from netconform.model.cell import Cell


@pytest.mark.fm("FM-21", "FM-04")
@pytest.mark.scope("pod-dns-internal-udp")
def test_internal_name(cell: Cell, conformance) -> None:
    """kubernetes.default.svc.<domain> through the kube-dns Service IP (UDP)."""
    conformance.expect(cell)


@pytest.mark.fm("FM-33", "FM-21")
@pytest.mark.scope("pod-dns-internal-tcp")
def test_internal_name_over_tcp(cell: Cell, conformance) -> None:
    """The same query over TCP."""
    conformance.expect(cell)


@pytest.mark.fm("FM-21")
@pytest.mark.scope("pod-dns-internal-resolve")
def test_internal_name_system_resolver(cell: Cell, conformance) -> None:
    """What applications see: getaddrinfo in a pod."""
    conformance.expect(cell)


@pytest.mark.fm("FM-21", "FM-23")
@pytest.mark.scope("pod-dns-external-udp")
def test_external_name(cell: Cell, conformance) -> None:
    """An external name through kube-dns (CoreDNS forwards it upstream)."""
    conformance.expect(cell)


@pytest.mark.fm("FM-22")
@pytest.mark.scope("pod-coredns-udp")
def test_each_coredns_pod(cell: Cell, conformance) -> None:
    """Each CoreDNS pod answers directly, from every node's pods."""
    conformance.expect(cell)


@pytest.mark.fm("FM-24")
@pytest.mark.scope("host-dns-internal-resolve")
def test_host_network_cannot_resolve_cluster_names(cell: Cell, conformance) -> None:
    """Nodes do not know cluster.local: expected; their resolver must still answer."""
    conformance.expect(cell)


@pytest.mark.fm("FM-24", "FM-23")
@pytest.mark.scope("host-dns-external-resolve")
def test_host_network_resolves_external(cell: Cell, conformance) -> None:
    """Nodes resolve external names with their own nameservers."""
    conformance.expect(cell)


@pytest.mark.fm("FM-24", "FM-23")
@pytest.mark.scope("host-nameservers")
def test_node_nameservers_answer(cell: Cell, conformance) -> None:
    """Every nameserver a node lists answers when asked on its own."""
    conformance.expect(cell)


@pytest.mark.fm("FM-24")
@pytest.mark.scope("node-nameserver-sets")
def test_node_nameserver_sets_equal(cell: Cell, conformance) -> None:
    """Every node lists the same set of nameservers."""
    conformance.expect(cell)
