# make demo: set up .venv and run the main job.  make test: set up and run every check.
# Both are idempotent and work from a clean clone on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NODE_DIR := tests/interop/node
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck pytest bench compat system-deps node-deps clean
.PHONY: matrix

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the package metadata changes; sources are installed editable.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[drms,fleet]'  # drms.Client, the fleet row
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/sciwire demo

# System packages the interop tests need: JSAMP (hub, hubtester) and a Java runtime.
system-deps:
	@command -v jsamp >/dev/null 2>&1 || { \
	  echo "installing jsamp..."; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends jsamp >/dev/null; }

# Node packages for the interop tests, into a git-ignored node_modules.
node-deps:
	@if [ -f $(NODE_DIR)/package.json ] && [ ! -d $(NODE_DIR)/node_modules ]; then \
	  echo "installing node test packages..."; \
	  npm install --prefix $(NODE_DIR) --no-audit --no-fund --silent; fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/python tools/unasync.py --check

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy --strict src

pytest: $(VENV)/.installed-test system-deps node-deps
	$(BIN)/pytest

test: lint typecheck pytest docs

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py

# The originals' own test suites, import lines rewritten to sciwire (not part of `make test`).
# astropy's and drms's suites ship in their wheels; name checkouts for the other three:
#   make compat IBLUTIL=~/src/iblutil PYIFCBCLIENT=~/src/pyifcbclient CRYOSPARC_TOOLS=~/src/cryosparc-tools
compat: $(VENV)/.installed-test
	$(BIN)/python tools/compat.py samp drms
	$(if $(IBLUTIL),$(BIN)/python tools/compat.py rig --checkout $(IBLUTIL))
	$(if $(PYIFCBCLIENT),$(BIN)/python tools/compat.py ifcb --checkout $(PYIFCBCLIENT))
	$(if $(CRYOSPARC_TOOLS),$(BIN)/python tools/compat.py command --checkout $(CRYOSPARC_TOOLS))

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache

# The manual (Sphinx, MyST pages, furo): warnings are errors, output in the git-ignored docs/_build.
.PHONY: docs
$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(VENV)/.installed-docs
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "manual: docs/_build/html/index.html"

# --- workflow tiers --------------------------------------------------------------------------
# make check:   ruff, ruff format --check, the unasync check, mypy --strict and the unit tier;
#               only pip installs (the dev extra: no peers, no apt-get, no npm, no sudo).
# make interop: the peers (pip, jsamp, node packages) and the interop tier.
# make test:    everything, as CI runs it.  Tiers are pytest markers set by path in
#               tests/conftest.py (tests/interop -> interop, tests/adversarial -> adversarial).
.PHONY: check interop format

UNIT_TIER := not interop and not slow and not adversarial
# the unit tier waits (timeouts, peers) more than it computes: four workers on the 2-vCPU
# machine took 23 s where two took 33 s, for 10% more CPU (PYTEST_WORKERS=0: one process)
PYTEST_WORKERS ?= 4
# the unit tier runs hypothesis's property tests with a quarter of their examples (make test: all)
CHECK_EXAMPLES ?= 0.25

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

check: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/python tools/unasync.py --check
	$(BIN)/mypy --strict src
	SCIWIRE_TEST_EXAMPLES=$(CHECK_EXAMPLES) \
	  $(BIN)/pytest -q -n $(PYTEST_WORKERS) -m "$(UNIT_TIER)" --ignore=tests/interop \
	  --ignore=tests/adversarial tests

interop: $(VENV)/.installed-test system-deps node-deps
	$(BIN)/pytest -m interop

format: $(VENV)/.installed-dev
	$(BIN)/ruff format src tests bench tools

# hardening: the test suite on every Python we claim (3.10-3.13) that pyenv has here, each in its own
# .venv-3.1x (not part of `make test`). MATRIX_PYTHONS overrides the interpreters found,
# MATRIX_PYTEST_ARGS adds pytest arguments (e.g. a test path).
PYENV_ROOT ?= $(HOME)/.pyenv
MATRIX_PYTHONS ?= $(foreach v,10 11 12 13,$(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/3.$(v).*/bin/python))))
MATRIX_PYTEST_ARGS ?=

matrix: system-deps node-deps
	@fail=""; for py in $(MATRIX_PYTHONS); do \
	  v=$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])'); venv=.venv-$$v; \
	  [ -x $$venv/bin/python ] || $$py -m venv $$venv; \
	  [ $$venv/.installed-test -nt pyproject.toml ] || { \
	    $$venv/bin/python -m pip install --quiet --upgrade pip && \
	    $$venv/bin/python -m pip install --quiet -e '.[test]' && touch $$venv/.installed-test; } || \
	    { fail="$$fail $$v(install)"; continue; }; \
	  echo "== Python $$v ($$py)"; \
	  $$venv/bin/pytest -q -p no:randomly $(MATRIX_PYTEST_ARGS) || fail="$$fail $$v"; \
	done; \
	if [ -n "$$fail" ]; then echo "matrix failed on:$$fail"; exit 1; fi; echo "matrix: all passed"
