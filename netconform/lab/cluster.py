"""`Lab`: the Python API over one lab (contracts §3), used by the CLI and by tests.

    lab = Lab("demo"); kubeconfig = lab.up(nodes=3, lb=True)
    lab.fault_add("tunnel-blocked"); lab.fault_clear(); lab.status(); lab.down()

`up` starts the supervisor detached (its own session, logging to supervisor.log) and polls, with a
deadline, until the API answers and every kube-system pod is Ready. `down` asks the supervisor to stop
and then removes whatever is left by name (processes, namespaces, state), so it also works after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from netconform.lab.components import ComponentConfig, ComponentError
from netconform.lab.control import procs as procs
from netconform.lab.net.addressing import (
    EXTERNAL_CLIENT_IP,
    INTERNET_ECHO_IP,
    OUTSIDE_ECHO_IP,
    AddressError,
    check_lab_name,
    node_names,
    ns_name,
)
from netconform.lab.net.nsexec import STATE_ROOT, netns_exists
from netconform.lab.statefiles import KUBECONFIG_FILE, LOG_FILE, STATE_FILE

UP_TIMEOUT = float(os.environ.get("NETCONFORM_LAB_UP_TIMEOUT", "90"))
STOP_TIMEOUT = 25.0
API_TIMEOUT = 15.0
REPO_ROOT = Path(__file__).resolve().parents[2]
EXTERNAL_NAME = "example.test"
CONTROL_PLANE_ENV = "NETCONFORM_LAB_CONTROL_PLANE"


def default_control_plane() -> str:
    """The control plane a lab gets when none is asked for: `$NETCONFORM_LAB_CONTROL_PLANE`, else emulated
    (`NETCONFORM_LAB_CONTROL_PLANE=real make test` runs every lab test on the real one)."""
    return os.environ.get(CONTROL_PLANE_ENV) or "emulated"


__all__ = ["EXTERNAL_CLIENT_IP", "Lab", "LabError"]


class LabError(RuntimeError):
    """A lab operation failed; the message is one line for the user."""


class Lab:
    def __init__(self, name: str = "default") -> None:
        try:
            self.name = check_lab_name(name)
        except AddressError as err:
            raise LabError(str(err)) from None
        self.state_dir = STATE_ROOT / name
        self.state_path = self.state_dir / STATE_FILE
        self.log_path = self.state_dir / LOG_FILE

    # ------------------------------------------------------------------ state
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / KUBECONFIG_FILE

    def state(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.state_path.read_text())
            return data
        except (OSError, ValueError):
            return None

    def supervisor_pid(self) -> int | None:
        st = self.state()
        pid = int(st["supervisor_pid"]) if st and st.get("supervisor_pid") else None
        if pid is None or not procs.pid_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"netconform.lab.control.supervisor" in cmdline else None

    def running(self) -> bool:
        st = self.state()
        return bool(st and st.get("phase") == "running" and self.supervisor_pid() is not None)

    def _require_running(self) -> dict[str, Any]:
        st = self.state()
        if not st or not self.running():
            raise LabError(
                f"lab {self.name!r} is not running (start it with `netconform lab up --name {self.name}`)"
            )
        return st

    # ------------------------------------------------------------------ HTTP to the lab API
    def request(self, method: str, path: str, body: Any = None, timeout: float = API_TIMEOUT) -> Any:
        st = self._require_running()
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            st["api"] + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {st['token']}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            ctx = ssl.create_default_context(cafile=st["ca_file"]) if st.get("ca_file") else None
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("message", str(err))
            except ValueError:
                message = str(err)
            raise LabError(message) from None
        except (urllib.error.URLError, OSError) as err:
            raise LabError(f"lab {self.name!r}: API {st['api']} not answering ({err})") from None

    # ------------------------------------------------------------------ lifecycle
    def up(
        self,
        nodes: int = 3,
        lb: bool = True,
        timeout: float = UP_TIMEOUT,
        *,
        dataplane: str = "lab",
        lb_kind: str = "lab",
        ingress: bool = True,
        control_plane: str | None = None,
    ) -> Path:
        """Start the lab; returns the kubeconfig path once every kube-system pod is Ready.

        `dataplane="cilium"` and `lb_kind="metallb"|"f5"` add the optional components
        (`netconform.lab.components`), e.g. `Lab("x").up(dataplane="cilium", lb_kind="f5")`;
        `ingress=False` leaves out the ingress controller (a cluster without any ingress).
        """
        try:
            node_names(nodes)
            components = ComponentConfig(dataplane, lb_kind)
        except (AddressError, ComponentError) as err:
            raise LabError(str(err)) from None
        control_plane = control_plane or default_control_plane()
        if control_plane not in ("emulated", "real"):
            raise LabError(f"--control-plane {control_plane}: emulated or real")
        if control_plane == "real":
            from netconform.lab.control.realcp import missing_cache

            if missing := missing_cache():
                raise LabError(f"--control-plane real needs {missing}: run `make control-plane`")
        if not lb and components.lb != "lab":
            raise LabError(f"--lb {components.lb} needs a load balancer: drop --no-lb")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it creates network namespaces)")
        if self.running():
            raise LabError(
                f"lab {self.name!r} is already up (kubeconfig {self.kubeconfig}); "
                f"`netconform lab down --name {self.name}` first"
            )
        self.down()  # leftovers of a crashed lab
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "netconform.lab.control.supervisor",
            "--name",
            self.name,
            "--nodes",
            str(nodes),
        ]
        if not lb:
            argv.append("--no-lb")
        if not ingress:
            argv.append("--no-ingress")
        argv += ["--dataplane", components.dataplane, "--lb", components.lb]
        if control_plane != "emulated":
            argv += ["--control-plane", control_plane]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        env.pop("KUBECONFIG", None)
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                env=env,
                start_new_session=True,
            )
        try:
            # two coredns pods, the API's TCP endpoint on node-1, one CNI pod per node, the components',
            # the ingress controller
            expected = 3 + nodes + components.extra_system_pods(nodes) + (1 if ingress else 0)
            self._wait_ready(proc, expected, timeout)
        except LabError:
            with contextlib.suppress(LabError):
                self.down()
            raise
        return self.kubeconfig

    def _wait_ready(self, proc: subprocess.Popen[bytes], expected: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting_for = "the supervisor to start"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                st = self.state() or {}
                raise LabError(
                    f"lab {self.name!r} failed to start: {st.get('error') or self._last_log_line()}"
                )
            st = self.state() or {}
            if st.get("phase") == "running":
                waiting_for = "the API to answer"
                try:
                    status = self.request("GET", "/lab/v1/status", timeout=5)
                except LabError:
                    status = None
                if status is not None:
                    system = [p for p in status["pods"] if p["namespace"] == "kube-system"]
                    not_ready = [p["name"] for p in system if not p["ready"]]
                    if len(system) >= expected and not not_ready:
                        return
                    waiting_for = f"kube-system pods to be Ready ({', '.join(not_ready) or 'creating'})"
            time.sleep(0.1)  # polling the supervisor's progress, bounded by `timeout`
        raise LabError(
            f"lab {self.name!r} not ready within {timeout:.0f} s: still waiting for {waiting_for} "
            f"(log {self.log_path})"
        )

    def _last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        errors = [ln for ln in lines if " ERROR " in ln or "Error" in ln]
        return (errors or lines or ["no output"])[-1]

    def down(self, timeout: float = STOP_TIMEOUT) -> None:
        """Remove the lab completely; idempotent, and works when the supervisor has died."""
        pid = self.supervisor_pid()
        if pid is not None:
            procs.terminate([pid], grace=timeout)
        leftovers = procs.lab_pids(self.name)
        if leftovers:
            procs.terminate(leftovers, grace=2.0)
        try:
            from netconform.lab.net.netplane import destroy_lab

            destroy_lab(self.name, self.state_dir)
        except Exception as err:
            raise LabError(f"lab {self.name!r}: removing the data plane failed: {err}") from None
        shutil.rmtree(self.state_dir, ignore_errors=True)

    @classmethod
    def names(cls) -> list[str]:
        if not STATE_ROOT.is_dir():
            return []
        return sorted(d.name for d in STATE_ROOT.iterdir() if d.is_dir())

    @classmethod
    def down_all(cls) -> list[str]:
        removed = []
        for name in cls.names():
            with contextlib.suppress(LabError):
                Lab(name).down()
                removed.append(name)
        from netconform.lab.net.netplane import destroy_all

        destroy_all()
        return removed

    # ------------------------------------------------------------------ operations
    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", "/lab/v1/status")
        return data

    def fault_list(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.request("GET", "/lab/v1/faults")["faults"]
        return data

    def fault_add(self, name: str, node: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = self.request(
            "POST", "/lab/v1/faults", {"name": name, "node": node}, timeout=60
        )
        return data

    def fault_clear(self, name: str | None = None) -> list[str]:
        path = "/lab/v1/faults" + (f"/{name}" if name else "")
        data: list[str] = self.request("DELETE", path, timeout=60)["cleared"]
        return data

    def outside_argv(self, cmd: list[str]) -> list[str]:
        """argv running `cmd` as the external client (203.0.113.20) in the lab's outside world."""
        ns = ns_name(self.name, "client")
        if not netns_exists(ns):
            raise LabError(f"lab {self.name!r} is not up (no namespace {ns})")
        return ["ip", "netns", "exec", ns, *cmd]

    def suite_options(self) -> list[str]:
        if not self.kubeconfig.exists():
            raise LabError(f"lab {self.name!r} is not up (no {self.kubeconfig})")
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--external-url=http://{OUTSIDE_ECHO_IP}/",
            f"--external-ip={OUTSIDE_ECHO_IP}",
            f"--internet-url=http://{INTERNET_ECHO_IP}/",
            f"--external-name={EXTERNAL_NAME}",
            f"--external-runner=netconform lab outside-exec --name {self.name} --",
        ]
