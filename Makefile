# COELHO RealTime: every set-up step lives here, so a clean clone needs only `make up` / `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv installs exactly uv.lock (every transitive version CI tested); it lives in its own venv under .cache/.
UV_VERSION := 0.13.8
UV := .cache/uv-$(UV_VERSION)/bin/uv
export UV_CACHE_DIR ?= $(CURDIR)/.cache/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
# Debian packages the tests use (installed by infra/local/debian-packages.sh when missing): the container runtime and
# the offline image base (podman, runc, mmdebstrap), the shell linter of the cluster scripts, the UI tests' browser.
DEBIAN_PACKAGES := postgresql podman runc mmdebstrap shellcheck chromium chromium-driver
QUICK ?=
KAFKA ?=
PROMETHEUS ?=
MINUTES ?= 30

# The function image (and the Spark image): one tag everywhere, the package's version (coelho.deploy.knative.IMAGE).
# IMAGE_BASE: empty for the Containerfile's pinned official python:3.11-slim; `make image-base` builds a Debian one
# offline (what the tests use) and `make image IMAGE_BASE=localhost/coelho-base:bookworm-py311` uses it.
IMAGE_BASE ?=
OFFLINE_BASE := localhost/coelho-base:bookworm-py311

.PHONY: system up test bench soak lint install lock lock-check clean help image image-base manifests cluster cluster-down

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .cache/uv-$(UV_VERSION)
	.cache/uv-$(UV_VERSION)/bin/python -m pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --frozen --python $(PYTHON) --all-extras --compile-bytecode
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project exactly as uv.lock pins it

lock: $(UV)  ## re-resolve uv.lock after changing pyproject.toml's dependencies
	$(UV) lock --python $(PYTHON)

lock-check: $(UV)  ## fail when pyproject.toml and uv.lock disagree
	$(UV) lock --check --python $(PYTHON)

up: $(STAMP)  ## run the platform locally (Valkey, MLflow, functions, web UI on :8080, producers); KAFKA=1 through Kafka; PROMETHEUS=1 + Prometheus
	$(BIN)/coelho up $(if $(KAFKA),--kafka,) $(if $(PROMETHEUS),--prometheus,)

system:  ## install the Debian packages the tests use, when missing (as root)
	infra/local/debian-packages.sh $(DEBIAN_PACKAGES)

test: lock-check system $(STAMP)  ## lock check and lint, then the whole test suite on real services
	$(BIN)/ruff check functions eventing tests bench ui infra
	$(BIN)/python -m pytest -q

bench: $(STAMP)  ## benchmarks: prints a table, writes bench/results.json (QUICK=1 for a short run, RUNS=3 for a spread)
	$(BIN)/python bench/run.py $(if $(QUICK),--quick,) $(if $(RUNS),--runs $(RUNS),)

soak: $(STAMP)  ## the three pipelines for MINUTES (30) through coelho up (KAFKA=1: via Kafka); bench/soak.json + PNGs
	$(BIN)/python bench/soak.py --minutes $(MINUTES) $(if $(KAFKA),--kafka,)

lint: $(STAMP)  ## ruff only
	$(BIN)/ruff check functions eventing tests bench ui infra

image: $(STAMP)  ## build the function and Spark images with podman or docker (IMAGE_BASE=... to change the base)
	infra/image/build.sh $(if $(IMAGE_BASE),--base $(IMAGE_BASE),) \
	  "$$($(BIN)/python -c 'from coelho.deploy.knative import IMAGE; print(IMAGE)')"

image-base:  ## a Debian bookworm + python3.11 base made offline with mmdebstrap (no registry needed)
	infra/image/base.sh $(OFFLINE_BASE)

manifests: $(STAMP)  ## regenerate the Knative Services from the function catalog, then check every manifest
	$(BIN)/coelho manifests write && $(BIN)/coelho manifests check

cluster: $(STAMP) image  ## the whole platform on k3d with Knative (needs k3d, kubectl, helm, Docker); idempotent
	infra/k3d/cluster.sh up

cluster-down:  ## delete the k3d cluster
	infra/k3d/cluster.sh down

clean:  ## remove the venv and local state
	rm -rf $(VENV) .coelho
