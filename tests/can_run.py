"""The one answer to "can this test run here?" for the project's tests.

`missing(*needs)` gives the first reason one of the needs is not met on this machine (None when all are);
`needs(*needs)` is the matching skip mark::

    from tests.can_run import missing, needs

    pytestmark = [needs("lab"), pytest.mark.xdist_group("lab-shared")]

    @pytest.fixture(scope="module")
    def browser() -> Iterator[Any]:
        if reason := missing("chromium"):
            pytest.skip(reason)

The needs (each probe runs at most once per process):
  root           the effective user is root
  netns          root, iproute2, and a network namespace can really be made (containers may forbid it)
  lab            a whole lab cluster: Linux, root, ip, iptables, nft, unshare, nsenter, conntrack, and
                 network namespaces that can be made
  dataplane      the lab's data plane without its control plane: Linux, root, ip, bridge, iptables-restore,
                 conntrack, nsenter and the probe agent's file
  iptables-save  the iptables-save tool
  chromium       Debian's /usr/bin/chromium and the playwright package (no browser download)
  kubectl        kubectl >= 1.30 on PATH
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from netconform.agent import SOURCE as AGENT

Need = Literal["root", "netns", "lab", "dataplane", "iptables-save", "chromium", "kubectl"]

CHROMIUM = Path("/usr/bin/chromium")
KUBECTL_MIN_MINOR = 30
LAB_TOOLS = ("ip", "iptables", "nft", "unshare", "nsenter", "conntrack")
DATAPLANE_TOOLS = ("ip", "bridge", "iptables-restore", "conntrack", "nsenter")
PACKAGES = "iproute2 iptables nftables conntrack util-linux"


def _linux() -> str | None:
    return None if sys.platform == "linux" else "needs Linux network namespaces"


def _root() -> str | None:
    return None if os.geteuid() == 0 else "needs root (network namespaces, iptables)"


def _tools(*tools: str) -> Callable[[], str | None]:
    def check() -> str | None:
        absent = [t for t in tools if shutil.which(t) is None]
        return f"needs {', '.join(absent)} (apt-get install {PACKAGES})" if absent else None

    return check


def _netns_creatable() -> str | None:
    name = f"ncprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=10)
    if made.returncode != 0:
        return f"cannot create network namespaces: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    return None


def _agent() -> str | None:
    return None if AGENT.exists() else f"the probe agent is missing ({AGENT})"


def _chromium() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is absent (Debian package 'chromium'; make test installs it)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


def kubectl_minor() -> int | None:
    """The minor version of the kubectl on PATH (None without one or when it does not answer)."""
    path = shutil.which("kubectl")
    if path is None:
        return None
    try:
        out = subprocess.run(
            [path, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'"minor":\s*"(\d+)', out.stdout)
    return int(match.group(1)) if match else None


def _kubectl() -> str | None:
    minor = kubectl_minor()
    if minor is not None and minor >= KUBECTL_MIN_MINOR:
        return None
    found = "none" if minor is None else f"1.{minor}"
    return f"needs kubectl >= 1.{KUBECTL_MIN_MINOR} on PATH (found {found}); `make kubectl` installs one"


# each need: its probes in order, the first that fails gives the reason
NEEDS: dict[Need, tuple[Callable[[], str | None], ...]] = {
    "root": (_root,),
    "netns": (_linux, _root, _tools("ip"), _netns_creatable),
    "lab": (_linux, _root, _tools(*LAB_TOOLS), _netns_creatable),
    "dataplane": (_linux, _root, _tools(*DATAPLANE_TOOLS), _agent),
    "iptables-save": (_tools("iptables-save"),),
    "chromium": (_chromium,),
    "kubectl": (_kubectl,),
}


@functools.cache
def _missing_one(need: Need) -> str | None:
    for probe in NEEDS[need]:
        reason = probe()
        if reason is not None:
            return f"{need}: {reason}"
    return None


def missing(*needs: Need) -> str | None:
    """The first reason one of `needs` is not met here, or None when this machine has them all."""
    for need in needs:
        reason = _missing_one(need)
        if reason is not None:
            return reason
    return None


def needs(*needs: Need) -> pytest.MarkDecorator:
    """A skip mark carrying `missing(*needs)`'s reason (a no-op mark when everything is there)."""
    reason = missing(*needs)
    return pytest.mark.skipif(reason is not None, reason=reason or "")
