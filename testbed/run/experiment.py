"""The steps of one experiment, from landscape to run directory, and the pieces a search reuses.

    up -> seed the pool -> measure: scrape + sample from before the load, the load generator
    (Locust's master and workers with the arrival engine, live progress line), stop collecting
    -> down -> manifest

A capacity search (`capacity_search.py`) brings the landscape up and seeds it once, then
measures one load phase per step into its own run directory (`measure`, `write_run_manifest`).
The landscape goes down whatever happens; the report is rendered from the run directory by the
command (`commands.py`).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from loadtests.flows.upstream import SECRET_VARIABLE
from reports.manifest import (
    FlowRate,
    GitRevision,
    LandscapeRecord,
    LoadGeneratorRecord,
    Machine,
    RunManifest,
    ScenarioRecord,
    write_manifest,
)
from reports.rundir import ARRIVAL, LOGS, REQUESTS
from scenarios.pool_schema import PoolConfigError
from scenarios.schema import Scenario, ScenarioOverrides
from testbed.processes import REPOSITORY, interrupts_deferred
from testbed.run.acknowledged import verify_acknowledged
from testbed.run.collect import MetricsScraper, ProcessSampler, SampledGroup, SampledProcess, ScrapeTarget
from testbed.run.faults import FaultRunner, FaultTarget
from testbed.run.load_generator import (
    GAVE_UP,
    MASTER,
    GeneratorMember,
    LoadGenerator,
    LoadGeneratorPlan,
    add_joined_samples,
    read_joined,
)
from testbed.run.progress import watch
from testbed.seed import plan_pool, seed_bulk_pool

if TYPE_CHECKING:
    from loadtests.seeding.planner import Plan

# The arrival engine's Locust options that apply the command line's overrides to the scenario.
LOCUST_OPTIONS = {"multiplier": "--multiplier", "duration_s": "--duration", "seed": "--seed"}
# The master's list of its workers: host, PID, share, CPU samples (loadtests/arrival/locust_plugin.py).
LOAD_WORKERS = "load-workers.json"
# Scrapes before the first request and after the last: counters' increases start and end there.
SCRAPE_MARGIN_S = 1.5


class RunError(Exception):
    """A step of the run failed; the message says which and where its log is."""


@dataclass(frozen=True)
class LandscapeAccess:
    """How a run reaches a landscape that is up: where to send load, its database and OAuth client."""

    base_url: str
    database_url: str
    did_domain: str
    client_id: str
    client_secret: str = field(repr=False)
    load_generator_cores: tuple[int, ...]


class Landscape(Protocol):
    """What a run needs from a landscape."""

    def up(self) -> LandscapeAccess: ...

    def down(self) -> None: ...

    def scrape_targets(self) -> list[ScrapeTarget]: ...

    def sampled_processes(self) -> list[SampledProcess]: ...

    def budget_groups(self) -> list[SampledGroup]: ...

    def manifest(self) -> LandscapeRecord: ...

    @property
    def monitored(self) -> bool:
        """Whether a Prometheus watches the landscape (`--monitor`)."""
        ...

    def watch_load_generator(self, members: Sequence[GeneratorMember]) -> None:
        """Have the monitor watch the load generator's processes too (nothing without one)."""
        ...


@dataclass(frozen=True)
class Pool:
    """The identity pool a run seeds (`name` "none": no pool) and the cost of its passwords, or
    the credentials file of a pool seeded before (`credentials`: nothing is seeded)."""

    name: str
    seed: int
    password_hash_iterations: int
    credentials: Path | None = None

    @property
    def seeded(self) -> bool:
        return self.name != "none" or self.credentials is not None

    def credentials_path(self, work_dir: Path) -> Path:
        """Where the pool's credentials are: the file given, or the export of this run's seeding."""
        return self.credentials or work_dir / "credentials.json"


