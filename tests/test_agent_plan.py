"""The agent's plan handling: bad input never kills it, output is always one JSON document.

No namespaces needed: these plans send no traffic (bad plans, `read` checks), so they run anywhere.
"""

from __future__ import annotations

import ast
import json
import select
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netconform.agent import probe_agent as agent
from netconform.agent.probe_agent import ERROR_CODES, KINDS, execute_plan

AGENT = Path(agent.__file__)
SOURCE = AGENT.read_text()


def run_agent(stdin: str | None, *args: str, timeout: float = 20.0) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, str(AGENT), *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )
    return done.returncode, json.loads(done.stdout) if done.stdout else {}, done.stderr


def assert_result_shape(result: dict[str, Any]) -> None:
    for key in ("id", "kind", "ok", "error", "errno", "message", "elapsed_ms", "attempts", "total_ms"):
        assert key in result, (key, result)
    assert result["error"] is None or result["error"] in ERROR_CODES
    assert result["ok"] is (result["error"] is None)
    assert result["attempts"] and result["attempts"][-1]["error"] == result["error"]


# ---------------------------------------------------------------------------------------------- py38


def test_agent_parses_as_python_3_8() -> None:
    ast.parse(SOURCE, feature_version=(3, 8))


def test_agent_imports_only_the_standard_library() -> None:
    imported = set()
    for node in ast.walk(ast.parse(SOURCE)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in agent.py"
            imported.add((node.module or "").split(".")[0])
    imported.discard("__future__")
    assert "netconform" not in imported
    assert imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names


def test_agent_avoids_python_3_9_plus_apis() -> None:
    """ast.parse cannot see API use; the usual 3.9+ additions are named here."""
    for newer in (
        ".removeprefix(",
        ".removesuffix(",
        "zoneinfo",
        "graphlib",
        "functools.cache(",
        "strict=True",
    ):
        assert newer not in SOURCE, newer


# ---------------------------------------------------------------------------------------------- bad input


def test_not_json_exits_2_with_json() -> None:
    code, doc, stderr = run_agent("{not json\n", "run")
    assert code == 2 and doc["error"] == "bad-plan" and "not JSON" in doc["message"] and doc["results"] == []
    assert "Traceback" not in stderr


def test_empty_stdin_exits_2_with_json() -> None:
    code, doc, _ = run_agent("", "run")
    assert code == 2 and doc["error"] == "bad-plan" and "empty" in doc["message"]


def test_only_the_first_line_is_the_plan() -> None:
    plan = {"checks": [{"id": "r", "kind": "read", "path": str(AGENT), "max_bytes": 5}]}
    code, doc, _ = run_agent(json.dumps(plan) + "\nthis line is ignored\n", "run")
    assert code == 0 and doc["results"][0]["content"] == SOURCE[:5]


def test_plan_file(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"checks": [{"id": "r", "kind": "read", "path": str(plan_file)}]}))
    code, doc, _ = run_agent(None, "run", "--plan-file", str(plan_file))
    assert code == 0 and json.loads(doc["results"][0]["content"])["checks"][0]["id"] == "r"
    code, doc, _ = run_agent(None, "run", "--plan-file", str(tmp_path / "missing.json"))
    assert code == 2 and doc["error"] == "bad-plan" and "cannot read the plan" in doc["message"]


def test_stdin_that_never_sends_a_line_times_out() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(AGENT), "run", "--stdin-timeout", "0.3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:  # stdin stays open and silent: only the agent's own deadline can end the wait
        readable, _, _ = select.select([proc.stdout], [], [], 10.0)
        out = proc.stdout.readline() if readable else ""
        code = proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert code == 2 and "no plan line" in json.loads(out)["message"]


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ([], "JSON object"),
        ({"checks": {}}, "'checks' list"),
        ({"checks": [], "attempts": 0}, "attempts"),
        ({"checks": [], "timeout": "soon"}, "timeout"),
        ({"checks": [{}] * 2001}, "at most 2000"),
    ],
)
def test_unusable_plan_is_a_top_level_error(plan: Any, message: str) -> None:
    doc, code = execute_plan(json.dumps(plan))
    assert code == 0 and doc["error"] == "bad-plan" and message in doc["message"] and doc["results"] == []


