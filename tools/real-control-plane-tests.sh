#!/bin/bash
# The lab test set again, on the real control plane (NETCONFORM_LAB_CONTROL_PLANE=real): every test module
# that brings up a lab cluster. `make test` runs it after the emulated pass; when `make control-plane`
# could not build the binaries (no Go) it says so in one line and succeeds (the emulated pass ran).
#
# usage: tools/real-control-plane-tests.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! missing=$(python -c 'from netconform.lab.control.realcp import missing_cache as m; print(m() or "")'); then
    echo "real-control-plane-tests.sh: cannot import the lab" >&2
    exit 1
fi
if [ -n "$missing" ]; then
    echo "real-control-plane-tests.sh: skipped: missing $missing (make control-plane)"
    exit 0
fi
# every module that brings up a lab: the shared `lab` fixture, a private one (own_lab) or Lab(...) itself;
# test_lab_realcp*.py already ran on the real control plane in the first pass
mapfile -t modules < <(grep -lE 'own_lab\(|[(,] ?lab: Lab\b|\bLab\(' tests/test_*.py | grep -v '^tests/test_lab_realcp')
exec env NETCONFORM_LAB_CONTROL_PLANE=real pytest -n auto --dist loadgroup -p no:cacheprovider "$@" "${modules[@]}"
