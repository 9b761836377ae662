#!/usr/bin/env bash
# Build the Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler) from the Go module k8s.io/kubernetes, and etcd from
# go.etcd.io/etcd/server/v3, into <cache-dir>/bin. Idempotent: binaries that
# already exist are skipped.
#
# usage: build-control-plane.sh <cache-dir> <k8s-version> [etcd-version]
#   e.g. build-control-plane.sh ~/.cache/netconform/control-plane/v1.34.4 v1.34.4 v3.6.16
#   (`make control-plane` does exactly that; `make test` and `make demo` run it first)
#
# Measured on a 2-core machine: cold (empty module and build caches) 9 min for the three Kubernetes
# binaries + 44 s for etcd, about 1 GiB of modules and 2.9 GiB of build cache; warm 15 s; binaries
# 282 MiB. v1.34.4 is the 1.34 release whose staging modules the module proxy here serves completely.
#
# It also caches the Gateway API's standard-channel CRDs (config/crd/standard/*.yaml of the Go module
# sigs.k8s.io/gateway-api at GATEWAY_API_VERSION, default v1.6.3) in <cache-dir>/gateway-api/<version>/,
# which `lab up --control-plane real` applies; skipped when present.
#
# env: BINARIES   subset of "kube-apiserver kube-controller-manager kube-scheduler etcd"
#      BUILD_P    value for go build -p (default 1: be gentle on shared machines)
#      GOTOOLCHAIN (default local)
set -euo pipefail

CACHE_DIR=${1:?usage: build-control-plane.sh <cache-dir> <k8s-version> [etcd-version]}
K8S_VERSION=${2:?usage: build-control-plane.sh <cache-dir> <k8s-version> [etcd-version]}
ETCD_VERSION=${3:-v3.6.16}
BINARIES=${BINARIES:-kube-apiserver kube-controller-manager kube-scheduler etcd}
BUILD_P=${BUILD_P:-1}
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=${CGO_ENABLED:-0}

BIN="$CACHE_DIR/bin"
mkdir -p "$BIN"

k8s_missing=()
etcd_missing=0
for b in $BINARIES; do
  if [[ -x "$BIN/$b" ]]; then
    echo "build-control-plane.sh: $BIN/$b present, skipping"
    continue
  fi
  if [[ $b == etcd ]]; then etcd_missing=1; else k8s_missing+=("$b"); fi
done

NICE=(nice -n 19)
# retry flaky network steps (module proxy): retry <cmd...>
retry() {
  local n
  for n in 1 2 3 4 5 6; do
    "$@" && return 0
    echo "build-control-plane.sh: attempt $n failed: $*" >&2
    sleep $((n * 5))
  done
  return 1
}
modfile() { # module@version -> path of its go.mod in the module cache
  local out
  out=$(cd / && go mod download -json "$1") || { echo "$out" >&2; return 1; }
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$out"
}

# ---------------------------------------------------------------- kubernetes
if (( ${#k8s_missing[@]} )); then
  W="$CACHE_DIR/wrapper-k8s"
  mkdir -p "$W"
  if [[ ! -f "$W/go.sum" || ! -f "$W/.done-$K8S_VERSION" ]]; then
    rm -f "$W"/go.mod "$W"/go.sum "$W"/.done-*
    # Fetch upstream go.mod (go mod download works outside a module).
    upstream_mod=$(retry modfile "k8s.io/kubernetes@$K8S_VERSION") || true
    [[ -f $upstream_mod ]] || { echo "cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
    go_line=$(awk '$1=="go"{print $2; exit}' "$upstream_mod")
    staging_version="v0.${K8S_VERSION#v1.}"   # v1.34.4 -> v0.34.4
    {
      echo "module netconform.local/k8s-control-plane"
      echo
      echo "go $go_line"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      echo "replace ("
      # every staging module k8s.io/kubernetes replaces with ./staging/src/...
      grep -E '^[[:space:]]*(replace[[:space:]]+)?k8s\.io/[^[:space:]]+[[:space:]]+=>[[:space:]]+\./staging/' "$upstream_mod" \
        | sed -E 's/^[[:space:]]*(replace[[:space:]]+)?(k8s\.io\/[^[:space:]]+).*/\2/' | sort -u \
        | while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
      echo ")"
    } > "$W/go.mod"
    {
      echo "//go:build tools"
      echo
      echo "package tools"
      echo
      echo "import ("
      for b in kube-apiserver kube-controller-manager kube-scheduler; do
        echo "	_ \"k8s.io/kubernetes/cmd/$b\""
      done
      echo ")"
    } > "$W/tools.go"
    (cd "$W" && retry go mod tidy)
    touch "$W/.done-$K8S_VERSION"
  fi
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  pkgs=()
  for b in "${k8s_missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  tmp=$(mktemp -d "$CACHE_DIR/.tmp-bin.XXXXXX")
  (cd "$W" && "${NICE[@]}" go build -p "$BUILD_P" -trimpath -ldflags="$ldflags" -o "$tmp/" "${pkgs[@]}")
  for b in "${k8s_missing[@]}"; do mv -f "$tmp/$b" "$BIN/$b"; done
  rmdir "$tmp"
fi

# ---------------------------------------------------------------------- etcd
if (( etcd_missing )); then
  W="$CACHE_DIR/wrapper-etcd"
  mkdir -p "$W"
  if [[ ! -f "$W/go.sum" || ! -f "$W/.done-$ETCD_VERSION" ]]; then
    rm -f "$W"/go.mod "$W"/go.sum "$W"/.done-*
    upstream_mod=$(retry modfile "go.etcd.io/etcd/server/v3@$ETCD_VERSION") || true
    [[ -f $upstream_mod ]] || { echo "cannot download go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2; exit 1; }
    go_line=$(awk '$1=="go"{print $2; exit}' "$upstream_mod")
    # etcd's own go.mod replaces go.etcd.io/etcd/* with ../api etc.; as a
    # dependency those are ignored and the published versions are used.
    printf 'module netconform.local/etcd\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
      "$go_line" "$ETCD_VERSION" > "$W/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$W/tools.go"
    (cd "$W" && retry go mod tidy)
    touch "$W/.done-$ETCD_VERSION"
  fi
  tmp=$(mktemp -d "$CACHE_DIR/.tmp-bin.XXXXXX")
  (cd "$W" && "${NICE[@]}" go build -p "$BUILD_P" -trimpath -ldflags="-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  mv -f "$tmp/etcd" "$BIN/etcd"
  rmdir "$tmp"
fi

# ------------------------------------------------------------ Gateway API CRDs
GATEWAY_API_VERSION=${GATEWAY_API_VERSION:-v1.6.3}
CRD_DIR="$CACHE_DIR/gateway-api/$GATEWAY_API_VERSION"
if [[ -f "$CRD_DIR/.done" ]]; then
  echo "build-control-plane.sh: $CRD_DIR present, skipping"
else
  out=$(cd / && retry go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$out")
  [[ -d "$dir/config/crd/standard" ]] || { echo "no config/crd/standard in sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" >&2; exit 1; }
  tmp=$(mktemp -d "$CACHE_DIR/.tmp-crd.XXXXXX")
  cp "$dir"/config/crd/standard/*.yaml "$tmp/"
  chmod u+w "$tmp"/*.yaml
  touch "$tmp/.done"
  mkdir -p "$(dirname "$CRD_DIR")"
  rm -rf "$CRD_DIR"
  mv "$tmp" "$CRD_DIR"
  ls "$CRD_DIR"
fi

ls -l "$BIN"
