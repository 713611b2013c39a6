# auth-service: the two commands of the README, and a few more.
#   make run   - create .venv, install, serve on http://127.0.0.1:8080 (hybrid store)
#   make test  - create .venv, install, install/start test services, run every test
#   make bench - benchmark against the framework's ceiling (bench/README.md)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

# Also installs the test store plugin, a separate distribution with its own entry point
# (tests/store_plugin, used by tests/e2e/test_store_plugin.py).
$(STAMP): pyproject.toml tests/store_plugin/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps -e tests/store_plugin
	touch $(STAMP)

install: $(STAMP)

run: install
	@$(BIN)/python scripts/demo_clients.py .demo/clients.toml
	CLIENTS_FILE=$${CLIENTS_FILE:-.demo/clients.toml} $(BIN)/auth-service serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install
	@bash scripts/install-test-services.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -p no:cacheprovider -rs $(PYTEST_ARGS)

# Ceilings and the service (hybrid, hybrid+Redis, sql), scale, purge, workers, memory;
# about 8 minutes with 10 s runs. Shorter: make bench BENCH_ARGS="--duration 3 --warmup 1"
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .demo .test-services test-artifacts .pytest_cache .mypy_cache .ruff_cache
