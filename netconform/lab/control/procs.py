"""Finding a lab's processes on the host: for `lab down` after a crash, and for the memory budget.

A lab process is the supervisor, anything carrying `NETCONFORM_LAB=<lab>` in its environment (every pod
container and exec session), or anything living in one of the lab's network namespaces (the data plane's
echo and DNS servers). Matching on both means a recycled pid of an unrelated process is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from netconform.lab.net.addressing import lab_namespace_pattern
from netconform.lab.net.nsexec import NETNS_DIR, netns_list

MARKER = "NETCONFORM_LAB"


def _lab_netns_inodes(lab: str) -> set[int]:
    pattern = lab_namespace_pattern(lab)
    inodes = set()
    for name in netns_list():
        if pattern.match(name):
            with contextlib.suppress(OSError):
                inodes.add(os.stat(NETNS_DIR / name).st_ino)
    return inodes


def _has_marker(pid: int, lab: str) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER}={lab}".encode() in env.split(b"\0")


def lab_pids(lab: str, extra: Iterable[int] = ()) -> list[int]:
    """Pids of `lab`'s processes (never this process), plus `extra` pids that are still alive."""
    inodes = _lab_netns_inodes(lab)
    me = os.getpid()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me:
            continue
        try:
            inode = os.stat(entry / "ns" / "net").st_ino
        except OSError:
            continue
        if inode in inodes or _has_marker(pid, lab):
            found.add(pid)
    found.update(p for p in extra if p != me and Path(f"/proc/{p}").exists())
    return sorted(found)


def rss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def terminate(pids: Iterable[int], grace: float) -> list[int]:
    """SIGTERM, wait up to `grace` s (polling exit), then SIGKILL; returns the pids that had to be killed."""
    alive = [p for p in pids if pid_alive(p)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if pid_alive(p)]
        if alive:
            time.sleep(0.05)  # polling process exit, bounded by `grace`
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return alive
