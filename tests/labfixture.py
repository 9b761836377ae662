"""One shared lab per pytest process (xdist worker), for every test that needs a whole cluster.

Use it from a test module (or list it in a conftest's `pytest_plugins = ["tests.labfixture"]`)::

    from tests.labfixture import lab, lab_api, requires_lab  # noqa: F401  (pytest fixtures)

    pytestmark = [requires_lab, pytest.mark.xdist_group("lab-shared")]

    def test_something(lab, lab_api): ...

`lab` is session-scoped: the first test that asks for it brings the lab up (3 nodes, LB on) and the
session's end takes it down, even when tests fail. Tests that change cluster-wide state (faults, node
conditions) must undo it in a `finally`. The lab name is unique per worker and process so parallel
workers and parallel engineers never share namespaces.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from netconform.lab.cluster import Lab, LabError

TOOLS = ("ip", "iptables", "nft", "unshare", "nsenter", "conntrack")


def missing_requirement() -> str | None:
    """Why a lab cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        packages = "iproute2 iptables nftables conntrack util-linux"
        return f"the lab needs {', '.join(missing)} (apt-get install {packages})"
    return None


requires_lab = pytest.mark.skipif(missing_requirement() is not None, reason=missing_requirement() or "")


def lab_name(prefix: str = "t") -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    return f"{prefix}{worker.replace('gw', '')}-{os.getpid() % 100000}"


def own_lab(
    name: str, nodes: int = 3, dataplane: str = "lab", lb_kind: str = "lab", *, ingress: bool = True
) -> Iterator[Lab]:
    """A module's private lab (for modules whose faults must not touch the shared one): up, yield,
    down even when tests fail; skips with the reason when the lab cannot come up here.
    `dataplane="cilium"`, `lb_kind="metallb"|"f5"` add the optional components."""
    handle = Lab(name)
    try:
        handle.up(nodes=nodes, lb=True, dataplane=dataplane, lb_kind=lb_kind, ingress=ingress)
    except LabError as exc:
        handle.down()
        pytest.skip(f"the lab cannot come up here: {exc}")
    try:
        yield handle
    finally:
        handle.down()


# Importing the fixture into several test modules defines it once per module; this process-wide
# record makes them all share one lab, brought down when the last of them is finalised.
_shared: dict[str, Any] = {"lab": None, "users": 0}


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    if _shared["lab"] is None:
        instance = Lab(lab_name())
        try:
            instance.up(nodes=3, lb=True)
        except LabError as err:
            instance.down()
            pytest.fail(f"lab up failed: {err}")
        _shared["lab"] = instance
    _shared["users"] += 1
    try:
        yield _shared["lab"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["lab"].down()
            _shared["lab"] = None


@pytest.fixture(scope="session")
def lab_api(lab: Lab) -> Any:
    """A `kubernetes.client.ApiClient` for the lab's admin context."""
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(lab.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()
