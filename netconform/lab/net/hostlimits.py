"""The one kernel limit a big lab needs raised: the neighbour (ARP) table, shared by every namespace.

The kernel keeps one IPv4 neighbour table for all network namespaces, and its garbage-collection
thresholds (`net.ipv4.neigh.default.gc_thresh1/2/3`, visible only in the root namespace) cap the
entries of all of them together: above gc_thresh3 (1024 by default) a new neighbour cannot be created
and sends fail with "No buffer space available" or "No route to host". A lab of N nodes holds about
2 N^2 entries (each node's fabric port and overlay device learn every other node), so two 20-node labs,
or one of 30, already exceed the default and healthy cells fail at random.

`lab up` therefore raises the thresholds to what all labs on the host need, only ever upwards (a limit,
not a behaviour: nothing else changes, and a raised limit harms no other user), and says so in the log.

>>> needed_entries(3), needed_entries(20), needed_entries(100)
(4144, 5096, 25096)
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("netconform.lab.net.hostlimits")
NEIGH = Path("/proc/sys/net/ipv4/neigh/default")
BASE_ENTRIES = 4096  # room for the host itself and a few small labs besides


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
