# One-word targets; the README and .ci/run call these.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
NODE_STAMP := tests/real-client/node_modules/.installed

.PHONY: setup run serve test check format bench bench-statements bench-arrival bench-seed bench-scenarios bench-report bench-compare bench-capacity clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=python3.x (3.11 or newer)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

$(NODE_STAMP): tests/real-client/package.json tests/real-client/package-lock.json
	cd tests/real-client && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The main job; make run RUN_ARGS="--profile stage --duration 60". A completed run whose SLO
# failed or which is invalid (exit 1) has done its job: the verdicts are printed and in the report.
run: setup
	$(BIN)/testbed run $(RUN_ARGS) || test $$? -eq 1

serve: setup
	$(BIN)/backbone serve

test: setup $(NODE_STAMP)
	$(BIN)/python -m pytest

check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# make bench BENCH_ARGS="--only Files --pairs 5"
bench: setup
	$(BIN)/python -m testbed.bench.throughput $(BENCH_ARGS)

# make bench-statements BENCH_ARGS="--only SyncRuns --flame-dir results/flames"
bench-statements: setup
	$(BIN)/python -m testbed.bench.statements $(BENCH_ARGS)

bench-arrival: setup
	$(BIN)/python -m testbed.bench.arrival $(BENCH_ARGS)

# make bench-seed SEED_ARGS="--pool light --mode api"
bench-seed: setup
	$(BIN)/python -m testbed.bench.seeding $(SEED_ARGS)

# make bench-scenarios BENCH_ARGS="--only 03 production-mix --duration-s 30"
bench-scenarios: setup
	$(BIN)/python -m testbed.bench.scenarios $(BENCH_ARGS)

# make bench-capacity BENCH_ARGS="--option database.cpu_limit=0.1 --repeats 3"
bench-capacity: setup
	$(BIN)/python -m testbed.bench.capacity $(BENCH_ARGS)

clean:
	rm -rf var results .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

bench-report: setup
	$(BIN)/python -m testbed.bench.report $(BENCH_ARGS)

bench-compare: setup
	$(BIN)/python -m testbed.bench.compare $(BENCH_ARGS)
