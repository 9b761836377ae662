"""A tiny DNS server (dnspython) whose answers are decided by the query name, for the agent's tests.

    python tests/agent_dns_server.py --port 53      # prints "ready" once UDP and TCP are bound

Names (any case, any qtype unless said):
- ``nx.test``       NXDOMAIN
- ``fail.test``     SERVFAIL
- ``refuse.test``   REFUSED
- ``silent.test``   no answer at all (the client times out)
- ``a.test``        A 192.0.2.1 (NOERROR with no records for other types)
- ``*.echo.test``   A 192.0.2.N with N = crc32(name) % 250 + 1, and TXT holding the name (round trips)
Runs until SIGTERM; every socket operation has a timeout.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import zlib

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

RCODES = {"nx.test.": dns.rcode.NXDOMAIN, "fail.test.": dns.rcode.SERVFAIL, "refuse.test.": dns.rcode.REFUSED}


def echo_address(name: str) -> str:
    """The A record the server gives a *.echo.test name (tests compute the same)."""
    return f"192.0.2.{zlib.crc32(name.lower().encode()) % 250 + 1}"


def answer(wire: bytes) -> bytes | None:
    """The wire answer for a wire query, or None to stay silent."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # not DNS: dnspython raises many kinds; a server just ignores it
        return None
    if not query.question:
        return None
    question = query.question[0]
    name = question.name.to_text().lower()
    if name == "silent.test.":
        return None
    reply = dns.message.make_response(query)
    if name in RCODES:
        reply.set_rcode(RCODES[name])
    elif name == "a.test." and question.rdtype == dns.rdatatype.A:
        reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "192.0.2.1"))
    elif name.endswith(".echo.test."):
        if question.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", echo_address(name)))
        elif question.rdtype == dns.rdatatype.TXT:
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "TXT", f'"{name}"'))
    elif name != "a.test.":
        reply.set_rcode(dns.rcode.NXDOMAIN)
    return bytes(reply.to_wire())


def serve_udp(sock: socket.socket) -> None:
    while True:
        data, peer = sock.recvfrom(65535)
        reply = answer(data)
        if reply is not None:
            sock.sendto(reply, peer)


def handle_tcp(conn: socket.socket) -> None:
    conn.settimeout(5.0)
    with conn:
        try:
            head = conn.recv(2)
            if len(head) < 2:
                return
            length = int.from_bytes(head, "big")
            data = b""
            while len(data) < length:
                chunk = conn.recv(length - len(data))
                if not chunk:
                    return
                data += chunk
            reply = answer(data)
            if reply is not None:
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
            else:
                conn.recv(1)  # silent: hold the connection until the client gives up (or 5 s)
        except OSError:
            return


def serve_tcp(sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handle_tcp, args=(conn,), daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=53)
    args = parser.parse_args()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", args.port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", args.port))
    tcp.listen(64)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for target, sock in ((serve_udp, udp), (serve_tcp, tcp)):
        threading.Thread(target=target, args=(sock,), daemon=True).start()
    print("ready", flush=True)
    while not stop.wait(3600):  # runs until SIGTERM
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
