"""Server-side `Table` printing, so `kubectl get [-o wide]` shows the columns a real API server gives.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever columns come back;
priority-0 columns are the default view, priority-1 columns appear with `-o wide`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority


def human_duration(seconds: float) -> str:
    """Kubernetes' HumanDuration (apimachinery/pkg/util/duration)."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        rem = s % 60
        return f"{m}m{rem}s" if rem else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        rem = m % 60
        return f"{h}h{rem}m" if rem else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        rem = h % 24
        return f"{d}d{rem}h" if rem else f"{d}d"
    if h < 24 * 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    t = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - t).total_seconds())


def _pod_row(p: Obj) -> list[Any]:
    spec, status = p.get("spec", {}), p.get("status", {})
    cstats = status.get("containerStatuses") or []
    total = len(spec.get("containers", []))
    ready = sum(1 for c in cstats if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in cstats)
    reason = status.get("reason") or status.get("phase", "Pending")
    for c in cstats:
        state = c.get("state", {})
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            term = state["terminated"]
            reason = term.get("reason") or f"ExitCode:{term.get('exitCode', 0)}"
    if p["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return [
        p["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        restarts,
        age(p["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


_POD_COLS: list[Column] = [
    ("Name", "string", 0),
    ("Ready", "string", 0),
    ("Status", "string", 0),
    ("Restarts", "string", 0),
    ("Age", "string", 0),
    ("IP", "string", 1),
    ("Node", "string", 1),
    ("Nominated Node", "string", 1),
    ("Readiness Gates", "string", 1),
]


def _node_row(n: Obj) -> list[Any]:
    status = n.get("status", {})
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if n.get("spec", {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = n["metadata"].get("labels", {})
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")) or [
        "<none>"
    ]
    addrs = {a["type"]: a["address"] for a in status.get("addresses", [])}
    info = status.get("nodeInfo", {})
    return [
        n["metadata"]["name"],
        state,
        ",".join(roles),
        age(n["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addrs.get("InternalIP", "<none>"),
        addrs.get("ExternalIP", "<none>"),
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


_NODE_COLS: list[Column] = [
    ("Name", "string", 0),
    ("Status", "string", 0),
    ("Roles", "string", 0),
    ("Age", "string", 0),
    ("Version", "string", 0),
    ("Internal-IP", "string", 1),
    ("External-IP", "string", 1),
    ("OS-Image", "string", 1),
    ("Kernel-Version", "string", 1),
    ("Container-Runtime", "string", 1),
]


def _svc_ports(spec: Obj) -> str:
    out = []
    for p in spec.get("ports", []):
        s = str(p.get("port"))
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _svc_row(s: Obj) -> list[Any]:
    spec = s.get("spec", {})
    typ = spec.get("type", "ClusterIP")
    external = "<none>"
    if typ == "LoadBalancer":
        ing = s.get("status", {}).get("loadBalancer", {}).get("ingress") or []
        external = ",".join(i.get("ip") or i.get("hostname", "") for i in ing) or "<pending>"
    sel = spec.get("selector") or {}
    return [
        s["metadata"]["name"],
        typ,
        spec.get("clusterIP") or "<none>",
        external,
        _svc_ports(spec),
        age(s["metadata"].get("creationTimestamp")),
        ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>",
    ]


_SVC_COLS: list[Column] = [
    ("Name", "string", 0),
    ("Type", "string", 0),
    ("Cluster-IP", "string", 0),
    ("External-IP", "string", 0),
    ("Port(s)", "string", 0),
    ("Age", "string", 0),
    ("Selector", "string", 1),
]


def _ns_row(n: Obj) -> list[Any]:
    return [
        n["metadata"]["name"],
        n.get("status", {}).get("phase", "Active"),
        age(n["metadata"].get("creationTimestamp")),
    ]


def _eps_row(e: Obj) -> list[Any]:
    ports = ",".join(str(p.get("port")) for p in e.get("ports") or []) or "<unset>"
    addrs = [a for ep in e.get("endpoints") or [] for a in ep.get("addresses", [])]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [
        e["metadata"]["name"],
        e.get("addressType", "IPv4"),
        ports,
        shown or "<unset>",
        age(e["metadata"].get("creationTimestamp")),
    ]


def _ep_row(e: Obj) -> list[Any]:
    items = []
    for sub in e.get("subsets") or []:
        for a in sub.get("addresses", []):
            for p in sub.get("ports", []):
                items.append(f"{a['ip']}:{p['port']}")
    shown = ",".join(items[:3]) + (f" + {len(items) - 3} more..." if len(items) > 3 else "")
    return [e["metadata"]["name"], shown or "<none>", age(e["metadata"].get("creationTimestamp"))]


def _cm_row(c: Obj) -> list[Any]:
    return [
        c["metadata"]["name"],
        len(c.get("data") or {}) + len(c.get("binaryData") or {}),
        age(c["metadata"].get("creationTimestamp")),
    ]


def _event_row(e: Obj) -> list[Any]:
    inv = e.get("involvedObject", {})
    last = e.get("lastTimestamp") or e.get("eventTime") or e["metadata"].get("creationTimestamp")
    first = e.get("firstTimestamp") or last
    return [
        age(last),
        e.get("type", "Normal"),
        e.get("reason", ""),
        f"{inv.get('kind', '').lower()}/{inv.get('name', '')}",
        e.get("message", ""),
        inv.get("fieldPath", ""),
        e.get("source", {}).get("component", ""),
        age(first),
        e.get("count", 1),
        e["metadata"]["name"],
    ]


_EVENT_COLS: list[Column] = [
    ("Last Seen", "string", 0),
    ("Type", "string", 0),
    ("Reason", "string", 0),
    ("Object", "string", 0),
    ("Message", "string", 0),
    ("Subobject", "string", 1),
    ("Source", "string", 1),
    ("First Seen", "string", 1),
    ("Count", "string", 1),
    ("Name", "string", 1),
]


def _ingress_row(i: Obj) -> list[Any]:
    """NAME CLASS HOSTS ADDRESS PORTS AGE, as kubectl shows an Ingress."""
    spec = i.get("spec") or {}
    hosts = [r.get("host") for r in spec.get("rules") or [] if r.get("host")]
    lb = ((i.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    address = ",".join(x.get("ip") or x.get("hostname") or "" for x in lb)
    ports = "80, 443" if spec.get("tls") else "80"
    return [
        i["metadata"]["name"],
        spec.get("ingressClassName") or "<none>",
        ",".join(hosts) or "*",
        address,
        ports,
        age(i["metadata"].get("creationTimestamp")),
    ]


_INGRESS_CLASS_COLS: list[Column] = [
    ("Name", "string", 0),
    ("Controller", "string", 0),
    ("Parameters", "string", 0),
    ("Age", "string", 0),
]


def _ingress_class_row(c: Obj) -> list[Any]:
    spec = c.get("spec") or {}
    params = spec.get("parameters")
    return [
        c["metadata"]["name"],
        spec.get("controller", ""),
        f"{params.get('kind')}/{params.get('name')}" if params else "<none>",
        age(c["metadata"].get("creationTimestamp")),
    ]


def _condition(obj: Obj, kind: str) -> str:
    """The status of one condition (`Unknown` when absent), as the Gateway API's printer columns show."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status", "Unknown"))
    return "Unknown"


def _gateway_class_row(c: Obj) -> list[Any]:
    """NAME CONTROLLER ACCEPTED AGE (the CRD's additionalPrinterColumns)."""
    return [
        c["metadata"]["name"],
        (c.get("spec") or {}).get("controllerName", ""),
        _condition(c, "Accepted"),
        age(c["metadata"].get("creationTimestamp")),
    ]


def _gateway_row(g: Obj) -> list[Any]:
    """NAME CLASS ADDRESS PROGRAMMED AGE.

    >>> _gateway_row({"metadata": {"name": "gw"}, "spec": {"gatewayClassName": "lab"},
    ...     "status": {"addresses": [{"value": "10.89.0.200"}],
    ...                "conditions": [{"type": "Programmed", "status": "True"}]}})[:4]
    ['gw', 'lab', '10.89.0.200', 'True']
    """
    addresses = (g.get("status") or {}).get("addresses") or []
    return [
        g["metadata"]["name"],
        (g.get("spec") or {}).get("gatewayClassName", ""),
        addresses[0].get("value", "") if addresses else "",
        _condition(g, "Programmed"),
        age(g["metadata"].get("creationTimestamp")),
    ]


def _httproute_row(r: Obj) -> list[Any]:
    """NAME HOSTNAMES AGE (kubectl shows the hostnames as a JSON list).

    >>> _httproute_row({"metadata": {"name": "r"}, "spec": {"hostnames": ["a.test", "b.test"]}})[:2]
    ['r', '["a.test","b.test"]']
    """
    hostnames = (r.get("spec") or {}).get("hostnames") or []
    return [
        r["metadata"]["name"],
        json.dumps(hostnames, separators=(",", ":")) if hostnames else "",
        age(r["metadata"].get("creationTimestamp")),
    ]


def _netpol_row(p: Obj) -> list[Any]:
    """NAME POD-SELECTOR AGE, the selector as kubectl prints it (`<none>` for the empty one).

    >>> _netpol_row({"metadata": {"name": "d"}, "spec": {"podSelector": {}}})[:2]
    ['d', '<none>']
    >>> expr = {"key": "t", "operator": "In", "values": ["a"]}
    >>> sel = {"matchLabels": {"app": "w1"}, "matchExpressions": [expr]}
    >>> _netpol_row({"metadata": {"name": "a"}, "spec": {"podSelector": sel}})[1]
    'app=w1,t in (a)'
    """
    sel = (p.get("spec") or {}).get("podSelector") or {}
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator", "")
        if op in ("In", "NotIn"):
            parts.append(f"{e.get('key')} {op.lower()} ({','.join(sorted(e.get('values') or []))})")
        elif op == "Exists":
            parts.append(str(e.get("key")))
        elif op == "DoesNotExist":
            parts.append(f"!{e.get('key')}")
    return [p["metadata"]["name"], ",".join(parts) or "<none>", age(p["metadata"].get("creationTimestamp"))]


PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    "pods": (_POD_COLS, _pod_row),
    "nodes": (_NODE_COLS, _node_row),
    "services": (_SVC_COLS, _svc_row),
    "namespaces": ([("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)], _ns_row),
    "endpointslices": (
        [
            ("Name", "string", 0),
            ("AddressType", "string", 0),
            ("Ports", "string", 0),
            ("Endpoints", "string", 0),
            ("Age", "string", 0),
        ],
        _eps_row,
    ),
    "endpoints": ([("Name", "string", 0), ("Endpoints", "string", 0), ("Age", "string", 0)], _ep_row),
    "configmaps": ([("Name", "string", 0), ("Data", "string", 0), ("Age", "string", 0)], _cm_row),
    "events": (_EVENT_COLS, _event_row),
    "ingresses": (
        [
            ("Name", "string", 0),
            ("Class", "string", 0),
            ("Hosts", "string", 0),
            ("Address", "string", 0),
            ("Ports", "string", 0),
            ("Age", "string", 0),
        ],
        _ingress_row,
    ),
    "ingressclasses": (
        _INGRESS_CLASS_COLS,
        _ingress_class_row,
    ),
    "gatewayclasses": (
        [("Name", "string", 0), ("Controller", "string", 0), ("Accepted", "string", 0), ("Age", "string", 0)],
        _gateway_class_row,
    ),
    "gateways": (
        [
            ("Name", "string", 0),
            ("Class", "string", 0),
            ("Address", "string", 0),
            ("Programmed", "string", 0),
            ("Age", "string", 0),
        ],
        _gateway_row,
    ),
    "httproutes": ([("Name", "string", 0), ("Hostnames", "string", 0), ("Age", "string", 0)], _httproute_row),
    "networkpolicies": (
        [("Name", "string", 0), ("Pod-Selector", "string", 0), ("Age", "string", 0)],
        _netpol_row,
    ),
}


def _default_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], age(o["metadata"].get("creationTimestamp"))]


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(resource: str, objs: list[Obj], resource_version: str, include: str = "Metadata") -> Obj:
    cols, row_fn = PRINTERS.get(resource, ([("Name", "string", 0), ("Age", "string", 0)], _default_row))
    rows = []
    for o in objs:
        row: Obj = {"cells": row_fn(o)}
        ro = _row_object(o, include)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": n, "type": t, "format": "name" if n == "Name" else "", "description": n, "priority": p}
            for n, t, p in cols
        ],
        "rows": rows,
    }
