# The two commands a new machine needs: `make demo` and `make test`. Both create .venv when missing.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nbprod-installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test test-quick bench browser rkernel postgres podman node clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Node.js builds the JupyterLab extension (through jlpm); install Debian's when it is missing.
node:
	@command -v node >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "make: node is missing; install Node.js 18 or newer" >&2; exit 1; fi; }

# Editable install: the build hook compiles the JupyterLab extension (jlpm, shipped with jupyterlab).
$(STAMP): | node
$(STAMP): $(PY) pyproject.toml extension/package.json extension/yarn.lock extension/build_labextension.py \
          $(wildcard extension/src/*.ts extension/style/*)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "jupyterlab>=4.5,<5" hatchling hatch-jupyter-builder
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the browser tests, from Debian (browser downloads do not work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "make: chromium is missing; install Debian's chromium package" >&2; exit 1; fi; }

# R notebooks run as stages through IRkernel (and write metrics with jsonlite): Debian's packages.
rkernel:
	@{ command -v R >/dev/null 2>&1 && R --quiet --no-echo -e 'library(IRkernel); library(jsonlite)' >/dev/null 2>&1 \
	   && jupyter kernelspec list 2>/dev/null | grep -qw ir; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq r-cran-irkernel r-cran-jsonlite >/dev/null; \
	  else echo "make: IRkernel is missing; install Debian's r-cran-irkernel and r-cran-jsonlite" >&2; exit 1; fi; }

# PostgreSQL for the database tests and benchmarks (tests/helpers/postgres.py starts one per test module on
# 127.0.0.1 in a temporary data directory): Debian's package, its server binaries only (no cluster).
postgres:
	@{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "make: PostgreSQL is missing; install Debian's postgresql package" >&2; exit 1; fi; }

# Container images (nbprod image build; tests/test_image.py): podman with runc, and mmdebstrap for the
# tests' locally built base image (no registry is reachable from the test machines), from Debian.
podman:
	@{ command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    podman buildah mmdebstrap runc slirp4netns uidmap >/dev/null; \
	  else echo "make: podman is missing; install Debian's podman buildah mmdebstrap runc slirp4netns uidmap" >&2; exit 1; fi; }

demo: install
	nbprod run
	@echo "Executed notebooks: $(CURDIR)/reports/<stage>.ipynb (versioned by DVC); HTML: reports/<stage>.html"
	@echo "Metrics: .venv/bin/nbprod metrics (or .venv/bin/dvc metrics show)"

# Lint first (seconds), then every test: tests/unit (in process), then tests/func (real processes and
# servers). `make test-quick`: the unit tests, then the functional ones not marked slow (over ~10 s).
test: install browser rkernel postgres podman
	$(PY) -m ruff check nbprod tests benchmarks
	$(PY) -m pytest -q

test-quick: install
	$(PY) -m ruff check nbprod tests benchmarks
	$(PY) -m pytest -q tests/unit
	$(PY) -m pytest -q tests/func -m "not slow and not browser"

bench: install postgres
	$(PY) -m benchmarks
	$(PY) -m benchmarks.serving
	$(PY) -m benchmarks.explain_serving
	$(PY) -m benchmarks.sql

clean:
	rm -rf $(VENV) extension/node_modules extension/lib extension/labextension extension/build-test
