# Two commands do everything on a fresh machine:  make train   and   make test
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup train test test-fast lint docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

train: setup
	$(BIN)/vae train --out runs/default --force

# Two pytest-xdist workers of one thread each (tests/conftest.py); worksteal: each starts on its half of the
# suite in order (a module's tests, and so its trained fixtures, mostly on one worker), then takes over the rest.
# test: everything (what CI runs). test-fast: without the end-to-end tests (tests/e2e/, marked e2e) and the slow ones.
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist worksteal

test: setup
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not e2e and not slow"

# ruff over everything; mypy over the public API ([tool.mypy] in pyproject.toml), read through a pyro_vae/ folder
# of links, the layout the package installs as.
TYPECHECK := build/typecheck
lint: setup
	$(BIN)/ruff check models guides inference tests bench examples docs
	mkdir -p $(TYPECHECK)/pyro_vae
	for p in models guides inference; do ln -sfn ../../../$$p $(TYPECHECK)/pyro_vae/$$p; done
	cd $(TYPECHECK) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml

# The documentation site (docs/): Sphinx with MyST-NB, warnings as errors, the tutorials executed on the embedded
# data (cached: an unchanged tutorial is not run again). Open docs/_build/html/index.html.
docs: setup
	$(BIN)/sphinx-build -W --keep-going -q -j 2 -b html docs docs/_build/html

clean:
	rm -rf $(VENV) runs .pytest_cache docs/_build docs/_generated
