# fanmeter: `make run` and `make test` work on a fresh machine from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-property test-integration test-e2e check lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## Everything on the embedded default with demo traffic.
	$(BIN)/fanmeter up

# The pure rules must be covered completely by the tests (STYLE.md 24).
COVERAGE := --cov=kernel.instants --cov=metering.domain --cov=billing.domain --cov-fail-under=100 --cov-report=term-missing:skip-covered

test: $(STAMP)  ## The whole suite: lint, types, every test tier.
	$(MAKE) check
	$(BIN)/pytest $(COVERAGE)

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

test-property: $(STAMP)
	$(BIN)/pytest tests/property

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration

test-e2e: $(STAMP)
	$(BIN)/pytest tests/e2e

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
