"""Policy truth tables (`--policy-table FILE.yaml`): what must be allowed and denied between workloads.

    policy_table:
      workloads:                     # the grid's rows (sources) and columns (destinations)
        - deployment/ns-a/w1
        - deployment/ns-b/w1
      addresses:                     # optional extra columns (destinations only): an address to probe
        - {cidr: 198.51.100.0/24, probe: 198.51.100.10}
      ports: [9000, tcp/8080, udp/9001]
      default: deny                  # allow | deny where no rule matches (default: allow)
      rules:                         # in order; the first that matches a (from, to, port) decides
        - from: {namespace: ns-a}    # namespace: NAME or [..], namespaceLabels: {k: v}, workload: REF or [..]
          to: {namespace: ns-a}      # the same, or cidr: CIDR (a destination whose address is inside)
          ports: [9000]              # optional: only these ports (default: every port of the table)
          expect: allow              # allow | deny

Each (source pod, destination, port) is one cell `W@NODE->policy:DEST:PORT/L4-PROTO`, sent from the source
workload's chosen pod on NODE (through its ephemeral container, docs/workloads.md) to the destination
pod's IP; `allow` is judged `reachable`, `deny` is judged `blocked` (passes only on a drop or refusal,
never on an unmeasured cell). The expected-vs-observed grids are `netconform.report.policy_grid`.

>>> t = parse_text("policy_table:\\n  workloads: [deployment/a/w]\\n  ports: [80]\\n  rules: []\\n", "t.yaml")
>>> t["ports"], t["default"]
([{'protocol': 'tcp', 'port': 80}], 'allow')
>>> parse_text("policy_table:\\n  workloads: [deployment/a/w]\\n  ports: [80]\\n  default: no\\n", "t.yaml")
Traceback (most recent call last):
...
netconform.checks.policy_table.PolicyTableError: t.yaml:4: default must be allow or deny, not False
"""

from __future__ import annotations

import ipaddress
import shlex
from pathlib import Path
from typing import Any

import yaml

from netconform.checks import probes as P
from netconform.checks.api import Expectation
from netconform.checks.context import Context, Skip
from netconform.checks.expectations import blocked, reachable
from netconform.checks.judging import Results
from netconform.checks.probes import Probe
from netconform.model.cell import Cell
from netconform.model.refs import Ref
from netconform.model.topology import Topology
from netconform.model.workload import PROBE_CONTAINER, parse_subject

TOP = {"workloads", "addresses", "ports", "default", "rules"}
SELECTOR_KEYS = {"namespace", "namespaceLabels", "workload", "cidr"}
RULE_KEYS = {"from", "to", "ports", "expect"}


class PolicyTableError(ValueError):
    """A table that cannot be used; the message is one line: FILE:LINE: problem and fix."""


