"""A capacity search's results directory and its report.

    results/<search-id>/
      capacity.json        the search: its plan, landscape, workload and conclusion (`SearchRecord`)
      capacity.parquet     one row per finished step (`STEP_COLUMNS`, docs/reports.md)
      step-NN/             each step's run directory, with its own report
      logs/                the landscape's processes' logs and seed.log
      capacity.html        the capacity report (self-contained)
      capacity.md          its Markdown summary

The report opens with three lines: the capacity (requests/s and scenario multiplier), the
limiting tier with the evidence of the step that bounded it, and what bounded it (the SLO
thresholds it missed, or why it was invalid); then the chart of percentiles and throughput
against the offered rate. `testbed capacity` writes it; `testbed report DIR` writes it again
from the files alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import charts, page, verdicts
from reports.charts import Line
from reports.manifest import LandscapeRecord, ScenarioRecord, read_versioned, write_record
from reports.page import Charts, Details, Headline, Page, Paragraph, Section, Table, number
from reports.render import Report
from reports.rundir import conform, empty_frame, read_table, write_table

SEARCH_JSON = "capacity.json"
STEPS_TABLE = "capacity.parquet"
CAPACITY_HTML = "capacity.html"
CAPACITY_MD = "capacity.md"
SEARCH_FORMAT_VERSION = 1

# Conclusions of a search.
BRACKETED = "bracketed"
LOWER_BOUND = "lower bound"
NONE = "none"

STEP_COLUMNS: dict[str, str] = {
    "step": "int64",  # 1, 2, ... in the order run
    "multiplier": "float64",  # the scenario multiplier of the step
    "run_dir": "object",  # the step's run directory, relative to the search's
    "offered_iterations_per_s": "float64",  # the schedule's starts per second, all flows
    "offered_requests_per_s": "float64",  # per flow, start rate x requests per started iteration
    "achieved_requests_per_s": "float64",  # requests answered inside the measured window, per second
    "requests": "int64",  # requests of the measured window
    "errors": "int64",  # of those, failed
    "p50_ms": "float64",  # corrected latency, all routes of the measured window
    "p90_ms": "float64",
    "p99_ms": "float64",
    "slo_passed": "bool",
    "valid": "bool",
    "outcome": "object",  # good, bad, generator-limited (reports/verdicts.py)
    "reason": "object",  # the outcome in one sentence
    "first_saturated_tier": "object",  # "" when no tier met a saturation rule
    "saturation_evidence": "object",  # the tier's metric and figure
    "slo_missed": "object",  # the thresholds missed, "; "-separated
    "problems": "object",  # the validity problems, "; "-separated
}


@dataclass(frozen=True)
class Conclusion:
    """What a search's steps say: BRACKETED (a capacity between a good and a bad step), LOWER_BOUND
    (every step held) or NONE, with the reason in one sentence."""

    status: str
    reason: str
    capacity_multiplier: float | None = None
    good_step: int | None = None
    bad_step: int | None = None
    resolution_reached: bool = False


@dataclass(frozen=True)
class SearchRecord:
    """capacity.json: the search's plan, landscape, workload (the scenario at multiplier 1), conclusion."""

    search_id: str
    started_at_s: float = 0.0
    ended_at_s: float = 0.0
    start_multiplier: float = 1.0
    growth: float = 2.0
    resolution: float = 0.05
    max_steps: int = 0
    step_s: float = 0.0
    warm_up_s: float = 0.0
    load_processes: int = 1
    pool: str = "none"
    seed: int = 1
    profile: LandscapeRecord = field(default_factory=LandscapeRecord)
    scenario: ScenarioRecord = field(default_factory=ScenarioRecord)
    conclusion: Conclusion = field(default_factory=lambda: Conclusion(NONE, "the search has not ended"))
    interrupted: bool = False
    format_version: int = SEARCH_FORMAT_VERSION


def write_search(directory: Path, record: SearchRecord) -> None:
    """Write capacity.json (secrets redacted)."""
    write_record(directory / SEARCH_JSON, record)


