# Two entry points: `make serve` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: serve test lint typecheck contracts unit bench clean event-fixtures

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

## Installs and runs the gateway on the embedded defaults (http://127.0.0.1:7308).
serve: $(VENV)/.installed
	$(BIN)/warest serve

## Installs the dev dependencies and runs the whole suite: lint, types, import contract, tests.
test: $(VENV)/.dev-installed
	$(BIN)/ruff check src projections tests bench docs/examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src projections tests bench docs/examples

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

contracts: $(VENV)/.dev-installed
	$(BIN)/lint-imports

## After changing an event class (version bump, new class): writes the missing stored-event
## fixtures of current versions and regenerates the schema snapshot (docs/events.md#versions).
event-fixtures: $(VENV)/.dev-installed
	$(BIN)/python -m tests.fixtures.make_event_fixtures

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/append.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
