# Two commands set everything up on a fresh machine:
#   make demo   - the whole service on this machine (embedded broker, simulators, worker, sample orders)
#   make test   - the test suite (installs what it needs first)
# Then: make check (format, lint, types), make soak (large reliability runs), make bench (performance).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ASYNCAPI := tools/asyncapi/node_modules/.installed
PYTEST_ARGS ?=
# Most of the suite waits on real processes (broker, workers, simulated clocks), not on the CPU:
# test files run in parallel (a file's tests stay together: some share module fixtures).
PYTEST_WORKERS ?= 3

.PHONY: all install tools test check fmt demo soak bench schemas docs clean floors

all: check test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# promtool (Debian's prometheus package) for metric/rule checks; the AsyncAPI parser from npm.
tools: $(ASYNCAPI)
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

$(ASYNCAPI): tools/asyncapi/package.json
	cd tools/asyncapi && (npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error)
	touch $@

test: $(STAMP) tools
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The lowest versions pyproject.toml allows for every direct dependency (uv from PyPI, a separate
# venv), and the unit tests there: a floor the code does not work with fails here.
FLOORS := .venv-floors
floors: $(STAMP)
	rm -rf $(FLOORS)
	$(VENV)/bin/uv venv --quiet -p $(PYTHON) $(FLOORS)
	$(VENV)/bin/uv pip install --quiet -p $(FLOORS)/bin/python --resolution lowest-direct -e '.[dev]'
	$(FLOORS)/bin/tasking-worker --help >/dev/null
	$(FLOORS)/bin/python -m pytest -n 2 --dist loadfile -p no:cacheprovider tests/unit

check: $(STAMP)
	$(VENV)/bin/ruff format --check worker tests bench
	$(VENV)/bin/ruff check worker tests bench
	$(VENV)/bin/mypy worker
	$(VENV)/bin/lint-imports

fmt: $(STAMP)
	$(VENV)/bin/ruff format worker tests bench
	$(VENV)/bin/ruff check --fix worker tests bench

schemas: $(STAMP)
	$(VENV)/bin/tasking-worker schemas

# docs/reference/ (configuration, metrics, reason codes) and helm/tasking-worker/README.md.
docs: $(STAMP)
	$(VENV)/bin/tasking-worker docs

demo: $(STAMP)
	$(VENV)/bin/tasking-worker demo --auto-approve

soak: $(STAMP) tools
	$(PY) -m pytest -m soak tests/reliability $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(FLOORS) tools/asyncapi/node_modules .pytest_cache .mypy_cache .ruff_cache