@dataclass(frozen=True)
class LoadPhase:
    """One stretch of load: the scenario with the command line's overrides, the warm-up before its
    measured window (its requests are the warm-up's, never judged) and the load generator's plan."""

    scenario: Scenario
    overrides: ScenarioOverrides
    generator: LoadGeneratorPlan
    warm_up_s: float = 0.0


@dataclass(frozen=True)
class Measured:
    """What one load phase left besides its tables: the measured window (epoch s) and the failures."""

    started_at_s: float
    ended_at_s: float
    scrape_failures: dict[str, int]
    load_generator: LoadGeneratorRecord


@dataclass
class Experiment:
    """The steps of one run, in order, with the landscape brought down whatever happens."""

    run_id: str
    run_dir: Path
    work_dir: Path
    landscape: Landscape
    phase: LoadPhase
    pool: Pool

    @property
    def credentials(self) -> Path:
        return self.pool.credentials_path(self.work_dir)

    def run(self, profile_name: str) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        print(f"testbed run {self.run_id}: bringing up {profile_name}", file=sys.stderr)
        access = self.landscape.up()
        try:
            seed_pool(access, self.pool, self.run_dir / LOGS, self.credentials)
            measured = measure(
                self.landscape,
                access,
                self.phase,
                self.run_dir,
                self.work_dir,
                self.credentials if self.pool.seeded else None,
            )
            # Before `down`: the database holds what was acknowledged until the landscape goes.
            verify_acknowledged(self.run_dir, access.database_url)
        finally:
            bring_down(self.landscape)
        write_run_manifest(self.run_dir, self.run_id, measured, self.landscape, self.phase, self.pool)


def bring_down(landscape: Landscape) -> None:
    """Bring the landscape down; a signal meanwhile waits until it is down."""
    print("testbed run: bringing the landscape down", file=sys.stderr)
    with interrupts_deferred():
        landscape.down()


def seed_pool(access: LandscapeAccess, pool: Pool, logs: Path, credentials: Path) -> None:
    """Seed the pool in bulk into the landscape's database, or through its Consumer API when the
    run has no database (a target elsewhere), and export its credentials."""
    if not pool.seeded or pool.credentials is not None:
        return
    from loadtests.client.api import AddressMismatch, ApiError
    from loadtests.seeding.bulk import SeedingError

    print(f"testbed run: seeding pool {pool.name}", file=sys.stderr)
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "seed.log"
    with log_path.open("a", encoding="utf-8") as log:

        def say(line: str) -> None:
            print(line, file=log, flush=True)

        try:
            the_plan = plan_pool(pool.name, seed=pool.seed, did_domain=access.did_domain, say=say)
            if not access.database_url:
                seed_through_api(the_plan, access, credentials, say)
                return
            # The identities belong to the landscape's OAuth client, whose tier has no quotas;
            # the launcher has migrated the database and made the client.
            seed_bulk_pool(
                the_plan,
                access.database_url,
                client_id=access.client_id,
                client_secret=access.client_secret,
                export_path=credentials,
                password_hash_iterations=pool.password_hash_iterations,
                schema_ready=True,
                say=say,
            )
        except (
            PoolConfigError,
            SeedingError,
            ApiError,
            AddressMismatch,
            sa.exc.SQLAlchemyError,
            OSError,
        ) as error:
            # The first line only: a database error goes on with the statement and its rows.
            first_line = next(iter(str(error).splitlines()), "")
            say(f"seeding failed: {type(error).__name__}: {first_line}")
            raise RunError(f"seeding the pool failed; see {log_path}") from None


def seed_through_api(
    the_plan: Plan, access: LandscapeAccess, credentials: Path, say: Callable[[str], None]
) -> None:
    """Create the pool through the target's Consumer API as its OAuth client (`testbed seed --mode
    api`); raises SeedingError or OSError."""
    from loadtests.client import ConsumerApiClient
    from loadtests.seeding.api_mode import seed_api

    api = ConsumerApiClient(
        access.base_url,
        client_id=access.client_id,
        client_secret=access.client_secret,
        did_domain=access.did_domain,
    )
    outcome = seed_api(the_plan, api, export_path=credentials, progress=say)
    for phase, (units, seconds) in outcome.report.phases.items():
        say(f"api: {phase:<26} {units:>8,} units {seconds:>8.1f} s")


