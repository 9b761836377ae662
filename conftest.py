"""Loads the suite's pytest plugin (`netconform.fixtures.plugin`) when the package is not installed.

An installed netconform registers the plugin through its `pytest11` entry point; a bare checkout
(``python -m pytest tests_conformance``) gets it from here instead, never twice.
"""

from importlib.metadata import entry_points

if not any(ep.value == "netconform.fixtures.plugin" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["fixtures.plugin"]
