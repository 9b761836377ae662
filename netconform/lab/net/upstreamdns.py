"""The lab's upstream DNS server (203.0.113.53 in the outside namespace): a few external names.

    python3 -m netconform.lab.net.upstreamdns --listen 203.0.113.53 --port 53 [--control-file F] [--servfail]

It knows `example.test` and `www.example.test` (→ 203.0.113.10, the outside echo) and
`internet.example.test` (→ 198.51.100.10); any other name is NXDOMAIN. When the control file contains
`servfail` (or with --servfail), every query is answered SERVFAIL: the `upstream-dns-servfail` fault
(FM-23) writes that file and clearing the fault removes it; the file is checked on every query.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from netconform.lab.net import addressing as A
from netconform.lab.net.dnsserver import run_server

RECORDS: dict[str, str] = {
    "example.test.": A.OUTSIDE_ECHO_IP,
    "www.example.test.": A.OUTSIDE_ECHO_IP,
    "internet.example.test.": A.INTERNET_ECHO_IP,
}
ZONE = dns.name.from_text("example.test.")
TTL = 30


class Upstream:
    def __init__(self, control_file: Path | None, servfail: bool) -> None:
        self.control_file = control_file
        self.always_servfail = servfail

    def servfail(self) -> bool:
        if self.always_servfail:
            return True
        if self.control_file is None:
            return False
        try:
            return self.control_file.read_text().strip() == "servfail"
        except OSError:
            return False

    async def answer(self, query: dns.message.Message, client: str) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if self.servfail():
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name = question.name.to_text().lower()
        address = RECORDS.get(name)
        if address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        response.flags |= dns.flags.AA
        if question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
            response.answer.append(dns.rrset.from_text(question.name, TTL, "IN", "A", address))
        return response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="upstreamdns", description="the lab's upstream DNS server")
    parser.add_argument("--listen", default=A.UPSTREAM_DNS_IP)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--control-file", type=Path, help="answer SERVFAIL while it contains 'servfail'")
    parser.add_argument("--servfail", action="store_true", help="answer every query with SERVFAIL")
    args = parser.parse_args(argv)
    upstream = Upstream(args.control_file, args.servfail)
    return run_server(upstream.answer, args.listen, args.port, "upstreamdns")


if __name__ == "__main__":
    sys.exit(main())
