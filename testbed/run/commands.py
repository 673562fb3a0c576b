"""`testbed run` (one experiment from landscape to report, leaving `results/<run-id>/` behind) and
`testbed report` (render a run directory's report again).

Exit status of `run`: 0 every SLO met on a valid run, 1 an SLO failed or the run is invalid,
2 bad input, 3 the landscape, the seeding or the load generator failed, 130 interrupted.

Everything the command line names is checked before anything starts: the profile with its
changes (`--option`, `--workers`, `--threads`, `--setting`), the CPU plan, the pool config and
the scenario with its overrides (`--multiplier`, `--duration`, `--seed`), which Locust applies to
the same file in the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.render import render_run
from reports.rundir import LOGS
from scenarios.landscape import ProfileError, load_profile
from scenarios.pool_schema import PoolConfigError, load_pool_config
from scenarios.schema import ScenarioError, ScenarioOverrides, load_scenario
from testbed.landscape.cpu import CpuPlanError, plan_cpus
from testbed.processes import REPOSITORY
from testbed.run.experiment import Experiment, Pool, RunError
from testbed.run.launched import LaunchedLandscape
from testbed.run.repeat import run_repeated

RESULTS_DIR = REPOSITORY / "results"
WORK_DIR = REPOSITORY / "var" / "runs"
DEFAULT_SCENARIOS = ("production-mix", "smoke")
DEFAULT_DURATION_S = 30.0
# PBKDF2 cost of the seeded pool's passwords: a run measures its flows, not the hash at the
# backbone's 100,000 iterations (each seeded hash carries its own count, new ones the setting's).
POOL_PASSWORD_HASH_ITERATIONS = 1000


def add_run_commands(commands: Any) -> None:
    """Add `run` and `report` to the `testbed` parser; each sets `run`."""
    run = commands.add_parser(
        "run",
        help="run a scenario on a landscape and write results/<run-id>/ with its report",
        description="Bring the landscape up, seed, load it, collect, bring it down, report. "
        "Exit 1 when an SLO failed or the run is invalid.",
    )
    run.add_argument("--profile", default="dev", help="landscape profile: dev, stage, prod or a TOML path")
    run.add_argument(
        "--scenario", help="scenario name in scenarios/ or path (default production-mix, else smoke)"
    )
    run.add_argument("--multiplier", type=float, help="multiply every flow's rate (default the scenario's)")
    run.add_argument("--duration", type=float, metavar="SECONDS", help="override the scenario's duration")
    run.add_argument("--pool", default="test", help="identity pool to seed (default test; 'none' skips)")
    run.add_argument("--seed", type=int, default=1, help="seed of the pool and the arrivals (default 1)")
    run.add_argument(
        "--password-hash-iterations",
        type=int,
        default=POOL_PASSWORD_HASH_ITERATIONS,
        help=f"PBKDF2 iterations of the seeded pool's passwords (default {POOL_PASSWORD_HASH_ITERATIONS})",
    )
    run.add_argument("--workers", type=int, help="gunicorn workers per node (default the profile's)")
    run.add_argument("--threads", type=int, help="threads per worker (default the profile's)")
    run.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="override a profile value, e.g. database.pool_size=1 or gateway.instances=2",
    )
    run.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a backbone setting of every node, e.g. LOG_LEVEL=INFO (BACKBONE_ prefix optional)",
    )
    run.add_argument(
        "--results", type=Path, default=RESULTS_DIR, help=f"where runs go (default {RESULTS_DIR})"
    )
    run.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run the same experiment N times, grouped in results/<group-id>/ (default 1)",
    )
    run.set_defaults(run=lambda args: run_repeated(args, run_command))
    report = commands.add_parser("report", help="(re-)render the report of a run directory")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.set_defaults(run=lambda args: _report(args.run_dir))


def _report(run_dir: Path) -> int:
    from reports.render_cli import report_command

    return report_command(run_dir)


def _fail(message: str) -> int:
    print(f"testbed run: {message}", file=sys.stderr)
    return 2


def _problems(what: str, problems: list[str]) -> int:
    return _fail(f"invalid {what}:\n" + "\n".join(f"  {line}" for line in problems))


def run_command(args: argparse.Namespace) -> int:
    """`testbed run`."""
    if args.multiplier is not None and not (args.multiplier > 0 and math.isfinite(args.multiplier)):
        return _fail("--multiplier must be a number > 0")
    if args.duration is not None and not (0 < args.duration <= 24 * 3600):
        return _fail("--duration must be between 0 and 86400 seconds")
    if args.password_hash_iterations < 1:
        return _fail("--password-hash-iterations must be >= 1")
    try:
        overrides = profile_overrides(args)
        profile = load_profile(args.profile, overrides)
        cpu = plan_cpus(profile)
        if args.pool != "none":
            load_pool_config(args.pool)
        source = scenario_path(args.scenario)
        # The main command without arguments must stay short, whatever the default scenario's length.
        duration_s = args.duration if args.duration or args.scenario else DEFAULT_DURATION_S
        scenario_overrides = ScenarioOverrides(args.multiplier, duration_s, args.seed)
        scenario = load_scenario(source, overrides=scenario_overrides)
    except (ValueError, CpuPlanError, FileNotFoundError) as error:
        return _fail(str(error))
    except ProfileError as error:
        return _problems("profile", error.problems)
    except PoolConfigError as error:
        return _problems("pool config", error.problems)
    except ScenarioError as error:
        return _problems("scenario", error.problems)
    for warning in cpu.warnings:
        print(f"testbed run: warning: {warning}", file=sys.stderr)
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{source.stem}-{profile.name}-{secrets.token_hex(2)}"
    run_dir = args.results / run_id
    work_dir = WORK_DIR / run_id
    work_dir.mkdir(parents=True, exist_ok=True)
    experiment = Experiment(
        run_id,
        run_dir,
        work_dir,
        LaunchedLandscape(profile, cpu, work_dir, run_dir / LOGS, overrides),
        scenario,
        scenario_overrides,
        Pool(args.pool, args.seed, args.password_hash_iterations),
    )
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    try:
        experiment.run(args.profile)
    except KeyboardInterrupt:
        print("\ntestbed run: interrupted; the landscape is down", file=sys.stderr)
        return 130
    except RunError as error:
        print(f"testbed run: {error}", file=sys.stderr)
        return 3
    report = render_run(run_dir)
    for line in report.headline():
        print(line)
    print(f"report: {run_dir / 'report.html'}\nsummary: {run_dir / 'summary.md'}")
    return 0 if report.slo_passed and report.valid else 1


def profile_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The command line's changes to the profile: --option, --workers, --threads and --setting."""
    overrides: dict[str, str] = {}
    for flag, items, table in (("--option", args.option, ""), ("--setting", args.setting, "backbone.")):
        for item in items:
            name, equals, value = item.partition("=")
            name = name.strip()
            if not equals or not name:
                raise ValueError(f"{flag} {item!r}: expected NAME=VALUE")
            if table:
                name = table + name.upper().removeprefix("BACKBONE_")
                value = json.dumps(value)  # a setting is always a string
            overrides[name] = value
    if args.workers is not None:
        overrides["nodes.workers"] = str(args.workers)
    if args.threads is not None:
        overrides["nodes.threads"] = str(args.threads)
    return overrides


def _interrupt(number: int, frame: object) -> None:
    raise KeyboardInterrupt


def scenario_path(name: str | None) -> Path:
    """Resolve a scenario name or path; no name: the first default that exists."""
    candidates = [name] if name else list(DEFAULT_SCENARIOS)
    for candidate in candidates:
        for path in (Path(candidate), REPOSITORY / "scenarios" / f"{candidate}.toml"):
            if path.is_file():
                return path.resolve()
    raise FileNotFoundError(
        f"no scenario {name or ' or '.join(DEFAULT_SCENARIOS)} (a name in scenarios/ or a path)"
    )
