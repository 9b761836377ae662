#!/usr/bin/env python3
"""netconform probe agent: network primitives that run inside any image with python3 >= 3.8.

One file, standard library only, no imports from the netconform package: the suite ships this file
to probe pods in a ConfigMap. It moves bytes and reports what the kernel said; policy (what a
result means) lives in the orchestrator.

    python3 agent.py run [--plan-file F]        # plan = first line of stdin; one JSON doc on stdout
    python3 agent.py serve --http P --tcp P --udp P [--https P --cert F --key F]

The plan/result format, the kinds and the error codes are documented in docs/agent.md.
"""

from __future__ import annotations

# Only what every `run` needs is imported here: an agent starts once per exec (hundreds per run on a
# big cluster), and http.client, ssl, argparse, subprocess and the servers' modules cost more than the
# rest of its start together. Those are imported where they are used.
import base64
import contextlib
import errno
import fcntl
import itertools
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable, Iterator

VERSION = "netconform-agent/1"

ERROR_CODES = (
    "timeout",
    "refused",
    "reset",
    "host-unreachable",
    "net-unreachable",
    "tls",
    "http-status",
    "name-not-found",
    "resolver-failure",
    "protocol",
    "permission",
    "bad-plan",
    "other",
)

# errno -> error code. The only place where kernel errors become the agent's vocabulary.
ERRNO_CODES = {
    errno.ETIMEDOUT: "timeout",
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.ECONNABORTED: "reset",
    errno.EPIPE: "reset",
    errno.EHOSTUNREACH: "host-unreachable",
    errno.EHOSTDOWN: "host-unreachable",
    errno.ENETUNREACH: "net-unreachable",
    errno.ENETDOWN: "net-unreachable",
    errno.EACCES: "permission",
    errno.EPERM: "permission",
}

# getaddrinfo's EAI_* codes that mean "the name does not exist" (everything else is a resolver failure).
_EAI_NOT_FOUND = {
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
}

# ICMP destination-unreachable code -> errno, as the Linux kernel converts them (icmp_err_convert).
_ICMP_UNREACH_ERRNO = {
    0: errno.ENETUNREACH,
    1: errno.EHOSTUNREACH,
    2: errno.ENOPROTOOPT,
    3: errno.ECONNREFUSED,
    4: errno.EMSGSIZE,
    5: errno.EOPNOTSUPP,
    6: errno.ENETUNREACH,
    7: errno.EHOSTDOWN,
    9: errno.ENETUNREACH,
    10: errno.EHOSTUNREACH,
    11: errno.ENETUNREACH,
    12: errno.EHOSTUNREACH,
    13: errno.EHOSTUNREACH,
    14: errno.EHOSTUNREACH,
    15: errno.EHOSTUNREACH,
}
# ICMPv6 destination-unreachable code -> errno (icmpv6_err_convert).
_ICMP6_UNREACH_ERRNO = {
    0: errno.ENETUNREACH,
    1: errno.EACCES,
    2: errno.EHOSTUNREACH,
    3: errno.EHOSTUNREACH,
    4: errno.ECONNREFUSED,
    5: errno.EACCES,
    6: errno.EACCES,
}

# Linux socket option numbers that older Pythons do not export.
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)
IP_MTU = getattr(socket, "IP_MTU", 14)
IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
IPV6_PMTUDISC_DO = getattr(socket, "IPV6_PMTUDISC_DO", 2)
IPV6_MTU = getattr(socket, "IPV6_MTU", 24)
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
ETH_P_ARP = 0x0806
# ICMP echo identifiers, one per check: threads' idents share their low 16 bits (stacks sit 8 MiB
# apart), so deriving the id from the thread would give concurrent raw-socket checks the same id.
_ICMP_IDENTS = itertools.count(int.from_bytes(os.urandom(2), "big"))
_ICMP_IDENTS_LOCK = threading.Lock()
SIOCGIFADDR = 0x8915
SIOCGSTAMP = 0x8906  # the receive time (struct timeval) of the last frame read from a socket
SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SOL_PACKET = getattr(socket, "SOL_PACKET", 263)
PACKET_STATISTICS = 6  # struct tpacket_stats {tp_packets, tp_drops}: frames queued / dropped (full queue)
ARP_DRAIN_MAX = 10000  # frames read from the queue once the window is over (it is finite: a bound anyway)

MAX_ATTEMPTS = 10
MAX_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 2.0
STDIN_DEADLINE = 60.0  # how long `run` waits for the plan line before giving up
MAX_PLAN_BYTES = 16 * 1024 * 1024
MAX_CHECKS = 2000  # per plan (per exec)
MAX_CONCURRENT = 128  # checks running at once (threads, open sockets) per agent


class PlanError(Exception):
    """A check (or the whole plan) is malformed: reported as `bad-plan`, never as a traceback."""


class CheckFailure(Exception):
    """A check failed with a code decided by the check itself (e.g. http-status, protocol)."""

    def __init__(
        self, code: str, message: str, fields: dict[str, Any] | None = None, err_no: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.fields = fields or {}
        self.err_no = err_no


class ConnectionLost(ConnectionResetError):
    """ENOTCONN or EPIPE on a TCP socket whose connect() had succeeded: the peer reset the connection
    and the ECONNRESET itself was no longer pending (see _established). A `reset`, by type."""


# ----------------------------------------------------------------------------------------------
# error mapping


def error_of(exc: BaseException) -> tuple[str, int | None, str]:
    """(code, errno, message) for an exception, decided by type and errno only, never message text."""
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, CheckFailure):
        return exc.code, exc.err_no, str(exc)
    if isinstance(exc, PlanError):
        return "bad-plan", None, str(exc)
    if isinstance(exc, socket.timeout):  # TimeoutError on >= 3.10, its own class before
        return "timeout", errno.ETIMEDOUT, message
    if isinstance(exc, socket.gaierror):
        code = "name-not-found" if exc.errno in _EAI_NOT_FOUND else "resolver-failure"
        return code, exc.errno, message
    if isinstance(exc, _loaded_class("ssl", "SSLError")):  # its errno is an OpenSSL code, not a kernel one
        return "tls", None, message
    if isinstance(exc, OSError) and exc.errno in ERRNO_CODES:
        return ERRNO_CODES[exc.errno], exc.errno, message
    if isinstance(exc, _loaded_class("http.client", "HTTPException")):
        return "protocol", None, message
    for exc_type, code in (
        (TimeoutError, "timeout"),
        (ConnectionRefusedError, "refused"),
        (ConnectionResetError, "reset"),  # ConnectionLost too: its errno is ENOTCONN or EPIPE
        (ConnectionAbortedError, "reset"),
        (BrokenPipeError, "reset"),
        (PermissionError, "permission"),
    ):
        if isinstance(exc, exc_type):
            return code, getattr(exc, "errno", None), message
    return "other", getattr(exc, "errno", None), message


class _NeverRaised(Exception):
    """Stands for an exception class whose module is not loaded (yet): nothing can have raised it."""


def _loaded_class(module: str, name: str) -> type:
    """`module.name` if that module is loaded (another thread may be importing it half-way), else a class
    no exception is an instance of: the lazily imported modules' errors, without importing them.

    >>> _loaded_class("json", "JSONDecodeError").__name__, _loaded_class("not.loaded", "Error").__name__
    ('JSONDecodeError', '_NeverRaised')
    """
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else _NeverRaised


def _ssl() -> Any:
    """The ssl module, imported on first use; None for a python3 built without OpenSSL (then everything
    but https still works)."""
    try:
        import ssl
    except ImportError:
        return None
    return ssl


def _oserror(num: int) -> OSError:
    return OSError(num, os.strerror(num))


# ----------------------------------------------------------------------------------------------
# plan field helpers


