# Krowoc Admin: set-up, demo, tests, lint and benchmark.
#
# Every target does its own set-up: on a fresh machine only Python 3.11+ and make are needed.
# Nothing is activated; tools run from .venv/bin. `make` alone lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# Written once `pip install -e '.[dev,stack]'` has succeeded; rebuilt when pyproject.toml changes.
INSTALLED := $(VENV)/.installed

# Interpreter to build the venv with; empty means the first of python3.11, python3 that is 3.11+.
PYTHON ?=

DEMO_ADDRESS ?= 127.0.0.1
DEMO_PORT ?= 8501
DEMO_EXECUTIONS ?= 1000000
DEMO_DAYS ?= 30
DEMO_SEED ?= 42
# The live simulator's executions per second: the weekly mean of the seed's daily wave (the seed's
# default month averages about 0.4 per second).
DEMO_RATE ?= 0.5
# Extra options of the demo's seed (demo-check passes --no-progress).
DEMO_SEED_FLAGS ?=
PARTITION_MONTHS_AHEAD ?= 3
# make demo-check: a smaller seed, its own dashboard port, and how long the first start may take
# (it downloads the Node packages and creates every database).
CHECK_EXECUTIONS ?= 50000
CHECK_DAYS ?= 7
CHECK_PORT ?= 8599
CHECK_TIMEOUT ?= 900

PYTEST_ARGS ?=
# Parallel test workers (pytest-xdist); tests that share a server of their own stay in one worker.
TEST_WORKERS ?= 3
SIZE ?= 1m

.PHONY: help venv install demo dev demo-check stack-up stack-status stack-down test lint bench

help: ## Show this list
	@echo "Krowoc Admin. Usage: make <target> [VAR=value]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables: PYTEST_ARGS='-k name -x' (test), TEST_WORKERS=3 (test; 0 runs in one process),"
	@echo "           SIZE=1m|10m (bench), PYTHON=/path/to/python3.11 (venv)."

# -- set-up -----------------------------------------------------------------------------------

venv: $(BIN)/python ## Create .venv with Python 3.11 or newer

$(BIN)/python:
	@py="$(PYTHON)"; \
	if [ -z "$$py" ]; then \
	  for candidate in python3.11 python3; do \
	    if command -v "$$candidate" >/dev/null 2>&1 \
	       && "$$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then \
	      py="$$candidate"; break; \
	    fi; \
	  done; \
	fi; \
	if [ -z "$$py" ] || ! "$$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then \
	  if [ -n "$$py" ]; then what="$$py is not Python 3.11+"; else what="no python3.11, and python3 is missing or older"; fi; \
	  echo "error: Krowoc Admin needs Python 3.11 or newer ($$what)." >&2; \
	  echo "       Install Python 3.11 (for example: apt-get install python3.11 python3.11-venv)," >&2; \
	  echo "       or name an interpreter: make PYTHON=/path/to/python3.11 install" >&2; \
	  exit 1; \
	fi; \
	echo "Creating $(VENV) with $$("$$py" --version 2>&1) ($$(command -v "$$py"))"; \
	"$$py" -m venv $(VENV) || { \
	  rm -rf $(VENV); \
	  echo "error: could not create $(VENV) (on Debian/Ubuntu: apt-get install python3.11-venv)." >&2; \
	  exit 1; \
	}

install: $(INSTALLED) ## Install the project and its dev tools into .venv (only when pyproject.toml changed)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check --quiet --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev,stack]'
	@touch $@

# -- run --------------------------------------------------------------------------------------

# The demo's set-up, shared by demo and dev: every step is safe to repeat.
define demo_prepare
$(BIN)/krowoc-admin stack up
$(BIN)/krowoc-admin migrate
$(BIN)/krowoc-admin partitions ensure --months-ahead $(PARTITION_MONTHS_AHEAD)
$(BIN)/krowoc-admin seed --executions $(DEMO_EXECUTIONS) --days $(DEMO_DAYS) --seed $(DEMO_SEED) --if-empty $(DEMO_SEED_FLAGS)
$(BIN)/krowoc-admin leaderboards refresh
$(BIN)/krowoc-admin stack traffic --rate $(DEMO_RATE)
endef

demo: install ## Start the whole embedded stack, seed a month (once), keep live traffic flowing, run the dashboard
	$(demo_prepare)
	@echo
	@echo "  Krowoc Admin is starting at http://$(DEMO_ADDRESS):$(DEMO_PORT)  (Ctrl-C stops the dashboard;"
	@echo "  the servers and the live traffic keep running until 'make stack-down')"
	@echo
	exec $(BIN)/streamlit run dashboard/app.py --server.address $(DEMO_ADDRESS) --server.port $(DEMO_PORT)

dev: install ## Like demo, with the dashboard reloading on every saved change (Streamlit's run-on-save)
	$(demo_prepare)
	@echo
	@echo "  Krowoc Admin (development) at http://$(DEMO_ADDRESS):$(DEMO_PORT): pages reload when a file is saved"
	@echo
	exec $(BIN)/streamlit run dashboard/app.py --server.address $(DEMO_ADDRESS) --server.port $(DEMO_PORT) \
	  --server.runOnSave true --server.fileWatcherType auto

demo-check: install ## Run the make demo path headless (smaller seed), walk every page in Chromium as each role, stop
	$(BIN)/python -m devstack.democheck --executions $(CHECK_EXECUTIONS) --days $(CHECK_DAYS) \
	  --port $(CHECK_PORT) --timeout $(CHECK_TIMEOUT)

stack-up: install ## Start the embedded PostgreSQL, Valkey, Unleash, OpenID provider and Prometheus under .krowoc/
	$(BIN)/krowoc-admin stack up

stack-status: install ## Say whether the embedded servers are running, with their URLs
	$(BIN)/krowoc-admin stack status

stack-down: ## Stop the embedded servers and the live traffic (data under .krowoc/ is kept)
	@if [ -x $(BIN)/krowoc-admin ]; then \
	  $(BIN)/krowoc-admin stack down; \
	else \
	  echo "No $(BIN)/krowoc-admin: nothing was installed, so no embedded stack is running."; \
	fi

# -- check ------------------------------------------------------------------------------------

test: install ## Run the test suite (starts the embedded stack for the run unless KROWOC_TEST_* URLs are set)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: install ## ruff (lint + format check), mypy --strict on core, queries, devstack and cli, import-linter layers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core queries devstack cli
	$(BIN)/lint-imports

bench: install ## Run the benchmark (SIZE=1m or 10m) and write bench/RESULTS.md
	$(BIN)/python -m bench.run --size $(SIZE)
