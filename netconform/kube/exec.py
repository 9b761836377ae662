"""Runs one agent batch in one pod over one websocket exec, or locally for the external subject.

The whole batch of a subject travels as the first line of stdin and comes back as one JSON document on
stdout; the exec's exit status is not trusted (the JSON decides). Every exec has a deadline.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from typing import Any

from kubernetes import client
from kubernetes.stream import stream

from netconform.agent import SOURCE as AGENT_FILE
from netconform.kube.connect import Cluster, api_error_line

AGENT_IN_POD = "/opt/netconform/agent.py"
# the agent uses only the standard library: -I -S leave out site-packages and the PYTHON* variables,
# which took 40 of an agent's 90 ms start here (a .pth that imports certifi); one start per exec
PYTHON_FLAGS = ["-I", "-S"]
AGENT_LOCAL = AGENT_FILE
# the most a subject's answer may take in the controller's memory (docs/scale.md): 2,000 checks of a
# few KB each fit many times over; an agent that talks more is cut off with a one-line error
MAX_RESULT_CHARS = 64 * 1024 * 1024
MAX_STDERR_CHARS = 4096


class ExecError(Exception):
    """The batch could not be run or its output was not the agent's JSON (one-line message)."""


def parse_agent_output(text: str, where: str) -> dict[str, Any]:
    """The last non-empty stdout line that parses as the agent's result document."""
    for line in reversed([ln for ln in text.splitlines() if ln.strip()]):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("results"), list):
            return doc
    snippet = text.strip().replace("\n", " ")[:200]
    raise ExecError(f"{where}: the agent printed no result JSON ({snippet or 'empty output'})")


def exec_batch(
    cluster: Cluster,
    namespace: str,
    pod: str,
    plan: dict[str, Any],
    deadline_s: float,
    *,
    container: str | None = None,
    command: list[str] | None = None,
    stdin_prefix: str = "",
) -> dict[str, Any]:
    """One websocket exec into `pod` running `agent.py run`, the plan on the first stdin line (after
    `stdin_prefix`: a workload pod's ephemeral container gets the agent's source that way)."""
    cluster.counters.add("exec_sessions")
    api = client.CoreV1Api(cluster.exec_client())
    where = f"exec in {namespace}/{pod}" + (f" (container {container})" if container else "")
    extra = {"container": container} if container else {}
    try:
        with cluster.exec_lock:  # stream() swaps call_api on the exec client while it connects
            resp = stream(
                api.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=command or ["python3", *PYTHON_FLAGS, AGENT_IN_POD, "run"],
                stdin=True,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
                _request_timeout=cluster.request_timeout,
                **extra,
            )
    except Exception as exc:
        raise ExecError(api_error_line(exc, where)) from None
    out: list[str] = []
    err: list[str] = []
    size = 0
    end = time.monotonic() + deadline_s
    try:
        resp.write_stdin(stdin_prefix + json.dumps(plan, separators=(",", ":")) + "\n")
        while resp.is_open():
            left = end - time.monotonic()
            if left <= 0:
                raise ExecError(f"{where}: no complete answer from the agent within {deadline_s:.0f} s")
            resp.update(timeout=min(left, 1.0))
            if resp.peek_stdout():
                out.append(resp.read_stdout())
                size += len(out[-1])
            if resp.peek_stderr():
                err.append(resp.read_stderr()[:MAX_STDERR_CHARS])
            if size > MAX_RESULT_CHARS:
                raise ExecError(f"{where}: the agent's answer is over {MAX_RESULT_CHARS} characters")
        out.append(resp.read_stdout() or "")
    except ExecError:
        raise
    except Exception as exc:
        raise ExecError(f"{where}: {type(exc).__name__}: {exc}".replace("\n", " ")[:300]) from None
    finally:
        resp.close()
    text = "".join(out)
    try:
        return parse_agent_output(text, where)
    except ExecError:
        stderr = "".join(err).strip().splitlines()
        if stderr:
            raise ExecError(f"{where}: the agent failed: {stderr[-1][:200]}") from None
        raise


def run_local(runner: str | None, plan: dict[str, Any], deadline_s: float) -> dict[str, Any]:
    """The external subject: `RUNNER python3 AGENT run` as a local subprocess (default: this machine)."""
    prefix = shlex.split(runner) if runner else []
    if prefix and prefix[0] == "netconform" and shutil.which("netconform") is None:
        prefix = [
            sys.executable,
            "-m",
            "netconform.cli.main",
            *prefix[1:],
        ]  # not on PATH (e.g. venv not active)
    python = "python3" if prefix else sys.executable
    argv = [*prefix, python, *PYTHON_FLAGS, str(AGENT_LOCAL), "run"]
    where = f"external subject ({' '.join(argv[:4])}...)"
    if not AGENT_LOCAL.is_file():
        raise ExecError(f"{where}: {AGENT_LOCAL} is missing")
    try:
        proc = subprocess.run(
            argv,
            input=json.dumps(plan, separators=(",", ":")) + "\n",
            capture_output=True,
            text=True,
            timeout=deadline_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ExecError(f"{where}: no answer within {deadline_s:.0f} s") from None
    except OSError as exc:
        raise ExecError(f"{where}: cannot start: {exc.strerror}") from None
    try:
        return parse_agent_output(proc.stdout, where)
    except ExecError:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise ExecError(f"{where}: the agent failed: {last[:200]}") from None
