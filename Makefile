# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow lint typecheck bench bench-prune system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## demo: create a virtualenv, install safehold, run the self-contained demo
demo: $(STAMP)
	$(BIN)/safehold demo

## system-deps: Debian packages the tests need (dump clients, sshd); installs only what is missing
system-deps:
	@bash scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## test: everything CI runs: lint, types, the whole bounded test suite
test: $(STAMP) system-deps lint typecheck
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

## test-slow: the long soak/stress variants (each may take up to 2 hours on a loaded 2-core machine)
test-slow: $(STAMP) system-deps
	$(BIN)/pytest -m slow --timeout 7200 $(PYTEST_ARGS)

## bench: the benchmark against restic and borg (installs them from Debian's packages)
bench: $(STAMP)
	@bash scripts/system-deps.sh bench
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

## bench-prune: forget --keep-daily 7 --prune after 30 daily backups, safehold next to restic (BENCH_PRUNE_ARGS: --scale, --runs, ...)
bench-prune: $(STAMP)
	@bash scripts/system-deps.sh bench
	$(BIN)/python -m benchmarks.prunebench $(BENCH_PRUNE_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