def read_search(directory: Path) -> SearchRecord:
    """Read capacity.json of this format version, or raise ManifestError in one line."""
    missing = f"{directory}: not a capacity search's directory (no {SEARCH_JSON})"
    return read_versioned(
        directory / SEARCH_JSON, SearchRecord, SEARCH_FORMAT_VERSION, missing, "capacity searches"
    )


def step_row(step: int, multiplier: float, run_dir: str, report: Report) -> dict[str, Any]:
    """Return a step's row of capacity.parquet from its run's report."""
    verdict = report.step_verdict()
    first = report.first_saturated
    scenario = report.manifest.scenario
    return {
        "step": step,
        "multiplier": multiplier,
        "run_dir": run_dir,
        "offered_iterations_per_s": float(sum(flow.rate_per_s for flow in scenario.flows)),
        "offered_requests_per_s": report.load.offered_requests_per_s,
        "achieved_requests_per_s": report.load.achieved_requests_per_s,
        "requests": report.load.requests,
        "errors": int(report.routes["errors"].fillna(0).sum()),
        "p50_ms": report.load.p50_ms,
        "p90_ms": report.load.p90_ms,
        "p99_ms": report.load.p99_ms,
        "slo_passed": report.slo_passed,
        "valid": report.valid,
        "outcome": verdict.outcome,
        "reason": verdict.reason,
        "first_saturated_tier": first.tier if first is not None else "",
        "saturation_evidence": f"{first.metric}: {first.figure}" if first is not None else "",
        "slo_missed": "; ".join(report.slo_missed()),
        "problems": "; ".join(map(str, report.problems)),
    }


def steps_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Return the steps table with its contract's columns and types."""
    if not rows:
        return empty_frame(STEP_COLUMNS)
    return conform(pd.DataFrame(rows), STEP_COLUMNS, STEPS_TABLE)


def write_steps(directory: Path, rows: list[dict[str, Any]]) -> None:
    """Write capacity.parquet (after every step, so an interrupted search keeps the finished ones)."""
    write_table(steps_frame(rows), directory / STEPS_TABLE, STEP_COLUMNS, STEPS_TABLE)


# The report


@dataclass(frozen=True)
class CapacityReport:
    """A search's conclusion with its steps, ready to be written."""

    search: SearchRecord
    steps: pd.DataFrame

    @property
    def conclusion(self) -> Conclusion:
        return self.search.conclusion

    def _step(self, step: int | None) -> dict[str, Any] | None:
        if step is None:
            return None
        rows = self.steps[self.steps["step"] == step]
        return {str(key): value for key, value in rows.iloc[0].items()} if len(rows) else None

    @property
    def good(self) -> dict[str, Any] | None:
        return self._step(self.conclusion.good_step)

    @property
    def bad(self) -> dict[str, Any] | None:
        return self._step(self.conclusion.bad_step)

    @property
    def capacity_requests_per_s(self) -> float:
        """The good step's achieved requests/s (NaN without a capacity)."""
        good = self.good
        return float(good["achieved_requests_per_s"]) if good is not None else math.nan

    def headline(self) -> tuple[str, str, str]:
        """Return the three opening lines: the capacity, the limiting tier, what bounded it."""
        return self._capacity_line(), self._tier_line(), self._bound_line()

    def _capacity_line(self) -> str:
        conclusion, search = self.conclusion, self.search
        workload = f"{search.scenario.name} on {search.profile.name}"
        if conclusion.status == NONE:
            return f"Capacity: none ({workload}): {conclusion.reason}"
        at_least = "at least " if conclusion.status == LOWER_BOUND else ""
        return (
            f"Capacity: {at_least}{number(self.capacity_requests_per_s)} requests/s at scenario multiplier "
            f"{conclusion.capacity_multiplier:g} ({workload}): {conclusion.reason}"
        )

    def _tier_line(self) -> str:
        bad, search = self.bad, self.search
        if bad is None:
            if self.conclusion.status == LOWER_BOUND:
                return "Limiting tier: not reached: no step was bad"
            return "Limiting tier: not named: no step showed what the system holds"
        where = f"step {bad['step']} (multiplier {bad['multiplier']:g})"
        if not verdicts.judges_server_tiers(search.profile.server_metrics):
            return f"Limiting tier: not judged: only client-side figures exist (at {where})"
        if not bad["first_saturated_tier"]:
            return f"Limiting tier: none named: no tier met a saturation rule at {where}"
        return f"Limiting tier: {bad['first_saturated_tier']} at {where}: {bad['saturation_evidence']}"

    def _bound_line(self) -> str:
        bad = self.bad
        if bad is None:
            if self.conclusion.status == LOWER_BOUND:
                return "Bounded by: nothing yet: every step met its SLO on a valid run"
            return "Bounded by: nothing measured"
        if not bad["slo_passed"]:
            return (
                f"Bounded by: the SLO at step {bad['step']}: {bad['slo_missed'] or 'no SLO could be judged'}"
            )
        return f"Bounded by: step {bad['step']} was {bad['reason']}"


