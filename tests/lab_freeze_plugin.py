"""A pytest plugin for one end-to-end test: freeze the lab's API server once the probe kit is Ready.

Loaded with `-p tests.lab_freeze_plugin`; NC_TEST_FREEZE_PID is the lab supervisor's pid (it serves the
API and the exec streams) and NC_TEST_FREEZE_S how long it stays stopped (SIGSTOP, then SIGCONT from a
timer thread). The test that loads it sends SIGCONT again in its own `finally`, whatever happens here.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest


def pytest_netconform_kit_ready(config: pytest.Config, kit: Any, topology: Any) -> None:
    pid = int(os.environ["NC_TEST_FREEZE_PID"])
    seconds = float(os.environ["NC_TEST_FREEZE_S"])
    os.kill(pid, signal.SIGSTOP)
    timer = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    timer.daemon = True
    timer.start()
