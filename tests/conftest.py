"""Fixtures shared by the project's tests.

`lab` is one lab cluster per pytest process (one per xdist worker): session-scoped, brought up (3 nodes,
LB on) by the first test that asks for it and taken down at the session's end, even when tests fail.
Every module that uses it marks itself with an `xdist_group` (`--dist loadgroup`): modules of the same
group run in one worker and so share its lab; a module in a group of its own gets a worker, and a lab,
of its own only if no other lab module's group lands on that worker. Tests that change cluster-wide state
(faults, node conditions) must undo it in a `finally`. The lab name is unique per worker and process, so
parallel workers and parallel engineers never share namespaces.

    pytestmark = [needs("lab"), pytest.mark.xdist_group("lab-shared")]

    def test_something(lab: Lab, lab_api: ApiClient) -> None: ...

A module whose faults must not touch the shared lab brings up its own (`tests.lab_helpers.own_lab`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from netconform.lab.cluster import Lab, LabError
from tests.can_run import missing
from tests.lab_helpers import lab_name

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    if reason := missing("lab"):
        pytest.skip(reason)
    instance = Lab(lab_name())
    try:
        instance.up(nodes=3, lb=True)
    except LabError as err:
        instance.down()
        pytest.fail(f"lab up failed: {err}")
    try:
        yield instance
    finally:
        instance.down()


@pytest.fixture(scope="session")
def lab_api(lab: Lab) -> Iterator[ApiClient]:
    """A `kubernetes.client.ApiClient` for the lab's admin context."""
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(lab.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()