def build_capacity_report(directory: Path) -> CapacityReport:
    """Read a search's directory (capacity.json, capacity.parquet)."""
    search = read_search(directory)
    steps = read_table(directory / STEPS_TABLE, STEP_COLUMNS, STEPS_TABLE)
    return CapacityReport(search, steps.sort_values("step", ignore_index=True))


STEP_HEADER = (
    "step",
    "multiplier",
    "offered it/s",
    "offered req/s",
    "achieved req/s",
    "requests",
    "errors",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "SLO",
    "validity",
    "outcome",
    "first saturated tier",
    "why",
    "run directory",
)


def _step_rows(steps: pd.DataFrame) -> list[list[str]]:
    return [
        [
            str(row["step"]),
            f"{row['multiplier']:g}",
            number(row["offered_iterations_per_s"]),
            number(row["offered_requests_per_s"]),
            number(row["achieved_requests_per_s"]),
            number(int(row["requests"])),
            number(int(row["errors"])),
            number(row["p50_ms"]),
            number(row["p90_ms"]),
            number(row["p99_ms"]),
            "pass" if row["slo_passed"] else "FAIL",
            "valid" if row["valid"] else "INVALID",
            str(row["outcome"]),
            str(row["first_saturated_tier"]) or "none",
            str(row["reason"]),
            f"{row['run_dir']}/report.html",
        ]
        for row in steps.to_dict("records")
    ]


def _charts(report: CapacityReport) -> list[str]:
    steps = report.steps.sort_values("offered_requests_per_s")
    x = steps["offered_requests_per_s"].to_numpy(dtype=np.float64)
    if np.isnan(x).all():  # no start accounting: the schedule's starts per second
        x = steps["offered_iterations_per_s"].to_numpy(dtype=np.float64)
    limits = sorted({limit for slo in report.search.scenario.slos for _, limit in slo.percentiles_ms}) or [
        limit for _, limit in verdicts.DEFAULT_PERCENTILES_MS
    ]
    return [
        charts.line_chart(
            "capacity-latency",
            "Latency from the intended start (corrected, all routes) against the offered rate",
            [Line(name, x, steps[f"{name}_ms"].to_numpy(dtype=np.float64)) for name in ("p50", "p90", "p99")],
            x_label="offered requests/s",
            y_label="ms",
            limits={f"{limit:g} ms": limit for limit in limits},
            markers=True,
        ),
        charts.line_chart(
            "capacity-throughput",
            "Throughput (answered requests/s) against the offered rate",
            [
                Line("achieved", x, steps["achieved_requests_per_s"].to_numpy(dtype=np.float64)),
                Line("offered", x, x),
            ],
            x_label="offered requests/s",
            y_label="requests/s",
            markers=True,
        ),
    ]


