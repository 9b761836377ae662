"""While a lab is up, the host's own network namespace cannot reach the lab's addresses by mistake.

The lab's private ranges (fabric, pods, Services) exist only inside lab namespaces; the host routes
them to its default gateway, off the machine. So a probe sent
from the host's root namespace to a lab address (a suite run without `--lab`, a test, a benchmark)
would leave the machine and could be answered by somebody else. While any lab exists the root
namespace has an `unreachable` route for each of those ranges, so such a connect fails at once with
"no route to host"; the routes go when the last lab goes. No route towards any network is added.

The lab's "outside" documentation ranges are deliberately not guarded: the host may use them for real
(here the package registries' proxy answers on 203.0.113.80), and nothing of the suite sends to them
from the host unless asked (`--external-client local`).

The routes carry protocol number `ROUTE_PROTO`, so the lab only ever removes its own; a range the host
already routes itself (its own, more specific or equal route) is left alone and reported:

>>> [str(n) for n in GUARDED_RANGES][:3]
['10.89.0.0/24', '10.244.0.0/16', '10.96.0.0/16']
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
from collections.abc import Iterable, Iterator

from netconform.lab.net import addressing as A
from netconform.lab.net.nsexec import STATE_ROOT, netns_list, process_alive, run

log = logging.getLogger("netconform.lab.net.hostguard")
HOLDERS = STATE_ROOT.parent / "hostguard"  # a file per lab that needs the guard: its builder's pid

ROUTE_PROTO = "78"  # marks the lab's guard routes ("proto 78" in `ip route`), nothing else uses it here
GUARDED_RANGES = tuple(ipaddress.IPv4Network(n) for n in (A.FABRIC_CIDR, A.POD_SUPERNET, A.SERVICE_CIDR))


def guard_routes() -> list[str]:
    """The lab's unreachable routes now in the root namespace, as prefixes."""
    proc = run(["ip", "-j", "route", "show", "proto", ROUTE_PROTO, "type", "unreachable"], check=False)
    try:
        return sorted(r["dst"] for r in json.loads(proc.stdout or "[]"))
    except (ValueError, KeyError, TypeError):
        return []


def _host_routes() -> list[ipaddress.IPv4Network]:
    """Prefixes the host itself routes (any type but ours), to leave them alone."""
    proc = run(["ip", "-j", "route", "show"], check=False)
    try:
        routes = json.loads(proc.stdout or "[]")
    except ValueError:
        return []
    nets = []
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default" and ":" not in dst and route.get("protocol") != ROUTE_PROTO:
            nets.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    return nets


def guard(ranges: Iterable[ipaddress.IPv4Network] = GUARDED_RANGES) -> list[str]:
    """Add the unreachable routes that are missing; returns one warning per range left unguarded."""
    present = set(guard_routes())
    host = _host_routes()
    warnings = []
    for net in ranges:
        if str(net) in present:
            continue
        overlap = [h for h in host if h.overlaps(net) and h.prefixlen <= net.prefixlen]
        if overlap:
            warnings.append(f"the host routes {overlap[0]} itself: {net} is not guarded")
            continue
        proc = run(["ip", "route", "add", "unreachable", str(net), "proto", ROUTE_PROTO], check=False)
        if proc.returncode != 0 and str(net) not in guard_routes():
            warnings.append(f"{net}: {proc.stderr.strip() or 'ip route add failed'}")
    return warnings


def release() -> list[str]:
    """Remove every guard route of the lab's (when the last lab is gone); returns what was removed."""
    removed = guard_routes()
    for dst in removed:
        run(["ip", "route", "del", "unreachable", dst, "proto", ROUTE_PROTO], check=False)
    return removed


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One lab at a time changes the holders and the routes (labs come and go in parallel)."""
    HOLDERS.mkdir(parents=True, exist_ok=True)
    with open(HOLDERS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def hold(lab: str) -> list[str]:
    """Lab `lab` is being built: guard the host from now on. Returns warnings (also logged)."""
    with _locked():
        (HOLDERS / lab).write_text(str(os.getpid()))
        warnings = guard()
    for warning in warnings:
        log.warning("host guard: %s", warning)
    return warnings


def let_go(lab: str) -> list[str]:
    """Lab `lab` is gone: when no other lab holds the guard, remove the routes; returns those removed."""
    with _locked():
        (HOLDERS / lab).unlink(missing_ok=True)
        if _holders():
            return []
        return release()


def _holders() -> list[str]:
    """Labs that still need the guard: any lab with namespaces, or one whose builder still runs.

    Namespaces are the ground truth (whichever process or version made them); holder files only cover
    a build before its first namespace exists. A holder file whose builder died without namespaces (a
    crash before `lab down`) is stale and removed here, so it never keeps the routes forever.
    """
    pattern = A.lab_namespace_pattern()
    live = {m.group(1) for n in netns_list() if (m := pattern.match(n))}
    for holder in HOLDERS.iterdir():
        if holder.name.startswith("."):
            continue
        try:
            pid = int(holder.read_text().strip() or "0")
        except (OSError, ValueError):
            pid = 0
        if holder.name in live or (pid and process_alive(pid)):
            live.add(holder.name)
        else:
            holder.unlink(missing_ok=True)
    return sorted(live)
