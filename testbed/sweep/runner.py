"""The cells of one sweep, one after the other: landscape up, capacity search, landscape down.

Each cell is a `testbed capacity` search (`testbed.run.capacity_search`) in `cell-NN/` of the
sweep's directory; its row joins sweep.parquet when it ends. A cell in sweep.parquet is done: a
resumed sweep skips it. A cell directory without its row was interrupted and is searched again
from the start (a landscape's capacity needs its search's steps together). After every cell and
at the end the sweep report is written again, so an interrupted sweep still has one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.capacity import build_capacity_report
from reports.history import human_size, size_bytes
from reports.rundir import LOGS, REQUESTS, SETUP_REQUESTS
from reports.sweep import (
    SWEEP_HTML,
    SWEEP_MD,
    SweepRecord,
    SweepReport,
    cell_row,
    read_cells,
    read_sweep,
    render_sweep,
    write_cells,
    write_sweep,
)
from scenarios.sweep_schema import SweepCell
from testbed.landscape.cpu import CpuPlan
from testbed.run.capacity_search import CapacitySearch
from testbed.run.commands import WORK_DIR, stop_on_signals
from testbed.run.experiment import Pool, RunError
from testbed.run.launched import LaunchedLandscape
from testbed.run.load_generator import LoadGeneratorPlan, default_workers
from testbed.sweep.commands import PreparedSweep


def cores_by_tier(plan: CpuPlan) -> dict[str, float]:
    """A cell's CPU budgets summed per tier (processes without a budget count nothing)."""
    cores: dict[str, float] = {}
    for process in plan.processes:
        if process.cpu_limit is not None:
            cores[process.tier] = round(cores.get(process.tier, 0.0) + process.cpu_limit, 6)
    return cores


@dataclass
class SweepRun:
    sweep_id: str
    directory: Path
    prepared: PreparedSweep
    pool_hash_iterations: int
    keep_requests: str = "all"

    def say(self, text: str) -> None:
        print(f"testbed sweep {self.sweep_id}: {text}", file=sys.stderr)

    def run(self) -> int:
        sweep = self.prepared.sweep
        record = self._record()
        write_sweep(self.directory, record)
        done = {
            str(row["cell"]): {str(key): value for key, value in row.items()}
            for row in read_cells(self.directory).to_dict("records")
        }
        rows: list[Mapping[str, Any]] = [done[cell.name] for cell in sweep.cells if cell.name in done]
        if done:
            self.say(f"resuming: {len(done)} of {len(sweep.cells)} cell(s) done")
        stop_on_signals()
        interrupted = False
        try:
            for index, (cell, plan) in enumerate(zip(sweep.cells, self.prepared.plans, strict=True), 1):
                if cell.name in done:
                    continue
                rows.append(self._cell(index, cell, plan))
                write_cells(self.directory, sorted(rows, key=lambda row: str(row["cell"])))
                render_sweep(self.directory)
        except KeyboardInterrupt:
            interrupted = True
            self.say(
                f"interrupted; the landscape is down. continue with: testbed sweep --resume {self.sweep_id}"
            )
        except RunError as error:
            self.say(f"{error}; the finished cells are kept: testbed sweep --resume {self.sweep_id}")
            self._finish(record, interrupted=True)
            return 3
        report = self._finish(record, interrupted=interrupted)
        if interrupted:
            return 130
        for line in report.headline():
            print(line)
        print(f"report: {self.directory / SWEEP_HTML}\nsummary: {self.directory / SWEEP_MD}")
        print(f"size on disk: {human_size(size_bytes(self.directory))} in {self.directory}")
        return 0 if report.recommendation.chosen is not None else 1

    def _record(self) -> SweepRecord:
        sweep, prepared = self.prepared.sweep, self.prepared
        started = time.time()
        with contextlib.suppress(ValueError):
            started = read_sweep(self.directory).started_at_s
        return SweepRecord(
            sweep_id=self.sweep_id,
            name=sweep.name,
            source=str(sweep.source),
            mode=sweep.mode,
            profile=sweep.profile,
            scenario=sweep.scenario,
            pool=sweep.pool,
            dimensions={name: list(values) for name, values in sweep.dimensions.items()},
            cells_planned=len(sweep.cells),
            target_unit=sweep.target_unit,
            target=sweep.target,
            headroom=sweep.headroom,
            step_s=prepared.step_s,
            warm_up_s=prepared.warm_up_s,
            keep_requests=self.keep_requests,
            started_at_s=started,
            ended_at_s=started,
        )

    def _finish(self, record: SweepRecord, *, interrupted: bool) -> SweepReport:
        write_sweep(
            self.directory, dataclasses.replace(record, ended_at_s=time.time(), interrupted=interrupted)
        )
        return render_sweep(self.directory)

    def _cell(self, index: int, cell: SweepCell, plan: CpuPlan) -> dict[str, Any]:
        prepared = self.prepared
        sweep = prepared.sweep
        capacity_dir = self.directory / cell.name
        if capacity_dir.exists():
            self.say(f"{cell.name} was interrupted; searching it again from the start")
            shutil.rmtree(capacity_dir)
        total = len(sweep.cells)
        self.say(f"cell {index}/{total} ({cell.label()}): landscape up, capacity search, landscape down")
        started = time.monotonic()
        work_dir = WORK_DIR / self.sweep_id / cell.name
        work_dir.mkdir(parents=True, exist_ok=True)
        search = CapacitySearch(
            search_id=f"{self.sweep_id}-{cell.name}",
            directory=capacity_dir,
            work_dir=work_dir,
            landscape=LaunchedLandscape(
                cell.profile, plan, work_dir, capacity_dir / LOGS, dict(cell.overrides)
            ),
            source=prepared.source,
            pool=Pool(sweep.pool, sweep.seed, self.pool_hash_iterations),
            plan=prepared.search,
            step_s=prepared.step_s,
            warm_up_s=prepared.warm_up_s,
            generator=LoadGeneratorPlan(
                plan.load_generator_cores, default_workers(plan.load_generator_cores)
            ),
            prefix=f"testbed sweep {cell.name} ({index}/{total})",
        )
        search.run(sweep.profile)
        report = build_capacity_report(capacity_dir)
        cores = cores_by_tier(plan)
        row = cell_row(cell.name, cell.values, cores, sweep.cost_of(cores), capacity_dir, report)
        if self.keep_requests == "none":
            for step_dir in capacity_dir.glob("step-*"):
                for table in (REQUESTS, SETUP_REQUESTS):
                    shutil.rmtree(step_dir / table, ignore_errors=True)
        tier = row["limiting_tier"] or "none named"
        self.say(
            f"cell {index}/{total} ({cell.label()}) done in {time.monotonic() - started:.0f} s: "
            f"{report.headline()[0]}; limiting tier {tier}"
        )
        return row
