"""Workload subjects on the cluster: find the chosen pods, give each the `netconform-probe` ephemeral
container, and run the agent in it (docs/workloads.md).

The workload itself is never changed: an ephemeral container joins the pod's network namespace (its
image is `--probe-image`, its process only waits), and each phase's batch is one exec into it that
carries the agent's source and the plan on stdin, so no volume is needed. Ephemeral containers cannot be
removed from a pod: the container is reused by every later run, and adding it is opt-in
(`--allow-ephemeral`). Where the API refuses it (RBAC, PodSecurity, a cluster without the feature), that
workload pod's cells skip with the reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from netconform.agent import SOURCE as AGENT_FILE
from netconform.kube.connect import Cluster, KubeError, api_error_line, call
from netconform.kube.exec import exec_batch
from netconform.model.workload import (
    PROBE_CONTAINER,
    WorkloadInfo,
    WorkloadPod,
    WorkloadRef,
    choose_pods,
    parse_subject,
)

# the ephemeral container's own process only waits; every batch is an exec next to it
KEEP_ALIVE = ["python3", "-c", "import time\nwhile True:\n    time.sleep(3600)"]
# the exec's program: read a 10-digit length, that many bytes of agent source (unbuffered, so the plan
# line after it stays on stdin for the agent), then run the agent as `agent.py run`
BOOTSTRAP = (
    "import os,sys\n"
    "def r(n):\n"
    " b=b''\n"
    " while len(b)<n:\n"
    "  c=os.read(0,n-len(b))\n"
    "  if not c:break\n"
    "  b+=c\n"
    " return b\n"
    "s=r(int(r(10) or 0))\n"
    "sys.argv=['agent.py']+sys.argv[1:]\n"
    "exec(compile(s,'agent.py','exec'),{'__name__':'__main__','__file__':'agent.py'})\n"
)
EXEC_COMMAND = ["python3", "-I", "-S", "-c", BOOTSTRAP, "run"]  # -I -S: see exec.PYTHON_FLAGS
NOT_ALLOWED = (
    "probing from {pod} needs the ephemeral container netconform-probe, which cannot be removed once "
    "added: pass --allow-ephemeral to add it (docs/workloads.md)"
)
DISABLED = (
    "ephemeral containers are disabled on this cluster (the API answered 404 for "
    "pods/ephemeralcontainers: the feature is off or the cluster is older than 1.23)"
)
_APPS = {"deployment": "deployment", "daemonset": "daemon_set", "statefulset": "stateful_set"}
_lock = threading.Lock()
_agent_text: list[str] = []


def agent_stdin() -> str:
    """What the exec's stdin starts with: the length of the agent's source, then the source."""
    with _lock:
        if not _agent_text:
            _agent_text.append(AGENT_FILE.read_text(encoding="utf-8"))
    source = _agent_text[0]
    return f"{len(source.encode('utf-8')):010d}{source}"


def selector_of(spec: dict[str, Any]) -> str:
    """A label selector string from a workload's `spec.selector` (matchLabels and matchExpressions).

    >>> selector_of({"selector": {"matchLabels": {"app": "web"}, "matchExpressions": [
    ...     {"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "Exists"}]}})
    'app=web,tier in (a,b),x'
    """
    sel = spec.get("selector") or {}
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), ",".join(expr.get("values") or [])
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": str(key)}.get(
                str(op), f"!{key}"
            )
        )
    return ",".join(parts)


def _selector(cluster: Cluster, ref: WorkloadRef) -> str:
    if ref.kind == "pods":
        return ref.name
    apps = client.AppsV1Api(cluster.api_client)
    try:
        obj = call(cluster, f"read_namespaced_{_APPS[ref.kind]}", ref.name, ref.namespace, api=apps)
    except ApiException as exc:
        if exc.status == 404:
            raise KubeError(f"--subject {ref}: no {ref.describe} (the API answered 404)") from None
        raise KubeError(api_error_line(exc, f"--subject {ref}: reading the {ref.kind}")) from None
    selector = selector_of(obj.get("spec") or {})
    if not selector:
        raise KubeError(f"--subject {ref}: the {ref.describe} has no pod selector")
    return selector


def resolve(
    cluster: Cluster, text: str, limit: int | None, nodes: Iterable[str] | None = None, where: str = ""
) -> WorkloadInfo:
    """The workload's running pods and the ones chosen (one per node, at most `limit` nodes), or
    KubeError with one line: unknown workload, nothing running, nothing on the selected nodes."""
    try:
        ref = parse_subject(text)
    except ValueError as exc:
        raise KubeError(f"--subject {exc}") from None
    try:
        return _resolve(cluster, ref, limit, nodes)
    except KubeError as exc:
        if not where:
            raise
        raise KubeError(str(exc).replace("--subject ", f"{where}: workload ", 1)) from None


def _resolve(
    cluster: Cluster, ref: WorkloadRef, limit: int | None, nodes: Iterable[str] | None
) -> WorkloadInfo:
    selector = _selector(cluster, ref)
    try:
        items = (
            call(cluster, "list_namespaced_pod", ref.namespace, label_selector=selector).get("items") or []
        )
    except ApiException as exc:
        raise KubeError(api_error_line(exc, f"--subject {ref}: listing its pods")) from None
    running = [
        WorkloadPod(p["metadata"]["name"], p["spec"]["nodeName"], (p.get("status") or {}).get("podIP"))
        for p in items
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and (p.get("spec") or {}).get("nodeName")
        and not (p.get("spec") or {}).get("hostNetwork")
    ]
    if not running:
        what = f"{len(items)} pod(s), none running" if items else "no pod matches its selector"
        raise KubeError(f"--subject {ref}: no running pod to probe from ({what})")
    allowed = set(nodes) if nodes is not None else None
    on_nodes = [p for p in running if allowed is None or p.node in allowed]
    if not on_nodes:
        raise KubeError(
            f"--subject {ref}: none of its {len(running)} running pod(s) is on the selected nodes "
            f"({', '.join(sorted(allowed or ()))})"
        )
    chosen = choose_pods(on_nodes, limit)
    names = {p.name for p in chosen}
    labels = {
        p["metadata"]["name"]: dict(p["metadata"].get("labels") or {})
        for p in items
        if p["metadata"]["name"] in names
    }
    return WorkloadInfo(str(ref), ref.namespace, chosen, running=len(running), labels=labels)


def _probe_status(pod: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """(declared, status) of the pod's netconform-probe ephemeral container."""
    declared = any(
        c.get("name") == PROBE_CONTAINER for c in (pod.get("spec") or {}).get("ephemeralContainers") or []
    )
    status = next(
        (
            s
            for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []
            if s.get("name") == PROBE_CONTAINER
        ),
        None,
    )
    return declared, status


def _refusal(exc: ApiException, pod: str) -> str:
    if exc.status == 404:
        return DISABLED
    line = api_error_line(exc, f"adding the ephemeral container netconform-probe to {pod}")
    if exc.status == 403 and "PodSecurity" not in line:
        line += " (--allow-ephemeral needs RBAC: patch pods/ephemeralcontainers, docs/rbac.yaml)"
    return line


def prepare(cluster: Cluster, workload: WorkloadInfo, image: str, allow: bool, deadline_s: float) -> None:
    """Give each chosen pod a running netconform-probe (reused when there), filling `unavailable`."""
    pending: dict[str, str] = {}  # node -> pod name, waiting for the container to run
    for pod in workload.pods:
        where = f"{workload.namespace}/{pod.name}"
        try:
            obj = call(cluster, "read_namespaced_pod", pod.name, workload.namespace)
        except ApiException as exc:
            workload.unavailable[pod.node] = api_error_line(exc, f"reading pod {where}")
            continue
        declared, _ = _probe_status(obj)
        if not declared:
            if not allow:
                workload.unavailable[pod.node] = NOT_ALLOWED.format(pod=where)
                continue
            body = {
                "spec": {
                    "ephemeralContainers": [
                        {"name": PROBE_CONTAINER, "image": image, "command": KEEP_ALIVE, "stdin": False}
                    ]
                }
            }
            try:
                call(cluster, "patch_namespaced_pod_ephemeralcontainers", pod.name, workload.namespace, body)
                workload.added.append(pod.node)
            except ApiException as exc:
                workload.unavailable[pod.node] = _refusal(exc, where)
                continue
        pending[pod.node] = pod.name
    end = time.monotonic() + deadline_s
    stop = threading.Event()
    while pending:
        for node, name in sorted(pending.items()):
            where = f"{workload.namespace}/{name}"
            try:
                obj = call(cluster, "read_namespaced_pod", name, workload.namespace)
            except ApiException as exc:
                workload.unavailable[node] = api_error_line(exc, f"reading pod {where}")
                del pending[node]
                continue
            _, status = _probe_status(obj)
            state = (status or {}).get("state") or {}
            if "running" in state:
                del pending[node]
            elif "terminated" in state:
                done = state["terminated"]
                workload.unavailable[node] = (
                    f"the ephemeral container netconform-probe in {where} has terminated "
                    f"({done.get('reason') or 'exit ' + str(done.get('exitCode'))}) and cannot be restarted: "
                    "probe from another pod of the workload"
                )
                del pending[node]
        if pending and time.monotonic() >= end:
            for node, name in pending.items():
                waiting = ""
                try:
                    obj = call(cluster, "read_namespaced_pod", name, workload.namespace)
                    _, status = _probe_status(obj)
                    reason = (((status or {}).get("state") or {}).get("waiting") or {}).get("reason")
                    waiting = f" (waiting: {reason})" if reason else ""
                except ApiException:
                    pass
                workload.unavailable[node] = (
                    f"the ephemeral container netconform-probe in {workload.namespace}/{name} did not run "
                    f"within {deadline_s:.0f} s{waiting}"
                )
            break
        stop.wait(0.25 if pending else 0)


def run_batch(
    cluster: Cluster, workload: WorkloadInfo, node: str, plan: dict[str, Any], deadline_s: float
) -> dict[str, Any]:
    """One exec into the chosen pod's netconform-probe: the agent and the plan on stdin."""
    pod = workload.pod_on(node)
    assert pod is not None
    return exec_batch(
        cluster,
        workload.namespace,
        pod.name,
        plan,
        deadline_s,
        container=PROBE_CONTAINER,
        command=EXEC_COMMAND,
        stdin_prefix=agent_stdin(),
    )


def describe(workloads: list[WorkloadInfo]) -> list[str]:
    """One line per workload: the pods chosen, and those that cannot be probed."""
    lines = []
    for w in workloads:
        chosen = ", ".join(f"{p.name} ({p.node})" for p in w.pods)
        reused = len(w.pods) - len(w.added) - len(set(w.unavailable) - set(w.added))
        lines.append(
            f"workload {w.ref}: {len(w.pods)} of {w.running} running pod(s) probed through the ephemeral "
            f"container {PROBE_CONTAINER} ({len(w.added)} added, {reused} reused): {chosen}"
        )
        lines += [f"workload {w.ref}@{n}: skipped: {r}" for n, r in sorted(w.unavailable.items())]
    return lines
