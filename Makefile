# The README's two commands: `make run` and `make test`. Both set up everything they need.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck imports policy-test pytest bench bench-tools test-tools clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml requirements/regopy.txt requirements/opa-engine.txt $(wildcard service/maestro_gate/engine/_*.c service/maestro_gate/engine/_*.h service/maestro_gate/engine/_*.cc) | $(BIN)/python
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/regopy.txt
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --ignore-requires-python --no-deps --require-hashes -r requirements/opa-engine.txt
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/maestro-gate serve

test: $(STAMP) test-tools lint typecheck imports policy-test pytest

# Debian tools the deployment tests drive: docker-compose validates the compose file offline,
# promtool (package prometheus) checks the alert rules.
test-tools:
	@command -v docker-compose >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose prometheus >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

policy-test: $(STAMP)
	$(BIN)/maestro-gate policy check policies
	$(BIN)/maestro-gate policy test policies
	$(BIN)/maestro-gate policy test --engine opa policies

pytest: $(STAMP)
	$(BIN)/pytest

bench-tools:
	@command -v wrk >/dev/null 2>&1 && command -v hey >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk hey >/dev/null; }

# The audit bench also measures PostgreSQL; override the DSN for another server.
bench: export MAESTRO_GATE_TEST_PG_DSN ?= postgresql://postgres@127.0.0.1:5432/test
bench: $(STAMP) bench-tools
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/audit_bench.py
	$(BIN)/python bench/service_bench.py
	$(BIN)/python bench/opa_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
