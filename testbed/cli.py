"""`testbed`: the load side's command line. `testbed seed` fills a database with an identity pool.

    testbed seed --pool light --mode bulk [--seed 1] [--database-url URL] [--verify]
    testbed seed --pool light --mode api --base-url http://localhost:8080 [--threads 16]
    testbed seed --pool light --verify [--database-url URL]          (compare only)
    testbed seed --pool light --check-identities 50 --base-url URL  (use 50 per pool)

Exit status: 0 done, 1 the database or the API differs from the pool config, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from scenarios.pool_schema import PoolConfigError, available_pool_configs, load_pool_config
from testbed.landscape_commands import add_landscape_commands
from testbed.run import add_run_commands

if TYPE_CHECKING:
    from loadtests.client import ConsumerApiClient
    from loadtests.seeding.planner import Plan

_DEFAULT_SQLITE = "sqlite:///var/backbone.sqlite3"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="testbed", description="The backbone testbed's load side.")
    commands = parser.add_subparsers(dest="command", required=True)
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
    add_landscape_commands(commands)
    add_run_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(args, "run"):
        return int(args.run(args))
    if args.command == "seed":
        return seed(args)
    return 2  # pragma: no cover - argparse requires a command


def _fail(message: str) -> int:
    print(f"testbed seed: {message}", file=sys.stderr)
    return 2


def seed(args: argparse.Namespace) -> int:
    from loadtests.client import AddressMismatch, ApiError, ConsumerApiClient
    from loadtests.seeding.bulk import SeedingError
    from loadtests.seeding.export import default_export_path
    from loadtests.seeding.planner import plan

    if not (args.mode or args.verify or args.check_identities):
        return _fail("say what to do: --mode api|bulk, --verify and/or --check-identities N")
    if args.threads < 1 or args.check_identities < 0 or args.password_hash_iterations < 1:
        return _fail("--threads and --password-hash-iterations must be >= 1, --check-identities >= 0")
    try:
        config = load_pool_config(args.pool)
    except PoolConfigError as error:
        return _fail("invalid pool config:\n" + "\n".join(f"  {line}" for line in error.problems))
    the_plan = plan(config, seed=args.seed, did_domain=args.did_domain)
    for line in the_plan.gaps:
        print(line)
    totals = ", ".join(f"{name} {count:,}" for name, count in the_plan.totals.items())
    print(f"plan: pool config {config.name}, seed {args.seed}: {totals}")
    export_path: Path = args.export or default_export_path(config.name, args.seed)
    secret = os.environ.get(args.client_secret_env) or "test"
    api = ConsumerApiClient(
        args.base_url, client_id=args.client_id, client_secret=secret, did_domain=args.did_domain
    )
    status = 0
    try:
        if args.mode == "bulk":
            from loadtests.seeding.bulk_run import seed_bulk

            outcome = seed_bulk(
                the_plan,
                args.database_url,
                client_id=args.client_id,
                client_secret=secret,
                export_path=export_path,
                password_hash_iterations=args.password_hash_iterations,
            )
            report = outcome.report
            for table, figures in report.tables.items():
                print(f"bulk: {table:<34} {figures.rows:>11,} rows {figures.seconds:>8.1f} s")
            print(
                f"bulk: {report.steps_done} steps written, {report.steps_skipped} already there; "
                f"total {report.seconds:.1f} s; credentials in {outcome.export_path}"
            )
        elif args.mode == "api":
            from loadtests.seeding.api_mode import seed_api

            api_outcome = seed_api(the_plan, api, export_path=export_path, threads=args.threads)
            for phase, (units, seconds) in api_outcome.report.phases.items():
                print(f"api: {phase:<26} {units:>8,} units {seconds:>8.1f} s")
            print(f"api: total {api_outcome.report.seconds:.1f} s; credentials in {api_outcome.export_path}")
        if args.verify:
            status = max(status, _verify(args.database_url, the_plan))
        if args.check_identities:
            status = max(status, _check(api, export_path, args.check_identities, args.seed))
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


if __name__ == "__main__":
    sys.exit(main())