def _field(check: dict[str, Any], name: str, types: Any, default: Any = None, required: bool = False) -> Any:
    if name not in check or check[name] is None:
        if required:
            raise PlanError(f"missing field {name!r}")
        return default
    value = check[name]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise PlanError(f"field {name!r} must be {_type_names(types)}, got a boolean")
    if not isinstance(value, types):
        raise PlanError(f"field {name!r} must be {_type_names(types)}, got {type(value).__name__}")
    return value


def _type_names(types: Any) -> str:
    seq = types if isinstance(types, tuple) else (types,)
    return " or ".join(
        {
            str: "a string",
            int: "an integer",
            float: "a number",
            bool: "a boolean",
            list: "a list",
            dict: "an object",
        }.get(t, t.__name__)
        for t in seq
    )


def _host(check: dict[str, Any], name: str = "host") -> str:
    value = _field(check, name, str, required=True)
    if not value or len(value) > 253:
        raise PlanError(f"field {name!r} must be a non-empty host name or address")
    return str(value)


def _port(check: dict[str, Any], name: str = "port", default: int | None = None) -> int:
    value = _field(check, name, int, default=default, required=default is None)
    if not 1 <= value <= 65535:
        raise PlanError(f"field {name!r} must be a port 1-65535, got {value}")
    return int(value)


def _b64(check: dict[str, Any], name: str, required: bool = False) -> bytes | None:
    value = _field(check, name, str, required=required)
    if value is None:
        return None
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise PlanError(f"field {name!r} is not valid base64 ({exc})") from None