def measure(
    landscape: Landscape,
    access: LandscapeAccess,
    phase: LoadPhase,
    run_dir: Path,
    work_dir: Path,
    credentials: Path | None,
) -> Measured:
    """Collect into `run_dir` from before the load to after it, and run the load phase.

    `credentials`: the seeded pool's export, which the upstream scenarios' personas log in with.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    scraper = MetricsScraper(landscape.scrape_targets(), run_dir)
    sampler = ProcessSampler(landscape.sampled_processes(), run_dir, landscape.budget_groups())
    faults = FaultRunner(phase.scenario.faults, cast(FaultTarget, landscape), run_dir)
    scraper.start()
    sampler.start()
    try:
        time.sleep(SCRAPE_MARGIN_S)
        if phase.scenario.faults:
            faults.start()
        started_at_s, ended_at_s, generator = _load(
            access, phase, run_dir, work_dir, credentials, sampler, landscape
        )
        time.sleep(SCRAPE_MARGIN_S)
    finally:
        with interrupts_deferred():
            # First: no fault may start a process again while the landscape goes down.
            faults.stop()
            scraper.stop()
            sampler.stop()
    joined = read_joined(work_dir / LOAD_WORKERS)
    record = phase.generator.record(joined, generator.local_names)
    add_joined_samples(run_dir, record, joined)
    # The load's window starts with the first intended start, not with Locust's processes (whose
    # start-up can take seconds): rates and onsets count from there, after the warm-up.
    first_s = first_intended_start_s(run_dir / REQUESTS)
    if first_s is not None:
        started_at_s = max(started_at_s, first_s)
    return Measured(
        started_at_s=started_at_s + phase.warm_up_s,
        ended_at_s=ended_at_s,
        scrape_failures=dict(scraper.failures),
        load_generator=record,
    )


def _load(
    access: LandscapeAccess,
    phase: LoadPhase,
    run_dir: Path,
    work_dir: Path,
    credentials: Path | None,
    sampler: ProcessSampler,
    landscape: Landscape,
) -> tuple[float, float, LoadGenerator]:
    """Run Locust's master and workers until the scenario ends; return when they started and ended."""
    stats_prefix = work_dir / "locust"
    master = ["--headless", "--only-summary", "--scenario", str(phase.scenario.source), "-H", access.base_url]
    for name, value in phase.overrides.given().items():
        master += [LOCUST_OPTIONS[name], str(value)]
    if phase.warm_up_s > 0:
        master += ["--warm-up", f"{phase.warm_up_s:g}"]
    master += ["--arrival-json", str(run_dir / ARRIVAL), "--load-workers-json", str(work_dir / LOAD_WORKERS)]
    # Where the workers that joined from elsewhere return their request parts.
    master += ["--requests-dir", str(run_dir)]
    master += ["--csv", str(stats_prefix), "--csv-full-history", "--loglevel", "WARNING"]
    worker = ["--requests-dir", str(run_dir), "--loglevel", "WARNING"]
    if credentials is not None:
        # The personas of the upstream scenarios log in as the seeded identities.
        worker += ["--credentials", str(credentials)]
    scenario = phase.scenario
    budget_s = scenario.duration_s + scenario.drain_timeout_s + 90
    what = f"{scenario.name} for {scenario.duration_s:g} s (multiplier {scenario.multiplier:g})"
    workers = phase.generator.workers
    joining = f" and {phase.generator.joining} joining" if phase.generator.joining else ""
    print(f"testbed run: {what}, {workers} load worker(s){joining} and a master", file=sys.stderr)
    logs = run_dir / LOGS
    generator = LoadGenerator(
        phase.generator, logs, {SECRET_VARIABLE: access.client_secret}, metrics=landscape.monitored
    )
    started_at_s = time.time()
    try:
        generator.start(master, worker, sampler)
        landscape.watch_load_generator(generator.members)
        assert generator.master is not None
        history = stats_prefix.with_name(stats_prefix.name + "_stats_history.csv")
        watch(generator.master, history, started_at_s, budget_s)
    finally:
        with interrupts_deferred():
            generator.stop()
        ended_at_s = time.time()
    if not (run_dir / ARRIVAL).is_file():
        master_log = logs / (MASTER + ".log")
        if phase.generator.joining and GAVE_UP in master_log.read_text(encoding="utf-8", errors="replace"):
            raise RunError(
                f"fewer than the {phase.generator.joining} load worker(s) expected joined within "
                f"{phase.generator.join_timeout_s:g} s (--load-workers-timeout); start each with "
                "`testbed load-worker --master HOST:PORT` on its host"
            )
        raise RunError(f"the load generator wrote no results; see {master_log} and its workers' logs")
    return started_at_s, ended_at_s, generator


