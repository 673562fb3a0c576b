"""`testbed seed`: fill a database with an identity pool, verify it, use some of its identities.

    testbed seed --pool light --mode bulk [--seed 1] [--database-url URL] [--verify]
    testbed seed --pool light --mode api --base-url http://localhost:8080 [--threads 16]
    testbed seed --pool light --verify [--database-url URL]          (compare only)
    testbed seed --pool light --check-identities 50 --base-url URL  (use 50 per pool)

Exit status: 0 done, 1 the database or the API differs from the pool config, 2 bad input.

`testbed run` seeds its landscape through `plan_pool` and `seed_bulk_pool`, the same functions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from scenarios.pool_schema import PoolConfigError, available_pool_configs, load_pool_config

if TYPE_CHECKING:
    from loadtests.client import ConsumerApiClient
    from loadtests.seeding.planner import Plan

_DEFAULT_SQLITE = "sqlite:///var/backbone.sqlite3"
Say = Callable[[str], None]


def add_seed_command(commands: Any) -> None:
    """Add `seed` to the `testbed` parser; it sets `run`."""
    seed = commands.add_parser(
        "seed",
        help="seed an identity pool (bulk into the database or through the API), verify, check",
        description="Seed the identities of a pool config, export their credentials, verify the result.",
    )
    seed.add_argument(
        "--pool", required=True, help=f"pool config name ({', '.join(available_pool_configs())}) or path"
    )
    seed.add_argument(
        "--mode", choices=("api", "bulk"), help="how to write; leave out to only verify or check"
    )
    seed.add_argument("--seed", type=int, default=1, help="the data set's seed (default 1)")
    seed.add_argument(
        "--database-url",
        default=os.environ.get("BACKBONE_DATABASE_URL") or _DEFAULT_SQLITE,
        help="bulk and --verify: the database (default $BACKBONE_DATABASE_URL or var/backbone.sqlite3)",
    )
    seed.add_argument(
        "--base-url", default="http://localhost:8080", help="api and --check-identities: the Consumer API"
    )
    seed.add_argument(
        "--did-domain",
        default=os.environ.get("BACKBONE_DID_DOMAIN", "localhost"),
        help="the landscape's DID domain for addresses (default $BACKBONE_DID_DOMAIN or localhost)",
    )
    seed.add_argument("--client-id", default="test", help="OAuth client of the identities (default test)")
    seed.add_argument(
        "--client-secret-env",
        default="TESTBED_CLIENT_SECRET",
        help="variable holding the client secret (default TESTBED_CLIENT_SECRET; unset: 'test')",
    )
    seed.add_argument("--export", type=Path, help="credentials file (default var/seed/<pool>-seed<N>.json)")
    seed.add_argument("--threads", type=int, default=16, help="api: parallel identities (default 16)")
    seed.add_argument(
        "--password-hash-iterations",
        type=int,
        default=int(os.environ.get("BACKBONE_PASSWORD_HASH_ITERATIONS", "100000")),
        help="bulk: PBKDF2 iterations of the seeded password hashes (default the backbone's)",
    )
    seed.add_argument("--verify", action="store_true", help="compare the database with the pool config")
    seed.add_argument(
        "--check-identities",
        type=int,
        default=0,
        metavar="N",
        help="use N random identities of each pool through the API and compare with the plan",
    )
    seed.set_defaults(run=seed_command)


def plan_pool(pool: str, *, seed: int, did_domain: str, say: Say) -> Plan:
    """Plan the data set of a pool config (raises PoolConfigError) and say what it holds."""
    from loadtests.seeding.planner import plan

    config = load_pool_config(pool)
    the_plan = plan(config, seed=seed, did_domain=did_domain)
    for line in the_plan.gaps:
        say(line)
    totals = ", ".join(f"{name} {count:,}" for name, count in the_plan.totals.items())
    say(f"plan: pool config {config.name}, seed {seed}: {totals}")
    return the_plan


def seed_bulk_pool(
    the_plan: Plan,
    database_url: str,
    *,
    client_id: str,
    client_secret: str,
    export_path: Path,
    password_hash_iterations: int,
    schema_ready: bool = False,
    say: Say = print,
) -> Path:
    """Write the plan into the database in bulk, say how long each table took; the credentials file."""
    from loadtests.seeding.bulk_run import seed_bulk

    outcome = seed_bulk(
        the_plan,
        database_url,
        client_id=client_id,
        client_secret=client_secret,
        export_path=export_path,
        password_hash_iterations=password_hash_iterations,
        schema_ready=schema_ready,
        progress=say,
    )
    report = outcome.report
    for table, figures in report.tables.items():
        say(f"bulk: {table:<34} {figures.rows:>11,} rows {figures.seconds:>8.1f} s")
    say(
        f"bulk: {report.steps_done} steps written, {report.steps_skipped} already there; "
        f"total {report.seconds:.1f} s; credentials in {outcome.export_path}"
    )
    return outcome.export_path


def _fail(message: str) -> int:
    print(f"testbed seed: {message}", file=sys.stderr)
    return 2


def seed_command(args: argparse.Namespace) -> int:
    """`testbed seed`."""
    from loadtests.client import AddressMismatch, ApiError
    from loadtests.seeding.bulk import SeedingError

    if not (args.mode or args.verify or args.check_identities):
        return _fail("say what to do: --mode api|bulk, --verify and/or --check-identities N")
    if args.threads < 1 or args.check_identities < 0 or args.password_hash_iterations < 1:
        return _fail("--threads and --password-hash-iterations must be >= 1, --check-identities >= 0")
    try:
        the_plan = plan_pool(args.pool, seed=args.seed, did_domain=args.did_domain, say=print)
    except PoolConfigError as error:
        return _fail("invalid pool config:\n" + "\n".join(f"  {line}" for line in error.problems))
    try:
        return _seed(args, the_plan)
    except SeedingError as error:
        return _fail(str(error))
    except (ApiError, AddressMismatch) as error:
        return _fail(f"the backbone at {args.base_url} refused the seeding: {error}")
    except KeyboardInterrupt:
        print("testbed seed: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (sa.exc.OperationalError, sa.exc.ArgumentError) as error:
        return _fail(f"cannot use the database: {str(error).splitlines()[0]}")
    except OSError as error:
        return _fail(f"cannot reach {args.base_url} or write files: {error}")


def _seed(args: argparse.Namespace, the_plan: Plan) -> int:
    """Write (bulk or through the API), then verify and check as asked; the exit status."""
    from loadtests.client import ConsumerApiClient
    from loadtests.seeding.export import default_export_path

    export_path: Path = args.export or default_export_path(the_plan.config.name, args.seed)
    secret = os.environ.get(args.client_secret_env) or "test"
    api = ConsumerApiClient(
        args.base_url, client_id=args.client_id, client_secret=secret, did_domain=args.did_domain
    )
    if args.mode == "bulk":
        seed_bulk_pool(
            the_plan,
            args.database_url,
            client_id=args.client_id,
            client_secret=secret,
            export_path=export_path,
            password_hash_iterations=args.password_hash_iterations,
        )
    elif args.mode == "api":
        from loadtests.seeding.api_mode import seed_api

        api_outcome = seed_api(the_plan, api, export_path=export_path, threads=args.threads)
        for phase, (units, seconds) in api_outcome.report.phases.items():
            print(f"api: {phase:<26} {units:>8,} units {seconds:>8.1f} s")
        print(f"api: total {api_outcome.report.seconds:.1f} s; credentials in {api_outcome.export_path}")
    status = 0
    if args.verify:
        status = max(status, _verify(args.database_url, the_plan))
    if args.check_identities:
        status = max(status, _check(api, export_path, args.check_identities, args.seed))
    return status


def _verify(database_url: str, the_plan: Plan) -> int:
    from loadtests.seeding.database import normalise_url
    from loadtests.seeding.verify import verify

    engine = sa.create_engine(normalise_url(database_url))
    try:
        differences = verify(engine, the_plan)
    finally:
        engine.dispose()
    for line in differences:
        print(f"verify: {line}")
    print(
        "verify: the database matches the plan"
        if not differences
        else f"verify: {len(differences)} differences"
    )
    return 1 if differences else 0


def _check(api: ConsumerApiClient, export_path: Path, count: int, seed: int) -> int:
    from loadtests.seeding.check import check_identities

    try:
        document = json.loads(export_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"testbed seed: cannot read the credentials file {export_path}: {error}", file=sys.stderr)
        return 2
    chosen, problems = check_identities(api, document["identities"], count, seed=seed, per_pool=True)
    for line in problems:
        print(f"check: {line}")
    print(f"check: {len(chosen)} identities used, {len(problems)} problems")
    return 1 if problems else 0
