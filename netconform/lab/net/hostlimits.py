"""The kernel limits a big lab needs raised: the neighbour (ARP) table and the receive backlog.

Both are host-wide (visible only in the root namespace) and shared by every network namespace, so a lab's
nodes, which in a real cluster each have their own kernel, share one here:

- The neighbour table's garbage-collection thresholds (`net.ipv4.neigh.default.gc_thresh1/2/3`) cap the
  entries of all namespaces together: above gc_thresh3 (1024 by default) a new neighbour cannot be created
  and sends fail with "No buffer space available" or "No route to host". A lab of N nodes holds about
  2 N^2 entries (each node's fabric port and overlay device learn every other node), so two 20-node labs,
  or one of 30, already exceed the default and healthy cells fail at random.
- `net.core.netdev_max_backlog` (1000 by default) is the per-CPU queue every packet crossing a veth waits
  in. One ARP broadcast on the fabric bridge is N copies, and N nodes asking at once are N^2: a 100-node
  run on 2 CPUs overflowed it by a million packets (`/proc/net/softnet_stat`, column 2), and 30-80 healthy
  node-to-node cells timed out or flickered; raised, none did.

`lab up` therefore raises them to what all labs on the host need, only ever upwards (a limit, not a
behaviour: nothing else changes, and a raised limit harms no other user), and says so in the log.

>>> needed_entries(3), needed_entries(20), needed_entries(100)
(4144, 5096, 25096)
>>> needed_backlog(3), needed_backlog(20), needed_backlog(100), needed_backlog(1000)
(1027, 2200, 31000, 200000)
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("netconform.lab.net.hostlimits")
NEIGH = Path("/proc/sys/net/ipv4/neigh/default")
BACKLOG = Path("/proc/sys/net/core/netdev_max_backlog")
BASE_ENTRIES = 4096  # room for the host itself and a few small labs besides
BASE_BACKLOG = 1000  # the kernel's default
MAX_BACKLOG = 200_000  # packets per CPU; beyond, a lab this big has other limits first


def needed_entries(nodes: int) -> int:
    """Neighbour entries to allow for one more lab of `nodes` nodes (fabric + overlay + pods)."""
    return BASE_ENTRIES + 2 * nodes * nodes + 10 * nodes


def _read(name: str) -> int:
    return int((NEIGH / name).read_text().split()[0])


def ensure_neighbour_capacity(nodes: int, other_nodes: int = 0) -> str | None:
    """Raise gc_thresh2/3 (never lower them) so `nodes` plus `other_nodes` of other labs fit.

    Returns what was changed, None when the limits were already enough or cannot be read/written.
    """
    want3 = needed_entries(nodes + other_nodes)
    want2 = want3 * 3 // 4
    try:
        have2, have3 = _read("gc_thresh2"), _read("gc_thresh3")
        if have3 >= want3 and have2 >= want2:
            return None
        if have3 < want3:
            (NEIGH / "gc_thresh3").write_text(str(want3))
        if have2 < want2:
            (NEIGH / "gc_thresh2").write_text(str(want2))
    except (OSError, ValueError) as exc:
        log.warning("neighbour table limits not raised (%s): big labs may see ENOBUFS", exc)
        return None
    message = (
        f"neighbour table limits raised: gc_thresh2 {have2} -> {max(have2, want2)}, "
        f"gc_thresh3 {have3} -> {max(have3, want3)}"
    )
    log.info(message)
    return message


def needed_backlog(nodes: int) -> int:
    """The per-CPU receive backlog for `nodes` nodes of all labs: room for every node's ARP broadcast
    at once, three times over (fabric and overlay copies, the probes' own packets)."""
    return min(MAX_BACKLOG, max(BASE_BACKLOG, BASE_BACKLOG + 3 * nodes * nodes))


def ensure_backlog_capacity(nodes: int, other_nodes: int = 0) -> str | None:
    """Raise `net.core.netdev_max_backlog` (never lower it) for `nodes` plus `other_nodes` of other labs.

    Returns what was changed, None when it was already enough or cannot be read/written.
    """
    want = needed_backlog(nodes + other_nodes)
    try:
        have = int(BACKLOG.read_text().split()[0])
        if have >= want:
            return None
        BACKLOG.write_text(str(want))
    except (OSError, ValueError) as exc:
        log.warning("receive backlog not raised (%s): big labs may drop packets", exc)
        return None
    message = f"receive backlog raised: net.core.netdev_max_backlog {have} -> {want}"
    log.info(message)
    return message
