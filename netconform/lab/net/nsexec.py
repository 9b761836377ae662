"""Run iproute2/iptables/conntrack inside the lab's network namespaces, fast and with deadlines.

Every command has a timeout and fails with one line (`NetplaneError`) that names the command and the
kernel's complaint. Batches (`ip -batch`, `iptables-restore`) keep the number of processes small, and
`run_parallel` starts independent commands together so a 3-node lab builds in about a second.
Tools that only need the network namespace run under `nsenter --net` (cheaper than `ip netns exec`,
which also remounts /sys and binds /etc/netns files); long-running programs that must see their
namespace's resolv.conf are started with `ip netns exec`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

DEFAULT_TIMEOUT = 15.0
NETNS_DIR = Path("/run/netns")
STATE_ROOT = Path("/run/netconform/lab")  # one folder per lab: state files, logs, kubeconfig
NETNS_ETC = Path("/etc/netns")


class NetplaneError(RuntimeError):
    """A data-plane operation failed; the message is one line meant for the user."""


def _describe(argv: Sequence[str]) -> str:
    shown = " ".join(argv[:8])
    return shown + (" ..." if len(argv) > 8 else "")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def run(
    argv: Sequence[str], *, input: str | None = None, timeout: float = DEFAULT_TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run one command; raise NetplaneError (one line) on timeout, missing tool or non-zero exit."""
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise NetplaneError(f"{_describe(argv)}: no answer within {timeout:.0f} s") from exc
    except FileNotFoundError as exc:
        raise NetplaneError(f"{argv[0]}: not installed (install iproute2, iptables, conntrack)") from exc
    if check and proc.returncode != 0:
        reason = _first_line(proc.stderr) or _first_line(proc.stdout) or f"exit status {proc.returncode}"
        raise NetplaneError(f"{_describe(argv)}: {reason}")
    return proc


def run_parallel(
    commands: Iterable[tuple[Sequence[str], str | None]], *, timeout: float = DEFAULT_TIMEOUT
) -> list[str]:
    """Start every (argv, stdin) at once and wait for all; returns their outputs in order.

    The first failure is raised after all ended.
    """
    started: list[tuple[Sequence[str], subprocess.Popen[str]]] = []
    try:
        for argv, stdin in commands:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            started.append((argv, proc))
            if stdin is not None and proc.stdin is not None:
                # batches are a few KiB: far below the pipe buffer, so writing before reading cannot block
                proc.stdin.write(stdin)
                proc.stdin.close()
                proc.stdin = None  # communicate() must not touch it again
    except FileNotFoundError as exc:
        for _, proc in started:
            proc.kill()
            proc.wait(timeout=5)
        raise NetplaneError(f"{exc.filename}: not installed (install iproute2, iptables, conntrack)") from exc
    deadline = time.monotonic() + timeout
    failure: str | None = None
    outputs: list[str] = []
    for argv, proc in started:
        try:
            out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            outputs.append(out)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)
            failure = failure or f"{_describe(argv)}: no answer within {timeout:.0f} s"
            outputs.append("")
            continue
        if proc.returncode != 0 and failure is None:
            failure = f"{_describe(argv)}: {_first_line(err) or f'exit status {proc.returncode}'}"
    if failure:
        raise NetplaneError(failure)
    return outputs


def in_ns(ns: str, argv: Sequence[str]) -> list[str]:
    """argv that runs a tool inside network namespace `ns` (network only; the mount view is the host's)."""
    return ["nsenter", f"--net={NETNS_DIR / ns}", *argv]


def ip_batch(ns: str | None, lines: Iterable[str], *, force: bool = False) -> tuple[list[str], str]:
    """(argv, stdin) for one `ip -batch` in `ns` (None: the root namespace, used only for `netns add`)."""
    argv = ["ip"] + (["-n", ns] if ns else []) + (["-force"] if force else []) + ["-batch", "-"]
    return argv, "\n".join(lines) + "\n"


def bridge_batch(ns: str, lines: Iterable[str]) -> tuple[list[str], str]:
    return ["bridge", "-n", ns, "-batch", "-"], "\n".join(lines) + "\n"


def sysctl_cmd(ns: str, settings: dict[str, str]) -> tuple[list[str], None]:
    return in_ns(ns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items())]), None


def iptables_restore_cmd(ns: str, rules: str, *, noflush: bool = False) -> tuple[list[str], str]:
    argv = ["iptables-restore", "-w", "5"] + (["--noflush"] if noflush else [])
    return in_ns(ns, argv), rules


def netns_list() -> list[str]:
    """Names of the named network namespaces (from /run/netns, no subprocess)."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def netns_exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def netns_pids(ns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", ns], check=False, timeout=10)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def pid_in_ns(pid: int, ns: str) -> bool:
    """True when process `pid` lives in network namespace `ns` (guards against recycled pids)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(NETNS_DIR / ns).st_ino
    except OSError:
        return False


def kill_pids(pids: Iterable[int], *, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after `grace` seconds; reaps our own children."""
    alive = set(pids)
    for pid in list(alive):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if process_alive(pid)}
        if alive:
            time.sleep(0.05)  # polling process exit; bounded by `grace`
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if process_alive(pid)}
        if alive:
            time.sleep(0.02)


def process_alive(pid: int) -> bool:
    """True for a running process (a zombie is not; our own children are reaped here)."""
    # reap it first when it is our child, otherwise a zombie looks alive forever
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def spawn(ns: str, argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None) -> int:
    """Start a long-running program in `ns` (with its /etc/netns files), detached; returns its pid.

    The program outlives this process on purpose: `destroy_lab` finds it with `ip netns pids`.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return proc.pid


def wait_for_log(log: Path, marker: str, pid: int, *, timeout: float, what: str) -> None:
    """Poll `log` until `marker` appears (the program says it listens); fail when it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if marker in log.read_text(errors="replace"):
                return
        if not process_alive(pid):
            tail = _first_line("\n".join(log.read_text(errors="replace").splitlines()[-3:]))
            raise NetplaneError(f"{what} exited at start: {tail or 'no output'} (log {log})")
        time.sleep(0.02)  # polling for the program's ready line, bounded by `timeout`
    raise NetplaneError(f"{what} did not report ready within {timeout:.0f} s (log {log})")


def write_in_place(path: Path, text: str) -> None:
    """Rewrite a file keeping its inode: bind mounts made by `ip netns exec` keep seeing it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        handle.seek(0)
        handle.truncate()
        handle.write(text)
