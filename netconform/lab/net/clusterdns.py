"""The lab's cluster DNS (a CoreDNS stand-in), run as the kube-dns pods' container process.

    python3 -m netconform.lab.net.clusterdns --zone-file F --upstream-resolv /etc/resolv.conf --port 53

Answers the cluster domain from a JSON zone file the control plane writes (controllers.py), re-read
whenever its inode/mtime/size changes, the way CoreDNS's kubernetes plugin follows the API::

    {"domain": "cluster.local",
     "records": {"kubernetes.default.svc.cluster.local": {"A": ["10.96.0.1"]},
                 "_https._tcp.kubernetes.default.svc.cluster.local":
                     {"SRV": [{"priority": 0, "weight": 100, "port": 443,
                               "target": "kubernetes.default.svc.cluster.local"}]},
                 "ext.default.svc.cluster.local": {"CNAME": "example.test"}}}

Names with records answer them (CNAME targets inside the zone are followed); `<a-b-c-d>.<ns>.pod.<domain>`
answers a.b.c.d (CoreDNS `pods insecure`); a name that exists (or has names below it) but lacks the
asked type is NODATA; any other name in the domain is NXDOMAIN, both with the zone's SOA. Every
other name is forwarded to the first `nameserver` of the resolv file (bounded by --forward-timeout;
SERVFAIL when the upstream does not answer or fails), the way CoreDNS's `forward . /etc/resolv.conf`
does with the node's resolver.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from netconform.lab.net.dnsserver import run_server

DEFAULT_DOMAIN = "cluster.local"
TTL = 5
FORWARD_TIMEOUT = 2.0


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


class Zone:
    """The cluster domain's records, built from the zone file."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.origin = dns.name.from_text(data.get("domain") or DEFAULT_DOMAIN)
        self.records: dict[dns.name.Name, dict[dns.rdatatype.RdataType, list[str]]] = {}
        self.names: set[dns.name.Name] = {self.origin}  # every name that exists, incl. empty parents
        for fqdn, entry in (data.get("records") or {}).items():
            name = dns.name.from_text(fqdn)
            if not name.is_subdomain(self.origin):
                continue
            for ip in entry.get("A") or []:
                self._add(name, dns.rdatatype.A, str(ipaddress.IPv4Address(ip)))
            for srv in entry.get("SRV") or []:
                target = _absolute(srv["target"])
                rdata = (
                    f"{int(srv.get('priority', 0))} {int(srv.get('weight', 100))} {int(srv['port'])} {target}"
                )
                self._add(name, dns.rdatatype.SRV, rdata)
            if entry.get("CNAME"):
                self._add(name, dns.rdatatype.CNAME, _absolute(entry["CNAME"]))
            self._add_name(name)

    def _add_name(self, name: dns.name.Name) -> None:
        while len(name) > len(self.origin):
            self.names.add(name)
            name = name.parent()

    def _add(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, rdata: str) -> None:
        self.records.setdefault(name, {}).setdefault(rdtype, []).append(rdata)

    def soa(self) -> dns.rrset.RRset:
        soa = f"ns.dns.{self.origin} hostmaster.{self.origin} 1 7200 1800 86400 {TTL}"
        return dns.rrset.from_text(self.origin, TTL, "IN", "SOA", soa)

    def _pod_address(self, name: dns.name.Name) -> str | None:
        """`a-b-c-d.<ns>.pod.<domain>` → a.b.c.d (any namespace, as CoreDNS `pods insecure`)."""
        relative = name.relativize(self.origin).labels
        if len(relative) != 3 or relative[2].lower() != b"pod":
            return None
        try:
            return str(ipaddress.IPv4Address(relative[0].decode().replace("-", ".")))
        except ValueError:
            return None

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        question = query.question[0]
        name, rdtype = question.name.canonicalize(), question.rdtype
        pod_ip = self._pod_address(name)
        if pod_ip is not None:
            if rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
                response.answer.append(dns.rrset.from_text(question.name, TTL, "IN", "A", pod_ip))
            else:
                response.authority.append(self.soa())
            return response
        if name == self.origin and rdtype == dns.rdatatype.SOA:
            response.answer.append(self.soa())
            return response
        self._fill(response, question.name, rdtype, hops=0)
        if not response.answer:
            if name not in self.names:
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self.soa())
        return response

    def _fill(
        self, response: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, hops: int
    ) -> None:
        known = self.records.get(name, {})
        if dns.rdatatype.CNAME in known and rdtype not in (dns.rdatatype.CNAME, dns.rdatatype.ANY):
            target = known[dns.rdatatype.CNAME][0]
            response.answer.append(dns.rrset.from_text_list(name, TTL, "IN", "CNAME", [target]))
            target_name = dns.name.from_text(target)
            if hops < 8 and target_name.is_subdomain(self.origin):
                self._fill(response, target_name, rdtype, hops + 1)
            return
        types = list(known) if rdtype == dns.rdatatype.ANY else [rdtype]
        for t in types:
            if t in known:
                rrset = dns.rrset.from_text_list(name, TTL, "IN", dns.rdatatype.to_text(t), known[t])
                response.answer.append(rrset)


