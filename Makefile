# The README's two commands: `make run` and `make test`. Both set up everything they need.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck imports policy-test pytest sanitize bench bench-tools test-tools clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml requirements/regopy.txt requirements/opa-engine.txt $(wildcard service/maestro_gate/engine/_*.c service/maestro_gate/engine/_*.h service/maestro_gate/engine/_*.cc) | $(BIN)/python
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/regopy.txt
	$(BIN)/pip install --quiet -e '.[dev,adapters]'
	$(BIN)/pip install --quiet --ignore-requires-python --no-deps --require-hashes -r requirements/opa-engine.txt
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/maestro-gate serve

test: $(STAMP) test-tools lint typecheck imports policy-test pytest

# Debian tools the tests drive: docker-compose validates the compose file offline, promtool
# (package prometheus) checks the alert rules, Graphviz's dot renders the posture topology SVG,
# chromium runs the console's browser tests (Playwright drives it; it downloads no browser).
test-tools:
	@command -v docker-compose >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && command -v dot >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose prometheus graphviz chromium >/dev/null; }

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

# The native code (engine/_rego.c, _pool.c, _patches.cc) built with AddressSanitizer and
# UndefinedBehaviorSanitizer in a venv of its own, running the engine, pool, patch and
# conformance tests (the bundle on both engines); `.ci/run` calls it after `make test`.
# Deselected: the two tests that check the fixes against rego-cpp's own allocator, which ASan
# replaces, and the one that needs a first decision inside a tight deadline (ASan is ~3x slower). Leak detection is off: CPython's own allocations at exit are not the extension's.
SANITIZE_VENV := .venv-sanitize
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize:
	@test -x $(SANITIZE_VENV)/bin/python || $(PYTHON) -m venv $(SANITIZE_VENV)
	$(SANITIZE_VENV)/bin/pip install --quiet --no-deps --require-hashes -r requirements/regopy.txt
	CFLAGS="$(SANITIZE_FLAGS)" LDFLAGS="-fsanitize=address,undefined" \
	  $(SANITIZE_VENV)/bin/pip install --quiet --force-reinstall --no-deps .
	$(SANITIZE_VENV)/bin/pip install --quiet '.[dev]'
	$(SANITIZE_VENV)/bin/pip install --quiet --ignore-requires-python --no-deps --require-hashes -r requirements/opa-engine.txt
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so):$$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(SANITIZE_VENV)/bin/pytest -q -p no:cacheprovider tests/test_engine_pool.py \
	  tests/test_engine_patches.py tests/test_engine_embedded.py tests/test_engine_conformance.py \
	  --deselect tests/test_engine_pool.py::test_loading_the_patches_leaves_rego_cpp_its_own_allocator \
	  --deselect tests/test_engine_patches.py::test_the_fixes_are_loaded_and_in_effect \
	  --deselect tests/test_engine_pool.py::test_a_tight_deadline_is_met_from_the_first_decision

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
	rm -rf $(VENV) $(SANITIZE_VENV) .mypy_cache .ruff_cache .pytest_cache
