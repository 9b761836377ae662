# The two README commands. Both install what is missing first, so they work on a fresh Debian machine as root.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBS := iproute2 iptables nftables conntrack chromium
STAMP := $(VENV)/.installed

K8S_VERSION ?= v1.34.4
ETCD_VERSION ?= v3.6.16
CONTROL_PLANE_CACHE ?= $(HOME)/.cache/netconform/control-plane/$(K8S_VERSION)

.PHONY: demo test lint type sysdeps kubectl clean control-plane bench

demo: sysdeps $(STAMP) kubectl control-plane
	$(BIN)/netconform demo --out reports

test: sysdeps $(STAMP) kubectl control-plane
	$(BIN)/tox -e lint,type,type-agent,py

# the suite's cost on labs of SIZES nodes (not part of `make test`): a table of wall, cells, execs, API
# requests, controller RSS, report size, the per-cell kubectl exec baseline and a fault's cost
SIZES ?= 3,20,50,100
BENCH_ARGS ?=
bench: sysdeps $(STAMP) kubectl
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python tools/bench.py --sizes $(SIZES) $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/tox -e lint

type: $(STAMP)
	$(BIN)/tox -e type,type-agent

# Debian packages the lab and the tests need; installed only when missing and only as root.
sysdeps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "missing Debian packages ($$missing): run as root or install them"; fi; \
	fi

# kubectl >= 1.30, for the tests that prove the lab's API with an independent client.
kubectl: $(STAMP)
	@bash tools/ensure-kubectl.sh $(BIN)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# the real control plane (kube-apiserver, kube-controller-manager, kube-scheduler, etcd, the lab's node
# agent, the Gateway API CRDs) built from their Go modules into a cache outside the work tree, keyed by
# version; skipped when the binaries exist (cold: 581 s on an idle 2-core machine, warm: seconds). Without Go the
# build is skipped with a warning and the tests that need the real control plane skip with the reason.
# BUILD_P: go build -p (the default 2 uses the whole machine: make test has nothing else running yet).
BUILD_P ?= 2
control-plane:
	@if ! command -v go >/dev/null; then \
	  echo "warning: go not found: the real control plane is not built (its tests skip); install Go >= 1.24"; \
	else \
	  BUILD_P=$(BUILD_P) bash tools/build-control-plane.sh $(CONTROL_PLANE_CACHE) $(K8S_VERSION) $(ETCD_VERSION) && \
	  BUILD_P=$(BUILD_P) bash tools/build-nodeagent.sh $(CONTROL_PLANE_CACHE); \
	fi

clean:
	rm -rf $(VENV) .tox build *.egg-info reports/*.html reports/*.json reports/*.xml
