# COELHO RealTime: every set-up step lives here, so a clean clone needs only `make up` / `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUICK ?=
KAFKA ?=

.PHONY: up test bench lint install clean help

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its pinned dependencies

up: $(STAMP)  ## run the platform locally (embedded Valkey, six functions, three producers); KAFKA=1 goes through Kafka
	$(BIN)/coelho up $(if $(KAFKA),--kafka,)

test: $(STAMP)  ## lint, then the whole test suite on real services
	$(BIN)/ruff check functions eventing tests bench
	$(BIN)/python -m pytest -q

bench: $(STAMP)  ## benchmarks: prints a table, writes bench/results.json (QUICK=1 for a short run)
	$(BIN)/python bench/run.py $(if $(QUICK),--quick,)

lint: $(STAMP)  ## ruff only
	$(BIN)/ruff check functions eventing tests bench

clean:  ## remove the venv and local state
	rm -rf $(VENV) .coelho
