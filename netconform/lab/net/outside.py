"""The world outside the lab cluster: a router, an "outside" host, an external client and an "internet".

    fabric 10.89.0.0/24 ── router ──┬─ ext0 bridge 203.0.113.0/24 ─┬─ outside  .10 echo, .53 upstream DNS
              (10.89.0.1)           │     (203.0.113.1)            └─ client   .20 (external subject)
                                    └─ inet0 198.51.100.1/24 ─────── internet 198.51.100.10 echo

The router forwards between these networks and knows no pod or service network, so pod traffic that
is not masqueraded to its node's IP cannot come back (that is what makes FM-11 visible). Every address
here is from the documentation ranges. The echo servers are the probe agent's `serve` mode (HTTP 80
reflects the source address it sees, TCP and UDP echo on 7); the upstream DNS is `upstreamdns`.

This module only describes the namespaces (iproute2 batch lines, sysctls, resolv.conf files and
programs); `netplane.Netplane.build` runs them together with the cluster's part.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import netconform
from netconform.agent import SOURCE as AGENT_SOURCE
from netconform.lab.net import addressing as A

ROUTER, OUTSIDE, CLIENT, INTERNET = "router", "outside", "client", "internet"
ROLES = (ROUTER, OUTSIDE, CLIENT, INTERNET)
UPSTREAM_CONTROL_FILE = "upstream-dns.mode"  # contains "servfail" while that fault is active
AGENT = AGENT_SOURCE
PACKAGE_ROOT = Path(netconform.__file__).resolve().parent.parent


@dataclass(frozen=True)
class Program:
    """A long-running process of the outside world: where it runs and how it says it is ready."""

    name: str
    role: str
    argv: tuple[str, ...]
    ready_marker: str


def create_lines(lab: str) -> list[str]:
    """`ip -n router -batch` lines creating the router's links (run before `configure_lines`)."""
    ns = A.ns_name
    return [
        "link add ext0 type bridge",
        f"link add port-outside type veth peer name eth0 netns {ns(lab, OUTSIDE)}",
        f"link add port-client type veth peer name eth0 netns {ns(lab, CLIENT)}",
        f"link add inet0 type veth peer name eth0 netns {ns(lab, INTERNET)}",
    ]


def configure_lines(lab: str) -> dict[str, list[str]]:
    """Per namespace name, the `ip -batch` lines giving addresses, links and routes."""
    ns = A.ns_name
    return {
        ns(lab, ROUTER): [
            "link set lo up",
            f"addr add {A.ROUTER_FABRIC_IP}/24 dev eth0",
            "link set eth0 up",
            f"addr add {A.ROUTER_OUTSIDE_IP}/24 dev ext0",
            "link set ext0 up",
            "link set port-outside master ext0 up",
            "link set port-client master ext0 up",
            f"addr add {A.ROUTER_INTERNET_IP}/24 dev inet0",
            "link set inet0 up",
        ],
        ns(lab, OUTSIDE): [
            "link set lo up",
            f"addr add {A.OUTSIDE_ECHO_IP}/24 dev eth0",
            f"addr add {A.UPSTREAM_DNS_IP}/24 dev eth0",
            "link set eth0 up",
            f"route add default via {A.ROUTER_OUTSIDE_IP}",
        ],
        ns(lab, CLIENT): [
            "link set lo up",
            f"addr add {A.EXTERNAL_CLIENT_IP}/24 dev eth0",
            "link set eth0 up",
            f"route add default via {A.ROUTER_OUTSIDE_IP}",
        ],
        ns(lab, INTERNET): [
            "link set lo up",
            f"addr add {A.INTERNET_ECHO_IP}/24 dev eth0",
            "link set eth0 up",
            f"route add default via {A.ROUTER_INTERNET_IP}",
        ],
    }


# the lab is IPv4 only: no link-local addresses, router solicitations or MLD noise on its links
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}


def sysctls(lab: str) -> dict[str, dict[str, str]]:
    quiet = {"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0", **NO_IPV6}
    out = {A.ns_name(lab, role): dict(NO_IPV6) for role in (OUTSIDE, CLIENT, INTERNET)}
    out[A.ns_name(lab, ROUTER)] = {"net.ipv4.ip_forward": "1", **quiet}
    return out


def resolv_conf() -> str:
    """The resolver every node and the external client use: the upstream DNS."""
    return f"nameserver {A.UPSTREAM_DNS_IP}\n"


def resolv_files(lab: str) -> dict[str, str]:
    return {A.ns_name(lab, role): resolv_conf() for role in (OUTSIDE, CLIENT, INTERNET)}


def programs(state_dir: Path) -> list[Program]:
    python = sys.executable
    echo = ("serve", "--http", "80", "--tcp", "7", "--udp", "7")
    return [
        Program("outside-echo", OUTSIDE, (python, str(AGENT), *echo), '"serving"'),
        Program("internet-echo", INTERNET, (python, str(AGENT), *echo), '"serving"'),
        Program(
            "upstream-dns",
            OUTSIDE,
            (
                python,
                "-m",
                "netconform.lab.net.upstreamdns",
                "--listen",
                A.UPSTREAM_DNS_IP,
                "--port",
                "53",
                "--control-file",
                str(state_dir / UPSTREAM_CONTROL_FILE),
            ),
            "upstreamdns: listening",
        ),
    ]


def program_env() -> dict[str, str]:
    """Environment for the programs: the package importable even from a plain checkout."""
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": f"{PACKAGE_ROOT}{os.pathsep}{path}" if path else str(PACKAGE_ROOT)}
