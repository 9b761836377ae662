"""A pytest plugin for the suite's lab end-to-end tests: inject a lab fault once the kit is Ready.

Loaded with `-p tests.lab_fault_plugin` in the suite run; NC_TEST_LAB names the lab and
NC_TEST_FAULT the fault (optionally NC_TEST_FAULT_NODE). For faults that act on what the run creates
and do not follow it (lb-arp-silent needs the run's LoadBalancer VIP announced); the pod-scoped faults
follow pods and are added before the run, like a user does.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def pytest_netconform_kit_ready(config: pytest.Config, kit: Any, topology: Any) -> None:
    fault = os.environ.get("NC_TEST_FAULT")
    if not fault:
        return
    from netconform.lab.cluster import Lab

    Lab(os.environ["NC_TEST_LAB"]).fault_add(fault, os.environ.get("NC_TEST_FAULT_NODE") or None)