class _Watched:
    """A file re-read whenever its (inode, mtime, size) changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamp: tuple[int, int, int] | None = None

    def changed(self) -> bool:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        return True


def first_nameserver(text: str) -> str | None:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            return parts[1]
    return None


class ClusterDNS:
    def __init__(
        self,
        zone_file: Path,
        resolv_file: Path,
        forward_timeout: float = FORWARD_TIMEOUT,
        upstream_port: int = 53,
    ) -> None:
        self.upstream_port = upstream_port
        self.zone_watch = _Watched(zone_file)
        self.resolv_watch = _Watched(resolv_file)
        self.forward_timeout = forward_timeout
        self.zone = Zone({})
        self.upstream: str | None = None
        self.refresh()

    def refresh(self) -> None:
        if self.zone_watch.changed():
            try:
                self.zone = Zone(json.loads(self.zone_watch.path.read_text()))
            except (OSError, ValueError, KeyError, TypeError, dns.exception.DNSException) as exc:
                # keep answering from the last good zone; say why once per change
                path = self.zone_watch.path
                print(f"clusterdns: zone file {path} unusable: {exc}", file=sys.stderr, flush=True)
        if self.resolv_watch.changed():
            try:
                self.upstream = first_nameserver(self.resolv_watch.path.read_text())
            except OSError:
                self.upstream = None

    async def answer(self, query: dns.message.Message, client: str) -> dns.message.Message:
        self.refresh()
        if len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        if not question.name.is_subdomain(self.zone.origin):
            return await self.forward(query)
        response = self.zone.answer(query)
        last = response.answer[-1] if response.answer else None
        if last is not None and last.rdtype == dns.rdatatype.CNAME:
            target = last[0].target
            if not target.is_subdomain(self.zone.origin):  # ExternalName: resolve the target upstream
                outer = await self.forward(dns.message.make_query(target, question.rdtype))
                response.answer += outer.answer
                if outer.rcode() != dns.rcode.NOERROR:
                    response.set_rcode(outer.rcode())
        return response

    async def forward(self, query: dns.message.Message) -> dns.message.Message:
        failed = dns.message.make_response(query)
        failed.flags |= dns.flags.RA
        failed.set_rcode(dns.rcode.SERVFAIL)
        if not self.upstream:
            return failed
        deadline = time.monotonic() + self.forward_timeout
        try:
            reply = await dns.asyncquery.udp(
                query, self.upstream, port=self.upstream_port, timeout=self.forward_timeout
            )
            if reply.flags & dns.flags.TC:
                remaining = max(0.1, deadline - time.monotonic())
                reply = await dns.asyncquery.tcp(
                    query, self.upstream, port=self.upstream_port, timeout=remaining
                )
        except (dns.exception.DNSException, OSError, EOFError):
            return failed
        return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clusterdns", description="the lab's cluster DNS server")
    parser.add_argument("--zone-file", type=Path, required=True, help="JSON zone of the control plane")
    parser.add_argument("--upstream-resolv", type=Path, default=Path("/etc/resolv.conf"))
    parser.add_argument("--listen", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--forward-timeout", type=float, default=FORWARD_TIMEOUT)
    parser.add_argument("--upstream-port", type=int, default=53)
    args = parser.parse_args(argv)
    server = ClusterDNS(args.zone_file, args.upstream_resolv, args.forward_timeout, args.upstream_port)
    return run_server(server.answer, args.listen, args.port, "clusterdns")


if __name__ == "__main__":
    sys.exit(main())
