"""`make bench`: the suite's cost on labs of 3/20/50/100 nodes, as one table (issue 15).

For each size: bring up a lab (timed, its RSS from `lab status`), run the suite against it
(`netconform run --lab NAME`: wall, cells, execs, API requests, the controller's peak RSS, report sizes,
all read from the run's results.json), time a few `kubectl exec` into a kit pod (the cost a suite with
one exec per cell would pay: per exec x probed cells / 3 workers), and on one size a fault that fails
50+ cells (`tunnel-blocked`): its wall minus the healthy wall, against 1.5 x probe timeout x attempts.
Every lab is brought down at the end, on failure and on Ctrl-C/SIGTERM; every step has a timeout.

    .venv/bin/python tools/bench.py --sizes 3,20 [--peers 8] [--fault-size 20] [--out bench-out]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netconform.lab.cluster import Lab  # noqa: E402

WORKERS = 3  # the per-cell baseline's parallelism (a suite of one exec per cell, 3 xdist workers)
EXEC_SAMPLES = 5
FAULT = "tunnel-blocked"  # every cross-node pod path: 50+ cells from 3 nodes up
# runs the suite in a child and reports the peak RSS of the processes it waited for (the controller)
WRAP = (
    "import json, resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:], timeout=float(sys.argv[1]))\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
    "print(json.dumps({'code': code, 'max_rss': rss}), file=sys.stderr)\n"
)


class Interrupted(Exception):
    pass


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"signal {signum}")


def _mib(n: float) -> str:
    return f"{n / 1048576:.0f} MiB"


def lab_up(name: str, nodes: int, timeout: float) -> tuple[Lab, float, dict[str, Any]]:
    lab = Lab(name)
    started = time.monotonic()
    lab.up(nodes=nodes, lb=True, timeout=timeout)
    took = time.monotonic() - started
    return lab, took, lab.status()


def run_suite(lab: str, out: Path, extra: list[str], timeout: float) -> dict[str, Any]:
    """`netconform run --lab` in a child: wall, exit code, controller peak RSS, the results.json."""
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "netconform.cli.main", "run", "--lab", lab, "--out", str(out), *extra]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", WRAP, str(timeout), *argv],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        cwd=ROOT,
        check=False,
    )
    wall = time.monotonic() - started
    tail = proc.stderr.strip().splitlines()
    info = json.loads(tail[-1]) if tail and tail[-1].startswith("{") else {"code": proc.returncode}
    results = out / "results.json"
    if not results.exists():
        raise RuntimeError(f"no results.json from the run on {lab}: {(proc.stdout + proc.stderr)[-1500:]}")
    doc = json.loads(results.read_text())
    counts = doc["run"]["counts"]
    matrix = out / "matrix.html"
    return {
        "wall_s": round(wall, 2),
        "duration_s": doc["run"]["duration_s"],
        "exit": info.get("code"),
        "controller_rss": info.get("max_rss"),
        "cells": len(doc["cells"]),
        "probed": counts["passed"] + counts["failed"] + counts["flaky"],
        "failed": counts["failed"] + counts["flaky"],
        "counts": counts,
        "stats": doc["run"]["stats"],
        "matrix_bytes": matrix.stat().st_size if matrix.exists() else None,
        "results_bytes": results.stat().st_size,
        "namespace": doc["run"]["options"].get("namespace"),
        "probe_timeout": doc["run"]["options"].get("probe_timeout"),
        "attempts": doc["run"]["options"].get("attempts"),
        "timings": doc["run"].get("timings") or {},
    }


def exec_baseline(lab: Lab, namespace: str, samples: int = EXEC_SAMPLES) -> float | None:
    """Median seconds of one `kubectl exec` running the agent with a one-check plan in a kit pod."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    base = [kubectl, "--kubeconfig", str(lab.kubeconfig), "--request-timeout", "20s", "-n", namespace]
    pods = subprocess.run(
        [*base, "get", "pods", "-l", "netconform.io/role=probe", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.split()
    if not pods:
        return None
    plan = json.dumps({"checks": [{"id": "r", "kind": "read", "path": "/etc/hostname"}]}) + "\n"
    times = []
    for _ in range(samples):
        started = time.monotonic()
        subprocess.run(
            [*base, "exec", "-i", pods[0], "--", "python3", "/opt/netconform/agent.py", "run"],
            input=plan,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        times.append(time.monotonic() - started)
    return statistics.median(times)


def delete_namespace(lab: Lab, namespace: str) -> None:
    kubectl = shutil.which("kubectl") or "kubectl"
    subprocess.run(
        [kubectl, "--kubeconfig", str(lab.kubeconfig), "delete", "namespace", namespace, "--timeout=60s"],
        capture_output=True,
        timeout=90,
        check=False,
    )


def table(rows: list[dict[str, Any]]) -> str:
    head = [
        "nodes",
        "lab up",
        "lab RSS",
        "wall",
        "cells",
        "probed",
        "execs",
        "API requests",
        "controller RSS",
        "matrix.html",
        "results.json",
        "per-cell exec baseline",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r["healthy"]
        base = r.get("exec_s")
        baseline = (
            f"{base:.2f} s x {s['probed']} / {WORKERS} = {base * s['probed'] / WORKERS:.0f} s"
            if base is not None
            else "-"
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    str(r["nodes"]),
                    f"{r['up_s']:.1f} s",
                    f"{_mib(r['lab_rss'])} ({_mib(r['lab_rss'] / r['nodes'])}/node)",
                    f"{s['wall_s']:.1f} s" + (f" (min of {len(r['walls'])})" if len(r["walls"]) > 1 else ""),
                    str(s["cells"]),
                    str(s["probed"]),
                    str(s["stats"].get("exec_sessions")),
                    str(s["stats"].get("api_requests")),
                    _mib(s["controller_rss"] or 0),
                    f"{(s['matrix_bytes'] or 0) / 1024:.0f} KB",
                    f"{s['results_bytes'] / 1024:.0f} KB",
                    baseline,
                ]
            )
            + " |"
        )
    return "\n".join(lines)


STAGES = ("setup_s", "kit_s", "collection_s", "probes_s", "tests_s")


def stages_table(rows: list[dict[str, Any]]) -> str:
    """Where each size's counted run spent its wall (results.json's run.timings); "after" is the rest:
    the reports, the wait for the kit's namespace and the process' start and exit."""
    head = ["nodes", "setup", "kit", "collection", "probes (phases)", "tests", "after", "wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r["healthy"]
        t = s.get("timings") or {}
        if not t:
            continue
        phases = " + ".join(f"{p['duration_s']:.1f}" for p in t.get("phases") or [])
        after = s["wall_s"] - sum(float(t.get(k) or 0.0) for k in STAGES)
        cells = [f"{float(t.get(k) or 0.0):.1f} s" for k in STAGES]
        cells[3] += f" ({phases})" if phases else ""
        lines.append(
            "| " + " | ".join([str(r["nodes"]), *cells, f"{after:.1f} s", f"{s['wall_s']:.1f} s"]) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="3,20,50,100", help="lab sizes, comma-separated (default 3,20,50,100)")
    p.add_argument("--peers", default=None, help="--peers for the suite (default: the suite's default)")
    p.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="healthy runs per size (default 2: the first keeps its namespace for the exec baseline, "
        "the table shows the fastest of the others)",
    )
    p.add_argument("--fault-size", type=int, default=None, help="size for the fault run (default: the first)")
    p.add_argument("--no-fault", action="store_true", help="skip the fault run")
    p.add_argument("--up-timeout", type=float, default=600.0)
    p.add_argument("--run-timeout", type=float, default=900.0)
    p.add_argument("--out", default=None, help="folder for bench.json and the runs (default: a temp dir)")
    p.add_argument("--name", default=f"bench{os.getpid() % 10000}", help="lab name prefix")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    fault_size = args.fault_size or sizes[0]  # tunnel-blocked on 3 nodes: 50-60 failing cells
    out = Path(args.out or tempfile.mkdtemp(prefix="netconform-bench-"))
    extra = ["--no-html"] + (["--peers", args.peers] if args.peers else [])
    signal.signal(signal.SIGTERM, _on_term)
    rows: list[dict[str, Any]] = []
    fault: dict[str, Any] | None = None
    for nodes in sizes:
        name = f"{args.name}-{nodes}"
        lab: Lab | None = None
        try:
            print(f"bench: {nodes} nodes: lab up ...", flush=True)
            lab, up_s, status = lab_up(name, nodes, args.up_timeout)
            row: dict[str, Any] = {"nodes": nodes, "up_s": up_s, "lab_rss": status["memory"]["rss_bytes"]}
            runs = []
            for i in range(max(1, args.repeat)):
                keep = ["--keep"] if i == 0 else []
                runs.append(run_suite(name, out / f"{nodes}-healthy-{i}", extra + keep, args.run_timeout))
                print(f"bench: {nodes} nodes: healthy run {i + 1}: {runs[-1]['wall_s']} s", flush=True)
                if i == 0 and runs[0]["namespace"]:
                    row["exec_s"] = exec_baseline(lab, runs[0]["namespace"])
                    delete_namespace(lab, runs[0]["namespace"])
            # the first run keeps its namespace for the exec baseline (no cleanup in its wall): the
            # table shows the fastest of the others when there are any
            timed = runs[1:] or runs
            row["walls"] = [r["wall_s"] for r in timed]
            row["healthy"] = min(timed, key=lambda r: r["wall_s"])
            row["lab_rss_after"] = lab.status()["memory"]["rss_bytes"]
            if nodes == fault_size and not args.no_fault:
                lab.fault_add(FAULT)
                try:
                    bad = run_suite(name, out / f"{nodes}-fault", extra, args.run_timeout)
                finally:
                    lab.fault_clear(FAULT)
                healthy = row["healthy"]
                bound = 1.5 * float(healthy["probe_timeout"] or 2.0) * int(healthy["attempts"] or 2)
                fault = {
                    "nodes": nodes,
                    "fault": FAULT,
                    "failed_cells": bad["failed"],
                    "wall_s": bad["wall_s"],
                    "added_s": round(bad["wall_s"] - healthy["wall_s"], 2),
                    "bound_s": bound,
                    "phases": bad["stats"].get("phases"),
                }
                print(f"bench: {nodes} nodes: fault run {bad['wall_s']} s", flush=True)
            rows.append(row)
        except (KeyboardInterrupt, Interrupted) as exc:
            print(f"bench: interrupted ({exc or 'Ctrl-C'}): bringing the lab down", file=sys.stderr)
            return 130
        except Exception as exc:  # report it, clean up, go on with the next size
            print(f"bench: {nodes} nodes failed: {exc}", file=sys.stderr)
        finally:
            if lab is not None:
                lab.down()
    (out / "bench.json").write_text(json.dumps({"rows": rows, "fault": fault}, indent=1))
    print()
    print(table(rows))
    print()
    print(stages_table(rows))
    if fault:
        verdict = "within" if fault["added_s"] <= fault["bound_s"] else "OVER"
        print(
            f"\nfault {fault['fault']} on {fault['nodes']} nodes: {fault['failed_cells']} cells failed, "
            f"wall {fault['wall_s']:.1f} s, adds {fault['added_s']:.1f} s ({verdict} 1.5 x timeout x "
            f"attempts = {fault['bound_s']:.1f} s; {fault['phases']} phases)"
        )
    print(f"\nbench: details in {out / 'bench.json'}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