def write_run_manifest(
    run_dir: Path, run_id: str, measured: Measured, landscape: Landscape, phase: LoadPhase, pool: Pool
) -> None:
    """Write the run directory's manifest.json (secrets redacted)."""
    scenario = phase.scenario
    manifest = RunManifest(
        run_id=run_id,
        started_at_s=measured.started_at_s,
        ended_at_s=measured.ended_at_s,
        seed=pool.seed,
        pool=pool.name,
        pool_pbkdf2_iterations=pool.password_hash_iterations if pool.seeded else None,
        git=git_revision(),
        profile=landscape.manifest(),
        scenario=ScenarioRecord(
            name=scenario.name,
            source=relative_to_repository(scenario.source),
            model="open",
            multiplier=scenario.multiplier,
            duration_s=scenario.duration_s,
            arrivals=scenario.arrivals,
            flows=tuple(FlowRate(flow.name, flow.flow, scenario.rate_per_s(flow)) for flow in scenario.flows),
            slos=scenario.slos,
            overrides=phase.overrides.given(),
            text=scenario.source.read_text(encoding="utf-8"),
            warm_up_s=phase.warm_up_s,
        ),
        load_generator=measured.load_generator,
        versions=versions(),
        machine=machine(),
        scrape_failures=measured.scrape_failures,
    )
    write_manifest(run_dir, manifest)


def first_intended_start_s(directory: Path) -> float | None:
    """Return the earliest intended start in the request parts (reading that column only)."""
    earliest = [
        pc.min(pq.read_table(part, columns=["intended_start_s"])["intended_start_s"]).as_py()
        for part in directory.glob("*.parquet")
    ]
    found = [value for value in earliest if value is not None]
    return min(found) if found else None


def relative_to_repository(path: Path) -> str:
    """The path from the repository's root when it lies inside, else as given."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPOSITORY)) if resolved.is_relative_to(REPOSITORY) else str(path)


def git_revision() -> GitRevision:
    """Return the repository's revision and whether the working tree had changes."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPOSITORY, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    return GitRevision(
        revision=git("rev-parse", "HEAD"),
        dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
    )


def versions() -> dict[str, str]:
    """Return the versions of Python and the packages a run depends on."""
    found = {"python": platform.python_version()}
    for package in (
        "backbone-testbed",
        "locust",
        "falcon",
        "gunicorn",
        "sqlalchemy",
        "pandas",
        "prometheus-client",
    ):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def machine() -> Machine:
    """Return what the run ran on."""
    return Machine(
        hostname=platform.node(),
        platform=platform.platform(),
        cpus=os.cpu_count() or 1,
        memory_bytes=psutil.virtual_memory().total,
        load_average_1m=os.getloadavg()[0],
    )
