# Rapport — everyday commands. `make run` and `make test` need nothing but python3 (≥ 3.11);
# Java 17 + Maven are used, when present, to run the tests against real Apache Kafka.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install run test lint format migrate bench chaos fuzz kafka clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## Start infrastructure (embedded unless configured), migrate, run the gateway + 4 services.
run: $(STAMP)
	$(BIN)/rapport run

## Lint, type-check, then the whole test suite against real PostgreSQL and a real broker.
test: lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared gateway services tests migrations/env.py

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Apply every part's migrations (embedded PostgreSQL unless DATABASE_URL is set).
migrate: $(STAMP)
	$(BIN)/rapport migrate

## Benchmarks; figures and ratios are printed, nothing is asserted.
bench: $(STAMP)
	$(BIN)/python -m tests.bench

## Crash and stall the running parts under load; projections must match ground truth.
ROUNDS ?= 20
chaos: $(STAMP)
	CHAOS_ROUNDS=$(ROUNDS) $(BIN)/pytest -q -s --timeout=0 tests/chaos

## Contract fuzzing (schemathesis) of every service's OpenAPI and the gateway's merged one;
## FUZZ_EXAMPLES per operation and phase, plus the coverage phase (the normal test run: 5,
## no coverage phase). Prints examples run per spec and the known deviations met.
FUZZ_EXAMPLES ?= 40
fuzz: $(STAMP)
	RAPPORT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) RAPPORT_FUZZ_COVERAGE=1 $(BIN)/pytest -p no:cacheprovider --timeout=0 --show-capture=no tests/fuzz

## Real Apache Kafka (single-node KRaft, jars from Maven Central) on :9092 until Ctrl-C.
kafka: $(STAMP)
	$(BIN)/rapport kafka

clean:
	rm -rf $(VENV) .rapport .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
