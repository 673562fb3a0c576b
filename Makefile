# One-word targets; the README and .ci/run call these.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
NODE_STAMP := tests/real-client/node_modules/.installed

.PHONY: setup run serve test check format bench bench-statements bench-arrival bench-seed bench-scenarios bench-report bench-compare bench-capacity bench-sse bench-soak sweep dashboards clean

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

# make sweep SWEEP=scenarios/sweeps/database.toml SWEEP_ARGS="--step-s 20 --keep-requests none".
# Exit 1 (no measured cell holds the target) has done its job: the report says what would.
SWEEP ?= scenarios/sweeps/nodes.toml
sweep: setup
	$(BIN)/testbed sweep $(SWEEP) $(SWEEP_ARGS) || test $$? -eq 1

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

# make bench-capacity BENCH_ARGS="--option database.cpu_limit=0.05 --repeats 3"  (a database-bound landscape)
bench-capacity: setup
	$(BIN)/python -m testbed.bench.capacity $(BENCH_ARGS)

# make bench-sse BENCH_ARGS="--connections 5000 --hold-s 60 --sample 1000"
bench-sse: setup
	$(BIN)/python -m testbed.bench.sse $(BENCH_ARGS)

# 30 minutes of the production mix at 5 times on stage (scenarios/soak.toml): prints each process's
# RSS growth per hour and each route's p90 drift. A shorter proof: make bench-soak SOAK_ARGS="--duration 180"
# (a window under 10 minutes after the ramp is reported, not judged). Exit 1 (a verdict failed) is a result.
bench-soak: setup
	$(BIN)/testbed run --profile stage --scenario soak $(SOAK_ARGS) || test $$? -eq 1

# The Grafana boards from their Python definitions (dashboards/); the JSON is committed.
dashboards: setup
	$(BIN)/python -m dashboards.generate

clean:
	rm -rf var results .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

bench-report: setup
	$(BIN)/python -m testbed.bench.report $(BENCH_ARGS)

bench-compare: setup
	$(BIN)/python -m testbed.bench.compare $(BENCH_ARGS)

# The compose files and Kubernetes overlays, rendered from scenarios/landscapes/ (docs/deploy.md).
deploy-files: setup
	$(BIN)/testbed deploy render
