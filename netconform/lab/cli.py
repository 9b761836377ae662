"""`netconform lab up|kubeconfig|status|down|fault|outside-exec|suite-options`.

Every failure is one line on stderr and a non-zero exit; `up` prints the kubeconfig path as its last
stdout line; `outside-exec` passes the command's exit status through.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from netconform.lab.cluster import Lab, LabError
from netconform.lab.components import DATAPLANES, LOAD_BALANCERS


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line (exit 2) instead of a usage dump."""

    def error(self, message: str) -> Any:
        print(f"netconform lab: {message} (see `netconform lab --help`)", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="netconform lab", description="The emulated cluster: build, inspect, fault, remove.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    up = sub.add_parser("up", help="start a lab; prints the kubeconfig path last")
    up.add_argument("--name", default="default")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument(
        "--no-lb", action="store_true", help="no LoadBalancer controller (LB Services stay pending)"
    )
    up.add_argument(
        "--no-ingress", action="store_true", help="no ingress controller (no IngressClass, no L7 proxy)"
    )
    up.add_argument(
        "--dataplane",
        default="lab",
        choices=DATAPLANES,
        help="cilium: anetd agent pods answering `cilium status`, `cilium monitor`, `bpftool map dump`",
    )
    up.add_argument(
        "--lb",
        default="lab",
        choices=LOAD_BALANCERS,
        help="metallb: controller/speaker pods logging VIPs; f5: F5 controller pods and per-port ConfigMaps",
    )
    up.add_argument(
        "--control-plane",
        default=None,
        choices=("emulated", "real"),
        help="real: etcd, kube-apiserver, controller-manager, scheduler, node agents (make control-plane); "
        "default $NETCONFORM_LAB_CONTROL_PLANE, else emulated",
    )
    up.add_argument("--timeout", type=float, default=None, help="seconds to wait for the lab (default 90)")
    kc = sub.add_parser("kubeconfig", help="print the kubeconfig path")
    kc.add_argument("--name", default="default")
    st = sub.add_parser("status", help="nodes, pods, services, faults, API counters")
    st.add_argument("--name", default="default")
    st.add_argument("--json", action="store_true")
    down = sub.add_parser("down", help="remove a lab (idempotent)")
    g = down.add_mutually_exclusive_group()
    g.add_argument("--name", default=None)
    g.add_argument("--all", action="store_true")
    fault = sub.add_parser("fault", help="list, add or clear named faults")
    fsub = fault.add_subparsers(dest="fault_cmd", required=True, parser_class=_Parser)
    fl = fsub.add_parser("list")
    fl.add_argument("--name", default="default")
    fa = fsub.add_parser("add")
    fa.add_argument("fault")
    fa.add_argument("--node", default=None)
    fa.add_argument("--name", default="default")
    fc = fsub.add_parser("clear")
    fc.add_argument("fault", nargs="?", default=None)
    fc.add_argument("--name", default="default")
    oe = sub.add_parser("outside-exec", help="run CMD as the external client: outside-exec [--name N] -- CMD")
    oe.add_argument("--name", default="default")
    oe.add_argument("command", nargs=argparse.REMAINDER)
    so = sub.add_parser("suite-options", help="the `netconform run` options for this lab, one per line")
    so.add_argument("--name", default="default")
    return p


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def _table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def format_status(s: dict[str, Any]) -> str:
    out = [
        f"lab {s['name']}: {s['phase']}, API {s['api_url']}, up {s['uptime_s']} s, "
        f"{len(s['nodes'])} nodes, LB {'on' if s['lb'] else 'off'}, "
        f"memory {_mib(s['memory']['rss_bytes'])} in {s['memory']['processes']} processes "
        f"({_mib(s['memory']['rss_bytes'] / max(1, len(s['nodes'])))} per node)",
        "",
        "NODES",
    ]
    out.append(
        _table(
            [["NAME", "READY", "IP", "POD-CIDR", "ROLES", "REASON"]]
            + [
                [
                    n["name"],
                    "Ready" if n["ready"] else "NotReady",
                    n["ip"],
                    n["pod_cidr"],
                    ",".join(n["roles"]) or "-",
                    n["reason"] or "",
                ]
                for n in s["nodes"]
            ]
        )
    )
    out += [
        "",
        "PODS",
        _table(
            [["NAMESPACE", "NAME", "NODE", "PHASE", "READY", "RESTARTS", "IP", "REASON"]]
            + [
                [
                    p["namespace"],
                    p["name"],
                    p["node"] or "-",
                    p["phase"] or "-",
                    "yes" if p["ready"] else "no",
                    str(p["restarts"]),
                    p["ip"] or "-",
                    p["reason"] or "",
                ]
                for p in s["pods"]
            ]
        ),
    ]
    out += [
        "",
        "SERVICES",
        _table(
            [["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORTS"]]
            + [
                [
                    v["namespace"],
                    v["name"],
                    v["type"],
                    v["cluster_ip"] or "-",
                    ",".join(v["external_ips"]) or ("<pending>" if v["type"] == "LoadBalancer" else "-"),
                    ",".join(v["ports"]),
                ]
                for v in s["services"]
            ]
        ),
    ]
    faults = s.get("faults") or []
    out += ["", "FAULTS: " + (", ".join(f"{f['name']} ({f['where']})" for f in faults) or "none")]
    api = s["api"]
    out += [
        "",
        f"API: {api['requests_total']} requests, {api['exec_sessions']} exec sessions opened, "
        f"{api['exec_active']} active, {api['watches_active']} watches open",
    ]
    for verb, by_res in sorted(api["requests"].items()):
        out.append(f"  {verb:<17} " + ", ".join(f"{r}={n}" for r, n in sorted(by_res.items())))
    return "\n".join(out)


def format_fault_list(listed: list[dict[str, Any]]) -> str:
    """Faults, then the bad-input conditions; says which faults follow pods and what that means."""
    states = {f["name"]: f"ACTIVE on {f['where']}" if f["active"] else "inactive" for f in listed}
    width = max([24, *(len(s) for s in states.values())])
    out = []
    for kind, title in (("fault", "faults"), ("condition", "conditions for bad-input tests")):
        out.append(f"{title}:")
        items = [f for f in listed if f.get("kind", "fault") == kind]
        out += [f"  {f['name']:<26} {states[f['name']]:<{width}} {f['description']}" for f in items]
        following = [f["name"] for f in items if f.get("follows_pods")]
        if following:
            out.append(
                f"  ({', '.join(following)} follow pods: while active they also break every matching pod "
                "started or recreated later; `clear` heals all of them)"
            )
    return "\n".join(out)


def _run(args: argparse.Namespace) -> int:
    if args.cmd == "up":
        lab = Lab(args.name)
        started = time.monotonic()
        kwargs = {"timeout": args.timeout} if args.timeout else {}
        path = lab.up(
            nodes=args.nodes,
            lb=not args.no_lb,
            ingress=not args.no_ingress,
            dataplane=args.dataplane,
            lb_kind=args.lb,
            control_plane=args.control_plane,
            **kwargs,
        )
        print(f"lab {args.name}: {args.nodes} nodes up in {time.monotonic() - started:.1f} s")
        print(path)
        return 0
    if args.cmd == "kubeconfig":
        lab = Lab(args.name)
        if not lab.kubeconfig.exists():
            raise LabError(f"lab {args.name!r} is not up (no {lab.kubeconfig})")
        print(lab.kubeconfig)
        return 0
    if args.cmd == "status":
        status = Lab(args.name).status()
        print(json.dumps(status, indent=1) if args.json else format_status(status))
        return 0
    if args.cmd == "down":
        if args.all:
            removed = Lab.down_all()
            print(f"removed: {', '.join(removed) or 'nothing'}")
        else:
            name = args.name or "default"
            Lab(name).down()
            print(f"lab {name}: down")
        return 0
    if args.cmd == "fault":
        lab = Lab(args.name)
        if args.fault_cmd == "list":
            print(format_fault_list(lab.fault_list()))
        elif args.fault_cmd == "add":
            rec = lab.fault_add(args.fault, args.node)
            print(rec["summary"])
        else:
            cleared = lab.fault_clear(args.fault)
            print(f"cleared: {', '.join(cleared) or 'nothing'}")
        return 0
    if args.cmd == "outside-exec":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            raise LabError("outside-exec needs a command: netconform lab outside-exec [--name N] -- CMD ...")
        argv = Lab(args.name).outside_argv(command)
        sys.stdout.flush()
        try:
            os.execvp(argv[0], argv)  # the exit status (and signals) pass through unchanged
        except OSError as err:
            raise LabError(f"cannot run {argv[0]}: {err}") from None
    if args.cmd == "suite-options":
        print("\n".join(Lab(args.name).suite_options()))
        return 0
    raise LabError(f"unknown command {args.cmd!r}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return _run(args)
    except LabError as err:
        print(f"netconform lab: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("netconform lab: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: still one line, the traceback only on request
        if os.environ.get("NETCONFORM_DEBUG"):
            raise
        print(
            f"netconform lab: internal error: {type(err).__name__}: {err} (NETCONFORM_DEBUG=1 shows the "
            "traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
