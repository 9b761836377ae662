"""FM-19 and FM-31 end to end on a lab: `netconform run --lab NAME --allow-privileged`.

Host probes in the lab are root processes in the node namespaces, so `iptables-save -c` reads each
node's real rules. Healthy: every node's FM-19 cell passes and both snapshots ride in the host probe's
one phase-1 exec. With `mtu-blackhole` (overlay MTU 1300, ICMP frag-needed dropped by an iptables rule
on every node) the MTU cells name the black hole and FM-19 names the rule that drops the ICMP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.can_run import needs
from tests.lab_helpers import own_lab

LAB = f"ncfm{os.getpid() % 10000}"
ROOT = Path(__file__).resolve().parent.parent
NODES = ("node-1", "node-2", "node-3")
pytestmark = [
    needs("lab"),
    pytest.mark.xdist_group("lab-fm19"),
    pytest.mark.lab,
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def lab() -> Iterator[Any]:
    yield from own_lab(LAB)


def run(out: Path) -> dict[str, dict[str, Any]]:
    """The suite's FM-19 and MTU cells, privileged: cell id -> cell of results.json."""
    argv = [sys.executable, "-m", "netconform.cli.main", "run", "--lab", LAB, "--allow-privileged"]
    argv += ["--probe-timeout", "1", "--attempts", "2", "--out", str(out), "--no-html", "--"]
    argv += ["-k", "iptables or mtu"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=ROOT, check=False)
    path = out / "results.json"
    assert path.exists(), (proc.stdout + proc.stderr)[-3000:]
    results = json.loads(path.read_text())
    cells = {f"{c['subject']}->{c['target']}/{c['layer']}-{c['protocol']}": c for c in results["cells"]}
    cells["run"] = results["run"]
    return cells


def test_healthy_lab_passes_fm19_on_every_node_in_one_exec_each(
    lab: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cells = run(tmp_path_factory.mktemp("healthy"))
    for node in NODES:
        cell = cells[f"host@{node}->component:iptables/L3-drops"]
        assert cell["outcome"] == "passed", cell["reason"]
        assert "no DROP/REJECT counter grew" in cell["reason"]
    mtu = [c for k, c in cells.items() if k.endswith("/L3-mtu")]
    assert len(mtu) == 6 and all(c["outcome"] == "passed" for c in mtu), [c["reason"] for c in mtu]
    stats = cells["run"]["stats"]
    assert stats["phases"] == 1 and stats["exec_sessions"] == 6, stats  # 3 host + 3 pod subjects


def test_mtu_black_hole_fails_fm31_and_fm19_names_the_icmp_drop(
    lab: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lab.fault_add("mtu-blackhole")
    try:
        cells = run(tmp_path_factory.mktemp("blackhole"))
    finally:
        lab.fault_clear("mtu-blackhole")
    mtu = [c for k, c in cells.items() if k.endswith("/L3-mtu")]
    assert mtu and all(c["outcome"] == "failed" and "black hole" in c["reason"] for c in mtu)
    dropping = [cells[f"host@{n}->component:iptables/L3-drops"] for n in NODES]
    assert any(c["outcome"] == "failed" for c in dropping), [c["reason"] for c in dropping]
    for cell in dropping:
        if cell["outcome"] == "failed":
            assert "icmp" in cell["reason"] and "DROP" in cell["reason"], cell["reason"]
            listed = [json.loads(n) for n in cell["evidence"]["notes"] if n.startswith("{")]
            assert listed and all(d["packets"] > 0 and d["target"] == "DROP" for d in listed)
