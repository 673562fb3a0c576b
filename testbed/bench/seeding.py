"""`make bench-seed`: seed a pool into a fresh PostgreSQL database and print how long it took.

    python -m testbed.bench_seed [--pool heavy] [--mode bulk|api] [--seed 1] [--threads 16]

Creates a database of its own on the PostgreSQL server ($BACKBONE_TEST_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres), seeds, verifies, prints the total time, rows and
seconds per table (bulk) or per phase (api) and the database size, and drops the database.
API mode starts `backbone serve` on that database on a free port (production password hashing
unless `--hash-iterations` says otherwise).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import sqlalchemy as sa

from loadtests.client import ConsumerApiClient
from loadtests.seeding.database import normalise_url
from loadtests.seeding.planner import plan
from loadtests.seeding.verify import verify
from scenarios.pool_schema import load_pool_config
from testbed.processes import free_port, start_python, stop, wait_for_http

CLIENT_SECRET = "test"  # noqa: S105 - the development client, in a database that lives for one run
ADMIN_URL = os.environ.get("BACKBONE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.bench.seeding", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--pool", default="heavy")
    parser.add_argument("--mode", choices=("bulk", "api"), default="bulk")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument(
        "--hash-iterations",
        type=int,
        default=100_000,
        help="api: the server's PBKDF2 iterations (default the backbone's; lower to time the rest)",
    )
    args = parser.parse_args(argv)
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as error:
        print(f"bench-seed: PostgreSQL is not reachable at {ADMIN_URL}: {error}", file=sys.stderr)
        return 2
    name = f"bench_seed_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = normalise_url(f"{ADMIN_URL.rpartition('/')[0]}/{name}")
    try:
        return _bench(args, url, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"bench-seed: dropped database {name}")


def _bench(args: argparse.Namespace, url: str, name: str) -> int:
    config = load_pool_config(args.pool)
    the_plan = plan(config, seed=args.seed)
    for line in the_plan.gaps:
        print(line)
    print(f"bench-seed: pool {config.name}, mode {args.mode}, seed {args.seed}, database {name}")
    print("bench-seed: plan " + ", ".join(f"{kind} {rows:,}" for kind, rows in the_plan.totals.items()))
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "credentials.json"
        started = time.perf_counter()
        if args.mode == "bulk":
            from loadtests.seeding.bulk_run import seed_bulk

            outcome = seed_bulk(
                the_plan, url, client_id="test", client_secret=CLIENT_SECRET, export_path=export
            )
            total = time.perf_counter() - started
            print(f"{'table':<36}{'rows':>12}{'seconds':>10}")
            for table, figures in outcome.report.tables.items():
                print(f"{table:<36}{figures.rows:>12,}{figures.seconds:>10.1f}")
        else:
            total = _api(args, url, the_plan, export, Path(scratch))
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            size = int(connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())
            largest = connection.exec_driver_sql(
                "SELECT relname, pg_total_relation_size(relid) FROM pg_statio_user_tables"
                " ORDER BY 2 DESC LIMIT 6"
            ).fetchall()
        verify_started = time.perf_counter()
        differences = verify(engine, the_plan)
        verify_s = time.perf_counter() - verify_started
    finally:
        engine.dispose()
    print(
        f"bench-seed: total {total:.1f} s ({total / 60:.2f} min) for pool {config.name} in {args.mode} mode"
    )
    print(f"bench-seed: database size {size / 2**20:,.0f} MiB; largest: " + ", ".join(
        f"{table} {table_size / 2**20:,.0f} MiB" for table, table_size in largest
    ))  # fmt: skip
    print(f"bench-seed: verify {'ok' if not differences else 'FAILED'} in {verify_s:.1f} s")
    for line in differences:
        print(f"verify: {line}")
    return 1 if differences else 0


def _api(args: argparse.Namespace, url: str, the_plan: object, export: Path, scratch: Path) -> float:
    from loadtests.seeding.api_mode import seed_api
    from loadtests.seeding.database import prepare

    # Schema, tiers and the OAuth client, as an operator would have set them up.
    prepare(url, client_id="test", client_secret=CLIENT_SECRET)[0].dispose()
    port = free_port()
    environment = {
        "BACKBONE_DATABASE_URL": url,
        "BACKBONE_JWT_SIGNING_KEY": "bench-seed-signing-key-of-32-bytes!!",
        "BACKBONE_VAR_DIR": str(scratch / "var"),
        "BACKBONE_PASSWORD_HASH_ITERATIONS": str(args.hash_iterations),
    }
    with open(scratch / "server.log", "wb") as log:
        process = start_python(["-m", "backbone", "serve", "--port", str(port)], environment, log)
        try:
            base_url = f"http://localhost:{port}"
            wait_for_http(f"{base_url}/health", process, timeout_s=60)
            api = ConsumerApiClient(base_url)
            started = time.perf_counter()
            outcome = seed_api(the_plan, api, export_path=export, threads=args.threads)  # type: ignore[arg-type]
            total = time.perf_counter() - started
        finally:
            stop(process)
    for phase, (units, seconds) in outcome.report.phases.items():
        print(f"{phase:<28}{units:>10,} units{seconds:>9.1f} s")
    return total


if __name__ == "__main__":
    sys.exit(main())
