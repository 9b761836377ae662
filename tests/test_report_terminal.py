"""The terminal summary: at most 100 columns, no colour off a TTY, the broken node stands out."""

from __future__ import annotations

import io
import re

import pytest

from netconform.report.terminal import render_terminal, use_color
from tests.report_synth import Fault, synth_results

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("nodes", [3, 12])
def test_fits_in_100_columns(nodes: int) -> None:
    text = render_terminal(synth_results(nodes, Fault("tunnel-blocked", "node-3")))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "\x1b[" not in text
    flat = " ".join(text.split("\n"))
    assert "Verdict: " in flat and "cross-node pod traffic fails between node-3 and the other nodes" in flat


def test_one_character_per_layer_shows_the_pattern() -> None:
    lines = render_terminal(synth_results(3, Fault("tunnel-blocked", "node-3"))).splitlines()
    header = next(line for line in lines if "pod≠" in line)
    start = header.index("pod≠")
    rows = {line[:20].strip(): line for line in lines if line.startswith("node-")}
    # pod -> pod on another node: icmp, mtu, tcp, udp, http: node-3 fails to every node, the others partly
    assert rows["node-3 pods"][start : start + 5] == "FFFFF"
    assert rows["node-1 pods"][start : start + 5] == "xxxxx"
    same = header.index("pod=")
    assert rows["node-3 pods"][same : same + 4] == "...."


def test_colour_only_when_asked() -> None:
    results = synth_results(2, Fault("snat-missing"))
    coloured = render_terminal(results, color=True)
    assert "\x1b[31m\x1b[1mF\x1b[0m" in coloured  # pytest's TerminalWriter markup: red, bold
    assert ANSI.sub("", coloured) == render_terminal(results, color=False)


def test_use_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color(Tty()) is True
    assert use_color(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(Tty()) is False


def test_narrow_width_wraps_into_blocks() -> None:
    text = render_terminal(synth_results(3, None), width=50)
    assert max(len(line) for line in text.splitlines()) <= 50
    assert sum(1 for line in text.splitlines() if line.strip().startswith("node-1 pods")) >= 2


@pytest.mark.parametrize("nodes", [20, 100])
def test_big_runs_stay_bounded_and_name_the_node(nodes: int) -> None:
    results = synth_results(nodes, Fault("isolated", "node-7"))
    text = render_terminal(results)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert len(lines) <= 80, len(lines)  # the full matrix: 2 rows per node, and more blocks
    assert f"failing node pairs: {2 * (nodes - 1)} of {nodes * nodes}; the nodes they touch most:" in lines
    first = lines.index(
        f"failing node pairs: {2 * (nodes - 1)} of {nodes * nodes}; the nodes they touch most:"
    )
    assert lines[first + 1].startswith(f"  node-7: to {nodes - 1} nodes, from {nodes - 1} nodes (")
    rows = {line.split("  ")[0].strip() for line in lines if line.startswith("node-")}
    assert {"node-7 host", "node-7 pods"} <= rows
    assert ("node-2 host" in rows) == (nodes <= 20)  # healthy subjects are left out when there are many
    hidden = {20: 12, 100: 172}[nodes]  # of the 2 per node and the 2 outside subjects, those not shown
    assert (
        f"{hidden} of {2 * nodes + 2} subjects not shown: {hidden} more with cells that did not pass" in text
    )
