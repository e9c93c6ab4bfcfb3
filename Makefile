# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet -c requirements/constraints.txt

.PHONY: demo test lint typecheck pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo: $(BIN)/python pyproject.toml requirements/demo.txt requirements/constraints.txt
	$(PIP) -e . -r requirements/demo.txt
	touch $@

$(VENV)/.test: $(BIN)/python pyproject.toml requirements/test.txt requirements/demo.txt requirements/constraints.txt
	$(PIP) -e . -r requirements/test.txt -r requirements/demo.txt
	touch $@

demo: $(VENV)/.demo
	$(BIN)/python scripts/forward_demo.py

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.test
	$(BIN)/mypy

pytest: $(VENV)/.test
	$(BIN)/python -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis diffcore-demo
