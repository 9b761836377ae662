"""``python -m netconform.report RESULTS.json [--out DIR]``: re-render the reports from a saved run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from netconform.report import ResultsError, load_results, render_terminal, write_reports
from netconform.report.terminal import use_color


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netconform.report", description=__doc__)
    parser.add_argument("results", help="a results.json written by netconform run")
    parser.add_argument("--out", default=None, help="output folder (default: the results file's folder)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        results = load_results(args.results)
    except ResultsError as exc:
        print(f"netconform report: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.results).resolve().parent
    try:
        written = write_reports(results, out)
    except OSError as exc:
        print(f"netconform report: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(render_terminal(results, color=use_color(sys.stdout)))
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
