# Two commands: `make run` and `make test`. Each makes the virtual environment it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint quick

$(VENV)/.installed-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[dev]'
	touch $@ $(VENV)/.installed-run

# The handbook (and, later, the forms) at http://127.0.0.1:8000 on embedded defaults.
run: $(VENV)/.installed-run
	$(BIN)/forms-server serve

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Everything: lint, types, then every test (browser tests need Debian's chromium; see README).
test: lint
	$(BIN)/python -m pytest

# While working: lint, types and every test but the browser ones and the wheel (about a minute).
quick: lint
	$(BIN)/python -m pytest -m "not browser and not slow" -q
