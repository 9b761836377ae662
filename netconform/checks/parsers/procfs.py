"""Parsers of the kernel files the host probes read: /proc/net/route, fib_trie, arp, resolv.conf.

>>> parse_nameservers("search x\nnameserver 10.96.0.10\n")
['10.96.0.10']
"""

from __future__ import annotations

import ipaddress


def is_local(ip: str, fib_trie: str) -> bool:
    """Whether /proc/net/fib_trie lists `ip` as a LOCAL /32 of this network namespace."""
    lines = fib_trie.splitlines()
    for i, line in enumerate(lines):
        if line.strip().endswith(ip) and line.strip().split()[-1] == ip:
            for follow in lines[i + 1 : i + 3]:
                if "/32 host LOCAL" in follow:
                    return True
    return False


def route_table(content: str) -> list[tuple[ipaddress.IPv4Network, str, bool]]:
    """(destination network, interface, has gateway) for each /proc/net/route entry."""
    routes = []
    for line in content.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        dest = ipaddress.IPv4Address(bytes.fromhex(cols[1])[::-1])
        mask = ipaddress.IPv4Address(bytes.fromhex(cols[7])[::-1])
        flags = int(cols[3], 16)
        if not flags & 0x1:  # RTF_UP
            continue
        net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        routes.append((net, cols[0], bool(flags & 0x2)))
    return routes


def parse_nameservers(content: str) -> list[str]:
    return [
        line.split()[1]
        for line in content.splitlines()
        if line.strip().startswith("nameserver") and len(line.split()) > 1
    ]


def cached_macs(arp_table: str) -> dict[str, tuple[str, str]]:
    """IP -> (MAC, device) of the complete entries of /proc/net/arp."""
    out: dict[str, tuple[str, str]] = {}
    for line in arp_table.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 4 and cols[3] != "00:00:00:00:00:00":
            out[cols[0]] = (cols[3].lower(), cols[5] if len(cols) > 5 else "")
    return out
