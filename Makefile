# fanmeter: `make run` and `make test` work on a fresh machine from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-property test-integration test-e2e test-faults check lint typecheck clean e2e-packages

# The end-to-end tier runs real servers and a real browser: Debian's packages, by the command each
# provides. As root with apt-get they are installed; otherwise the tier stops with one line naming
# the command to run.
E2E_PACKAGES := pushpin:pushpin redis-server:redis-server chromium:chromium
APT_UPDATED := $(VENV)/.apt-updated

e2e-packages:
	@for pair in $(E2E_PACKAGES); do \
	  command=$${pair%%:*}; package=$${pair#*:}; \
	  command -v $$command >/dev/null 2>&1 && continue; \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	    echo "the end-to-end tests need $$package: run 'sudo apt-get install $$package'" >&2; exit 1; \
	  fi; \
	  echo "installing $$package (apt-get)"; \
	  if [ ! -e $(APT_UPDATED) ]; then apt-get update -qq >/dev/null && mkdir -p $(VENV) && touch $(APT_UPDATED); fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$package >/dev/null || exit 1; \
	done

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## Everything on the embedded default with demo traffic.
	$(BIN)/fanmeter up

# The pure rules must be covered completely by the tests (STYLE.md 24).
COVERAGE := --cov=kernel.instants --cov=metering.domain --cov=billing.domain --cov-fail-under=100 --cov-report=term-missing:skip-covered

# The faults tier restarts PostgreSQL and RabbitMQ, so `make test` leaves it out and .ci/run's
# PostgreSQL + RabbitMQ pass runs it (`make test-faults`).
test: $(STAMP) e2e-packages  ## The whole suite: lint, types, every test tier but faults.
	$(MAKE) check
	$(BIN)/pytest $(COVERAGE) -m "not faults"

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

test-property: $(STAMP)
	$(BIN)/pytest tests/property

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration

test-e2e: $(STAMP) e2e-packages
	$(BIN)/pytest tests/e2e

test-faults: $(STAMP)  ## SIGKILLs, SIGTERMs and server restarts; needs FANMETER_DATABASE_URL (PostgreSQL) and an amqp broker.
	$(BIN)/pytest tests/faults -m faults

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