def _number(check: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = _field(check, name, (int, float), default=default)
    if not low <= value <= high:
        raise PlanError(f"field {name!r} must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _b64s(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _addr(sockaddr: Any) -> str:
    """'ip:port' (or '[ip6]:port') for a socket address; v4-mapped v6 addresses shown as v4."""
    host, port = str(sockaddr[0]), int(sockaddr[1])
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _new_socket(family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket that also queues ICMP errors (IP_RECVERR).

    Without it the kernel drops "soft" ICMP errors for UDP and ICMP sockets (a router's host or net
    unreachable), and TCP loses one that arrives while connect() still holds the socket (a fast
    local network): the probe would report a timeout where the network said why.
    """
    sock = socket.socket(family, kind, proto)
    with contextlib.suppress(OSError):
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        elif family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    return sock


def _queued_error(sock: socket.socket, ignore: tuple[int, ...] = ()) -> OSError | None:
    """The first ICMP error queued on sock (struct sock_extended_err's ee_errno), without waiting."""
    try:
        sock.setblocking(False)
    except OSError:  # already closed (e.g. by http.client)
        return None
    for _ in range(16):  # bounded: the queue holds few entries
        try:
            _, ancdata, _, _ = sock.recvmsg(1, 1024, MSG_ERRQUEUE)
        except OSError:
            return None
        for level, kind, data in ancdata:
            if (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
                (num,) = struct.unpack("=I", data[:4])
                if num and num not in ignore:
                    return _oserror(num)
    return None


@contextlib.contextmanager
def _explain_timeout(sock: socket.socket) -> Iterator[None]:
    """Turn a timeout into the ICMP error that explains it, when one was queued (see _new_socket)."""
    try:
        yield
    except socket.timeout:
        error = _queued_error(sock)
        if error is not None:
            raise error from None
        raise


@contextlib.contextmanager
def _established(sock: socket.socket) -> Iterator[None]:
    """Errors of a TCP connection once connect() succeeded: ENOTCONN and EPIPE mean it was reset.

    A RST that comes right after the handshake reaches whichever call is next: ECONNRESET for the
    first one that looks at the socket error, then the socket is closed: getpeername() says ENOTCONN
    (even while the ECONNRESET is still pending: it does not look at the error, so the pending error
    is reported when there is one), send() EPIPE, recv() end of stream. EPIPE has one other
    source, a half-close of our own (shutdown(SHUT_WR), then send), which the agent never does; the
    peer's half-close (FIN) gives neither error (recv returns EOF, send still works).
    """
    try:
        yield
    except OSError as exc:
        tls_error = isinstance(exc, _loaded_class("ssl", "SSLError"))  # errno: an OpenSSL code
        if tls_error or exc.errno not in (errno.ENOTCONN, errno.EPIPE):
            raise
        try:
            pending = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:  # closed or handed over (TLS wraps it): nothing pending to read
            pending = 0
        if pending:
            raise _oserror(pending) from None
        reason = f"{os.strerror(exc.errno)}: the connection was reset after the handshake"
        raise ConnectionLost(exc.errno, reason) from None


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("deadline reached")
    return left


def _resolve_one(host: str, port: int, socktype: int, deadline: float) -> tuple[int, Any]:
    """(family, sockaddr) for host, with the check's deadline applied to getaddrinfo as well."""
    infos = _getaddrinfo_bounded(host, port, socket.AF_UNSPEC, socktype, deadline)
    if not infos:
        raise socket.gaierror(getattr(socket, "EAI_NONAME", -2), f"no address for {host}")
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def _getaddrinfo_bounded(host: str, port: Any, family: int, socktype: int, deadline: float) -> list[Any]:
    """getaddrinfo has no timeout of its own: run it in a helper thread and stop waiting at deadline."""
    try:  # literal addresses need no resolver and no thread
        return socket.getaddrinfo(host, port, family, socktype, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = socket.getaddrinfo(host, port, family, socktype)
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=work, name="getaddrinfo", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise socket.timeout(f"getaddrinfo({host}) did not return before the deadline")
    if "error" in box:
        raise box["error"]
    return list(box["value"])


# ----------------------------------------------------------------------------------------------
# kinds: each takes the check dict and an absolute monotonic deadline, returns kind fields or raises


def check_tcp(check: dict[str, Any], deadline: float) -> dict[str, Any]:
    host, port = _host(check), _port(check)
    send, expect = _b64(check, "send_b64"), _b64(check, "expect_b64")
    family, sockaddr = _resolve_one(host, port, socket.SOCK_STREAM, deadline)
    with _new_socket(family, socket.SOCK_STREAM) as sock, _explain_timeout(sock):
        sock.settimeout(_remaining(deadline))
        sock.connect(sockaddr)
        with _established(sock):
            fields: dict[str, Any] = {"local": _addr(sock.getsockname()), "peer": _addr(sock.getpeername())}
            if send is None and expect is None:
                return fields
            if send:
                sock.settimeout(_remaining(deadline))
                sock.sendall(send)
            received = b""
            while (expect is None and not received) or (expect is not None and len(received) < len(expect)):
                sock.settimeout(_remaining(deadline))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        fields["reply_b64"] = _b64s(received)
        if expect is not None and not received.startswith(expect):
            raise CheckFailure("protocol", "reply does not start with the expected bytes", fields)
        return fields


def check_http(check: dict[str, Any], deadline: float) -> dict[str, Any]:
    from urllib.parse import urlsplit

    url = _field(check, "url", str, required=True)
    host_header = _field(check, "host_header", str)
    insecure = _field(check, "insecure", bool, default=False)
    ca_b64 = _field(check, "ca_b64", str)  # PEM CA certificate(s), base64: verify against these only
    max_body = int(_number(check, "max_body", 65536, 0, 16 * 1024 * 1024))
    method = _field(check, "method", str, default="GET")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlanError(f"field 'url' must be an http:// or https:// URL with a host, got {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise PlanError(f"field 'url' has a bad port: {exc}") from None
    ssl: Any = _ssl() if parts.scheme == "https" else None
    if parts.scheme == "https" and ssl is None:
        raise CheckFailure("other", "this python3 has no ssl module: https is not available")
    path = _field(check, "path", str) or (parts.path or "/") + ("?" + parts.query if parts.query else "")
    family, sockaddr = _resolve_one(parts.hostname, port, socket.SOCK_STREAM, deadline)
    tcp = _new_socket(family, socket.SOCK_STREAM)
    with tcp, _explain_timeout(tcp):
        tcp.settimeout(_remaining(deadline))
        tcp.connect(sockaddr)
        with _established(tcp):
            fields: dict[str, Any] = {"local": _addr(tcp.getsockname()), "peer": _addr(tcp.getpeername())}
            sock = tcp
            if parts.scheme == "https":
                context = ssl.create_default_context()
                if ca_b64:
                    try:
                        cadata = base64.b64decode(ca_b64).decode("ascii")
                        context = ssl.create_default_context(cadata=cadata)
                    except (ValueError, ssl.SSLError) as exc:
                        raise PlanError(f"field 'ca_b64' is not base64 of PEM certificates: {exc}") from None
                if insecure:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                tcp.settimeout(_remaining(deadline))
                hostname = (host_header or parts.hostname).split(":")[0]
                sock = context.wrap_socket(tcp, server_hostname=hostname)
                fields["tls_version"] = sock.version()
        with sock, _established(sock):
            status, reason, body, server = _http_exchange(sock, parts.hostname, port, method, path,
                                                          host_header, max_body, deadline)  # fmt: skip
    fields["status"] = status
    fields["server"] = server  # the Server header: tells a proxy's own answer from the backend's
    fields["body_prefix"] = body[:1024].decode("utf-8", "replace")
    fields["echo"] = _json_object(body)
    if status >= 400:
        raise CheckFailure("http-status", f"HTTP {status} {reason}", fields)
    return fields


def _http_exchange(
    sock: socket.socket,
    host: str,
    port: int,
    method: str,
    path: str,
    host_header: str | None,
    max_body: int,
    deadline: float,
) -> tuple[int, str, bytes, str | None]:
    """One request on an open connection: (status, reason, first max_body bytes, Server header)."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=_remaining(deadline))
    conn.sock = sock
    conn.putrequest(method, path, skip_host=host_header is not None, skip_accept_encoding=True)
    if host_header is not None:
        conn.putheader("Host", host_header)
    conn.putheader("User-Agent", VERSION)
    conn.putheader("Connection", "close")
    sock.settimeout(_remaining(deadline))
    conn.endheaders()
    sock.settimeout(_remaining(deadline))  # per read from here: http.client may close sock early
    response = conn.getresponse()
    body = b""
    while len(body) < max_body:
        _remaining(deadline)
        chunk = response.read(min(65536, max_body - len(body)))
        if not chunk:
            break
        body += chunk
    return response.status, str(response.reason), body, response.getheader("Server")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _udp_socket(host: str, port: int, deadline: float) -> socket.socket:
    """A connected UDP socket: the kernel then reports ICMP errors (port/host unreachable) to us."""
    family, sockaddr = _resolve_one(host, port, socket.SOCK_DGRAM, deadline)
    sock = _new_socket(family, socket.SOCK_DGRAM)
    try:
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def check_udp(check: dict[str, Any], deadline: float) -> dict[str, Any]:
    host, port = _host(check), _port(check)
    payload = _b64(check, "payload_b64", required=True) or b""
    with _udp_socket(host, port, deadline) as sock, _explain_timeout(sock):
        fields: dict[str, Any] = {"local": _addr(sock.getsockname()), "peer": _addr(sock.getpeername())}
        sock.send(payload)
        sock.settimeout(_remaining(deadline))
        fields["reply_b64"] = _b64s(sock.recv(65535))
        return fields


def check_dns(check: dict[str, Any], deadline: float) -> dict[str, Any]:
    server, port = _host(check, "server"), _port(check, default=53)
    query = _b64(check, "query_b64", required=True) or b""
    transport = _field(check, "transport", str, default="udp")
    if transport not in ("udp", "tcp"):
        raise PlanError(f"field 'transport' must be 'udp' or 'tcp', got {transport!r}")
    if len(query) < 12:
        raise PlanError("field 'query_b64' is shorter than a DNS header (12 bytes)")
    if transport == "tcp":
        family, sockaddr = _resolve_one(server, port, socket.SOCK_STREAM, deadline)
        with _new_socket(family, socket.SOCK_STREAM) as sock, _explain_timeout(sock):
            sock.settimeout(_remaining(deadline))
            sock.connect(sockaddr)
            with _established(sock):
                sock.sendall(struct.pack("!H", len(query)) + query)
                (length,) = struct.unpack("!H", _recv_exact(sock, 2, deadline))
                answer = _recv_exact(sock, length, deadline)
            return {"answer_b64": _b64s(answer), "transport": "tcp", "peer": _addr(sockaddr)}
    with _udp_socket(server, port, deadline) as sock, _explain_timeout(sock):
        sock.send(query)
        while True:  # ignore stray datagrams whose DNS id is not ours
            sock.settimeout(_remaining(deadline))
            answer = sock.recv(65535)
            if answer[:2] == query[:2]:
                return {"answer_b64": _b64s(answer), "transport": "udp", "peer": _addr(sock.getpeername())}


def _recv_exact(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise CheckFailure("protocol", f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data


_FAMILIES = {
    "any": socket.AF_UNSPEC,
    "inet": socket.AF_INET,
    "inet6": socket.AF_INET6,
    "4": socket.AF_INET,
    "6": socket.AF_INET6,
}


def check_resolve(check: dict[str, Any], deadline: float) -> dict[str, Any]:
    name = _host(check, "name")
    family_name = str(_field(check, "family", (str, int), default="any"))
    if family_name not in _FAMILIES:
        raise PlanError(f"field 'family' must be one of {', '.join(_FAMILIES)}, got {family_name!r}")
    infos = _getaddrinfo_bounded(name, None, _FAMILIES[family_name], socket.SOCK_STREAM, deadline)
    addresses: list[str] = []
    for info in infos:
        if info[4][0] not in addresses:
            addresses.append(str(info[4][0]))
    return {"addresses": addresses}


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def check_icmp(check: dict[str, Any], deadline: float) -> dict[str, Any]:
    host = _host(check)
    count = int(_number(check, "count", 1, 1, 100))
    interval = _number(check, "interval", 0.2, 0.0, 10.0)
    family, sockaddr = _resolve_one(host, 0, socket.SOCK_DGRAM, deadline)
    v6 = family == socket.AF_INET6
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    mode = _field(check, "socket", str, default="auto")
    if mode not in ("auto", "dgram", "raw"):
        raise PlanError(f"field 'socket' must be 'auto', 'dgram' or 'raw', got {mode!r}")
    sock: socket.socket | None = None
    if mode in ("auto", "dgram"):
        try:  # unprivileged "ping socket"; needs net.ipv4.ping_group_range to include our group
            sock = _new_socket(family, socket.SOCK_DGRAM, proto)
            mode = "dgram"
        except OSError as exc:
            if mode == "dgram" or exc.errno not in (errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT):
                raise
    if sock is None:
        sock = _new_socket(family, socket.SOCK_RAW, proto)  # needs CAP_NET_RAW
        mode = "raw"
    with sock, _explain_timeout(sock):
        sock.connect(sockaddr)
        with _ICMP_IDENTS_LOCK:
            ident = next(_ICMP_IDENTS) & 0xFFFF
        nonce = os.urandom(8)  # marks our echoes, so errors about other sockets' echoes are told apart
        rtts: list[float] = []
        sent_at: dict[int, float] = {}
        next_send = time.monotonic()
        error: OSError | None = None
        while len(rtts) < count and error is None:
            now = time.monotonic()
            if len(sent_at) < count and now >= next_send:
                seq = len(sent_at) + 1
                header = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, seq)
                payload = b"netconform" + nonce + struct.pack("!d", now)
                csum = 0 if v6 else _checksum(header + payload)
                sock.send(struct.pack("!BBHHH", 128 if v6 else 8, 0, csum, ident, seq) + payload)
                sent_at[seq] = now
                next_send = now + interval
            wait = _remaining(deadline)
            if len(sent_at) < count:
                wait = min(wait, max(0.0, next_send - time.monotonic()))
            sock.settimeout(max(wait, 0.001))
            try:
                packet = sock.recv(65535)
            except socket.timeout:
                _remaining(deadline)
                continue
            except OSError as exc:
                # ping sockets get ICMP errors matched by echo id only: an error about an earlier
                # socket's echo (e.g. a ping to a ClusterIP, answered "net unreachable") can land here
                if _errqueue_has(sock, nonce) is False:
                    continue
                raise exc from None
            reply = _icmp_parse(packet, mode, v6, ident, sockaddr[0])
            if isinstance(reply, OSError):
                error = reply
            elif reply is not None and reply in sent_at:
                rtts.append((time.monotonic() - sent_at[reply]) * 1000.0)
        if error is not None:
            raise error
    return {
        "rtt_ms": round(sum(rtts) / len(rtts), 3),
        "replies": len(rtts),
        "sent": len(sent_at),
        "socket": mode,
    }


def _errqueue_has(sock: socket.socket, marker: bytes) -> bool | None:
    """Whether an ICMP error queued on sock quotes a packet carrying marker (None: queue empty)."""
    found: bool | None = None
    try:
        sock.setblocking(False)
        for _ in range(16):  # bounded: the queue holds few entries
            data, _, _, _ = sock.recvmsg(2048, 1024, MSG_ERRQUEUE)
            found = found or marker in data
    except OSError:
        pass
    return found


def _icmp_parse(packet: bytes, mode: str, v6: bool, ident: int, target: str) -> int | OSError | None:
    """The echo-reply sequence number, an OSError for an ICMP error about our echo, or None."""
    if mode == "raw" and not v6:
        packet = packet[(packet[0] & 0x0F) * 4 :] if packet else packet
    if len(packet) < 8:
        return None
    kind, code, _, rid, seq = struct.unpack("!BBHHH", packet[:8])
    if kind == (129 if v6 else 0):
        # ping sockets rewrite the id to their own port, and the kernel filters for us
        return seq if mode == "dgram" or rid == ident else None
    if kind == (1 if v6 else 3) and mode == "raw":
        quoted = packet[8:]
        if len(quoted) < (40 if v6 else 20):
            return None
        family = socket.AF_INET6 if v6 else socket.AF_INET
        quoted_dst = socket.inet_ntop(family, quoted[24:40] if v6 else quoted[16:20])
        inner = quoted[40:] if v6 else quoted[(quoted[0] & 15) * 4 :]
        if quoted_dst == target and len(inner) >= 8 and struct.unpack("!H", inner[4:6])[0] == ident:
            table = _ICMP6_UNREACH_ERRNO if v6 else _ICMP_UNREACH_ERRNO
            return _oserror(table.get(code, errno.EHOSTUNREACH))
    return None


def _route_interface(ip: str) -> str:
    """The interface of the IPv4 route that reaches ip (longest prefix, then lowest metric)."""
    target = struct.unpack("<I", socket.inet_aton(ip))[0]
    best: tuple[int, int, str] | None = None
    with open("/proc/net/route") as handle:
        for line in handle.readlines()[1:]:
            cols = line.split()
            if len(cols) < 8:
                continue
            iface, dest, flags, metric, mask = (
                cols[0],
                int(cols[1], 16),
                int(cols[3], 16),
                int(cols[6]),
                int(cols[7], 16),
            )
            if not flags & 0x1 or target & mask != dest:  # RTF_UP
                continue
            prefix = bin(mask).count("1")
            if best is None or (prefix, -metric) > (best[0], -best[1]):
                best = (prefix, metric, iface)
    if best is None:
        raise _oserror(errno.ENETUNREACH)
    return best[2]


def _interface_ipv4(iface: str) -> bytes:
    """The interface's primary IPv4 address (SIOCGIFADDR), or 0.0.0.0 (an ARP probe) if it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            ifreq = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", iface.encode()[:15]))
        except OSError:
            return b"\0\0\0\0"
    return ifreq[20:24]


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _arp_reply_filter(sock: socket.socket, target: bytes) -> bool:
    """Let the kernel queue only ARP replies sent by `target` on this socket (classic BPF).

    A packet socket sees every ARP frame on its interface: while the suite probes, every node asks
    for its peers, so each listening check got hundreds of other checks' requests and replies, its
    queue overflowed (replies dropped by the kernel) and its thread, busy reading them among a
    hundred others, ended the window before reading the reply it waited for (issue 15: flaky ARP
    cells at 20 nodes under load, the LB VIP's at 100). False when it cannot be attached (no ctypes):
    the loop below filters the same frames itself."""
    try:
        import ctypes
    except ImportError:
        return False
    program = [
        (0x28, 0, 0, 20),  # ldh [20]: the ARP operation
        (0x15, 0, 3, 2),  # jeq #2 (reply), else drop
        (0x20, 0, 0, 28),  # ld [28]: the sender's protocol address
        (0x15, 0, 1, int.from_bytes(target, "big")),  # jeq target, else drop
        (0x06, 0, 0, 0x40000),  # ret: queue the frame
        (0x06, 0, 0, 0),  # ret 0: drop it
    ]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))
    try:
        sock.setsockopt(
            socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(program), ctypes.addressof(code))
        )
    except OSError:
        return False
    return True


def _received_at(sock: socket.socket) -> float | None:
    """The wall-clock time the kernel queued the frame just read (SIOCGSTAMP), None if unknown."""
    try:
        sec, usec = struct.unpack("ll", fcntl.ioctl(sock.fileno(), SIOCGSTAMP, b"\0" * struct.calcsize("ll")))
    except (OSError, struct.error):
        return None
    return float(sec) + float(usec) / 1e6


def _queue_drops(sock: socket.socket) -> int | None:
    """Frames the kernel dropped because this socket's queue was full (PACKET_STATISTICS)."""
    try:
        return int(struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1])
    except (OSError, struct.error):
        return None


def check_arp(check: dict[str, Any], deadline: float) -> dict[str, Any]:
    ip = _host(check, "ip")
    try:
        target = socket.inet_aton(ip)
    except OSError:
        raise PlanError(f"field 'ip' must be an IPv4 address, got {ip!r}") from None
    iface = _field(check, "interface", str) or _route_interface(ip)
    window = _number(check, "window", 1.0, 0.05, MAX_TIMEOUT)
    if not hasattr(socket, "AF_PACKET"):
        raise CheckFailure("other", "AF_PACKET sockets are not available on this system")
    # protocol 0: the socket receives nothing until it is bound, so the filter is in place first (a socket
    # opened for ETH_P_ARP gets every ARP frame of every interface at once: a thread that waited for the
    # CPU before attaching the filter found its queue full, the reply dropped; issue 15)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        filtered = _arp_reply_filter(sock, target)
        sock.bind((iface, ETH_P_ARP))
        own_mac = sock.getsockname()[4][:6]
        request = (
            b"\xff" * 6
            + own_mac
            + struct.pack("!H", ETH_P_ARP)
            + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
            + own_mac
            + _interface_ipv4(iface)
            + b"\0" * 6
            + target
        )
        macs: list[str] = []

        def take(frame: bytes) -> None:
            if len(frame) < 42 or frame[12:14] != b"\x08\x06":
                return
            op = struct.unpack("!H", frame[20:22])[0]
            if op == 2 and frame[28:32] == target:
                mac = _mac(frame[22:28])
                if mac not in macs:
                    macs.append(mac)

        # the window runs from the first request: a thread that waited for the CPU (hundreds of checks in
        # one agent, dozens of agents on a busy machine) between its start and its first request used to
        # see the window end before it had asked anything (issue 15: the first attempts' FM-06/FM-16
        # timeouts at 20 nodes under load, `requests: 0`)
        sock.send(request)
        sends = 1
        now = time.monotonic()
        end = min(max(deadline, now + 0.05), now + window)
        next_send = now + window / 3.0
        end_wall = time.time() + (end - time.monotonic())
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if sends < 3 and now >= next_send:  # a few requests in the window, in case one is lost
                sock.send(request)
                sends += 1
                next_send = now + window / 3.0
            wait = min(end, next_send if sends < 3 else end) - time.monotonic()
            readable, _, _ = select.select([sock], [], [], max(0.0, wait))
            if not readable:
                continue
            take(sock.recv(1500))
        # what the kernel queued within the window and a busy process did not read in time still counts
        sock.setblocking(False)
        for _ in range(ARP_DRAIN_MAX):
            try:
                frame = sock.recv(1500)
            except (BlockingIOError, InterruptedError):
                break
            at = _received_at(sock)
            if at is not None and at > end_wall:
                break  # queued after the window: not an answer within it (the queue is in order)
            take(frame)
        drops = _queue_drops(sock)
    fields: dict[str, Any] = {"macs": macs, "interface": iface, "requests": sends, "filtered": filtered}
    if drops is not None:
        fields["queue_drops"] = drops
    if not macs:
        raise CheckFailure(
            "timeout", f"no ARP reply for {ip} on {iface} within {window:.2f} s", fields, errno.ETIMEDOUT
        )
    return fields


# errno of a send that is about the destination (a queued ICMP error), not about one size: ends the check
_DESTINATION_ERRNOS = (
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.EHOSTUNREACH,
    errno.EHOSTDOWN,
    errno.ENETUNREACH,
    errno.ENETDOWN,
)


def _mtu_send(sock: socket.socket, datagram: bytes) -> OSError | None:
    """Send one probe: None when it left, the OSError when this size could not (the check goes on)."""
    try:
        sock.send(datagram)
    except OSError as exc:
        if exc.errno in _DESTINATION_ERRNOS:
            raise
        return exc
    return None


def check_mtu(check: dict[str, Any], deadline: float) -> dict[str, Any]:
    """DF datagrams of each size at once; each size ends ok, too big, lost (no echo) or failed to send.

    Too big is what a working path says about a size: EMSGSIZE on send (the route, device or a learnt
    path MTU is smaller), ENOBUFS on send that persists while a smaller size left (a device on the way
    out drops frames above its MTU, e.g. a veth whose peer has a smaller MTU), or a router's ICMP
    "fragmentation needed". Lost is a size that left and vanished without a word: an MTU black hole.
    """
    host, port = _host(check), _port(check)
    sizes = _field(check, "sizes", list, required=True)
    if not sizes or not all(
        isinstance(s, int) and not isinstance(s, bool) and 68 <= s <= 65507 for s in sizes
    ):
        raise PlanError("field 'sizes' must be a non-empty list of IP packet sizes 68-65507")
    with _udp_socket(host, port, deadline) as sock:
        v6 = sock.family == socket.AF_INET6
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        overhead = 48 if v6 else 28  # IP + UDP headers: sizes are whole IP packets
        nonce = f"{int(time.time() * 1e6) & 0xFFFFFFFF:x}"
        tokens = {s: f"ncmtu:{s}:{nonce}:".encode() for s in sorted(set(sizes))}

        def datagram(size: int) -> bytes:
            return tokens[size] + b"." * max(0, size - overhead - len(tokens[size]))

        pending: set[int] = set()  # sent, no echo yet
        too_big: dict[int, str] = {}
        failed: dict[int, OSError] = {}
        ok: set[int] = set()

        def learnt_path_mtu() -> None:
            """A frag-needed lowered the path MTU: sent sizes above it are too big, not lost."""
            mtu = _path_mtu(sock, v6)
            for size in sorted(pending):
                if mtu is not None and size > mtu:
                    too_big[size] = "frag-needed"
                    pending.discard(size)

        for size in tokens:  # ascending: a size-related refusal holds for every larger size too
            refused = _mtu_send(sock, datagram(size))
            if refused is None:
                pending.add(size)
            elif refused.errno == errno.EMSGSIZE:
                too_big[size] = "emsgsize"
                learnt_path_mtu()  # it may be a frag-needed for an earlier size, reported on this send
            else:
                failed[size] = refused
        for size in sorted(failed):  # once more: ENOBUFS may also be a full queue for a moment
            if failed[size].errno == errno.ENOBUFS and _mtu_send(sock, datagram(size)) is None:
                del failed[size]
                pending.add(size)
        left = sorted(pending)
        for size, refused in sorted(failed.items()):
            # too big when a smaller size left and no larger one did (a full queue is not monotonic)
            if refused.errno == errno.ENOBUFS and left and max(left) < size:
                too_big[size] = "enobufs"
                del failed[size]
        error: BaseException | None = None
        while pending:
            try:
                sock.settimeout(_remaining(deadline))
                reply = sock.recv(65535)
            except socket.timeout:
                break
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:  # ICMP "fragmentation needed" came back
                    learnt_path_mtu()
                    continue
                error = exc
                break
            for size in list(pending):
                if _mtu_echo_matches(reply, tokens[size]):
                    ok.add(size)
                    pending.discard(size)
        learnt_path_mtu()  # its error may have been reported on a later send, not on recv
        if error is None and pending and not ok:  # e.g. a router's "host unreachable" (IP_RECVERR)
            error = _queued_error(sock, ignore=(errno.EMSGSIZE,))
        fields = {
            "largest_ok": max(ok) if ok else None,
            "sizes_ok": sorted(ok),
            "sizes_too_big": sorted(too_big),
            "sizes_lost": sorted(pending),
            "sizes_failed": sorted(failed),
            "too_big_by": {str(s): why for s, why in sorted(too_big.items())},
            "send_errors": {
                str(s): errno.errorcode.get(e.errno or 0, str(e.errno)) for s, e in sorted(failed.items())
            },
            "path_mtu": _path_mtu(sock, v6),
        }
    if not ok:
        if error is None and failed and not pending:
            error = failed[min(failed)]
        if error is not None:
            code, err_no, message = error_of(error)
            raise CheckFailure(code, message, fields, err_no)
        if not pending:
            raise CheckFailure(
                "other",
                f"every size is too big for the path (path MTU {fields['path_mtu']})",
                fields,
                errno.EMSGSIZE,
            )
        raise CheckFailure("timeout", "no size was echoed before the deadline", fields, errno.ETIMEDOUT)
    return fields


def _path_mtu(sock: socket.socket, v6: bool) -> int | None:
    try:
        if v6:
            return int(sock.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU))
        return int(sock.getsockopt(socket.IPPROTO_IP, IP_MTU))
    except OSError:
        return None


def _mtu_echo_matches(reply: bytes, token: bytes) -> bool:
    """A plain UDP echo returns our bytes; the agent's own `serve` answers JSON with `head_b64`."""
    if reply.startswith(token):
        return True
    echo = _json_object(reply)
    if echo is None or not isinstance(echo.get("head_b64"), str):
        return False
    try:
        return base64.b64decode(echo["head_b64"]).startswith(token)
    except ValueError:
        return False


def check_read(check: dict[str, Any], deadline: float) -> dict[str, Any]:
    path = _field(check, "path", str, required=True)
    max_bytes = int(_number(check, "max_bytes", 65536, 0, 16 * 1024 * 1024))
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    return {"content": data[:max_bytes].decode("utf-8", "replace"), "truncated": len(data) > max_bytes}


# where iptables-save usually lives when PATH (a container's) does not include the sbin directories
IPTABLES_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin")
CAP_NET_ADMIN = 12
MAX_STDERR = 2048


def _find_binary(name: str) -> str | None:
    """name on PATH, else in the usual sbin directories (an executable file), else None."""
    import shutil

    found = shutil.which(name)
    if found:
        return found
    for folder in IPTABLES_DIRS:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _has_capability(bit: int) -> bool | None:
    """Whether this process holds a capability (CapEff in /proc/self/status); None when unknown."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _save_rules(binary: str, deadline: float, max_bytes: int) -> tuple[str, bool, list[str]]:
    """`BINARY -c` (rules with [packets:bytes] counters): (text, truncated, stderr lines)."""
    import subprocess

    try:
        done = subprocess.run(
            [binary, "-c"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_remaining(deadline),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CheckFailure(
            "timeout", f"{binary} -c did not finish before the deadline", err_no=errno.ETIMEDOUT
        ) from None
    stderr = done.stderr[:MAX_STDERR].decode("utf-8", "replace").strip()
    if done.returncode != 0:
        # decided by the capability, not by the tool's wording: without CAP_NET_ADMIN it cannot read
        if _has_capability(CAP_NET_ADMIN) is False:
            raise CheckFailure(
                "permission",
                f"{binary} -c exited {done.returncode} and this process lacks CAP_NET_ADMIN "
                f"(run the host probe privileged): {stderr.splitlines()[0] if stderr else 'no message'}",
                err_no=errno.EPERM,
            )
        raise CheckFailure(
            "other",
            f"{binary} -c exited {done.returncode}: {stderr.splitlines()[0] if stderr else 'no message'}",
        )
    text = done.stdout[:max_bytes].decode("utf-8", "replace")
    return text, len(done.stdout) > max_bytes, stderr.splitlines()


def check_iptables(check: dict[str, Any], deadline: float) -> dict[str, Any]:
    """The node's iptables rules with their counters (`iptables-save -c`), once or twice `interval` apart.

    Two snapshots taken in the same check let the caller see which DROP/REJECT counters grow while the
    suite's own traffic runs (FM-19) without another exec. Parsing is the orchestrator's job.
    """
    interval = _number(check, "interval", 0.0, 0.0, 120.0)
    ipv6 = _field(check, "ipv6", bool, default=False)
    max_bytes = int(_number(check, "max_bytes", 16 * 1024 * 1024, 1024, 64 * 1024 * 1024))
    binary = _find_binary("iptables-save")
    if binary is None:
        raise CheckFailure(
            "other",
            "iptables-save not found in the probe image (PATH, " + ", ".join(IPTABLES_DIRS[:3]) + "); "
            "use an image with iptables or pass --probe-image with one (FM-19 reads DROP counters with it)",
            err_no=errno.ENOENT,
        )
    binary6 = _find_binary("ip6tables-save") if ipv6 else None
    fields: dict[str, Any] = {"binary": binary, "binary6": binary6, "snapshots": [], "warnings": []}
    if ipv6 and binary6 is None:
        fields["warnings"].append("ip6tables-save not found: IPv6 rules not read")
    if interval >= deadline - time.monotonic():
        raise PlanError(f"field 'interval' ({interval:g} s) must be shorter than the check's timeout")
    first = time.monotonic()
    for number in range(2 if interval > 0 else 1):
        if number:  # the counting window itself (from the first snapshot's start), not a wait for state
            time.sleep(max(0.0, min(first + interval, deadline) - time.monotonic()))
        taken = time.time()
        text, truncated, warnings = _save_rules(binary, deadline, max_bytes)
        snapshot: dict[str, Any] = {
            "at": round(taken, 3),
            "iptables": text,
            "ip6tables": None,
            "truncated": truncated,
        }
        if binary6 is not None:
            try:
                snapshot["ip6tables"], truncated6, warnings6 = _save_rules(binary6, deadline, max_bytes)
                snapshot["truncated"] = truncated or truncated6
                warnings += warnings6
            except CheckFailure as exc:  # IPv4 is what counts; a kernel without IPv6 is no failure
                fields["warnings"].append(f"ip6tables: {exc}")
        fields["warnings"] += [w for w in warnings if w not in fields["warnings"]]
        fields["snapshots"].append(snapshot)
    return fields


KINDS: dict[str, Callable[[dict[str, Any], float], dict[str, Any]]] = {
    "tcp": check_tcp,
    "http": check_http,
    "udp": check_udp,
    "dns": check_dns,
    "resolve": check_resolve,
    "icmp": check_icmp,
    "arp": check_arp,
    "mtu": check_mtu,
    "read": check_read,
    "iptables": check_iptables,
}


# ----------------------------------------------------------------------------------------------
# running a plan


def run_attempt(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One attempt of one check: never raises, always returns an attempt record."""
    started = time.monotonic()
    fields: dict[str, Any] = {}
    try:
        fields = KINDS[check["kind"]](check, started + timeout)
        code: str | None = None
        err_no: int | None = None
        message = ""
    except BaseException as exc:  # the agent reports, it does not die
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        code, err_no, message = error_of(exc)
        if isinstance(exc, CheckFailure):
            fields = exc.fields
    elapsed = (time.monotonic() - started) * 1000.0
    record: dict[str, Any] = {
        "ok": code is None,
        "error": code,
        "errno": err_no,
        "message": message,
        "elapsed_ms": round(elapsed, 3),
    }
    record.update(fields)
    return record


class _Check:
    """A validated check: id, kind, timeout and attempts, or the plan error that stops it."""

    def __init__(self, index: int, raw: Any, plan: dict[str, Any], seen: set[str]) -> None:
        self.raw: dict[str, Any] = raw if isinstance(raw, dict) else {}
        self.id = f"#{index}"
        self.kind = "unknown"
        self.problem: str | None = None
        self.timeout = DEFAULT_TIMEOUT
        self.attempts = 1
        self.gap = 0.0
        try:
            self._validate(raw, plan, seen)
        except PlanError as exc:
            self.problem = str(exc)

    def _validate(self, raw: Any, plan: dict[str, Any], seen: set[str]) -> None:
        if not isinstance(raw, dict):
            raise PlanError(f"check {self.id} is not a JSON object")
        if isinstance(raw.get("kind"), str):
            self.kind = raw["kind"]
        if isinstance(raw.get("id"), str) and raw["id"]:
            self.id = raw["id"]
        elif "id" in raw:
            raise PlanError("field 'id' must be a non-empty string")
        else:
            raise PlanError("missing field 'id'")
        if self.id in seen:
            raise PlanError(f"duplicate check id {self.id!r}")
        seen.add(self.id)
        kind = raw.get("kind")
        if not isinstance(kind, str):
            raise PlanError("missing field 'kind' (one of " + ", ".join(KINDS) + ")")
        self.kind = kind
        if kind not in KINDS:
            raise PlanError(f"unknown kind {kind!r} (known: " + ", ".join(KINDS) + ")")
        self.timeout = _number(raw, "timeout", plan["timeout"], 0.001, MAX_TIMEOUT)
        if raw.get("attempts") is not None and not isinstance(raw["attempts"], int):
            raise PlanError("field 'attempts' must be an integer")
        self.attempts = int(_number(raw, "attempts", plan["attempts"], 1, MAX_ATTEMPTS))
        self.gap = _number(raw, "attempt_gap", plan["attempt_gap"], 0.0, 60.0)

    def budget(self) -> float:
        """The longest this check may take; past it the watchdog reports a timeout for it."""
        return self.attempts * self.timeout + (self.attempts - 1) * self.gap + 1.0

    def run(self) -> dict[str, Any]:
        attempts: list[dict[str, Any]] = []
        if self.problem is not None:
            attempts.append(
                {"ok": False, "error": "bad-plan", "errno": None, "message": self.problem, "elapsed_ms": 0.0}
            )
        else:
            for number in range(self.attempts):
                if number and self.gap:
                    time.sleep(self.gap)  # spacing between attempts is what the plan asks for
                attempts.append(run_attempt(self.raw, self.timeout))
        return self.result(attempts)

    def result(self, attempts: list[dict[str, Any]]) -> dict[str, Any]:
        last = attempts[-1]
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        out.update(last)
        out["total_ms"] = round(sum(a["elapsed_ms"] for a in attempts), 3)
        out["attempts"] = attempts
        return out


def _plan_settings(plan: dict[str, Any]) -> dict[str, Any]:
    settings = {"timeout": DEFAULT_TIMEOUT, "attempts": 1, "attempt_gap": 0.0}
    settings["timeout"] = _number(plan, "timeout", DEFAULT_TIMEOUT, 0.001, MAX_TIMEOUT)
    settings["attempts"] = int(_number(plan, "attempts", 1, 1, MAX_ATTEMPTS))
    settings["attempt_gap"] = _number(plan, "attempt_gap", 0.0, 0.0, 60.0)
    return settings


def top_level_error(message: str) -> dict[str, Any]:
    return {"agent": VERSION, "error": "bad-plan", "message": message, "results": []}


def _import_for(checks: list[Any]) -> None:
    """Import, in this one thread, the modules the plan's checks use: imports run by many check threads
    at once can meet a module another thread is importing half-way (a check then dies and the watchdog
    reports a time-out)."""
    kinds = {c["kind"] for c in checks if isinstance(c, dict) and isinstance(c.get("kind"), str)}
    if "http" in kinds:
        import http.client  # noqa: F401
        import urllib.parse  # noqa: F401

        _ssl()
    if "iptables" in kinds:
        import shutil  # noqa: F401
        import subprocess  # noqa: F401


def execute_plan(text: str) -> tuple[dict[str, Any], int]:
    """Run a plan given as JSON text: (result document, exit code). Never raises on any input."""
    if not text.strip():
        return top_level_error("the plan is empty (expected one JSON document on one line)"), 2
    try:
        plan = json.loads(text)
    except ValueError as exc:
        return top_level_error(f"the plan is not JSON: {exc}"), 2
    if not isinstance(plan, dict):
        return top_level_error("the plan must be a JSON object with a 'checks' list"), 0
    if not isinstance(plan.get("checks"), list):
        return top_level_error("the plan has no 'checks' list"), 0
    _import_for(plan["checks"])
    if len(plan["checks"]) > MAX_CHECKS:
        return top_level_error(f"the plan has {len(plan['checks'])} checks; at most {MAX_CHECKS} per run"), 0
    try:
        settings = _plan_settings(plan)
    except PlanError as exc:
        return top_level_error(f"plan: {exc}"), 0
    seen: set[str] = set()
    checks = [_Check(i, raw, settings, seen) for i, raw in enumerate(plan["checks"])]
    results: list[dict[str, Any] | None] = [None] * len(checks)

    def work(index: int) -> None:
        try:
            results[index] = checks[index].run()
        except BaseException as exc:  # a bug in a kind must not take the whole plan down
            _code, err_no, message = error_of(exc)
            results[index] = checks[index].result(
                [
                    {
                        "ok": False,
                        "error": "other",
                        "errno": err_no,
                        "message": "agent: " + message,
                        "elapsed_ms": 0.0,
                    }
                ]
            )

    # at most MAX_CONCURRENT checks (threads, open sockets) at a time: workers take the next check
    # when one finishes, so a plan of n checks takes about ceil(n / MAX_CONCURRENT) check budgets
    pending = iter(range(len(checks)))
    pending_lock = threading.Lock()

    def worker() -> None:
        while True:
            with pending_lock:
                index = next(pending, None)
            if index is None:
                return
            work(index)

    workers = []
    started = time.monotonic()
    for number in range(min(len(checks), MAX_CONCURRENT)):
        thread = threading.Thread(target=worker, name=f"check-worker-{number}", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # the system refused another thread: the others take its share
            break
        workers.append(thread)
    if not workers:
        for index in range(len(checks)):
            results[index] = checks[index].result(
                [
                    {
                        "ok": False,
                        "error": "other",
                        "errno": None,
                        "message": "agent: the system refused a thread",
                        "elapsed_ms": 0.0,
                    }
                ]
            )
    waves = -(-len(checks) // max(1, len(workers)))
    longest = max([c.budget() for c in checks] or [0.0])
    end = started + waves * longest  # every check's own deadline, in the worst order of the waves
    for thread in workers:
        thread.join(max(0.0, end - time.monotonic()))
    document_results = []
    for index, check in enumerate(checks):
        result = results[index]
        if result is None:  # still blocked in the kernel or a library past its own deadline
            budget = check.budget()
            result = check.result(
                [
                    {
                        "ok": False,
                        "error": "timeout",
                        "errno": errno.ETIMEDOUT,
                        "message": f"check did not finish within {budget:.1f} s (agent watchdog)",
                        "elapsed_ms": round(budget * 1000.0, 3),
                    }
                ]
            )
        document_results.append(result)
    return {"agent": VERSION, "results": document_results}, 0


def read_plan_line(stream: Any, deadline_s: float) -> str:
    """The first line of stream (EOF also ends it), waiting at most deadline_s for it to arrive."""
    fd = stream.fileno()
    data = b""
    end = time.monotonic() + deadline_s
    while b"\n" not in data:
        left = end - time.monotonic()
        if left <= 0:
            raise socket.timeout(f"no plan line on stdin within {deadline_s:.0f} s")
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_PLAN_BYTES:
            raise ValueError(f"the plan line is longer than {MAX_PLAN_BYTES} bytes")
    return data.split(b"\n", 1)[0].decode("utf-8", "replace")


def cmd_run(args: Any) -> int:
    try:
        if args.plan_file:
            with open(args.plan_file, encoding="utf-8") as handle:
                text = handle.read()
        else:
            text = read_plan_line(sys.stdin, args.stdin_timeout)
    except (OSError, ValueError) as exc:
        document, code = top_level_error(f"cannot read the plan: {error_of(exc)[2]}"), 2
    else:
        document, code = execute_plan(text)
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()
    return code


# ----------------------------------------------------------------------------------------------
# serve: the echo backend


def _plain_ip(ip: str) -> str:
    return ip[len("::ffff:") :] if ip.startswith("::ffff:") and "." in ip else ip


def _identity() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "node": os.environ.get("NODE_NAME"),
        "pod": os.environ.get("POD_NAME"),
    }


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)


def _source_only(level: int, kind: int, value: bytes) -> tuple[int, int, bytes] | None:
    """A received PKTINFO turned into one that sets only the source address (any interface)."""
    if (level, kind) == (socket.IPPROTO_IPV6, IPV6_PKTINFO) and len(value) >= 20:
        return level, kind, value[:16] + b"\0\0\0\0"
    if (level, kind) == (socket.IPPROTO_IP, IP_PKTINFO) and len(value) >= 12:
        return level, kind, b"\0\0\0\0" + value[4:12]
    return None


def _echo_servers() -> dict[str, Any]:
    """The echo backend's handler and server classes, made on first use: http.server and socketserver
    would add ~15 ms to every `run` agent's start (one per exec), which never serves.

    >>> sorted(_echo_servers())
    ['EchoHTTPHandler', 'EchoTCPHandler', 'EchoUDPHandler', 'EchoUDPServer', 'make_server']
    """
    import http.server
    import socketserver

    class EchoHTTPHandler(http.server.BaseHTTPRequestHandler):
        """GET / reflects the client's address; GET /status/NNN answers with status NNN."""

        server_version = VERSION
        protocol_version = "HTTP/1.0"
        timeout = 30

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path.startswith("/status/"):
                try:
                    status = int(path[len("/status/") :])
                except ValueError:
                    status = 0
                if not 100 <= status <= 599:
                    self._answer(400, {"error": "status must be 100-599"})
                    return
                self._answer(status, {"status": status})
                return
            server = self.connection.getsockname()
            body = {
                "client_ip": _plain_ip(self.client_address[0]),
                "client_port": self.client_address[1],
                "server_ip": _plain_ip(server[0]),
                "server_port": server[1],
                "path": self.path,
                "host": self.headers.get("Host"),
                "method": self.command,
                # behind an L7 proxy (ingress): who the proxy says the client is
                "forwarded_for": self.headers.get("X-Forwarded-For"),
            }
            body.update(_identity())
            body["NODE_NAME"], body["POD_NAME"] = body["node"], body["pod"]
            self._answer(200, body)

        do_HEAD = do_GET

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = (json.dumps(body) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class EchoTCPHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(30.0)  # an idle client does not hold a thread forever
            try:
                while True:
                    data = self.request.recv(65536)
                    if not data:
                        return
                    self.request.sendall(data)
            except OSError:
                return

    class EchoUDPServer(socketserver.UDPServer):
        """A UDP server that knows which local address each datagram was sent to (IP_PKTINFO)."""

        def server_activate(self) -> None:
            with contextlib.suppress(OSError):
                if self.socket.family == socket.AF_INET6:
                    self.socket.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)  # v4-mapped too
                else:
                    self.socket.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)

        def get_request(self) -> tuple[Any, Any]:
            data, ancdata, _, client = self.socket.recvmsg(self.max_packet_size, 256)
            local = None
            for level, kind, value in ancdata:
                if (level, kind) == (socket.IPPROTO_IPV6, IPV6_PKTINFO) and len(value) >= 16:
                    local = socket.inet_ntop(socket.AF_INET6, value[:16])
                elif (level, kind) == (socket.IPPROTO_IP, IP_PKTINFO) and len(value) >= 12:
                    local = socket.inet_ntop(socket.AF_INET, value[8:12])
            return (data, self.socket, local, ancdata), client

    class EchoUDPHandler(socketserver.BaseRequestHandler):
        """Answers each datagram with JSON about its sender, from the address it was sent to."""

        def handle(self) -> None:
            data, sock, local, ancdata = self.request
            bound = sock.getsockname()
            body = {
                "client_ip": _plain_ip(self.client_address[0]),
                "client_port": self.client_address[1],
                "server_ip": _plain_ip(local or bound[0]),
                "server_port": bound[1],
                "bytes": len(data),
                "head_b64": _b64s(data[:64]),
            }
            body.update(_identity())
            reply = json.dumps(body).encode()
            # answer from the address the client used (it may be one of several on this host)
            source = [_source_only(level, kind, value) for level, kind, value in ancdata]
            source = [item for item in source if item is not None]
            try:
                sock.sendmsg([reply], source, 0, self.client_address)
            except OSError:
                sock.sendto(reply, self.client_address)

    def _make_server(base: type, port: int, handler: type) -> Any:
        """base bound to [::] (accepting IPv4 too) when the host has IPv6, else to 0.0.0.0."""
        attempts = [(socket.AF_INET6, "::")] if socket.has_ipv6 else []
        attempts.append((socket.AF_INET, "0.0.0.0"))
        for family, host in attempts:

            def server_bind(self: Any) -> None:
                if self.address_family == socket.AF_INET6:
                    self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                if issubclass(base, http.server.HTTPServer):
                    # HTTPServer.server_bind looks its own name up (getfqdn): seconds on a node cut off
                    # from DNS, during which the echo does not listen yet. The name is never used.
                    socketserver.TCPServer.server_bind(self)
                    self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]
                else:
                    base.server_bind(self)  # type: ignore[attr-defined]

            attrs = {
                "address_family": family,
                "daemon_threads": True,
                "allow_reuse_address": True,
                "server_bind": server_bind,
                # socketserver's default backlog of 5 overflows when a 12-node suite's probes arrive at
                # once: the kernel drops the SYN and the probe times out before the 1 s retransmit
                "request_queue_size": 128,
            }
            server_class = type("Echo" + base.__name__, (base,), attrs)
            try:
                return server_class((host, port), handler)
            except OSError as exc:
                if family != socket.AF_INET6 or exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    raise
        raise OSError(errno.EAFNOSUPPORT, "no usable address family")

    return {
        "EchoHTTPHandler": EchoHTTPHandler,
        "EchoTCPHandler": EchoTCPHandler,
        "EchoUDPServer": EchoUDPServer,
        "EchoUDPHandler": EchoUDPHandler,
        "make_server": _make_server,
    }


