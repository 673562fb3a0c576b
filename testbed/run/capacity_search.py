"""`testbed capacity`'s steps: one landscape, seeded once, one measured load phase per step.

    up -> seed -> step 1, 2, ...: measure into step-NN/, manifest, report, judge the step,
    append its row to capacity.parquet, ask `capacity.next_multiplier` -> down -> conclude ->
    capacity.json and the capacity report

The landscape goes down whatever happens. An interrupted search (SIGINT, SIGTERM) or one
stopped by an error still concludes from the steps it finished and writes its report; the
step that was running keeps what it collected in its directory, but is no row of the table.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.capacity import SearchRecord, render_capacity, step_row, write_search, write_steps
from reports.manifest import FlowRate, ScenarioRecord
from reports.render import render_run
from reports.rundir import LOGS
from scenarios.schema import Scenario, ScenarioOverrides, load_scenario
from testbed.run.capacity import SearchPlan, StepOutcome, conclude, next_multiplier
from testbed.run.experiment import (
    Landscape,
    LandscapeAccess,
    LoadPhase,
    Pool,
    bring_down,
    measure,
    relative_to_repository,
    seed_pool,
    write_run_manifest,
)
from testbed.run.load_generator import LoadGeneratorPlan


@dataclass
class CapacitySearch:
    """The steps of one search, against one landscape brought up and seeded once."""

    search_id: str
    directory: Path
    work_dir: Path
    landscape: Landscape
    source: Path
    pool: Pool
    plan: SearchPlan
    step_s: float
    warm_up_s: float
    generator: LoadGeneratorPlan
    # What its progress lines start with (a sweep names its cell).
    prefix: str = "testbed capacity"
    rows: list[dict[str, Any]] = field(default_factory=list)
    steps: list[StepOutcome] = field(default_factory=list)

    @property
    def credentials(self) -> Path:
        return self.pool.credentials_path(self.work_dir)

    def scenario_at(self, multiplier: float) -> tuple[Scenario, ScenarioOverrides]:
        """The scenario of one step: the file at `multiplier`, warm-up and window, the search's seed."""
        overrides = ScenarioOverrides(multiplier, self.warm_up_s + self.step_s, self.pool.seed)
        return load_scenario(self.source, overrides=overrides), overrides

    def run(self, profile_name: str) -> None:
        """Run the search; the conclusion and the report are written also when it stops early."""
        started_at_s = time.time()
        self.directory.mkdir(parents=True, exist_ok=True)
        print(f"{self.prefix} {self.search_id}: bringing up {profile_name}", file=sys.stderr)
        finished = False
        access = self.landscape.up()
        try:
            seed_pool(access, self.pool, self.directory / LOGS, self.credentials)
            while (multiplier := next_multiplier(self.steps, self.plan)) is not None:
                self._step(access, len(self.steps) + 1, multiplier)
            finished = True
        finally:
            bring_down(self.landscape)
            self._conclude(started_at_s, interrupted=not finished)

    def say(self, text: str) -> None:
        print(f"{self.prefix}: {text}", file=sys.stderr)

    def _step(self, access: LandscapeAccess, number: int, multiplier: float) -> None:
        name = f"step-{number:02d}"
        scenario, overrides = self.scenario_at(multiplier)
        phase = LoadPhase(scenario, overrides, self.generator, self.warm_up_s)
        self.say(f"step {number} at multiplier {multiplier:g}")
        run_dir = self.directory / name
        credentials = self.credentials if self.pool.seeded else None
        measured = measure(self.landscape, access, phase, run_dir, self.work_dir / name, credentials)
        write_run_manifest(run_dir, f"{self.search_id}-{name}", measured, self.landscape, phase, self.pool)
        report = render_run(run_dir)
        row = step_row(number, multiplier, name, report)
        self.rows.append(row)
        write_steps(self.directory, self.rows)
        self.steps.append(StepOutcome(number, multiplier, row["outcome"], row["reason"]))
        self.say(
            f"step {number} (multiplier {multiplier:g}): {row['outcome']}: offered "
            f"{row['offered_requests_per_s']:.1f} requests/s, answered {row['achieved_requests_per_s']:.1f}, "
            f"p90 {row['p90_ms']:.1f} ms; {row['reason']}"
        )

    def _conclude(self, started_at_s: float, *, interrupted: bool) -> None:
        scenario, _ = self.scenario_at(1.0)
        record = SearchRecord(
            search_id=self.search_id,
            started_at_s=started_at_s,
            ended_at_s=time.time(),
            start_multiplier=self.plan.start_multiplier,
            growth=self.plan.growth,
            resolution=self.plan.resolution,
            max_steps=self.plan.max_steps,
            step_s=self.step_s,
            warm_up_s=self.warm_up_s,
            load_processes=self.generator.workers,
            pool=self.pool.name,
            seed=self.pool.seed,
            profile=self.landscape.manifest(),
            scenario=ScenarioRecord(
                name=scenario.name,
                source=relative_to_repository(scenario.source),
                model="open",
                multiplier=1.0,
                duration_s=scenario.duration_s,
                arrivals=scenario.arrivals,
                flows=tuple(FlowRate(flow.name, flow.flow, flow.rate_per_s) for flow in scenario.flows),
                slos=scenario.slos,
                warm_up_s=self.warm_up_s,
            ),
            conclusion=conclude(self.steps, self.plan, interrupted=interrupted),
            interrupted=interrupted,
        )
        write_steps(self.directory, self.rows)
        write_search(self.directory, record)
        render_capacity(self.directory)
