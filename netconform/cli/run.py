"""`netconform run` and `netconform demo`: the suite from the command line, exit codes as pytest's.

`netconform run [options] [-- pytest args]` checks the options (one line and status 4 on a bad one),
then runs pytest in-process on the installed `tests_conformance` with the HTML report on. `demo` brings
the lab up, runs the suite against it, writes the reports and takes the lab down, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from netconform.model.options import RUN_OPTIONS, positive_int

USAGE_ERROR = 4


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line and pytest's usage-error status."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR)


def run_parser(prog: str = "netconform run") -> OneLineParser:
    p = OneLineParser(
        prog=prog,
        description="Run the network conformance suite against a cluster.",
        epilog="Everything after `--` goes to pytest (e.g. -- -n auto -k dns).",
    )
    for spec in RUN_OPTIONS:
        if spec.switch:
            p.add_argument(spec.flag, action="store_true", help=spec.help)
        else:
            default = "reports" if spec.attr == "out" else None
            p.add_argument(
                spec.flag,
                type=spec.type,
                choices=spec.choices,
                default=default,
                help=spec.help,
                action="append" if spec.multiple else "store",
            )
    p.add_argument("--no-html", action="store_true", help="do not write report.html (pytest-html)")
    return p


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    args = list(argv)
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1 :]
    return args, []


def pytest_args(ns: argparse.Namespace, extra: list[str]) -> list[str]:
    """The pytest command line for the parsed options (the plugin reads the same option names)."""
    from netconform.fixtures.plugin import SUITE_DIR

    suite = str(SUITE_DIR)
    out: list[str] = [suite, "-p", "no:cacheprovider", "-q", "-rs"]
    # plugins a run never needs, at a price (docs/scale.md): hypothesis' import (~1 s), and the
    # unraisable-exception plugin's five full gc.collect() at exit over the client's heap (1-5 s)
    out += ["-p", "no:hypothesispytest", "-p", "no:unraisableexception"]
    # print() in a check is still captured into its report; fd capture (dup2 and a temporary file read
    # per setup, call and teardown) cost 15 % of pytest's loop over a big run's tests. `-- -s` or
    # `-- --capture=fd` after it wins.
    out += ["--capture=sys"]
    for name, value in sorted(vars(ns).items()):
        if name == "no_html" or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, list):
            out += [x for v in value for x in (flag, str(v))]
            continue
        out += [flag] if value is True else [flag, str(value)]
    if not ns.no_html and not any(a.startswith("--html") for a in extra):
        out += [f"--html={Path(ns.out) / 'report.html'}", "--self-contained-html"]
    if ns.kubeconfig is None and ns.lab is None and not os.environ.get("KUBECONFIG"):
        default = Path("~/.kube/config").expanduser()
        if not default.exists() and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            print(
                "netconform run: no cluster given: use --kubeconfig, --context, KUBECONFIG or --lab NAME",
                file=sys.stderr,
            )
            raise SystemExit(USAGE_ERROR)
    if ns.baseline and not Path(ns.baseline).is_file():
        print(f"netconform run: --baseline {ns.baseline}: no such file", file=sys.stderr)
        raise SystemExit(USAGE_ERROR)
    if ns.fail_on == "regressions" and not ns.baseline:
        print("netconform run: --fail-on regressions needs --baseline", file=sys.stderr)
        raise SystemExit(USAGE_ERROR)
    return out + extra


def run_main(argv: Sequence[str]) -> int:
    own, extra = split_argv(argv)
    try:
        ns = run_parser().parse_args(own)
        args = pytest_args(ns, extra)
    except SystemExit as exc:
        return int(exc.code or 0)
    import gc

    import pytest

    code = int(pytest.main(args))
    # the interpreter's exit collects the whole heap (the Kubernetes client's models): 0.3-2.3 s after
    # the reports are written, at load 2-30 (issue 15). Frozen, the exit skips it: the run is over,
    # its files are closed and the atexit handlers still run.
    gc.freeze()
    return code


def demo_main(argv: Sequence[str]) -> int:
    """Lab up, run the suite against it, reports, lab down (also on failure and Ctrl-C)."""
    p = OneLineParser(prog="netconform demo", description="lab up, run the suite, write reports, lab down")
    p.add_argument("--out", default="reports")
    p.add_argument("--name", default="demo")
    p.add_argument("--nodes", type=positive_int, default=3)
    p.add_argument("--fault", action="append", default=[], help="inject this lab fault first (repeatable)")
    own, extra = split_argv(argv)
    try:
        ns = p.parse_args(own)
    except SystemExit as exc:
        return int(exc.code or 0)
    from netconform.lab.cluster import Lab

    lab = Lab(ns.name)
    try:
        print(f"netconform demo: bringing up lab {ns.name!r} ({ns.nodes} nodes)", flush=True)
        lab.up(nodes=ns.nodes, lb=True)
        for fault in ns.fault:
            print(f"netconform demo: injecting fault {fault!r}", flush=True)
            lab.fault_add(fault)
        # The lab's nodes are this machine's own namespaces, so the demo opts in to privileged host probes.
        code = run_main(["--lab", ns.name, "--out", ns.out, "--allow-privileged", "--", *extra])
        print(f"netconform demo: reports in {ns.out}/ (matrix.html, report.html, results.json, junit.xml)")
        return code
    except KeyboardInterrupt:
        print("netconform demo: interrupted", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"netconform demo: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 3
    finally:
        lab.down()
