"""Users' checks from a YAML file, for people who do not write Python (`netconform run --checks F.yaml`).

    checks:
      - name: db-reachable          # the matrix column and the JUnit case name
        from: pods                  # pods | hosts | outside | workloads, or {pods: [node-1, node-2]}
        to: db.prod.svc:5432        # host:port | http(s)://URL | service: NS/NAME:PORT | dns: NAME
        protocol: tcp               # tcp | udp | http | icmp | dns  (default: tcp; http for a URL)
        expect: reachable           # reachable | blocked
        attempts: 2                 # optional (default: --attempts)
        timeout: 2                  # optional, seconds per attempt (default: --probe-timeout)
        fm: [FM-12]                 # optional failure-mode ids

A mistake gives one line naming the file, the line and the fix:

>>> load_text("checks:\\n  - name: x\\n    from: pods\\n    to: a:1\\n    expect: open\\n", "c.yaml")
Traceback (most recent call last):
...
netconform.checks.yaml_checks.ChecksFileError: c.yaml:5: expect must be reachable or blocked, not 'open'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from netconform.checks import user
from netconform.checks.api import (
    HOST_PROBES,
    KIT_PODS,
    NAME,
    OUTSIDE_CLIENT,
    WORKLOAD_PODS,
    Check,
    Subjects,
    Targets,
)
from netconform.checks.expectations import blocked, reachable

KEYS = {"name", "from", "to", "protocol", "expect", "attempts", "timeout", "fm", "about"}
PROTOCOLS = ("tcp", "udp", "http", "icmp", "dns")
HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):(?P<port>\d{1,5})$")
SERVICE = re.compile(r"^(?P<ns>[a-z0-9-]+)/(?P<name>[a-z0-9-]+):(?P<port>\d{1,5})$")
FM = re.compile(r"^FM-\d\d$")


class ChecksFileError(ValueError):
    """A checks file that cannot be used; the message is one line: FILE:LINE: problem and fix."""


def load(path: str | Path) -> list[Check]:
    """The checks of one YAML file (not registered yet)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChecksFileError(f"{p}: cannot read the checks file: {exc.strerror or exc}") from None
    return load_text(text, str(p))


def load_text(text: str, where: str) -> list[Check]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ChecksFileError(f"{where}{line}: not valid YAML: {problem}") from None
    if not isinstance(root, yaml.MappingNode):
        raise ChecksFileError(f"{where}:1: expected a mapping with a 'checks:' list (see docs/checks.md)")
    items = dict((k.value, v) for k, v in root.value)
    if set(items) != {"checks"} or not isinstance(items["checks"], yaml.SequenceNode):
        raise ChecksFileError(f"{where}:1: the file must hold one key, 'checks:', with a list of checks")
    out: list[Check] = []
    names: dict[str, int] = {}
    for node in items["checks"].value:
        check = _one(node, where)
        line = node.start_mark.line + 1
        if check.name in names:
            raise ChecksFileError(
                f"{where}:{line}: name {check.name!r} is used twice (line {names[check.name]})"
            )
        names[check.name] = line
        out.append(check)
    if not out:
        raise ChecksFileError(f"{where}:1: 'checks:' is empty: add at least one check")
    return out