BAD_CHECKS = [
    ({"kind": "tcp", "host": "h", "port": 1}, "missing field 'id'"),
    ({"id": "", "kind": "tcp"}, "'id' must be a non-empty string"),
    ({"id": "k"}, "missing field 'kind'"),
    ({"id": "k", "kind": "carrier-pigeon"}, "unknown kind 'carrier-pigeon'"),
    ({"id": "k", "kind": "tcp", "port": 80}, "missing field 'host'"),
    ({"id": "k", "kind": "tcp", "host": "h"}, "missing field 'port'"),
    ({"id": "k", "kind": "tcp", "host": "h", "port": "80"}, "'port' must be an integer"),
    ({"id": "k", "kind": "tcp", "host": "h", "port": True}, "got a boolean"),
    ({"id": "k", "kind": "tcp", "host": "h", "port": 0}, "port 1-65535"),
    ({"id": "k", "kind": "tcp", "host": "h", "port": 1, "send_b64": "!!"}, "not valid base64"),
    ({"id": "k", "kind": "tcp", "host": "h", "port": 1, "timeout": -1}, "'timeout' must be between"),
    ({"id": "k", "kind": "tcp", "host": "h", "port": 1, "attempts": 1.5}, "'attempts' must be an integer"),
    ({"id": "k", "kind": "http", "url": "ftp://x/"}, "http:// or https://"),
    ({"id": "k", "kind": "http", "url": "http://x:99999/"}, "bad port"),
    ({"id": "k", "kind": "udp", "host": "h", "port": 1}, "missing field 'payload_b64'"),
    ({"id": "k", "kind": "dns", "server": "s", "query_b64": "AAAA"}, "shorter than a DNS header"),
    ({"id": "k", "kind": "dns", "server": "s", "query_b64": "A" * 16, "transport": "quic"}, "'transport'"),
    ({"id": "k", "kind": "resolve", "name": "n", "family": "ipx"}, "'family' must be one of"),
    ({"id": "k", "kind": "icmp", "host": "127.0.0.1", "socket": "magic"}, "'socket' must be"),
    ({"id": "k", "kind": "arp", "ip": "not-an-ip"}, "IPv4 address"),
    ({"id": "k", "kind": "mtu", "host": "h", "port": 1, "sizes": []}, "'sizes'"),
    ({"id": "k", "kind": "mtu", "host": "h", "port": 1, "sizes": [10]}, "'sizes'"),
    ({"id": "k", "kind": "read"}, "missing field 'path'"),
    ("not an object", "not a JSON object"),
]


@pytest.mark.parametrize(("check", "message"), BAD_CHECKS, ids=[m for _, m in BAD_CHECKS])
def test_bad_check_is_a_per_check_bad_plan(check: Any, message: str) -> None:
    good = {"id": "good", "kind": "read", "path": str(AGENT), "max_bytes": 1}
    doc, code = execute_plan(json.dumps({"checks": [check, good]}))
    assert code == 0
    bad, ok = doc["results"]
    assert bad["error"] == "bad-plan" and message in bad["message"], bad
    assert_result_shape(bad)
    assert ok["ok"] and ok["content"] == SOURCE[:1]  # one bad check does not spoil the others


def test_duplicate_ids_are_rejected() -> None:
    check = {"id": "same", "kind": "read", "path": str(AGENT), "max_bytes": 1}
    doc, _ = execute_plan(json.dumps({"checks": [check, check]}))
    assert [r["error"] for r in doc["results"]] == [None, "bad-plan"]
    assert "duplicate" in doc["results"][1]["message"]


def test_read_errors_keep_errno() -> None:
    doc, _ = execute_plan(json.dumps({"checks": [{"id": "m", "kind": "read", "path": "/nonexistent/x"}]}))
    assert doc["results"][0]["error"] == "other" and doc["results"][0]["errno"] == 2


def test_main_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert agent.main([]) == 2
    assert agent.main(["fly"]) == 2
    assert agent.main(["serve"]) == 2
    assert "at least one of" in capsys.readouterr().err
    assert agent.main(["serve", "--https", "0"]) == 2


