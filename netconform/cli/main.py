"""The `netconform` command: one entry point, each sub-command owned by the module that does the work.

Examples::

    netconform lab up                 # an emulated 3-node cluster; prints its kubeconfig path last
    netconform run --kubeconfig K     # the conformance suite against a cluster, reports in reports/
    netconform demo                   # lab up, run, reports, lab down
    netconform diff before.json after.json --format markdown
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib import import_module

# sub-command -> "module:function"; imported lazily so `netconform diff` does not pay for the lab.
COMMANDS: dict[str, tuple[str, str]] = {
    "lab": ("netconform.lab.cli:main", "build, inspect, fault and remove the emulated cluster"),
    "run": ("netconform.cli.run:run_main", "run the conformance suite against a cluster"),
    "demo": ("netconform.cli.run:demo_main", "lab up, run the suite, write reports, lab down"),
    "diff": ("netconform.report.diff:main", "compare two results.json files (baseline vs now)"),
    "agent": ("netconform.agent.probe_agent:main", "the probe agent itself (run | serve)"),
}


def _usage() -> str:
    lines = ["usage: netconform COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<6} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def _resolve(target: str) -> Callable[[list[str]], int]:
    module_name, func_name = target.split(":")
    func: Callable[[list[str]], int] = getattr(import_module(module_name), func_name)
    return func


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"netconform: unknown command {name!r}; use one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return _resolve(COMMANDS[name][0])(rest)
    except KeyboardInterrupt:
        print("netconform: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
