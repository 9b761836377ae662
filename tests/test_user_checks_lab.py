"""Users' own checks end to end on the lab: a Python module and a YAML file, with `reachable` and
`blocked` expectations, under a drop made by hand on one node.

With `iptables -I FORWARD -s <node-1's pods> -d 203.0.113.10 -p tcp --dport 80 -j DROP` on node-1, the
YAML check "outside-web-blocked" (tcp 203.0.113.10:80, expect blocked) passes from node-1's pods (dropped)
and fails from node-2's and node-3's (open); the Python check "py-outside-web" (HTTP to the same server,
expect reachable) is the mirror image. Each check is its own column (`check:NAME`) in results.json.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from netconform.lab.cluster import Lab
from netconform.lab.net.addressing import ns_name
from tests.can_run import needs
from tests.lab_helpers import cli

pytestmark = [
    pytest.mark.root,
    pytest.mark.lab,
    pytest.mark.slow,
    needs("lab"),
    pytest.mark.xdist_group("lab"),
]
HERE = Path(__file__).resolve().parent / "user_checks"
DROP = ["FORWARD", "-s", "10.244.1.0/24", "-d", "203.0.113.10", "-p", "tcp", "--dport", "80"]
DROP += ["-m", "comment", "--comment", "user-checks-test", "-j", "DROP"]


def _iptables(lab: Lab, op: str) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", ns_name(lab.name, "node-1"), "iptables", "-w", "5", op, *DROP]
    return subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)


def test_python_and_yaml_checks_with_a_drop_on_one_node(lab: Lab, tmp_path: Path) -> None:
    assert _iptables(lab, "-I").returncode == 0
    try:
        proc = cli(
            *("run", "--lab", lab.name, "--probe-timeout", "1", "--attempts", "2", "--ready-timeout", "40"),
            *("--out", str(tmp_path), "--no-html", "--checks", str(HERE / "checks.yaml")),
            *("--", "-k", "test_user_check or test_my_", str(HERE / "my_checks.py")),
            timeout=240,
        )
    finally:
        _iptables(lab, "-D")
    output = proc.stdout + proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    by = {(c["subject"], c["target"]): c for c in results["cells"]}
    assert {t for _, t in by} == {
        "check:outside-web-blocked",
        "check:cluster-dns-reachable",
        "check:py-outside-web",
        "check:py-no-telnet",
    }, output[-3000:]
    for node in ("node-1", "node-2", "node-3"):
        dropped = node == "node-1"
        blocked = by[(f"pod@{node}", "check:outside-web-blocked")]
        assert blocked["outcome"] == ("passed" if dropped else "failed"), blocked
        assert blocked["target_kind"] == "T-USER" and blocked["layer"] == "L4"
        web = by[(f"pod@{node}", "check:py-outside-web")]
        assert web["outcome"] == ("failed" if dropped else "passed"), web
        assert web["fm"] == ["FM-12"]
        assert by[(f"pod@{node}", "check:py-no-telnet")]["outcome"] == "passed"
    assert "blocked as expected (dropped)" in by[("pod@node-1", "check:outside-web-blocked")]["reason"]
    assert (
        "expected blocked, but 2/2 attempt(s) got through"
        in by[("pod@node-2", "check:outside-web-blocked")]["reason"]
    )
    # the YAML check limited to node-1 and node-2 has exactly those rows
    assert sorted(s for s, t in by if t == "check:cluster-dns-reachable") == ["pod@node-1", "pod@node-2"]
    assert all(
        by[(s, "check:cluster-dns-reachable")]["outcome"] == "passed" for s in ("pod@node-1", "pod@node-2")
    )
    assert proc.returncode == 1, output[-2000:]


def test_a_bad_checks_file_is_one_line_naming_file_and_line(lab: Lab, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("checks:\n  - name: x\n    from: pods\n    to: db:5432\n    expect: allowed\n")
    proc = cli("run", "--lab", lab.name, "--checks", str(bad), "--out", str(tmp_path), timeout=60)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "netconform:" in line]
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert lines == [f"ERROR: netconform: {bad}:5: expect must be reachable or blocked, not 'allowed'"], lines
    assert "Traceback" not in proc.stderr
