"""Pod Security admission as the API server enforces it from namespace labels.

A namespace labelled `pod-security.kubernetes.io/enforce: baseline|restricted` (optionally
`...enforce-version`, default `latest`) gets its new pods checked against that Pod Security Standard;
`privileged` or no label checks nothing, and an unknown level is evaluated as `restricted` (as the real
admission does with a label it cannot parse). A violation is a 403 whose message has the real shape:

    pods "x" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)

Covered: baseline's host namespaces, privileged containers, added capabilities, hostPath volumes and
host ports; restricted adds privilege escalation, dropping ALL capabilities, runAsNonRoot, seccomp and
restricted volume types. Enough for the lab, not a full policy engine.
"""

from __future__ import annotations

from collections.abc import Callable

from netconform.lab.api.store import ApiError, Obj

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
LEVELS = ("privileged", "baseline", "restricted")
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
Check = Callable[[Obj], "str | None"]


def _containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec") or {}
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []]


def _names(names: list[str]) -> str:
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"container {quoted}" if len(names) == 1 else f"containers {quoted}"


def _host_namespaces(pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    used = [f"{f}=true" for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f)]
    return f"host namespaces ({', '.join(used)})" if used else None


def _privileged(pod: Obj) -> str | None:
    bad = [c["name"] for c in _containers(pod) if (c.get("securityContext") or {}).get("privileged")]
    return f"privileged ({_names(bad)} must not set securityContext.privileged=true)" if bad else None


def _capabilities(pod: Obj) -> str | None:
    bad: list[str] = []
    added: list[str] = []
    for c in _containers(pod):
        caps = ((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
        extra = [str(x) for x in caps if str(x) not in BASELINE_CAPABILITIES]
        if extra:
            bad.append(c["name"])
            added += [x for x in extra if x not in added]
    if not bad:
        return None
    shown = ", ".join(f'"{x}"' for x in added)
    return (
        f"non-default capabilities ({_names(bad)} must not include {shown} "
        "in securityContext.capabilities.add)"
    )


def _host_path(pod: Obj) -> str | None:
    bad = [v["name"] for v in (pod.get("spec") or {}).get("volumes") or [] if "hostPath" in v]
    if not bad:
        return None
    return f"hostPath volumes ({'volume' if len(bad) == 1 else 'volumes'} {', '.join(repr(n) for n in bad)})"


def _host_ports(pod: Obj) -> str | None:
    parts = []
    for c in _containers(pod):
        ports = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if ports:
            word = "hostPort" if len(ports) == 1 else "hostPorts"
            parts.append(f"{_names([c['name']])} uses {word} {', '.join(ports)}")
    return f"hostPort ({'; '.join(parts)})" if parts else None


def _sc(obj: Obj) -> Obj:
    """The securityContext of a container, or of the pod's spec."""
    return obj.get("securityContext") or {}


def _privilege_escalation(pod: Obj) -> str | None:
    bad = [c["name"] for c in _containers(pod) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return (
        f"allowPrivilegeEscalation != false ({_names(bad)} must set "
        "securityContext.allowPrivilegeEscalation=false)"
    )


def _drop_all(pod: Obj) -> str | None:
    bad = [
        c["name"]
        for c in _containers(pod)
        if "ALL" not in ((_sc(c).get("capabilities") or {}).get("drop") or [])
    ]
    if not bad:
        return None
    return f'unrestricted capabilities ({_names(bad)} must set securityContext.capabilities.drop=["ALL"])'


def _run_as_non_root(pod: Obj) -> str | None:
    pod_level = _sc(pod.get("spec") or {}).get("runAsNonRoot")
    bad = [c["name"] for c in _containers(pod) if _sc(c).get("runAsNonRoot", pod_level) is not True]
    if not bad:
        return None
    return f"runAsNonRoot != true (pod or {_names(bad)} must set securityContext.runAsNonRoot=true)"


def _seccomp(pod: Obj) -> str | None:
    pod_profile = (_sc(pod.get("spec") or {}).get("seccompProfile") or {}).get("type")
    bad = [
        c["name"]
        for c in _containers(pod)
        if (_sc(c).get("seccompProfile") or {}).get("type", pod_profile)
        not in ("RuntimeDefault", "Localhost")
    ]
    if not bad:
        return None
    return (
        f"seccompProfile (pod or {_names(bad)} must set securityContext.seccompProfile.type "
        'to "RuntimeDefault" or "Localhost")'
    )


def _volume_types(pod: Obj) -> str | None:
    bad = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        kinds = [k for k in v if k != "name"]
        if kinds and kinds[0] not in RESTRICTED_VOLUME_TYPES:
            bad.append(f'volume "{v["name"]}" uses restricted volume type "{kinds[0]}"')
    return f"restricted volume types ({', '.join(bad)})" if bad else None


BASELINE: tuple[Check, ...] = (_host_namespaces, _privileged, _capabilities, _host_path, _host_ports)
RESTRICTED: tuple[Check, ...] = (
    *BASELINE,
    _volume_types,
    _privilege_escalation,
    _drop_all,
    _run_as_non_root,
    _seccomp,
)


def level_of(namespace: Obj | None) -> tuple[str, str]:
    """(level, version) enforced in a namespace; ("privileged", "latest") when unlabelled."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = str(labels.get(ENFORCE_LABEL, "privileged"))
    version = str(labels.get(ENFORCE_VERSION_LABEL, "latest"))
    return (level if level in LEVELS else "restricted"), version


def violations(pod: Obj, level: str) -> list[str]:
    """What `pod` breaks of the Pod Security Standard `level` (empty: allowed)."""
    checks = {"privileged": (), "baseline": BASELINE}.get(level, RESTRICTED)
    return [v for check in checks if (v := check(pod)) is not None]


def enforce(pod: Obj, namespace: Obj | None) -> None:
    """Raise the API server's 403 when `pod` violates its namespace's enforced level."""
    level, version = level_of(namespace)
    found = violations(pod, level)
    if not found:
        return
    name = (pod.get("metadata") or {}).get("name") or (pod.get("metadata") or {}).get("generateName", "")
    raise ApiError(
        403,
        "Forbidden",
        f'pods "{name}" is forbidden: violates PodSecurity "{level}:{version}": {", ".join(found)}',
        {"name": name, "kind": "pods"},
    )