def load(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyTableError(f"{p}: cannot read the policy table: {exc.strerror or exc}") from None
    return parse_text(text, str(p))


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def parse_text(text: str, where: str) -> dict[str, Any]:
    """The table as JSON-ready data (it travels in the topology snapshot), or PolicyTableError."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyTableError(f"{where}{line}: not valid YAML: {problem}") from None
    if not isinstance(root, yaml.MappingNode) or [k.value for k, _ in root.value] != ["policy_table"]:
        raise PolicyTableError(f"{where}:1: the file must hold one key, 'policy_table:' (docs/policy.md)")
    body = root.value[0][1]
    if not isinstance(body, yaml.MappingNode):
        raise PolicyTableError(f"{where}:{_line(body)}: 'policy_table:' must be a mapping")
    nodes = {k.value: (k, v) for k, v in body.value}
    unknown = set(nodes) - TOP
    if unknown:
        key = nodes[sorted(unknown)[0]][0]
        raise PolicyTableError(
            f"{where}:{_line(key)}: unknown key {key.value!r} (known: {', '.join(sorted(TOP))})"
        )
    for key in ("workloads", "ports"):
        if key not in nodes:
            raise PolicyTableError(f"{where}:{_line(body)}: 'policy_table:' needs '{key}:'")
    data = yaml.safe_load(text)["policy_table"]
    workloads = _workloads(data["workloads"], nodes["workloads"][1], where)
    ports = [
        _port(p, n, where)
        for p, n in zip(data["ports"] or [], _items(nodes["ports"][1], where, "ports"), strict=False)
    ]
    if not ports:
        raise PolicyTableError(f"{where}:{_line(nodes['ports'][1])}: 'ports:' is empty: add at least one")
    default = data.get("default", "allow")
    if default not in ("allow", "deny"):
        raise PolicyTableError(
            f"{where}:{_line(nodes['default'][1])}: default must be allow or deny, not {default!r}"
        )
    addresses = []
    if "addresses" in nodes:
        for item, node in zip(
            data["addresses"] or [], _items(nodes["addresses"][1], where, "addresses"), strict=False
        ):
            addresses.append(_address(item, node, where))
    rules = []
    if "rules" in nodes:
        for item, node in zip(data["rules"] or [], _items(nodes["rules"][1], where, "rules"), strict=False):
            rules.append(_rule(item, node, where, {p["port"] for p in ports}))
    return {
        "file": where,
        "workloads": workloads,
        "addresses": addresses,
        "ports": ports,
        "default": default,
        "rules": rules,
        "namespace_labels": {},
    }


def _items(node: yaml.Node, where: str, key: str) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        raise PolicyTableError(f"{where}:{_line(node)}: '{key}:' must be a list")
    return list(node.value)


def _workloads(value: Any, node: yaml.Node, where: str) -> list[str]:
    out: list[str] = []
    for item, n in zip(value or [], _items(node, where, "workloads"), strict=False):
        try:
            ref = str(parse_subject(str(item)))
        except ValueError as exc:
            raise PolicyTableError(f"{where}:{_line(n)}: workload {exc}") from None
        if ref not in out:
            out.append(ref)
    if not out:
        raise PolicyTableError(f"{where}:{_line(node)}: 'workloads:' is empty: add the grid's workloads")
    return out


def _port(value: Any, node: yaml.Node, where: str) -> dict[str, Any]:
    proto, _, number = str(value).rpartition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp") or not number.isdigit() or not 1 <= int(number) <= 65535:
        raise PolicyTableError(
            f"{where}:{_line(node)}: port {value!r}: use PORT or tcp/PORT or udp/PORT (1-65535)"
        )
    return {"protocol": proto, "port": int(number)}


def _cidr(value: Any, node: yaml.Node, where: str) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise PolicyTableError(f"{where}:{_line(node)}: {value!r} is not a CIDR (e.g. 10.0.0.0/8)") from None


def _address(item: Any, node: yaml.Node, where: str) -> dict[str, str]:
    if not isinstance(item, dict) or set(item) != {"cidr", "probe"}:
        raise PolicyTableError(f"{where}:{_line(node)}: an address is {{cidr: CIDR, probe: IP inside it}}")
    cidr = _cidr(item["cidr"], node, where)
    try:
        inside = ipaddress.ip_address(str(item["probe"])) in ipaddress.ip_network(cidr)
    except ValueError:
        inside = False
    if not inside:
        raise PolicyTableError(f"{where}:{_line(node)}: probe {item['probe']!r} is not an address in {cidr}")
    return {"cidr": cidr, "probe": str(item["probe"])}


def _selector(item: Any, node: yaml.Node, where: str, side: str) -> dict[str, Any] | None:
    if item is None:
        return None
    if not isinstance(item, dict) or not item or set(item) - SELECTOR_KEYS:
        raise PolicyTableError(
            f"{where}:{_line(node)}: '{side}:' is a mapping of {', '.join(sorted(SELECTOR_KEYS))}"
        )
    out: dict[str, Any] = {}
    for key, value in item.items():
        if key in ("namespace", "workload"):
            values = value if isinstance(value, list) else [value]
            if key == "workload":
                try:
                    values = [str(parse_subject(str(v))) for v in values]
                except ValueError as exc:
                    raise PolicyTableError(f"{where}:{_line(node)}: workload {exc}") from None
            out[key] = [str(v) for v in values]
        elif key == "namespaceLabels":
            if not isinstance(value, dict):
                raise PolicyTableError(f"{where}:{_line(node)}: namespaceLabels is a mapping of labels")
            out[key] = {str(k): str(v) for k, v in value.items()}
        else:
            if side == "from":
                raise PolicyTableError(f"{where}:{_line(node)}: 'cidr' is for 'to:' (sources are workloads)")
            out[key] = _cidr(value, node, where)
    return out


def _rule(item: Any, node: yaml.Node, where: str, known_ports: set[int]) -> dict[str, Any]:
    if not isinstance(item, dict) or set(item) - RULE_KEYS or "expect" not in item:
        raise PolicyTableError(
            f"{where}:{_line(node)}: a rule is {{from: ..., to: ..., ports: [...], expect: allow|deny}}"
        )
    if item["expect"] not in ("allow", "deny"):
        raise PolicyTableError(f"{where}:{_line(node)}: expect must be allow or deny, not {item['expect']!r}")
    ports = item.get("ports")
    if ports is not None:
        ports = [_port(p, node, where)["port"] for p in (ports if isinstance(ports, list) else [ports])]
        missing = [p for p in ports if p not in known_ports]
        if missing:
            raise PolicyTableError(f"{where}:{_line(node)}: port {missing[0]} is not in the table's 'ports:'")
    return {
        "from": _selector(item.get("from"), node, where, "from"),
        "to": _selector(item.get("to"), node, where, "to"),
        "ports": ports,
        "expect": item["expect"],
        "line": _line(node),
    }


# ------------------------------------------------------------------------------------ expectations
def _matches(sel: dict[str, Any] | None, workload: str | None, ip: str | None, table: dict[str, Any]) -> bool:
    if sel is None:
        return True
    namespace = workload.split("/")[1] if workload else None
    if "workload" in sel and workload not in sel["workload"]:
        return False
    if "namespace" in sel and namespace not in sel["namespace"]:
        return False
    if "namespaceLabels" in sel:
        labels = table.get("namespace_labels", {}).get(namespace or "", {})
        if workload is None or any(labels.get(k) != v for k, v in sel["namespaceLabels"].items()):
            return False
    return not (
        "cidr" in sel and (not ip or ipaddress.ip_address(ip) not in ipaddress.ip_network(sel["cidr"]))
    )


def expected(
    table: dict[str, Any], source: str, dest: str | None, dest_ip: str | None, port: int
) -> tuple[str, int | None]:
    """("allow"|"deny", the rule's line or None for the default) for one flow; `dest` is the destination
    workload (None for an address column)."""
    for rule in table["rules"]:
        if rule["ports"] is not None and port not in rule["ports"]:
            continue
        if _matches(rule["from"], source, None, table) and _matches(rule["to"], dest, dest_ip, table):
            return str(rule["expect"]), int(rule["line"])
    return str(table["default"]), None


def expect_cell(
    table: dict[str, Any], src: str, col: str, dest: str | None, ip: str | None, protocol: str, port: int
) -> tuple[str, str]:
    """("allow"|"deny", why) for one cell: from the rules, or from the policies (`--policy-check`)."""
    computed = table.get("computed")
    if computed is not None:
        found = computed.get(f"{src}|{col}|{protocol}/{port}")
        if found is None:
            raise Skip(f"--policy-check derived no flow {src} -> {col} {protocol}/{port}")
        return str(found[0]), str(found[1])
    want, line = expected(table, src.rpartition("@")[0], dest, ip, port)
    return want, (
        f"rule at {table.get('file')}:{line}" if line else f"the table's default ({table['default']})"
    )


def policies_of(why: str) -> list[str]:
    """The policies a `--policy-check` reason names ("denied by a/x, b/y (ingress)" -> [a/x, b/y]).

    >>> policies_of("denied by a/x, b/y (ingress)"), policies_of("no policy isolates either pod")
    (['a/x', 'b/y'], [])
    """
    if " by " not in why:
        return []
    return [n.strip() for n in why.split(" by ", 1)[1].split(" (")[0].split(",") if n.strip()]


def parse_target(target: str) -> tuple[str, int]:
    """`policy:deployment/b/w@node-2:9000` -> ("deployment/b/w@node-2", 9000)."""
    dest, _, port = target.split(":", 1)[1].rpartition(":")
    return dest, int(port)


def columns(topo: Topology, table: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """Each destination: (column id, its workload or None, its address)."""
    out: list[tuple[str, str | None, str | None]] = []
    for ref in table["workloads"]:
        info = topo.workload(ref)
        for pod in info.pods if info else []:
            out.append((info.subject(pod.node) if info else ref, ref, pod.ip))
    out += [(a["probe"], None, a["probe"]) for a in table["addresses"]]
    return out


class PolicyTargets:
    """A --policy-table's columns (destination x port of the protocol) for its workloads' pods."""

    head = "policy"

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol

    def refs(self, topo: Topology, subject: str) -> list[str]:
        table = topo.policy_table
        ref = Ref.parse(subject)
        if table is None or ref.head != "workload" or ref.name not in table["workloads"]:
            return []
        ports = [p["port"] for p in table["ports"] if p["protocol"] == self.protocol]
        return [
            f"policy:{col}:{port}" for col, _, _ in columns(topo, table) if col != subject for port in ports
        ]

    def matches(self, subject: str, target: str) -> bool:
        return target.startswith("policy:")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PolicyTargets) and other.protocol == self.protocol

    def __hash__(self) -> int:
        return hash(("policy", self.protocol))


def _dest(cell: Cell, ctx: Context) -> tuple[str | None, str, int]:
    col, port = parse_target(cell.target)
    table = ctx.topo.policy_table or {}
    for c, workload, ip in columns(ctx.topo, table):
        if c == col:
            if not ip:
                raise Skip(f"the pod of {col} has no IP")
            return workload, ip, port
    raise Skip(f"{col} is not a column of the policy table")


def plan(cell: Cell, ctx: Context) -> list[Probe]:
    s = ctx.sender(cell.subject)
    _, ip, port = _dest(cell, ctx)
    if cell.protocol == "udp":
        return [P.udp(s, ip, port)]
    return [P.tcp(s, ip, port, echo=False)]


def judge(cell: Cell, ctx: Context, probes: list[Probe], results: Results) -> Any:
    table = ctx.topo.policy_table or {}
    workload, ip, port = _dest(cell, ctx)
    col = parse_target(cell.target)[0]
    want, why = expect_cell(table, cell.subject, col, workload, ip, cell.protocol, port)
    verdict = (reachable if want == "allow" else blocked).judge(cell, ctx, probes, results)
    verdict.notes.append(f"expected {want} ({why})")
    return verdict


def reproduce(table_file: str, namespace: str, pod: str, ip: str, port: int, protocol: str) -> str:
    """The command that sends one cell's probe again, from the same pod's ephemeral container."""
    if protocol == "udp":
        code = (
            "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);"
            f's.sendto(b"x",("{ip}",{port}));print(s.recv(64))'
        )
    else:
        code = f'import socket;socket.create_connection(("{ip}",{port}),2);print("connected")'
    cmd = ["kubectl", "-n", namespace, "exec", pod, "-c", PROBE_CONTAINER, "--", "python3", "-c", code]
    return " ".join(shlex.quote(c) for c in cmd)


POLICY_TABLE = Expectation("policy-table", judge, "allow: reachable; deny: blocked (a drop or a refusal)")


# ------------------------------------------------------------------------------------------ grids
MARKS = {"ok-allow": "a", "ok-deny": "d", "wrong": "X", "unmeasured": "?"}


def grid(topo: Topology, cells: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Expected vs observed for every cell of the table (results.json `run.policy_table`): per port a
    grid of rows (sources) x columns (destinations), and each wrong cell with its reproducing command."""
    table = topo.policy_table
    if table is None:
        return None
    cols = columns(topo, table)
    rows = [s for ref in table["workloads"] if (w := topo.workload(ref)) for s in w.subjects]
    pods = {
        w.subject(p.node): {"namespace": w.namespace, "pod": p.name, "node": p.node, "ip": p.ip}
        for ref in table["workloads"]
        if (w := topo.workload(ref))
        for p in w.pods
    }
    grids, wrong, counts = [], [], {"as_expected": 0, "wrong": 0, "unmeasured": 0}
    by_policy: dict[str, dict[str, int]] = {}
    for port in table["ports"]:
        entries: dict[str, dict[str, str]] = {}
        for src in rows:
            line: dict[str, str] = {}
            for col, workload, ip in cols:
                if col == src:
                    continue
                cell_id = f"{src}->policy:{col}:{port['port']}/L4-{port['protocol']}"
                found = cells.get(cell_id)
                try:
                    want, rule = expect_cell(table, src, col, workload, ip, port["protocol"], port["port"])
                except Skip:
                    continue
                outcome = str((found or {}).get("outcome") or "not run")
                if outcome == "passed":
                    mark, seen = f"ok-{want}", want
                elif outcome == "failed":
                    mark, seen = "wrong", ("deny" if want == "allow" else "allow")
                else:
                    mark, seen = "unmeasured", outcome
                line[col] = MARKS[mark]
                for name in policies_of(rule) if "computed" in table else []:
                    tally = by_policy.setdefault(name, {"as_expected": 0, "wrong": 0, "unmeasured": 0})
                    tally[
                        "wrong"
                        if mark == "wrong"
                        else "unmeasured"
                        if mark == "unmeasured"
                        else "as_expected"
                    ] += 1
                counts[
                    "wrong" if mark == "wrong" else "unmeasured" if mark == "unmeasured" else "as_expected"
                ] += 1
                if mark == "wrong":
                    pod = pods.get(src, {})
                    wrong.append(
                        {
                            "cell": cell_id,
                            "from": src,
                            "to": col,
                            "port": f"{port['protocol']}/{port['port']}",
                            "expected": want,
                            "observed": seen,
                            "rule": rule,
                            "reason": (found or {}).get("reason"),
                            "command": reproduce(
                                table["file"], str(pod.get("namespace")), str(pod.get("pod")), ip or "?",
                                port["port"], port["protocol"],
                            ),
                        }
                    )  # fmt: skip
            entries[src] = line
        grids.append({"port": f"{port['protocol']}/{port['port']}", "rows": entries})
    return {
        "file": table["file"],
        "default": table["default"],
        "rows": rows,
        "columns": [c for c, _, _ in cols],
        "pods": pods,
        "legend": {"a": "allowed as expected", "d": "denied as expected", "X": "wrong", "?": "unmeasured"},
        "counts": counts,
        "by_policy": {
            name: by_policy.get(name, {"as_expected": 0, "wrong": 0, "unmeasured": 0})
            for name in table.get("policies", [])
        },
        "grids": grids,
        "wrong": wrong,
    }
