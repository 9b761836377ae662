"""The lab's MetalLB controller and speaker programs (stdlib only; run inside the `app=metallb` pods).

    python3 metallb.py controller --dir DIR            # logs each LB IP it assigns
    python3 metallb.py speaker --dir DIR --node node-2 # logs the VIPs this node announces / withdraws

The lab's load-balancer controller decides allocations and which node announces each VIP (that node
alone answers ARP for it); it writes them to `DIR/lb/allocations.json` and `DIR/lb/announcements.json`,
which these programs follow (every 0.3 s) and log as MetalLB v0.13 does, one JSON object per line,
e.g. (speaker, layer 2)::

    {"caller":"main.go:409","event":"serviceAnnounced","ips":["10.89.0.200"],"level":"info",
     "msg":"service has IP, announcing","node":"node-2","pool":"lab-pool","protocol":"layer2",
     "service":"ns/echo-lb","ts":"2024-05-02T10:00:01Z"}

`DIR/lb/speaker-down/NODE` (lab fault metallb-speaker-down) makes that node's speaker exit with an
error at start, so the pod crash-loops and the node announces nothing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

POLL_S = 0.3


def _ts() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _emit(caller: str, **fields: Any) -> None:
    line = {"caller": caller, **fields, "ts": _ts()}
    sys.stdout.write(json.dumps(dict(sorted(line.items())), separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path) as fh:
            data: dict[str, Any] = json.load(fh)
        return data
    except (OSError, ValueError):
        return {}


def controller(directory: str, stop: threading.Event) -> int:
    _emit("main.go:159", level="info", msg="MetalLB controller starting", version="v0.13.12")
    seen: dict[str, str] = {}
    while not stop.wait(POLL_S):
        allocations = _read(os.path.join(directory, "lb", "allocations.json"))
        for vip, a in sorted(allocations.items()):
            if seen.get(vip) != a.get("service"):
                _emit(
                    "service.go:140",
                    event="ipAllocated",
                    ip=[vip],
                    level="info",
                    msg="IP address assigned by controller",
                    service=a.get("service"),
                )
                seen[vip] = str(a.get("service"))
        for vip in [v for v in seen if v not in allocations]:
            _emit(
                "service.go:67",
                event="serviceDeleted",
                level="info",
                msg="service deleted",
                service=seen.pop(vip),
            )
    return 0


def speaker(directory: str, node: str, stop: threading.Event) -> int:
    if os.path.exists(os.path.join(directory, "lb", "speaker-down", node)):
        _emit(
            "main.go:212",
            level="error",
            msg="failed to join memberlist: speaker stopped (lab fault)",
            error="speaker down",
            node=node,
            op="startup",
        )
        return 1
    _emit("main.go:105", level="info", msg="MetalLB speaker starting", node=node, version="v0.13.12")
    _emit(
        "announcer.go:126",
        event="createARPResponder",
        interface="eth0",
        level="info",
        msg="created ARP responder for interface",
    )
    mine: dict[str, dict[str, Any]] = {}
    while not stop.wait(POLL_S):
        if os.path.exists(os.path.join(directory, "lb", "speaker-down", node)):
            _emit("main.go:230", level="error", msg="speaker stopped (lab fault)", node=node)
            return 1
        announced = _read(os.path.join(directory, "lb", "announcements.json"))
        wanted = {vip: a for vip, a in announced.items() if a.get("node") == node}
        for vip, a in sorted(wanted.items()):
            if mine.get(vip) != a:
                _emit(
                    "main.go:409",
                    event="serviceAnnounced",
                    ips=[vip],
                    level="info",
                    msg="service has IP, announcing",
                    node=node,
                    pool=a.get("pool", "lab-pool"),
                    protocol="layer2",
                    service=a.get("service"),
                )
                mine[vip] = a
        for vip in [v for v in mine if v not in wanted]:
            a = mine.pop(vip)
            _emit(
                "main.go:431",
                event="serviceWithdrawn",
                ip=[vip],
                level="info",
                msg="withdrawing service announcement",
                reason="notOwner",
                service=a.get("service"),
            )
    return 0


def main(argv: list[str]) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    args = dict(zip(argv[1::2], argv[2::2], strict=False))
    if argv[:1] == ["controller"]:
        return controller(args["--dir"], stop)
    if argv[:1] == ["speaker"]:
        return speaker(args["--dir"], args["--node"], stop)
    sys.stderr.write("usage: metallb.py controller --dir DIR | speaker --dir DIR --node NODE\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
