"""A small asyncio DNS server core (UDP and TCP) shared by the lab's cluster DNS and upstream DNS.

The caller supplies `answer(query) -> response` (dnspython messages); this module only moves
bytes: it parses queries, answers FORMERR to garbage it can read an ID from, frames TCP, bounds
every TCP connection in time, and stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import struct
import sys
from collections.abc import Awaitable, Callable
from typing import cast

import dns.exception
import dns.message
import dns.rcode

Answer = Callable[[dns.message.Message, str], Awaitable[dns.message.Message | None]]
TCP_IDLE_TIMEOUT = 10.0
MAX_UDP_PAYLOAD = 1232  # DNS flag day 2020: no fragmentation


def formerr(wire: bytes) -> bytes | None:
    """A FORMERR for an unparsable message, when at least its ID is there."""
    if len(wire) < 2:
        return None
    (qid,) = struct.unpack("!H", wire[:2])
    flags = 0x8000 | dns.rcode.FORMERR
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


async def _respond(answer: Answer, wire: bytes, client: str, limit: int | None) -> bytes | None:
    try:
        query = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError):
        return formerr(wire)
    response = await answer(query, client)
    if response is None:
        return None
    if limit is None:
        return response.to_wire()
    size = max(512, min(query.payload if query.edns >= 0 else 512, MAX_UDP_PAYLOAD))
    return response.to_wire(max_size=size) if len(response.to_wire()) <= size else _truncated(response)


def _truncated(response: dns.message.Message) -> bytes:
    response.answer.clear()
    response.authority.clear()
    response.additional.clear()
    response.flags |= dns.flags.TC
    return response.to_wire()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # the selector transport is one

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await _respond(self.answer, data, addr[0], MAX_UDP_PAYLOAD)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def _tcp_client(answer: Answer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername") or ("?", 0)
    try:
        while True:
            header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
            (length,) = struct.unpack("!H", header)
            wire = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT)
            reply = await _respond(answer, wire, peer[0], None)
            if reply is None:
                return
            writer.write(struct.pack("!H", len(reply)) + reply)
            await asyncio.wait_for(writer.drain(), TCP_IDLE_TIMEOUT)
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        return
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def serve(answer: Answer, host: str, port: int, name: str) -> None:
    """Serve until SIGTERM/SIGINT; prints `<name>: listening on host:port` once both sockets are up."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    transport, _ = await loop.create_datagram_endpoint(lambda: _UDP(answer), local_addr=(host, port))
    server = await asyncio.start_server(
        lambda r, w: _tcp_client(answer, r, w), host, port, reuse_address=True
    )
    print(f"{name}: listening on {host}:{port} (udp, tcp)", flush=True)
    try:
        await stop.wait()
    finally:
        transport.close()
        server.close()


def run_server(answer: Answer, host: str, port: int, name: str) -> int:
    """Entry point helper: one clear line and exit 1 when the address cannot be bound."""
    try:
        asyncio.run(serve(answer, host, port, name))
    except OSError as exc:
        print(f"{name}: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
