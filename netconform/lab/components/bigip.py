"""The lab's F5 programs (stdlib only; run inside the `load-balancer-f5` and `k8s-bigip-ctlr` pods).

    python3 bigip.py load-balancer-f5 --dir DIR   # logs the per-port ConfigMaps the lab writes
    python3 bigip.py k8s-bigip-ctlr --dir DIR     # logs its syncs of those virtual servers to BIG-IP

The lab's controllers create one ConfigMap per port of every LoadBalancer Service (as
k8s-bigip-ctlr reads them, schema `f5schemadb://bigip-virtual-server_v0.1.7.json`) and list the virtual
servers in `DIR/f5/virtuals.json` (`{"partition": P, "virtuals": ["ns_cm-name", ...]}`). The controller's log
follows k8s-bigip-ctlr v1.x (Go wrapper prefix around the python driver's f5-cccl lines), e.g.::

    2024/05/02 10:00:01 [INFO] [2024-05-02 10:00:01,123 f5_cccl.resource.resource INFO]
        Creating ApiVirtualServer: /P/ns_echo-lb-80-tcp      (one line)

`DIR/f5/partition-shared` (lab fault f5-partition-shared) holds another cluster's virtual servers in
the same partition: every sync deletes them (they are not in this cluster's ConfigMaps) and recreates
its own ones, which the other cluster deleted — the fight FM-07 describes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

SYNC_S = 1.0


def _log(level: str, module: str, text: str) -> None:
    now = time.time()
    ms = int((now % 1) * 1000)
    go = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(now))
    py = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
    sys.stdout.write(f"{go} [{level}] [{py},{ms:03d} {module} {level}] {text}\n")
    sys.stdout.flush()


def _read(path: str) -> Any:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def ctlr(directory: str, stop: threading.Event) -> int:
    _log("INFO", "__main__", "Starting: Version: 1.14.0, BuildInfo: lab")
    known: set[str] = set()
    while True:
        state = _read(os.path.join(directory, "f5", "virtuals.json")) or {}
        partition, wanted = state.get("partition", "Common"), set(state.get("virtuals", []))
        foreign = _read(os.path.join(directory, "f5", "partition-shared")) or []
        for name in sorted(foreign):
            _log("INFO", "f5_cccl.resource.resource", f"Deleting ApiVirtualServer: /{partition}/{name}")
        recreate = set(wanted) if foreign else set()
        for name in sorted((wanted - known) | recreate):
            _log("INFO", "f5_cccl.resource.resource", f"Creating ApiVirtualServer: /{partition}/{name}")
        for name in sorted(known - wanted):
            _log("INFO", "f5_cccl.resource.resource", f"Deleting ApiVirtualServer: /{partition}/{name}")
        known = wanted
        # the controller's own per-sync line (plain, no f5-cccl prefix), as k8s-bigip-ctlr 1.x prints it
        go = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime())
        sys.stdout.write(f"{go} [INFO] Wrote {len(wanted)} Virtual Server and 0 IApp configs\n")
        sys.stdout.flush()
        if stop.wait(SYNC_S):
            return 0


def load_balancer_f5(directory: str, stop: threading.Event) -> int:
    print("I0502 10:00:00.000000       1 main.go:61] load-balancer-f5 starting", flush=True)
    known: set[str] = set()
    while not stop.wait(0.5):
        state = _read(os.path.join(directory, "f5", "virtuals.json")) or {}
        wanted = set(state.get("virtuals", []))
        stamp = time.strftime("%m%d %H:%M:%S", time.gmtime())
        for name in sorted(wanted - known):
            print(f"I{stamp}.000000       1 configmap.go:88] created ConfigMap for virtual server {name}")
        for name in sorted(known - wanted):
            print(f"I{stamp}.000000       1 configmap.go:97] deleted ConfigMap for virtual server {name}")
        sys.stdout.flush()
        known = wanted
    return 0


def main(argv: list[str]) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    args = dict(zip(argv[1::2], argv[2::2], strict=False))
    if argv[:1] == ["k8s-bigip-ctlr"]:
        return ctlr(args["--dir"], stop)
    if argv[:1] == ["load-balancer-f5"]:
        return load_balancer_f5(args["--dir"], stop)
    sys.stderr.write("usage: bigip.py k8s-bigip-ctlr|load-balancer-f5 --dir DIR\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
