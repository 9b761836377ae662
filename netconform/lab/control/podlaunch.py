"""Sets up a lab container's private filesystem view, then execs its command (stdlib only, run by path).

Started by the kubelet (and by exec) as
``ip netns exec NS unshare -m --propagation private PY podlaunch.py SPEC [--error-fd N] [-- CMD...]``
so every mount below lives only in this process's private mount namespace: configMap/emptyDir volumes are
bind-mounted at their mountPath, the pod's resolv.conf over /etc/resolv.conf. A mountPath whose directory
does not exist on the host is made to appear only here: the nearest existing parent is shadowed by a tmpfs
whose entries are bind-mounted back from a copy of the parent, so the host never gets a new directory.
When the command cannot be started, one JSON line `{"reason", "message"}` goes to the error fd (the
kubelet turns it into the container's waiting reason) and the exit status is 127.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
from typing import Any

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


class LaunchError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise LaunchError("ContainerCannotRun", f"mount {source} on {target}: {os.strerror(err)}")


def _nearest_existing(path: str) -> str:
    parent = os.path.dirname(path.rstrip("/")) or "/"
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent) or "/"
    return parent


def _shadow(parent: str, scratch: str) -> None:
    """Replace `parent` by a writable tmpfs holding bind mounts of its original entries."""
    os.makedirs(scratch, exist_ok=True)
    mount(parent, scratch, None, MS_BIND | MS_REC)
    mount("tmpfs", parent, "tmpfs", 0, "mode=755")
    for entry in os.listdir(scratch):
        src, dst = os.path.join(scratch, entry), os.path.join(parent, entry)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            os.mkdir(dst)
            mount(src, dst, None, MS_BIND | MS_REC)
        else:
            open(dst, "a").close()
            mount(src, dst, None, MS_BIND | MS_REC)


# parents already shadowed by a tmpfs in this mount namespace: creating below them touches no host file
_private_tmpfs: list[str] = []


def _inside_private_tmpfs(path: str) -> bool:
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in _private_tmpfs)


def apply_mounts(spec: dict[str, Any]) -> None:
    scratch = spec["scratch_dir"]
    counter = [0]
    for m in spec.get("mounts", []):
        source, target = m["source"], m["target"]
        is_dir = os.path.isdir(source)
        if not os.path.lexists(target):
            # never create anything on the host: shadow the nearest existing parent with a tmpfs first
            parent = _nearest_existing(target)
            if not _inside_private_tmpfs(parent):
                counter[0] += 1
                _shadow(parent, os.path.join(scratch, f"shadow-{counter[0]}"))
                _private_tmpfs.append(parent)
            if is_dir:
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
        mount(source, target, None, MS_BIND | MS_REC)
        if m.get("readOnly"):
            mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    resolv = spec.get("resolv_conf")
    if resolv and os.path.exists(resolv) and os.path.exists("/etc/resolv.conf"):
        mount(resolv, "/etc/resolv.conf", None, MS_BIND)
    hosts = spec.get("hosts")
    if hosts and os.path.exists(hosts) and os.path.exists("/etc/hosts"):
        mount(hosts, "/etc/hosts", None, MS_BIND)


def resolve(command: list[str], env: dict[str, str]) -> str:
    if not command:
        raise LaunchError(
            "ContainerCannotRun",
            "no command specified: the lab has no image entrypoints, set command or args",
        )
    exe = command[0]
    found = exe if "/" in exe else shutil.which(exe, path=env.get("PATH", os.defpath))
    if not found or not os.path.exists(found):
        raise LaunchError("ContainerCannotRun", f'exec: "{exe}": executable file not found in $PATH')
    if not os.access(found, os.X_OK) or os.path.isdir(found):
        raise LaunchError("ContainerCannotRun", f'exec: "{exe}": permission denied')
    return found


def main(argv: list[str]) -> int:
    spec_path = argv[0]
    error_fd = -1
    rest = argv[1:]
    command: list[str] | None = None
    if "--" in rest:
        idx = rest.index("--")
        command = rest[idx + 1 :]
        rest = rest[:idx]
    if rest[:1] == ["--error-fd"]:
        error_fd = int(rest[1])
        os.set_inheritable(error_fd, False)
    with open(spec_path) as fh:
        spec = json.load(fh)
    env: dict[str, str] = spec["env"]
    cmd = command if command is not None else spec["command"]
    try:
        apply_mounts(spec)
        exe = resolve(cmd, env)
        workdir = spec.get("workdir") or "/"
        os.chdir(workdir if os.path.isdir(workdir) else "/")
        os.execve(exe, cmd, env)
    except LaunchError as err:
        report(error_fd, err.reason, err.message)
    except OSError as err:
        report(error_fd, "ContainerCannotRun", f"{cmd[0] if cmd else '?'}: {err.strerror or err}")
    return 127


def report(fd: int, reason: str, message: str) -> None:
    """Container start (fd given): JSON to the kubelet; exec (no fd): the runtime's usual stderr line."""
    if fd < 0:
        sys.stderr.write(f"OCI runtime exec failed: {message}: unknown\n")
    else:
        os.write(fd, (json.dumps({"reason": reason, "message": message}) + "\n").encode())
        sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
