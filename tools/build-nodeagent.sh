#!/usr/bin/env bash
# Build the lab's node agent (lab-go/nodeagent: virtual-kubelet v1.14.1 + a provider that hands pods to
# the lab's Python kubelet) into <cache-dir>/bin/nodeagent, next to the control-plane binaries.
# Idempotent: rebuilt only when the sources' hash differs from the one recorded next to the binary
# (a fresh clone has new mtimes, not new sources).
#
# usage: build-nodeagent.sh <cache-dir>
# env:   BUILD_P (go build -p, default 1), GOTOOLCHAIN (default local)
set -euo pipefail
CACHE_DIR=${1:?usage: build-nodeagent.sh <cache-dir>}
SRC="$(cd "$(dirname "$0")/.." && pwd)/lab-go/nodeagent"
BIN="$CACHE_DIR/bin"
OUT="$BIN/nodeagent"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=${CGO_ENABLED:-0}
mkdir -p "$BIN"
hash=$(cd "$SRC" && cat go.mod go.sum *.go | sha256sum | cut -d' ' -f1)
if [[ -x $OUT && -f $OUT.sha256 && $(cat "$OUT.sha256") == "$hash" ]]; then
  echo "build-nodeagent.sh: $OUT up to date, skipping"
  exit 0
fi
tmp=$(mktemp -d "$CACHE_DIR/.tmp-nodeagent.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$SRC" && nice -n 19 go build -p "${BUILD_P:-1}" -trimpath -ldflags="-s -w" -o "$tmp/nodeagent" .)
mv -f "$tmp/nodeagent" "$OUT"
echo "$hash" > "$OUT.sha256"
ls -l "$OUT"
