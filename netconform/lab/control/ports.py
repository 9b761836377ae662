"""Loopback ports for a lab's real control plane: below the kernel's ephemeral range, one owner each.

`bind(("127.0.0.1", 0))` hands out a port from `net.ipv4.ip_local_port_range`, the range every outgoing
connection's local port comes from too. Between a probe socket closing and etcd or the API server binding
the port seconds later, any client on the host may take it (under `make test`: the other labs' API
clients, hundreds of loopback connections a second), and the component exits with "address already in
use". So the ports come from below that range, where the kernel never picks one on its own, are checked
bindable, and are recorded in the lab's state folder under a host-wide lock: two labs coming up at once
never choose the same port, and a lab's ports are free again when `lab down` removes its folder.

>>> usable_range((32768, 60999))
(20000, 32767)
>>> usable_range((1024, 65535))  # no room outside: the whole range, the bind check still applies
(1024, 65535)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import random
import socket
from collections.abc import Iterator
from pathlib import Path

from netconform.lab.net.nsexec import STATE_ROOT

PORTS_FILE = "ports.json"  # in the lab's state folder: the ports it holds
FLOOR = 20000  # below: the well-known and registered ports other software listens on
MIN_SPAN = 2000  # the least room, in ports, worth keeping a range for
LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for automatically chosen local ports (32768-60999 when unreadable)."""
    try:
        low, high = (int(x) for x in LOCAL_PORT_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def usable_range(ephemeral: tuple[int, int]) -> tuple[int, int]:
    """The ports to choose from: below the ephemeral range, else above it, else everything above 1023."""
    low, high = ephemeral
    if low - 1 - FLOOR >= MIN_SPAN:
        return FLOOR, low - 1
    if 65535 - (high + 1) >= MIN_SPAN:
        return high + 1, 65535
    return 1024, 65535


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _held(root: Path) -> set[int]:
    held: set[int] = set()
    for record in root.glob(f"*/{PORTS_FILE}"):
        with contextlib.suppress(OSError, ValueError, TypeError):
            held.update(int(p) for p in json.loads(record.read_text()))
    return held


@contextlib.contextmanager
def _host_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".ports.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held for milliseconds: a few binds and one small file
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def allocate(
    state_dir: Path, count: int, root: Path = STATE_ROOT, span: tuple[int, int] | None = None
) -> list[int]:
    """`count` distinct ports for the lab whose folder is `state_dir`, recorded there.

    `span` (inclusive) replaces the range `usable_range` gives. Raises RuntimeError naming the range when
    not enough free ports are left in it.
    """
    low, high = span or usable_range(ephemeral_range())
    candidates = list(range(low, high + 1))
    random.SystemRandom().shuffle(candidates)
    with _host_lock(root):
        held = _held(root) | _own(state_dir)
        chosen: list[int] = []
        for port in candidates:
            if len(chosen) == count:
                break
            if port not in held and _bindable(port):
                chosen.append(port)
        if len(chosen) < count:
            raise RuntimeError(f"only {len(chosen)} of {count} loopback ports free in {low}-{high}")
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / PORTS_FILE).write_text(json.dumps(sorted(_own(state_dir) | set(chosen))))
    return chosen


def _own(state_dir: Path) -> set[int]:
    with contextlib.suppress(OSError, ValueError, TypeError):
        return {int(p) for p in json.loads((state_dir / PORTS_FILE).read_text())}
    return set()