def _one(node: yaml.Node, where: str) -> Check:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise ChecksFileError(f"{where}:{line}: each check is a mapping (name:, from:, to:, expect:)")
    fields: dict[str, tuple[Any, int]] = {}
    for key, value in node.value:
        if key.value not in KEYS:
            raise ChecksFileError(
                f"{where}:{key.start_mark.line + 1}: unknown key {key.value!r}; "
                f"known: {', '.join(sorted(KEYS))}"
            )
        fields[key.value] = (yaml.safe_load(yaml.serialize(value)), value.start_mark.line + 1)

    def need(key: str) -> tuple[Any, int]:
        if key not in fields:
            raise ChecksFileError(f"{where}:{line}: the check has no '{key}:'")
        return fields[key]

    name, at = need("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ChecksFileError(f"{where}:{at}: name must be lowercase letters, digits and '-', not {name!r}")
    subjects = _subjects(*need("from"), where)
    to, to_at = need("to")
    target, default_protocol = _target(to, to_at, where)
    protocol, p_at = fields.get("protocol", (default_protocol, line))
    if protocol not in PROTOCOLS:
        raise ChecksFileError(
            f"{where}:{p_at}: protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}"
        )
    if isinstance(target, user.DnsName) and protocol != "dns":
        raise ChecksFileError(f"{where}:{p_at}: 'to: dns: NAME' takes protocol dns, not {protocol}")
    expect_name, e_at = need("expect")
    if expect_name not in ("reachable", "blocked"):
        raise ChecksFileError(f"{where}:{e_at}: expect must be reachable or blocked, not {expect_name!r}")
    attempts = _number(fields, "attempts", where, int, 1, 10)
    timeout = _number(fields, "timeout", where, float, 0.1, 60.0)
    fm, f_at = fields.get("fm", ([], line))
    if not isinstance(fm, list) or not all(isinstance(f, str) and FM.match(f) for f in fm):
        raise ChecksFileError(f"{where}:{f_at}: fm must be a list of ids like [FM-12], not {fm!r}")
    spec = {"tcp": user.tcp, "udp": user.udp, "icmp": user.icmp, "dns": user.dns}
    probe = (
        user.http(timeout=timeout, attempts=attempts)
        if protocol == "http"
        else spec[protocol](timeout, attempts)
    )
    about, _ = fields.get("about", ("", line))
    return Check.to(
        name,
        subjects,
        target,
        probe,
        reachable if expect_name == "reachable" else blocked,
        fm=tuple(fm),
        about=str(about or f"{where}:{line}: {protocol} to {to} must be {expect_name}"),
    )


def _subjects(value: Any, at: int, where: str) -> tuple[Subjects, ...]:
    # workloads: the pods chosen from the run's --subject workloads (through their ephemeral containers)
    roles = {"pods": KIT_PODS, "hosts": HOST_PROBES, "outside": OUTSIDE_CLIENT, "workloads": WORKLOAD_PODS}
    if isinstance(value, str) and value in roles:
        return (roles[value],)
    if isinstance(value, dict) and len(value) == 1:
        ((key, nodes),) = value.items()
        if (
            key in ("pods", "hosts")
            and isinstance(nodes, list)
            and nodes
            and all(isinstance(n, str) for n in nodes)
        ):
            return (Subjects("pod" if key == "pods" else "host", tuple(nodes)),)
    raise ChecksFileError(
        f"{where}:{at}: from must be pods, hosts, outside or workloads, "
        "or {pods: [NODE, ...]} / {hosts: [NODE, ...]}"
    )


def _target(value: Any, at: int, where: str) -> tuple[Targets, str]:
    if isinstance(value, dict) and len(value) == 1:
        ((key, ref),) = value.items()
        if key == "service" and isinstance(ref, str) and (m := SERVICE.match(ref)):
            return user.ServiceRef(m["ns"], m["name"], _port(m["port"], at, where)), "tcp"
        if key == "dns" and isinstance(ref, str) and ref:
            return user.DnsName(ref), "dns"
    if isinstance(value, str):
        if value.startswith(("http://", "https://")):
            return user.Url(value), "http"
        if m := HOST_PORT.match(value):
            return user.Endpoint(m["host"].strip("[]"), _port(m["port"], at, where)), "tcp"
    raise ChecksFileError(
        f"{where}:{at}: to must be HOST:PORT, an http(s):// URL, {{service: NS/NAME:PORT}} or {{dns: NAME}}, "
        f"not {value!r}"
    )


def _port(text: str, at: int, where: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ChecksFileError(f"{where}:{at}: port {port} is not in 1..65535")
    return port


def _number(
    fields: dict[str, tuple[Any, int]], key: str, where: str, kind: type, low: float, high: float
) -> Any:
    if key not in fields:
        return None
    value, at = fields[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ChecksFileError(f"{where}:{at}: {key} must be a number from {low:g} to {high:g}, not {value!r}")
    return kind(value)
