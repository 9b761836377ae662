# The two README commands. Both install what is missing first, so they work on a fresh Debian machine as root.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBS := iproute2 iptables nftables conntrack chromium
STAMP := $(VENV)/.installed

.PHONY: demo test lint type sysdeps kubectl clean

demo: sysdeps $(STAMP) kubectl
	$(BIN)/netconform demo --out reports

test: sysdeps $(STAMP) kubectl
	$(BIN)/tox -e lint,type,py

lint: $(STAMP)
	$(BIN)/tox -e lint

type: $(STAMP)
	$(BIN)/tox -e type

# Debian packages the lab and the tests need; installed only when missing and only as root.
sysdeps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
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

clean:
	rm -rf $(VENV) .tox build *.egg-info reports/*.html reports/*.json reports/*.xml
