"""The lab's Cilium-like dataplane agent and its CLIs (stdlib only; runs inside the anetd pods).

One file, three roles, so the pod needs nothing but python3:

    python3 cilium.py agent --dir DIR --node node-1   # the anetd container: health server + prober,
                                                      # endpoint-API rate limiter writing the agent log
    python3 cilium.py cli status --all-health         # what `cilium` / `cilium-dbg` run in the pod
    python3 cilium.py bpftool map dump pinned /sys/fs/bpf/tc/globals/cilium_lb4_services_v2

Only the interfaces the suite reads are emulated, in the real tools' output formats (Cilium v1.14
`cilium status`, `cilium monitor`, bpftool v7 `map show` / `map dump`, the agent's logfmt lines):

- health: the agent listens on NODE_IP:4240 (cilium-health's port) and TCP-connects to every peer's
  4240 every second over the fabric (timeout 1 s), so a real partition shows up as `unreachable`;
  `DIR/cilium/NODE.health-down` (lab fault cilium-health-down) closes the listener.
- drops: `monitor --type drop` samples the packet counters of the lab datapath's own DROP/REJECT
  rules (iptables chains NC-*) in the node namespace; each counted packet is one drop line (the
  destination comes from the rule, the source is unknown: 0.0.0.0).
- eBPF LB maps: one services-map entry per frontend plus one per backend slot, one backends-map entry
  per distinct backend, from the Services the lab's controllers write to `DIR/cilium/services.json`;
  `NODE.lb4-fill` (fault ebpf-map-full) adds filler entries; maximum `MAP_MAX` (bpf-lb-map-max).
- endpoint API: pods whose network comes up on the node are appended to `NODE.endpoints` by the lab;
  more than `parallel` (4) PUTs within `hold_s` are refused with 429 and retried, logged as the agent
  does; `NODE.rate-limit` (fault cilium-rate-limit) lowers the limit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

HEALTH_PORT = 4240
MAP_MAX = 4096  # the lab agent's bpf-lb-map-max (Cilium's default is 65536)
PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 1.0
STALE_AFTER_S = 10.0
MONITOR_MAX_S = 300.0  # `cilium monitor` runs until interrupted; never longer than this
VERSION = "1.14.2 (v1.14.2-lab)"
MAPS_DIR = "/sys/fs/bpf/tc/globals/"
MAP_IDS = {"cilium_lb4_services_v2": 41, "cilium_lb4_backends_v3": 42, "cilium_lb4_backends_v2": 43}
PROTO = {"TCP": 6, "UDP": 17}


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _config(directory: str) -> dict[str, Any]:
    with open(os.path.join(directory, "config.json")) as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def _cilium_dir(directory: str) -> str:
    return os.path.join(directory, "cilium")


def _write_json(path: str, data: Any) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _log(line: str) -> None:
    sys.stdout.write(f"level={line}\n" if not line.startswith("level=") else line + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------------------ agent
class Agent:
    def __init__(self, directory: str, node: str) -> None:
        self.dir = directory
        self.node = node
        cfg = _config(directory)
        self.nodes: dict[str, str] = cfg["node_ips"]
        self.ip = self.nodes[node]
        self.base = os.path.join(_cilium_dir(directory), node)
        self.listener: socket.socket | None = None
        self.stop = threading.Event()
        self.endpoint_offset = 0
        self.admitted: list[float] = []

    # -- health
    def _health_down(self) -> bool:
        return os.path.exists(self.base + ".health-down")

    def _serve_health(self) -> None:
        if self._health_down():
            if self.listener is not None:
                self.listener.close()
                self.listener = None
                _log('warning msg="cilium-health endpoint stopped" subsys=cilium-health')
            return
        if self.listener is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.ip, HEALTH_PORT))
            sock.listen(16)
            sock.settimeout(0.2)
            self.listener = sock
            _log(f'info msg="Serving cilium health API at {self.ip}:{HEALTH_PORT}" subsys=health-server')
        sock = self.listener
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                return
            with conn:
                conn.settimeout(0.5)
                with contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def _probe(self, name: str, ip: str, out: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            with socket.create_connection((ip, HEALTH_PORT), timeout=PROBE_TIMEOUT_S):
                pass
            out[name] = {
                "ip": ip,
                "reachable": True,
                "latency_ms": round((time.monotonic() - started) * 1e3, 3),
            }
        except OSError as err:
            out[name] = {"ip": ip, "reachable": False, "error": str(err) or type(err).__name__}

    def _probe_round(self) -> None:
        results: dict[str, Any] = {}
        threads = [
            threading.Thread(target=self._probe, args=(n, ip, results), daemon=True)
            for n, ip in sorted(self.nodes.items())
            if n != self.node
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(PROBE_TIMEOUT_S + 1.0)
        results[self.node] = {"ip": self.ip, "reachable": not self._health_down(), "local": True}
        _write_json(self.base + ".health.json", {"time": time.time(), "iso": _now_iso(), "nodes": results})

    # -- endpoint API rate limit
    def _limits(self) -> tuple[int, float]:
        try:
            with open(self.base + ".rate-limit") as fh:
                data = json.load(fh)
            return int(data.get("parallel", 1)), float(data.get("hold_s", 10.0))
        except (OSError, ValueError):
            return 4, 1.0

    def _endpoints(self) -> None:
        try:
            with open(self.base + ".endpoints") as fh:
                fh.seek(self.endpoint_offset)
                lines = fh.readlines()
                self.endpoint_offset = fh.tell()
        except OSError:
            return
        parallel, hold = self._limits()
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            at, pod, cid = float(ev["time"]), ev["pod"], ev.get("container_id", "0" * 12)
            self.admitted = [t for t in self.admitted if at - t < hold]
            _log(f'info msg="Create endpoint request" containerID={cid[:12]} k8sPodName={pod} subsys=daemon')
            if len(self.admitted) >= parallel:
                _log(
                    'warning msg="Not processing API request. Wait duration for maximum parallel '
                    f'requests exceeds maximum" maxParallel={parallel} name=endpoint-create subsys=rate'
                )
                _log(
                    'warning msg="Unable to create endpoint" error="[PUT /endpoint/{id}][429] '
                    f'putEndpointIdTooManyRequests " containerID={cid[:12]} k8sPodName={pod} '
                    "subsys=cilium-cni"
                )
                _log(f'info msg="Retrying endpoint creation" k8sPodName={pod} subsys=cilium-cni')
            self.admitted.append(at)
            _log(
                f'info msg="Successful endpoint creation" containerID={cid[:12]} k8sPodName={pod} '
                "subsys=daemon"
            )

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        os.makedirs(_cilium_dir(self.dir), exist_ok=True)
        _log(f'info msg="Cilium {VERSION}" subsys=daemon')
        _log(f'info msg="Started health checking of {len(self.nodes) - 1} peer node(s)" subsys=cilium-health')
        next_probe = 0.0
        while not self.stop.is_set():
            self._serve_health()
            self._endpoints()
            if time.monotonic() >= next_probe:
                threading.Thread(target=self._probe_round, daemon=True).start()
                next_probe = time.monotonic() + PROBE_INTERVAL_S
            self.stop.wait(0.05)
        return 0


# ------------------------------------------------------------------------------------------ cli
def _node_env() -> tuple[str, str]:
    directory, node = os.environ.get("NC_COMPONENTS_DIR"), os.environ.get("NC_NODE_NAME")
    if not directory or not node:
        sys.stderr.write("Error: Unable to connect to Cilium daemon: no agent configuration\n")
        raise SystemExit(1)
    return directory, node


def status(all_health: bool) -> int:
    directory, node = _node_env()
    base = os.path.join(_cilium_dir(directory), node)
    try:
        with open(base + ".health.json") as fh:
            health = json.load(fh)
    except (OSError, ValueError):
        health = None
    rows = [
        ("KVStore:", "Ok   Disabled"),
        ("Kubernetes:", "Ok   1.31 (v1.31.0) [linux/amd64]"),
        ("KubeProxyReplacement:", "False"),
        ("Host firewall:", "Disabled"),
        ("CNI Chaining:", "none"),
        ("Cilium:", f"Ok   {VERSION}"),
        ("NodeMonitor:", "Listening for events on 2 CPUs with 64x4096 of shared memory"),
        ("Cilium health daemon:", "Ok"),
        ("Controller Status:", "20/20 healthy"),
        ("Proxy Status:", "No managed proxy redirect"),
        ("Global Identity Range:", "min 256, max 65535"),
        ("Hubble:", "Disabled"),
        ("Encryption:", "Disabled"),
    ]
    out = [f"{k:<25}{v}" for k, v in rows]
    if health is None or time.time() - float(health.get("time", 0)) > STALE_AFTER_S:
        out.append(f"{'Cluster health:':<25}Warning   cilium-health daemon unreachable")
        print("\n".join(out))
        return 0
    nodes = health["nodes"]
    ok = sum(1 for v in nodes.values() if v.get("reachable"))
    out.append(f"{'Cluster health:':<25}{ok}/{len(nodes)} reachable   ({health['iso']})")
    shown = [(n, v) for n, v in sorted(nodes.items()) if all_health or not v.get("reachable")]
    if shown:
        out.append(f"  {'Name':<35}{'IP':<16}{'Node':<14}Endpoints")
        for name, v in shown:
            label = f"kubernetes/{name}" + (" (localhost)" if v.get("local") else "")
            state = "reachable" if v.get("reachable") else "unreachable"
            out.append(f"  {label:<35}{v['ip']:<16}{state:<14}{state}")
    print("\n".join(out))
    return 0


SAVE_RULE = re.compile(r"^\[(\d+):(\d+)\] -A (NC-[A-Z0-9-]+) (.*)-j (DROP|REJECT)")


def _drop_counters() -> dict[tuple[str, str], int]:
    try:
        saved = subprocess.run(
            ["iptables-save", "-c", "-t", "filter"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out: dict[tuple[str, str], int] = {}
    for line in saved.splitlines():
        m = SAVE_RULE.match(line)
        if m:
            out[(m.group(3), m.group(4).strip())] = out.get((m.group(3), m.group(4).strip()), 0) + int(
                m.group(1)
            )
    return out


def _drop_line(chain: str, match: str) -> str:
    dst = re.search(r"-d (\d+\.\d+\.\d+\.\d+)", match)
    dport = re.search(r"--dport (\d+)", match)
    proto = re.search(r"-p (tcp|udp|icmp)", match)
    reason = "Service backend not found" if chain == "NC-SERVICES" else "Policy denied"
    where = f"{dst.group(1) if dst else '0.0.0.0'}:{dport.group(1) if dport else 0}"
    p = proto.group(1) if proto else "ip"
    return (
        f"xx drop ({reason}) flow 0x0 to endpoint 0, ifindex 0, file bpf_lxc.c:0, , identity "
        f"world->unknown: 0.0.0.0:0 -> {where} {p}"
    )


def monitor(kind: str | None) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    print("Listening for events on 2 CPUs with 64x4096 of shared memory")
    print("Press Ctrl-C to quit", flush=True)
    if kind not in (None, "drop"):
        stop.wait(MONITOR_MAX_S)
        return 0
    before = _drop_counters()
    end = time.monotonic() + MONITOR_MAX_S
    while not stop.wait(0.3) and time.monotonic() < end:
        now = _drop_counters()
        for key, count in sorted(now.items()):
            for _ in range(min(50, count - before.get(key, 0))):
                print(_drop_line(*key))
        sys.stdout.flush()
        before = now
    return 0


def cli(argv: list[str]) -> int:
    if argv[:1] == ["status"]:
        return status("--all-health" in argv)
    if argv[:1] == ["monitor"]:
        kind = None
        for i, a in enumerate(argv):
            if a.startswith("--type="):
                kind = a.split("=", 1)[1]
            elif a in ("--type", "-t") and i + 1 < len(argv):
                kind = argv[i + 1]
        return monitor(kind)
    if argv[:1] == ["version"]:
        print(f"Client: {VERSION}\nDaemon: {VERSION}")
        return 0
    sys.stderr.write(f'Error: unknown command {" ".join(argv[:1])!r} for "cilium" (lab agent)\n')
    return 1


# ------------------------------------------------------------------------------------------ bpftool
def _hex(data: bytes) -> str:
    parts = [data[i : i + 8].hex(" ") for i in range(0, len(data), 8)]
    return "  ".join(parts)


def lb_entries(directory: str, node: str) -> dict[str, list[tuple[bytes, bytes]]]:
    """The node's LB maps as (key, value) byte pairs, laid out like Cilium's lb4_key / lb4_service /
    lb4_backend (bpf/lib/common.h)."""
    try:
        with open(os.path.join(_cilium_dir(directory), "services.json")) as fh:
            services = json.load(fh)
    except (OSError, ValueError):
        services = []
    node_ip = _config(directory)["node_ips"].get(node, "0.0.0.0")
    backends: dict[tuple[str, int, int], int] = {}
    svc: list[tuple[bytes, bytes]] = []
    for rev, s in enumerate(services, start=1):
        for p in s.get("ports", []):
            proto = PROTO.get(p["protocol"], 0)
            frontends = [(ip, int(p["port"])) for ip in [s.get("cluster_ip"), *s.get("lb_ips", [])] if ip]
            if p.get("node_port"):
                frontends += [(node_ip, int(p["node_port"])), ("0.0.0.0", int(p["node_port"]))]
            ids = []
            for ip, port in p.get("backends", []):
                ids.append(backends.setdefault((ip, int(port), proto), len(backends) + 1))
            for ip, port in frontends:
                addr = ipaddress.IPv4Address(ip).packed
                for slot in range(len(ids) + 1):
                    key = (
                        addr + port.to_bytes(2, "big") + slot.to_bytes(2, "little") + bytes([proto, 0, 0, 0])
                    )
                    backend_id = ids[slot - 1] if slot else 0
                    value = (
                        backend_id.to_bytes(4, "little")
                        + (len(ids) if slot == 0 else 0).to_bytes(2, "little")
                        + rev.to_bytes(2, "big")
                        + bytes(4)
                    )
                    svc.append((key, value))
    try:
        with open(os.path.join(_cilium_dir(directory), f"{node}.lb4-fill")) as fh:
            fill = int(fh.read().strip() or 0)
    except (OSError, ValueError):
        fill = 0
    for i in range(max(0, min(fill, MAP_MAX) - len(svc))):
        addr = ipaddress.IPv4Address(0x0A600000 + 0x8000 + i).packed  # 10.96.128.0 + i: filler frontends
        svc.append((addr + (80).to_bytes(2, "big") + bytes([0, 0, 6, 0, 0, 0]), bytes(12)))
    back = [
        (
            bid.to_bytes(4, "little"),
            ipaddress.IPv4Address(ip).packed + port.to_bytes(2, "big") + bytes([proto, 0, 0, 0, 0, 0]),
        )
        for (ip, port, proto), bid in backends.items()
    ]
    return {"cilium_lb4_services_v2": svc, "cilium_lb4_backends_v3": back, "cilium_lb4_backends_v2": back}


def bpftool(argv: list[str]) -> int:
    as_json = False
    while argv and argv[0] in ("-j", "--json", "-p", "--pretty"):
        as_json = True
        argv = argv[1:]
    if len(argv) < 4 or argv[0] != "map" or argv[1] not in ("show", "dump", "list") or argv[2] != "pinned":
        sys.stderr.write("Error: the lab's bpftool knows only `map show|dump pinned PATH`\n")
        return 255
    path = argv[3]
    name = path[len(MAPS_DIR) :] if path.startswith(MAPS_DIR) else ""
    directory, node = _node_env()
    maps = lb_entries(directory, node)
    if name not in maps:
        sys.stderr.write(f"Error: bpf obj get ({path.rsplit('/', 1)[0]}): No such file or directory\n")
        return 255
    entries = maps[name]
    key_size, value_size = (12, 12) if "services" in name else (4, 12)
    if argv[1] in ("show", "list"):
        if as_json:
            print(
                json.dumps(
                    {
                        "id": MAP_IDS[name],
                        "type": "hash",
                        "name": name[:15],
                        "flags": 1,
                        "bytes_key": key_size,
                        "bytes_value": value_size,
                        "max_entries": MAP_MAX,
                        "bytes_memlock": MAP_MAX * 64,
                    }
                )
            )
        else:
            print(f"{MAP_IDS[name]}: hash  name {name[:15]}  flags 0x1")
            print(f"\tkey {key_size}B  value {value_size}B  max_entries {MAP_MAX}  memlock {MAP_MAX * 64}B")
        return 0
    if as_json:
        print(
            json.dumps(
                [{"key": [f"0x{b:02x}" for b in k], "value": [f"0x{b:02x}" for b in v]} for k, v in entries]
            )
        )
        return 0
    lines = [f"key: {_hex(k)}  value: {_hex(v)}" for k, v in entries]
    lines.append(f"Found {len(entries)} element{'' if len(entries) == 1 else 's'}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["agent"]:
        args = dict(zip(argv[1::2], argv[2::2], strict=False))
        return Agent(args["--dir"], args["--node"]).run()
    if argv[:1] == ["cli"]:
        return cli(argv[1:])
    if argv[:1] == ["bpftool"]:
        return bpftool(argv[1:])
    sys.stderr.write("usage: cilium.py agent --dir DIR --node NODE | cli ARGS | bpftool ARGS\n")
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        sys.exit(0)
