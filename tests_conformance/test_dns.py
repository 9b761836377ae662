"""DNS: through kube-dns and each CoreDNS pod from every node's pods; the nodes' own nameservers.

Host-network pods and nodes use the node's nameservers and cannot resolve cluster.local: that is
expected, not a failure (FM-24); every node must list the same nameservers and each must answer.
"""

from netconform.checks import check
from netconform.checks.catalogue import dns
from netconform.model.cell import Cell
from netconform.model.conformance import ConformanceFixture


@check(dns.POD_DNS_INTERNAL_UDP)
def test_internal_name(cell: Cell, conformance: ConformanceFixture) -> None:
    """kubernetes.default.svc.<domain> through the kube-dns Service IP (UDP)."""
    conformance.expect(cell)


@check(dns.POD_DNS_INTERNAL_TCP)
def test_internal_name_over_tcp(cell: Cell, conformance: ConformanceFixture) -> None:
    """The same query over TCP."""
    conformance.expect(cell)


@check(dns.POD_DNS_INTERNAL_RESOLVE)
def test_internal_name_system_resolver(cell: Cell, conformance: ConformanceFixture) -> None:
    """What applications see: getaddrinfo in a pod."""
    conformance.expect(cell)


@check(dns.POD_DNS_EXTERNAL_UDP)
def test_external_name(cell: Cell, conformance: ConformanceFixture) -> None:
    """An external name through kube-dns (CoreDNS forwards it upstream)."""
    conformance.expect(cell)


@check(dns.POD_COREDNS_UDP)
def test_each_coredns_pod(cell: Cell, conformance: ConformanceFixture) -> None:
    """Each CoreDNS pod answers directly, from every node's pods."""
    conformance.expect(cell)


@check(dns.HOST_DNS_INTERNAL_RESOLVE)
def test_host_network_cannot_resolve_cluster_names(cell: Cell, conformance: ConformanceFixture) -> None:
    """Nodes do not know cluster.local: expected; their resolver must still answer."""
    conformance.expect(cell)


@check(dns.HOST_DNS_EXTERNAL_RESOLVE)
def test_host_network_resolves_external(cell: Cell, conformance: ConformanceFixture) -> None:
    """Nodes resolve external names with their own nameservers."""
    conformance.expect(cell)


@check(dns.HOST_NAMESERVERS)
def test_node_nameservers_answer(cell: Cell, conformance: ConformanceFixture) -> None:
    """Every nameserver a node lists answers when asked on its own."""
    conformance.expect(cell)


@check(dns.NODE_NAMESERVER_SETS)
def test_node_nameserver_sets_equal(cell: Cell, conformance: ConformanceFixture) -> None:
    """Every node lists the same set of nameservers."""
    conformance.expect(cell)
