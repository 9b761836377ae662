"""The examples in the docstrings of the modules issue 15 (and the port-filter diagnosis) changed run as
tests: an example that drifts from the code fails here, not in a reader's head."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from fixtures import session
from netconform.agent import probe_agent
from netconform.engine import diagnose, results_document
from netconform.lab.control import controllers, ports
from netconform.lab.net import hostlimits, netplane
from netconform.model import channels
from netconform.report import htmlreport, verdict

MODULES = [
    results_document,
    ports,
    hostlimits,
    netplane,
    probe_agent,
    htmlreport,
    controllers,
    diagnose,
    verdict,
    session,
    channels,
]


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_docstring_examples(module: ModuleType) -> None:
    outcome = doctest.testmod(module)
    assert outcome.attempted > 0 and outcome.failed == 0, module.__name__