def test_serve_rejects_a_busy_port_with_one_line() -> None:
    with socket.socket() as busy:  # listening, never connected to: no traffic
        busy.bind(("0.0.0.0", 0))
        busy.listen(1)
        code, _, stderr = run_agent(None, "serve", "--tcp", str(busy.getsockname()[1]))
    assert code == 1 and "cannot listen" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- properties

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
any_check = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=12), "kind": st.sampled_from([*KINDS, "bogus"])},
        optional={
            "timeout": st.one_of(st.floats(0.001, 0.05), json_scalars),
            "attempts": st.one_of(st.integers(1, 3), json_scalars),
            "path": st.sampled_from(["/proc/self/stat", "/nonexistent", ""]),
            "port": json_scalars,
            "host": st.one_of(st.sampled_from(["", "x" * 300]), st.integers()),
            "query_b64": json_scalars,
            "extra": json_values,
        },
    ),
)


@settings(max_examples=150, deadline=None)
@given(checks=st.lists(any_check, max_size=6), attempts=st.one_of(st.integers(1, 2), json_values))
def test_any_plan_gives_a_result_per_check_that_round_trips(checks: list[Any], attempts: Any) -> None:
    """Whatever the plan holds (short of traffic), the agent answers one well-formed JSON result per check."""
    # no traffic leaves this test: every check that could send is malformed (bad host) or a `read`
    checks = [
        c for c in checks if not (isinstance(c, dict) and c.get("kind") in KINDS and c["kind"] != "read")
    ]
    plan = {"checks": checks, "attempts": attempts}
    doc, code = execute_plan(json.dumps(plan))
    assert code == 0
    text = json.dumps(doc, allow_nan=False)  # strict JSON: no NaN/Infinity sneaks in
    assert json.loads(text) == doc
    if "error" in doc:  # the plan-level settings were unusable
        assert doc["error"] == "bad-plan" and doc["results"] == []
        return
    assert len(doc["results"]) == len(checks)
    for check, result in zip(checks, doc["results"], strict=True):
        assert_result_shape(result)
        if isinstance(check, dict) and isinstance(check.get("id"), str) and check["id"]:
            assert result["id"] == check["id"] or result["error"] == "bad-plan"


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_gives_json_never_a_traceback(text: str) -> None:
    doc, code = execute_plan(text)
    assert code in (0, 2)
    assert json.loads(json.dumps(doc)) == doc
    assert isinstance(doc["results"], list)


def test_package_cli_runs_the_agent() -> None:
    """`netconform agent run` is the same agent (netconform.cli.main maps it to probe_agent:main)."""
    plan = {"checks": [{"id": "r", "kind": "read", "path": str(AGENT), "max_bytes": 3}]}
    done = subprocess.run(
        [sys.executable, "-m", "netconform.cli.main", "agent", "run"],
        input=json.dumps(plan) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["content"] == SOURCE[:3]


def test_python_without_ssl_still_runs() -> None:
    """Minimal images may lack the ssl module: only https becomes unavailable, with a clear message."""
    code = (
        "import sys, runpy; sys.modules['ssl'] = None; sys.argv = ['agent.py', 'run'];"
        f"runpy.run_path({str(AGENT)!r}, run_name='__main__')"
    )
    plan = {
        "checks": [
            {"id": "r", "kind": "read", "path": str(AGENT), "max_bytes": 2},
            {"id": "s", "kind": "http", "url": "https://127.0.0.1:9/"},  # refused before any packet
        ]
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(plan) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    read, https = json.loads(done.stdout)["results"]
    assert read["ok"] and read["content"] == SOURCE[:2]
    assert https["error"] == "other" and "no ssl module" in https["message"], https


def test_run_imports_only_what_probing_needs() -> None:
    """An agent starts once per exec (hundreds per run on a big cluster): `run` with a plan of plain
    probes must not pay for http.client, ssl, argparse, subprocess or the echo servers' modules."""
    code = (
        "import sys, runpy; ns = runpy.run_path(sys.argv[1], run_name='agent'); ns['main'](['run']);"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in sys.argv[2:])))"
    )
    costly = ["http", "ssl", "argparse", "subprocess", "socketserver", "email", "shutil", "random"]
    plan = {"checks": [{"id": "r", "kind": "read", "path": str(AGENT), "max_bytes": 2}]}
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(AGENT), *costly],
        input=json.dumps(plan) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    result_line, imported = done.stdout.splitlines()
    assert json.loads(result_line)["results"][0]["ok"], done.stderr
    assert imported == "", f"`run` imported {imported}"
