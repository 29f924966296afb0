# make demo: set up .venv and run the main job.  make test: set up and run every check.
# Both are idempotent and work from a clean clone on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NODE_DIR := tests/interop/node
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck pytest bench system-deps node-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the package metadata changes; sources are installed editable.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet -e '.[fleet]'  # the fleet row of `sciwire demo`
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
	$(BIN)/ruff check src tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy --strict src

pytest: $(VENV)/.installed-test system-deps node-deps
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache
