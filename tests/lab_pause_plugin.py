"""A pytest plugin for the Ctrl-C test: once the probe kit is Ready, say so in a marker file and hold
the run there (bounded), so the test's SIGINT always lands mid-run, however fast the suite is.

NC_TEST_PAUSE_MARKER is the file to create, NC_TEST_PAUSE_S the longest hold (the SIGINT ends it).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest


def pytest_netconform_kit_ready(config: pytest.Config, kit: Any, topology: Any) -> None:
    Path(os.environ["NC_TEST_PAUSE_MARKER"]).write_text(kit.namespace)
    threading.Event().wait(float(os.environ.get("NC_TEST_PAUSE_S", "30")))
