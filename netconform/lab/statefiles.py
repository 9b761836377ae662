"""The names of a lab's files in its state folder (STATE_ROOT/<lab>/), importable without the control
plane (the suite's `--lab` reads them; importing the supervisor would load aiohttp and the API server)."""

from __future__ import annotations

STATE_FILE = "state.json"
KUBECONFIG_FILE = "kubeconfig"
LOG_FILE = "supervisor.log"