def _claim(report: CapacityReport) -> list[str]:
    """The capacity claim's validity and uncertainty, sentence by sentence."""
    search, conclusion = report.search, report.conclusion
    texts = [
        f"Search: from scenario multiplier {search.start_multiplier:g}, each step x{search.growth:g} "
        f"until one is bad, then bisecting until (bad - good) / good <= {search.resolution:.0%}; at most "
        f"{search.max_steps} steps; each step a {search.warm_up_s:g} s warm-up, then a {search.step_s:g} s "
        "measured window, on one landscape brought up and seeded once "
        f"({search.pool} pool, seed {search.seed})."
        + (" The search was interrupted." if search.interrupted else "")
    ]
    good, bad = report.good, report.bad
    if conclusion.status == BRACKETED and good is not None and bad is not None:
        texts.append(
            f"Uncertainty: the capacity lies between multiplier {good['multiplier']:g} (step {good['step']}, "
            f"{number(good['achieved_requests_per_s'])} requests/s answered, held) and multiplier "
            f"{bad['multiplier']:g} (step {bad['step']}, did not hold): "
            f"{(bad['multiplier'] - good['multiplier']) / good['multiplier']:.1%} apart"
            + (
                ""
                if conclusion.resolution_reached
                else f", wider than the resolution {search.resolution:.0%}"
            )
            + ". Each step is one measurement on a shared machine: repeated searches give the spread "
            "(make bench-capacity repeats them)."
        )
    if conclusion.status != NONE:
        texts.append(
            "Validity: every step was driven: no load generator process, nor all of them together, was "
            "CPU-bound, and no schedule was missed while the system had a tier to spare."
        )
    texts.append(
        "The landscape (every scaling option and CPU budget) and the workload are listed below; the "
        "figures hold for them only. SLOs: the scenario's, and for every other route the original's "
        "defaults (reports/verdicts.py)."
    )
    return texts


def _workload_rows(search: SearchRecord) -> list[list[str]]:
    scenario = search.scenario
    return [
        ["scenario", f"{scenario.name} ({scenario.source})"],
        ["arrivals", f"{scenario.arrivals}, open model"],
        *(
            [f"flow {flow.name}", f"{flow.flow}: {flow.rate_per_s:g}/s at multiplier 1"]
            for flow in scenario.flows
        ),
        *(
            [
                f"SLO {slo.key}",
                ", ".join(f"p{p:g} < {limit:g} ms" for p, limit in slo.percentiles_ms)
                + f" ({slo.view} view)",
            ]
            for slo in scenario.slos
        ),
        ["pool", f"{search.pool} (seed {search.seed})"],
        ["load generator", f"Locust's master and {search.load_processes} worker(s)"],
    ]


def capacity_page(report: CapacityReport) -> Page:
    """Describe a search's report as a page (three lines first, then the chart)."""
    search, conclusion = report.search, report.conclusion
    capacity_line, tier_line, bound_line = report.headline()
    wall_s = search.ended_at_s - search.started_at_s
    intro = (
        f"Capacity search {search.search_id}: scenario {search.scenario.name} on profile "
        f"{search.profile.name}, {len(report.steps)} step(s) in {wall_s:.0f} s."
    )
    return Page(
        title=f"Capacity {search.search_id}",
        headlines=(
            Headline(
                capacity_line,
                page.PASS if conclusion.status == BRACKETED else page.FAIL,
                "capacity",
            ),
            Headline(tier_line, page.INFO, "limiting-tier"),
            Headline(bound_line, page.INFO, "bounded-by"),
        ),
        intro=intro,
        sections=(
            Section("Percentiles and throughput against the offered rate", (Charts(_charts(report)),)),
            Section("Steps", (Table(STEP_HEADER, _step_rows(report.steps), empty="No step finished."),)),
            Section("The claim: validity and uncertainty", tuple(Paragraph(text) for text in _claim(report))),
            Section(
                "Landscape",
                (Table(("option", "value"), page.flat_rows(search.profile)),),
            ),
            Section("Workload", (Table(("what", "value"), _workload_rows(search)),)),
        ),
        appendix=(Details("capacity.json", Table(("key", "value"), page.flat_rows(search))),),
    )


def render_capacity(directory: str | Path) -> CapacityReport:
    """Read a search's directory and write capacity.html and capacity.md into it."""
    path = Path(directory)
    report = build_capacity_report(path)
    page.write_page(capacity_page(report), path / CAPACITY_HTML, path / CAPACITY_MD)
    return report
