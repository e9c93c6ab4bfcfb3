# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet -c requirements/constraints.txt

.PHONY: demo docs chromium test lint typecheck pytest clean

$(BIN)/python:
	@# The interpreter must answer: a program that runs but is not Python
	@# (PYTHON=/bin/true) prints nothing and is refused too.
	@answer=$$($(PYTHON) -c 'import sys; print(sys.version_info >= (3, 11))' 2>/dev/null); \
	if [ "$$answer" = False ]; then \
		echo "diffcore needs Python 3.11 or newer; $(PYTHON) is older" \
			"(pick another: make PYTHON=python3.11 ...)"; exit 1; \
	elif [ "$$answer" != True ]; then \
		echo "$(PYTHON) was not found or does not run Python" \
			"(pick another: make PYTHON=python3.11 ...)"; exit 1; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo: $(BIN)/python pyproject.toml requirements/demo.txt requirements/constraints.txt
	$(PIP) -e . -r requirements/demo.txt
	touch $@

$(VENV)/.test: $(BIN)/python pyproject.toml backends/torch/pyproject.toml backends/cupy/pyproject.toml requirements/test.txt requirements/demo.txt requirements/constraints.txt
	$(PIP) -e . -r requirements/test.txt -r requirements/demo.txt
	$(PIP) --no-deps -e backends/torch -e backends/cupy
	touch $@

$(VENV)/.docs: $(VENV)/.demo docs/requirements.txt requirements/constraints.txt
	$(PIP) -r docs/requirements.txt
	touch $@

demo: $(VENV)/.demo
	$(BIN)/diffcore demo

# The Sphinx site with warnings as errors; it runs the demo for its figures.
docs: $(VENV)/.docs
	rm -rf docs/_generated docs/_build/html
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

# Headless Chromium for tests/test_docs_browser.py, from Debian's archive.
# Installing it needs root (CI runs as root); without root the browser test
# skips, saying why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else \
			echo "chromium is missing and installing it needs root:" \
				"the docs browser test will skip"; \
		fi; }

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.test
	$(BIN)/mypy

pytest: $(VENV)/.test docs chromium
	$(BIN)/python -m pytest

test: lint typecheck pytest

# The benchmark tables of docs/benchmarks.md (about 15 s; quiet machine).
.PHONY: bench
bench: $(VENV)/.test
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis diffcore-demo \
		docs/_build docs/_generated
