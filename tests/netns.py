"""Throwaway network namespaces for tests, with guaranteed cleanup.

Why: tests that need real sockets (refused, reset, ICMP errors, ARP, MTU) build a small topology of
namespaces joined by veth pairs and bridges; nothing ever touches the host's root namespace.

Usage (module-scoped fixture)::

    from tests.can_run import needs
    from tests.netns import Netns

    pytestmark = needs("netns")

    with Netns("agt") as net:               # names get a unique prefix: "<tag><pid>x<n>-<short>"
        a, b = net.add("a"), net.add("b")
        net.veth(a, "eth0", b, "eth0", mtu=1400)
        net.sh(a, "ip addr add 10.1.0.1/24 dev eth0")
        proc = net.popen(b, ["python3", "server.py"])   # killed on exit
        net.run(a, ["ping", "-c1", "10.1.0.2"])

API: ``Netns(tag)`` with ``add``, ``veth``, ``bridge``, ``attach``, ``run``,
``sh``, ``popen``, ``sysctl``, ``resolv_conf``, ``close`` (also via ``with``). ``sweep(tag)`` removes
namespaces left by test processes that died (SIGKILL); it runs whenever a ``Netns`` is created.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

NETNS_RUN = Path("/run/netns")
NETNS_ETC = Path("/etc/netns")
_counter = itertools.count()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete_ns(name: str) -> None:
    """Kill what still runs inside the namespace (it would keep it alive), then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=10)
    for pid in pids.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def sweep(tag: str) -> list[str]:
    """Delete namespaces named "<tag><pid>x..." whose creating process is gone; returns their names."""
    removed: list[str] = []
    if not NETNS_RUN.is_dir():
        return removed
    for entry in NETNS_RUN.iterdir():
        rest = entry.name[len(tag) :] if entry.name.startswith(tag) else ""
        pid = rest.split("x", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            _delete_ns(entry.name)
            removed.append(entry.name)
    return removed


class Netns:
    """A set of namespaces (and the processes started in them) that is removed as a whole."""

    def __init__(self, tag: str) -> None:
        if not tag.isalpha() or len(tag) > 5:
            raise ValueError("tag must be 1-5 letters (namespace names stay short and sweepable)")
        sweep(tag)
        self.prefix = f"{tag}{os.getpid()}x{next(_counter)}-"
        self.names: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Netns:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def add(self, short: str) -> str:
        """Create a namespace with loopback up and IPv6 DAD off; returns its full name."""
        name = self.prefix + short
        self.names.append(name)  # registered first: cleaned up even if the next step fails
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
        self.run(name, ["ip", "link", "set", "lo", "up"])
        # no IPv6 duplicate address detection: addresses (link-local too) are usable at once
        for scope in ("all", "default"):
            with contextlib.suppress(RuntimeError):  # a kernel without IPv6 has no such knob
                self.sysctl(name, f"net.ipv6.conf.{scope}.accept_dad", "0")
        return name

    def sysctl(self, ns: str, key: str, value: str) -> None:
        """Set a per-namespace sysctl (written to /proc/sys: no dependency on procps' sysctl)."""
        path = "/proc/sys/" + key.replace(".", "/")
        self.run(ns, ["sh", "-c", 'printf "%s\\n" "$1" > "$2"', "sysctl", value, path])

    def run(
        self,
        ns: str,
        argv: Sequence[str],
        check: bool = True,
        timeout: float = 20.0,
        input: str | None = None,
    ) -> str:
        """Run argv inside ns (stdin = input) and return its stdout; raises with stderr on failure."""
        done = subprocess.run(
            ["ip", "netns", "exec", ns, *argv], input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"in {ns}: {shlex.join(argv)} -> {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def sh(self, ns: str, *commands: str) -> None:
        """Run shell-split commands inside ns, one after another (each must succeed)."""
        for command in commands:
            self.run(ns, shlex.split(command))

    def popen(self, ns: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a long-running process inside ns; it is terminated when the Netns closes."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kwargs)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str, mtu: int | None = None) -> None:
        """A veth pair with one end in each namespace, both ends up."""
        tmp_a, tmp_b = (
            f"vt{os.getpid() % 100000}{next(_counter)}a",
            f"vt{os.getpid() % 100000}{next(_counter)}b",
        )
        # created inside ns_a so no interface ever exists in the root namespace
        self.sh(ns_a, f"ip link add {tmp_a} type veth peer name {tmp_b} netns {ns_b}")
        self.sh(ns_a, f"ip link set {tmp_a} name {if_a}")
        self.sh(ns_b, f"ip link set {tmp_b} name {if_b}")
        for ns, ifname in ((ns_a, if_a), (ns_b, if_b)):
            if mtu is not None:
                self.sh(ns, f"ip link set {ifname} mtu {mtu}")
            self.sh(ns, f"ip link set {ifname} up")

    def bridge(self, ns: str, name: str) -> None:
        """A bridge (L2 switch) inside ns, up."""
        self.sh(ns, f"ip link add name {name} type bridge", f"ip link set {name} up")

    def attach(self, ns: str, ifname: str, bridge: str) -> None:
        """Enslave ifname to bridge (both inside ns)."""
        self.sh(ns, f"ip link set {ifname} master {bridge}")

    def resolv_conf(self, ns: str, text: str) -> None:
        """/etc/resolv.conf as seen by processes started with `ip netns exec ns`."""
        folder = NETNS_ETC / ns
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resolv.conf").write_text(text)

    def close(self) -> None:
        """Stop every process (TERM, then KILL after 3 s), delete every namespace. Idempotent."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 3.0
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()
        for name in reversed(self.names):
            _delete_ns(name)
        self.names.clear()
