"""The steps of one experiment, from landscape to run directory.

    up -> seed the pool -> scrape + sample from before the load -> Locust headless with the
    arrival engine (live progress line) -> stop collecting -> down -> manifest

The landscape goes down whatever happens; the report is rendered from the run directory by the
command (`commands.py`).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from loadtests.flows.upstream import SECRET_VARIABLE
from reports.manifest import (
    FlowRate,
    GitRevision,
    LandscapeRecord,
    Machine,
    RunManifest,
    ScenarioRecord,
    write_manifest,
)
from reports.rundir import ARRIVAL, LOAD_GENERATOR, LOGS, REQUESTS
from scenarios.pool_schema import PoolConfigError
from scenarios.schema import Scenario, ScenarioOverrides
from testbed.processes import LOCUSTFILE, REPOSITORY, start_python, stop
from testbed.run.collect import MetricsScraper, ProcessSampler, SampledGroup, SampledProcess, ScrapeTarget
from testbed.run.progress import watch
from testbed.seed import plan_pool, seed_bulk_pool

# The arrival engine's Locust options that apply the command line's overrides to the scenario.
LOCUST_OPTIONS = {"multiplier": "--multiplier", "duration_s": "--duration", "seed": "--seed"}


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


@dataclass(frozen=True)
class Pool:
    """The identity pool a run seeds (`name` "none": no pool) and the cost of its passwords."""

    name: str
    seed: int
    password_hash_iterations: int

    @property
    def seeded(self) -> bool:
        return self.name != "none"


@dataclass
class Experiment:
    """The steps of one run, in order, with the landscape brought down whatever happens."""

    run_id: str
    run_dir: Path
    work_dir: Path
    landscape: Landscape
    scenario: Scenario
    overrides: ScenarioOverrides
    pool: Pool
    started_at_s: float = 0.0
    ended_at_s: float = 0.0

    @property
    def logs(self) -> Path:
        return self.run_dir / LOGS

    @property
    def credentials(self) -> Path:
        return self.work_dir / "credentials.json"

    def run(self, profile_name: str) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        print(f"testbed run {self.run_id}: bringing up {profile_name}", file=sys.stderr)
        access = self.landscape.up()
        scraper = sampler = None
        try:
            self._seed(access)
            scraper = MetricsScraper(self.landscape.scrape_targets(), self.run_dir)
            sampler = ProcessSampler(
                self.landscape.sampled_processes(), self.run_dir, self.landscape.budget_groups()
            )
            scraper.start()
            sampler.start()
            time.sleep(1.5)  # a scrape before the first request: counters' increases start from it
            self._load(access, sampler)
            time.sleep(1.5)  # and one after the last
        finally:
            for collector in (scraper, sampler):
                if collector is not None:
                    collector.stop()
            print("testbed run: bringing the landscape down", file=sys.stderr)
            self.landscape.down()
        self._write_manifest(scraper)

    def _seed(self, access: LandscapeAccess) -> None:
        if not self.pool.seeded:
            return
        from loadtests.seeding.bulk import SeedingError

        print(f"testbed run: seeding pool {self.pool.name}", file=sys.stderr)
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / "seed.log"
        with log_path.open("a", encoding="utf-8") as log:

            def say(line: str) -> None:
                print(line, file=log, flush=True)

            try:
                the_plan = plan_pool(
                    self.pool.name, seed=self.pool.seed, did_domain=access.did_domain, say=say
                )
                # The identities belong to the landscape's OAuth client, whose tier has no quotas;
                # the launcher has migrated the database and made the client.
                seed_bulk_pool(
                    the_plan,
                    access.database_url,
                    client_id=access.client_id,
                    client_secret=access.client_secret,
                    export_path=self.credentials,
                    password_hash_iterations=self.pool.password_hash_iterations,
                    schema_ready=True,
                    say=say,
                )
            except (PoolConfigError, SeedingError, sa.exc.SQLAlchemyError, OSError) as error:
                # The first line only: a database error goes on with the statement and its rows.
                first_line = next(iter(str(error).splitlines()), "")
                say(f"seeding failed: {type(error).__name__}: {first_line}")
                raise RunError(f"seeding the pool failed; see {log_path}") from None

    def _load(self, access: LandscapeAccess, sampler: ProcessSampler) -> None:
        stats_prefix = self.work_dir / "locust"
        args = ["-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary"]
        args += ["--scenario", str(self.scenario.source), "-H", access.base_url]
        for name, value in self.overrides.given().items():
            args += [LOCUST_OPTIONS[name], str(value)]
        args += ["--arrival-json", str(self.run_dir / ARRIVAL), "--requests-dir", str(self.run_dir)]
        args += ["--csv", str(stats_prefix), "--csv-full-history", "--loglevel", "WARNING"]
        if self.pool.seeded:
            # The personas of the upstream scenarios log in as the seeded identities.
            args += ["--credentials", str(self.credentials)]
        scenario = self.scenario
        budget_s = scenario.duration_s + scenario.drain_timeout_s + 60
        what = f"{scenario.name} for {scenario.duration_s:g} s (multiplier {scenario.multiplier:g})"
        print(f"testbed run: {what}", file=sys.stderr)
        secret = {SECRET_VARIABLE: access.client_secret}
        with (self.logs / "locust.log").open("ab") as log:
            self.started_at_s = time.time()
            locust = start_python(args, secret, log, cores=access.load_generator_cores)
            # One Locust process runs on one core at most, whatever cores it may use.
            sampler.add(SampledProcess("locust", LOAD_GENERATOR, locust.pid, cpu_limit_cores=1.0))
            try:
                history = stats_prefix.with_name(stats_prefix.name + "_stats_history.csv")
                watch(locust, history, self.started_at_s, budget_s)
            finally:
                stop(locust)
                self.ended_at_s = time.time()
        if not (self.run_dir / ARRIVAL).is_file():
            raise RunError(f"the load generator wrote no results; see {self.logs / 'locust.log'}")

    def _write_manifest(self, scraper: MetricsScraper | None) -> None:
        scenario = self.scenario
        # The load's window starts with the first intended start, not with Locust's process (whose
        # start-up can take seconds): rates and onsets count from there.
        first_s = first_intended_start_s(self.run_dir / REQUESTS)
        if first_s is not None:
            self.started_at_s = max(self.started_at_s, first_s)
        manifest = RunManifest(
            run_id=self.run_id,
            started_at_s=self.started_at_s,
            ended_at_s=self.ended_at_s,
            seed=self.pool.seed,
            pool=self.pool.name,
            pool_pbkdf2_iterations=self.pool.password_hash_iterations if self.pool.seeded else None,
            git=git_revision(),
            profile=self.landscape.manifest(),
            scenario=ScenarioRecord(
                name=scenario.name,
                source=relative_to_repository(scenario.source),
                model="open",
                multiplier=scenario.multiplier,
                duration_s=scenario.duration_s,
                arrivals=scenario.arrivals,
                flows=tuple(
                    FlowRate(flow.name, flow.flow, scenario.rate_per_s(flow)) for flow in scenario.flows
                ),
                slos=scenario.slos,
                overrides=self.overrides.given(),
                text=scenario.source.read_text(encoding="utf-8"),
            ),
            versions=versions(),
            machine=machine(),
            scrape_failures=dict(scraper.failures) if scraper is not None else {},
        )
        write_manifest(self.run_dir, manifest)


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
