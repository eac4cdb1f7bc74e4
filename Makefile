# gpupool — one entry point for every routine task. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST := $(VENV)/bin/pytest
GPUPOOL := $(VENV)/bin/gpupool
STAMP := $(VENV)/.installed

.PHONY: help install crds lint unit e2e test bench demo demo-down clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk -F':.*?## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	@touch $@

install: $(STAMP) ## Create the virtual environment with gpupool and its test tools

crds: $(STAMP) ## Regenerate crds/ from the pydantic models
	$(GPUPOOL) crds --output-dir crds

lint: $(STAMP) ## ruff, mypy --strict and the import layering contracts
	$(VENV)/bin/ruff check operator tests
	$(VENV)/bin/ruff format --check operator tests
	$(VENV)/bin/mypy operator/gpupool
	$(VENV)/bin/lint-imports

unit: $(STAMP) ## Fast tests: no cluster
	$(PYTEST) -q tests/unit

e2e: $(STAMP) ## End-to-end tests against the local control plane (brought up if needed)
	$(PYTEST) -q tests/e2e

# One command for every test, unit and end-to-end. pytest's exit code 5 (nothing collected) fails.
test: $(STAMP) ## Every test: lint, unit, end-to-end
	$(MAKE) --no-print-directory lint
	$(PYTEST) -q tests

bench: $(STAMP) ## Operator speed at scale on a separate local cluster (250 nodes, 1,000 models)
	$(PY) bench/operator_scale.py

demo: $(STAMP) ## Local cluster, gpupool, sample models sized, placed and scaled
	$(PY) tools/demo.py

demo-down: ## Stop the demo's operator and the local cluster
	-@pid=$${GPUPOOL_CLUSTER_DIR:-.cluster}/operator.pid; [ -f $$pid ] && kill $$(cat $$pid) 2>/dev/null; rm -f $$pid
	$(MAKE) --no-print-directory cluster-down

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

-include mk/*.mk