def cmd_serve(args: Any) -> int:
    """`serve`: listen on every port given until SIGTERM/SIGINT; one JSON line says what listens."""
    import http.server
    import socketserver

    ssl: Any = _ssl() if args.https is not None else None
    echo = _echo_servers()
    make_server, handler = echo["make_server"], echo["EchoHTTPHandler"]
    if not any((args.http is not None, args.tcp is not None, args.udp is not None, args.https is not None)):
        print("agent serve: give at least one of --http, --https, --tcp, --udp", file=sys.stderr)
        return 2
    if args.https is not None and ssl is None:
        print("agent serve: this python3 has no ssl module: --https is not available", file=sys.stderr)
        return 2
    if args.https is not None and not (args.cert and args.key):
        print("agent serve: --https needs --cert and --key (PEM files)", file=sys.stderr)
        return 2
    servers: list[tuple[str, Any]] = []
    try:
        if args.http is not None:
            servers.append(("http", make_server(http.server.ThreadingHTTPServer, args.http, handler)))
        if args.https is not None:
            https = make_server(http.server.ThreadingHTTPServer, args.https, handler)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(args.cert, args.key)
            https.socket = context.wrap_socket(https.socket, server_side=True)
            servers.append(("https", https))
        if args.tcp is not None:
            tcp = make_server(socketserver.ThreadingTCPServer, args.tcp, echo["EchoTCPHandler"])
            servers.append(("tcp", tcp))
        if args.udp is not None:
            servers.append(("udp", make_server(echo["EchoUDPServer"], args.udp, echo["EchoUDPHandler"])))
    except OSError as exc:  # ssl.SSLError is an OSError too
        print(f"agent serve: cannot listen: {error_of(exc)[2]}", file=sys.stderr)
        for _, server in servers:
            server.server_close()
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for _, server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    ready = {name: server.server_address[1] for name, server in servers}
    sys.stdout.write(json.dumps({"agent": VERSION, "serving": ready}) + "\n")
    sys.stdout.flush()
    while not stop.wait(3600.0):  # runs until SIGTERM/SIGINT
        pass
    for _, server in servers:
        server.shutdown()
        server.server_close()
    return 0


