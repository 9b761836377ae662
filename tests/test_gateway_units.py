"""Pure parts of the Gateway API / TLS work: route admission and matching, status, tables, options."""

from __future__ import annotations

from typing import Any

import pytest

from netconform.cli.run import pytest_args, run_parser
from netconform.kube.kit import httproute_manifest, route_acceptance
from netconform.lab.api import tables
from netconform.lab.control import ingress
from netconform.model.options import SuiteOptions

GW = {
    "metadata": {"namespace": "kube-system", "name": "gw", "generation": 2},
    "spec": {
        "gatewayClassName": "lab",
        "listeners": [
            {"name": "web", "port": 80, "protocol": "HTTP", "hostname": "*.lab.test",
             "allowedRoutes": {"namespaces": {"from": "All"}}},
        ],
    },
}  # fmt: skip
SERVICES: dict[str, dict[str, Any]] = {"app/echo": {}}


def _route(hostnames: list[str], section: str | None = None, backend: str = "echo") -> dict[str, Any]:
    ref = {"name": "gw", "namespace": "kube-system", **({"sectionName": section} if section else {})}
    return {
        "metadata": {"namespace": "app", "name": "r", "generation": 3},
        "spec": {
            "parentRefs": [ref],
            "hostnames": hostnames,
            "rules": [{"backendRefs": [{"name": backend, "port": 80}]}],
        },
    }


def test_an_accepted_route_becomes_proxy_routes_with_status_for_its_generation() -> None:
    parents, routes = ingress.route_parents(_route(["a.lab.test"]), {"kube-system/gw": GW}, SERVICES, {})
    assert [(r.host, r.path, r.service, r.port) for r in routes] == [("a.lab.test", "/", "app/echo", 80)]
    (parent,) = parents
    assert parent["controllerName"] == ingress.GATEWAY_CONTROLLER
    assert parent["parentRef"] == {
        "group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "kube-system", "name": "gw"
    }  # fmt: skip
    assert [(c["type"], c["status"], c["observedGeneration"]) for c in parent["conditions"]] == [
        ("Accepted", "True", 3),
        ("ResolvedRefs", "True", 3),
    ]
    table = ingress.Table(routes)
    assert table.match("a.lab.test", "/x") is not None and table.match("b.lab.test", "/") is None


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (_route(["a.other.test"]), "NoMatchingListenerHostname"),
        (_route(["a.lab.test"], section="https"), "NoMatchingParent"),
    ],
)
def test_a_route_the_listeners_refuse_is_not_routed(route: dict[str, Any], reason: str) -> None:
    parents, routes = ingress.route_parents(route, {"kube-system/gw": GW}, SERVICES, {})
    assert routes == [] and parents[0]["conditions"][0]["reason"] == reason


def test_a_missing_backend_is_resolvedrefs_false_but_still_accepted() -> None:
    parents, routes = ingress.route_parents(
        _route(["a.lab.test"], backend="gone"), {"kube-system/gw": GW}, SERVICES, {}
    )
    accepted, resolved = parents[0]["conditions"]
    assert accepted["status"] == "True" and (resolved["status"], resolved["reason"]) == (
        "False",
        "BackendNotFound",
    )
    assert routes == []


def test_a_route_for_another_gateway_gets_no_status_from_us() -> None:
    other = _route(["a.lab.test"])
    other["spec"]["parentRefs"] = [{"name": "elsewhere"}]
    assert ingress.route_parents(other, {"kube-system/gw": GW}, SERVICES, {}) == ([], [])


def test_gateway_status_counts_attached_routes_and_publishes_the_address() -> None:
    status = ingress.gateway_status(GW, "10.89.0.200", {"web": 2})
    assert status["addresses"] == [{"type": "IPAddress", "value": "10.89.0.200"}]
    assert status["listeners"][0]["attachedRoutes"] == 2
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Accepted": "True",
        "Programmed": "True",
    }
    unprogrammed = ingress.gateway_status(GW, None, {})
    assert unprogrammed["addresses"] == [] and unprogrammed["conditions"][1]["reason"] == "AddressNotAssigned"
    row = tables.table("gateways", [{**GW, "status": status}], "1")["rows"][0]["cells"]
    assert row[:4] == ["gw", "lab", "10.89.0.200", "True"]


def test_the_kit_reads_its_routes_verdict_for_its_gateway_only() -> None:
    route = httproute_manifest("echo", "kube-system/gw", "h.lab.test")
    route["metadata"]["namespace"] = "run"
    parents, _ = ingress.route_parents(
        {**route, "metadata": {**route["metadata"], "generation": 1}},
        {"kube-system/gw": GW},
        {"run/echo": {}},
        {},
    )
    route["status"] = {"parents": parents}
    assert route_acceptance(route, "kube-system/gw") == (True, "Accepted: Route is accepted")
    assert route_acceptance(route, "kube-system/other") is None


def test_gateway_options_repeat_and_split_and_reach_pytest_once_each() -> None:
    ns = run_parser().parse_args(
        ["--gateway", "a/gw,b/gw", "--gateway", "a/gw", "--ingress-tls", "--lab", "x"]
    )
    assert SuiteOptions(gateway=ns.gateway, ingress_tls=ns.ingress_tls).gateways == ["a/gw", "b/gw"]
    argv = pytest_args(ns, [])
    assert argv.count("--gateway") == 2 and "--ingress-tls" in argv
    with pytest.raises(SystemExit) as exc:
        run_parser().parse_args(["--gateway", "a/Bad_Name"])
    assert exc.value.code == 4