# ----------------------------------------------------------------------------------------------
# command line


def _parser() -> Any:
    import argparse

    parser = argparse.ArgumentParser(prog="agent.py", description="netconform probe agent")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run a JSON plan (first line of stdin) and print one JSON result")
    run.add_argument("--plan-file", help="read the plan from this file instead of stdin")
    run.add_argument(
        "--stdin-timeout",
        type=float,
        default=STDIN_DEADLINE,
        help="seconds to wait for the plan line on stdin (default %(default)s)",
    )
    serve = sub.add_parser("serve", help="echo backend: HTTP reflects the client, TCP/UDP echo")
    for name in ("http", "https", "tcp", "udp"):
        serve.add_argument("--" + name, type=int, metavar="PORT", help="listen on PORT (0: any free port)")
    serve.add_argument("--cert", help="PEM certificate for --https")
    serve.add_argument("--key", help="PEM private key for --https")
    return parser


class _RunArgs:
    """`run` with its defaults: what the engine always sends, parsed without argparse (~5 ms a start)."""

    command = "run"
    plan_file: str | None = None
    stdin_timeout = STDIN_DEADLINE


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["run"]:
        return cmd_run(_RunArgs())
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "serve":
        return cmd_serve(args)
    parser.print_usage(sys.stderr)
    return 2


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    os._exit(exit_code)  # do not wait for check threads stuck past their deadline (daemon threads)
