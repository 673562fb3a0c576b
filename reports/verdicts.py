"""The SLO verdict and the validity verdict of a run: the one judge of both.

SLOs come from the scenario file (`[slo."METHOD /route"]`); every route that ran without one
gets the original's thresholds (its k6 tests, see docs/reports.md): p90 < 50 ms and p98 < 100 ms,
and p90 < 160 ms and p98 < 190 ms for file upload, file download and token creation. They are
judged on the corrected view unless the SLO says `view = "service"`.

A percentile passes when it is strictly below its limit (as the original's k6 thresholds), a
failure ratio when it is at or below its limit. A percentile measured on fewer samples than
`min_samples` needs is "too few to judge": it neither passes nor fails the run.

A run is **invalid** when its figures cannot be trusted: the load generator was CPU-bound, or the
arrival engine missed its schedule (every load-generator process counts, the workers that joined
from other hosts too). Each problem names its cause (`Problem.cause`): the load
generator's own limits (`GENERATOR`), a missed schedule (`SCHEDULE`: the generator's fault unless a
tier of the system saturated), or the system under test, too slow for the open model's caps
(`SYSTEM`: starts dropped, iterations unfinished). A step of a capacity search is judged from
these (`judge_step`): good, bad (the system did not hold the load) or generator-limited.

The summary Locust prints (`loadtests/arrival/report.py`) measures from its histograms and asks
the same functions here, so both verdicts of one run agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import pandas as pd

from reports.latency import nearest_rank
from reports.manifest import SloSpec as SloSpec
from reports.rundir import LOAD_GENERATOR

DEFAULT_PERCENTILES_MS = ((90.0, 50.0), (98.0, 100.0))
TRANSFER_PERCENTILES_MS = ((90.0, 160.0), (98.0, 190.0))
# File transfer and token creation: the original's looser thresholds.
TRANSFER_ROUTES = frozenset(
    {
        ("POST", "/api/v2/Files"),
        ("GET", "/api/v2/Files/{id}"),
        ("POST", "/api/v2/Tokens"),
    }
)
MAX_LATE_RATIO = 0.01
MIN_RATE_RATIO = 0.98
GENERATOR_CPU_PERCENT = 90.0
GENERATOR_CPU_BOUND_SHARE = 0.05
# A q-quantile is judged once at least this many samples lie above it: with fewer, one slow
# request decides the verdict.
SAMPLES_ABOVE_A_PERCENTILE = 10

PASS = "pass"  # noqa: S105 - a verdict, not a password
FAIL = "fail"
TOO_FEW = "too few"

# Causes of a validity problem.
GENERATOR = "generator"
SCHEDULE = "schedule"
SYSTEM = "system"

# Outcomes of a capacity search's step.
GOOD = "good"
BAD = "bad"
GENERATOR_LIMITED = "generator-limited"


@dataclass(frozen=True)
class Problem:
    """Why a run's figures cannot be trusted, and whose limit it shows (GENERATOR, SCHEDULE, SYSTEM)."""

    cause: str
    text: str

    def __str__(self) -> str:
        return self.text


def min_samples(percentile: float) -> int:
    """Return the samples a percentile needs to be judged: 10 / (1 - q), so p90 100 and p98 500."""
    if percentile >= 100:
        return SAMPLES_ABOVE_A_PERCENTILE  # the maximum: any sample can be it
    # Rounded first: 10 / (1 - 0.98) is 500.0000000000004 in floating point.
    return math.ceil(round(SAMPLES_ABOVE_A_PERCENTILE * 100 / (100 - percentile), 6))


def judge_percentile(percentile: float, limit_ms: float, measured_ms: float, count: int) -> str:
    """Return PASS, FAIL or TOO_FEW for one percentile threshold measured on `count` samples.

    A route that had no requests fails: its SLO was meant to be measured and was not.
    """
    if count == 0 or math.isnan(measured_ms):
        return FAIL
    if count < min_samples(percentile):
        return TOO_FEW
    return PASS if measured_ms < limit_ms else FAIL


def judge_failure_ratio(limit: float, failures: int, count: int) -> str:
    """Return PASS or FAIL for a failure-ratio threshold (no requests: FAIL, as above)."""
    if count == 0:
        return FAIL
    return PASS if failures / count <= limit else FAIL


def describe_verdict(verdict: str, count: int) -> str:
    """Return how a threshold's verdict reads in a table: pass, FAIL, too few to judge (n = 3)."""
    if verdict == TOO_FEW:
        return f"too few to judge (n = {count})"
    return "FAIL" if verdict == FAIL else "pass"


def slo_passed(verdicts: Iterable[str]) -> bool:
    """Whether an SLO verdict passes: no threshold failed (too few to judge fails nothing)."""
    return FAIL not in set(verdicts)


class FlowStarts(Protocol):
    """A flow's start accounting, as both the arrival engine and the run directory hold it."""

    @property
    def name(self) -> str: ...
    @property
    def target_rate_per_s(self) -> float: ...
    @property
    def achieved_rate_per_s(self) -> float: ...
    @property
    def scheduled(self) -> int: ...
    @property
    def started(self) -> int: ...
    @property
    def late_unqueued(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def unfinished(self) -> int: ...


def schedule_problems(flows: Iterable[FlowStarts], queued: Sequence[int] = ()) -> list[Problem]:
    """Return how an open-model run missed its schedule, flow by flow (empty: it kept it).

    Late starts that did not wait for the in-flight cap are the schedule's (the dispatcher woke
    late) when they are more than 1 % of the flow's starts and at least 10 (as a percentile is
    judged once 10 samples lie above it); drops and unfinished iterations are the system's (it
    was too slow for the caps). A start rate below the target is the schedule's unless the flow
    dropped or queued starts (`queued`: the queued starts per flow, in the same order; without it
    only drops count).
    """
    problems = []
    for index, flow in enumerate(flows):
        # As with a percentile: one slow wake-up on a busy machine must not decide the verdict.
        enough = flow.late_unqueued >= SAMPLES_ABOVE_A_PERCENTILE
        if enough and flow.late_unqueued / flow.started > MAX_LATE_RATIO:
            problems.append(
                Problem(
                    SCHEDULE,
                    f"{flow.name}: missed its schedule: {flow.late_unqueued / flow.started:.2%} of starts "
                    f"late without waiting for the in-flight cap (limit {MAX_LATE_RATIO:.0%})",
                )
            )
        if flow.scheduled and flow.target_rate_per_s > 0:
            ratio = flow.achieved_rate_per_s / flow.target_rate_per_s
            if ratio < MIN_RATE_RATIO:
                waited = flow.dropped or (queued[index] if index < len(queued) else 0)
                problems.append(
                    Problem(
                        SYSTEM if waited else SCHEDULE,
                        f"{flow.name}: achieved start rate is {ratio:.2%} of the target",
                    )
                )
        if flow.dropped:
            problems.append(
                Problem(SYSTEM, f"{flow.name}: {flow.dropped} starts dropped (in-flight cap and queue full)")
            )
        if flow.unfinished:
            problems.append(
                Problem(
                    SYSTEM, f"{flow.name}: {flow.unfinished} iterations still running when the run stopped"
                )
            )
    return problems


# Locust's own warning: its process passed 90 % CPU at some moment (the arrival engine's summary
# has no per-second samples; the report judges those).
GENERATOR_WARNED_PROBLEM = Problem(
    GENERATOR, "the load generator's CPU went above 90 %: its figures are not trustworthy"
)


def generator_overloaded_problem(
    process: str, share: float, peak_percent: float | None = None, *, subject: str = ""
) -> Problem:
    """Return the problem of a CPU-bound load generator (its timings include its own queueing).

    `subject` replaces "load generator <process>" (e.g. the generator's processes together).
    """
    peak = f" (peak {peak_percent:.0f} %)" if peak_percent is not None else ""
    return Problem(
        GENERATOR,
        f"{subject or f'load generator {process}'} was CPU-bound: >= {GENERATOR_CPU_PERCENT:g} % of "
        f"its CPU limit in {share:.0%} of seconds{peak}",
    )


def with_defaults(slos: Sequence[SloSpec], routes: Iterable[tuple[str, str]]) -> list[SloSpec]:
    """Add the original's default thresholds for every (method, route) no scenario SLO covers."""
    result = list(slos)
    for method, route in sorted(set(routes), key=lambda key: (key[1], key[0])):
        if any(slo.route == route and slo.method in (None, method) for slo in slos):
            continue
        percentiles = (
            TRANSFER_PERCENTILES_MS if (method, route) in TRANSFER_ROUTES else DEFAULT_PERCENTILES_MS
        )
        result.append(SloSpec(route=route, method=method, percentiles_ms=percentiles, source="default"))
    return result


def judge_slos(requests: pd.DataFrame, slos: Sequence[SloSpec]) -> pd.DataFrame:
    """Return one row per threshold: slo, source, view, threshold, limit, measured, count, verdict.

    `verdict` is PASS, FAIL or TOO_FEW (`judge_percentile`, `judge_failure_ratio`).
    """
    columns = ["slo", "source", "view", "threshold", "limit", "measured", "count", "verdict"]
    rows = []
    for slo in slos:
        # Comparing a categorical column compares its codes: no string per row.
        chosen = (requests["route"] == slo.route).to_numpy()
        if slo.method is not None:
            chosen &= (requests["method"] == slo.method).to_numpy()
        column = "latency_s" if slo.view == "service" else "corrected_latency_s"
        values = requests[column].to_numpy(dtype=np.float64)[chosen]
        count = int(chosen.sum())
        measured = nearest_rank(values, [p for p, _ in slo.percentiles_ms]) * 1000
        for (percentile, limit_ms), value in zip(slo.percentiles_ms, measured, strict=True):
            verdict = judge_percentile(percentile, limit_ms, float(value), count)
            rows.append(
                [slo.key, slo.source, slo.view, f"p{percentile:g}_ms", limit_ms, value, count, verdict]
            )
        if slo.max_failure_ratio is not None:
            failures = int((~requests["ok"].to_numpy()[chosen]).sum())
            ratio = failures / count if count else math.nan
            verdict = judge_failure_ratio(slo.max_failure_ratio, failures, count)
            rows.append(
                [slo.key, slo.source, slo.view, "failure_ratio", slo.max_failure_ratio, ratio, count, verdict]
            )
    return pd.DataFrame(rows, columns=columns)


def validity_problems(
    processes: pd.DataFrame,
    flows: pd.DataFrame,
    requests_count: int,
    model: str = "open",
    window_s: tuple[float, float] | None = None,
    generator_cores: int = 0,
) -> list[Problem]:
    """Return why a run's figures cannot be trusted (empty: the run is valid).

    `window_s`: the load's window; the generator's CPU counts only there. A sample says how busy
    the process was in the second before it, so the generator's start-up (imports, logins of the
    personas before the first intended start) does not count against the run.
    `generator_cores`: the cores the load generator's processes share; with several processes,
    their sum at >= 90 % of those cores is CPU-bound too, whichever process used them.
    """
    problems = []
    if requests_count == 0:
        problems.append(Problem(GENERATOR, "no request was recorded"))
    generator = processes[processes["tier"].astype(str) == LOAD_GENERATOR]
    if window_s is not None:
        seconds = generator["t_s"].to_numpy(dtype=np.float64)
        generator = generator[(seconds - 1.0 >= window_s[0]) & (seconds <= window_s[1])]
    names = generator["process"].astype(str)
    for name, rows in generator.groupby(names, observed=True):
        limit = rows["cpu_limit_cores"].fillna(1.0).to_numpy(dtype=np.float64) * 100
        problem = _cpu_bound(rows["cpu_percent"].to_numpy(dtype=np.float64), limit, f"load generator {name}")
        if problem is not None:
            problems.append(problem)
    if generator_cores and names.nunique() > 1:
        # The sampler takes every process in one tick, under one time stamp.
        together = generator.groupby("t_s")["cpu_percent"].sum().to_numpy(dtype=np.float64)
        what = f"the load generator ({names.nunique()} processes together on {generator_cores} core(s))"
        problem = _cpu_bound(together, np.full(len(together), generator_cores * 100.0), what)
        if problem is not None:
            problems.append(problem)
    if model != "open":
        return problems
    # Each row has the fields of FlowStarts, under the same names.
    starts = cast(Iterable[FlowStarts], flows.rename(columns={"flow": "name"}).itertuples(index=False))
    return problems + schedule_problems(starts, queued=flows["queued"].tolist())


def _cpu_bound(cpu_percent: np.ndarray, limit_percent: np.ndarray, what: str) -> Problem | None:
    busy = cpu_percent >= GENERATOR_CPU_PERCENT / 100 * limit_percent
    share = float(busy.mean()) if len(busy) else 0.0
    if busy.sum() >= 2 and share >= GENERATOR_CPU_BOUND_SHARE:
        return generator_overloaded_problem("", share, float(cpu_percent.max()), subject=what)
    return None


def judges_server_tiers(server_metrics: str) -> bool:
    """Whether a run's server tiers can be judged: not when it collected no server figure (a
    target elsewhere without its Prometheus), where only the client-side figures exist."""
    return bool(server_metrics)


@dataclass(frozen=True)
class StepVerdict:
    """A capacity search's step: GOOD, BAD or GENERATOR_LIMITED, and why in one sentence."""

    outcome: str
    reason: str


def judge_step(
    slo_passed: bool, slo_missed: Sequence[str], problems: Sequence[Problem], tier_saturated: bool
) -> StepVerdict:
    """Judge one step of a capacity search (docs/capacity.md, "The capacity search").

    Generator-limited: a problem of the load generator's own (CPU-bound, nothing recorded), or a
    missed schedule while the system kept up: no tier saturated and no cap of the open model
    filled (no start dropped, no iteration unfinished); its figures say nothing of the system.
    Bad: otherwise, an SLO failed or the system was too slow for the open model's caps (then a
    missed schedule is the system's too: a generator holding every iteration a slow system leaves
    in flight wakes late). Good: the SLO held on a valid run.
    `slo_missed`: the thresholds missed, as the headline names them.
    """
    system_behind = tier_saturated or any(problem.cause == SYSTEM for problem in problems)
    generator = [
        problem
        for problem in problems
        if problem.cause == GENERATOR or (problem.cause == SCHEDULE and not system_behind)
    ]
    if generator:
        return StepVerdict(
            GENERATOR_LIMITED,
            "the load generator could not drive it: " + "; ".join(map(str, generator)),
        )
    if not slo_passed:
        shown = "; ".join(slo_missed[:3]) + (
            f"; and {len(slo_missed) - 3} more" if len(slo_missed) > 3 else ""
        )
        return StepVerdict(BAD, f"SLO failed: {shown or 'no SLO could be judged'}")
    if problems:
        return StepVerdict(BAD, "invalid because of the system under test: " + "; ".join(map(str, problems)))
    return StepVerdict(GOOD, "every SLO met on a valid run")


# The comparison of two results (reports/compare.py): one verdict per figure.

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_CHANGE = "no significant change"
NOT_JUDGED = "not judged"


def judge_change(change: float, low: float, high: float, threshold: float, *, higher_is_worse: bool) -> str:
    """Return REGRESSION, IMPROVEMENT or NO_CHANGE for a relative change with its interval.

    A regression is a change whose whole interval lies on the worse side of 0 and whose point
    estimate is worse than `threshold` (0.05: 5 %); an improvement the same the other way; anything
    else is no significant change, whatever the two numbers say. NOT_JUDGED without an estimate.
    """
    if math.isnan(change) or math.isnan(low) or math.isnan(high):
        return NOT_JUDGED
    up = low > 0 and change > threshold
    down = high < 0 and change < -threshold
    if up:
        return REGRESSION if higher_is_worse else IMPROVEMENT
    if down:
        return IMPROVEMENT if higher_is_worse else REGRESSION
    return NO_CHANGE


# Recovery after a fault (reports/recovery.py): the landscape is back within its SLO from the
# first window of RECOVERY_WINDOW_S seconds (sliding by RECOVERY_STEP_S, by intended start) in
# which at most RECOVERY_OVER_P90_SHARE of the requests took longer than their route's p90 limit
# (so the p90 of every route together is within its limit) and the failure ratio is at most the
# scenario's smallest `max_failure_ratio` (DEFAULT_RECOVERY_FAILURE_RATIO when none names one).
RECOVERY_WINDOW_S = 5.0
RECOVERY_STEP_S = 1.0
RECOVERY_OVER_P90_SHARE = 0.10
DEFAULT_RECOVERY_FAILURE_RATIO = 0.01
# A drift slope is judged on at least this much of a soak after its ramp: a slope over a few
# minutes, extrapolated to an hour, is mostly noise.
MIN_DRIFT_WINDOW_S = 600.0


def p90_limits_ms(slos: Sequence[SloSpec]) -> dict[tuple[str | None, str], float]:
    """The p90 limit of every SLO that names one, by (method or None, route)."""
    return {
        (slo.method, slo.route): limit_ms
        for slo in slos
        for percentile, limit_ms in slo.percentiles_ms
        if percentile == 90.0
    }


def recovery_failure_ratio(slos: Sequence[SloSpec]) -> float:
    """The failure ratio a recovered window may have: the strictest the scenario names."""
    named = [slo.max_failure_ratio for slo in slos if slo.max_failure_ratio is not None]
    return min(named) if named else DEFAULT_RECOVERY_FAILURE_RATIO


def window_within_slo(
    over_p90: int, judged: int, failures: int, count: int, max_failure_ratio: float
) -> bool:
    """Whether one recovery window is within the SLO: `over_p90` of `judged` requests (those with
    a p90 limit) above their limit, `failures` of `count` requests failed. An empty window is not."""
    if count == 0:
        return False
    latency_ok = judged == 0 or over_p90 / judged <= RECOVERY_OVER_P90_SHARE
    return latency_ok and failures / count <= max_failure_ratio


def judge_recovery(applied: bool, recovered_after_s: float) -> str:
    """A fault's recovery: PASS once back within the SLO before the run ended; FAIL when the fault
    was never applied (nothing was shown) or the landscape did not come back."""
    return PASS if applied and not math.isnan(recovered_after_s) else FAIL


def judge_acknowledged(recorded: int, lost: int, error: str) -> str:
    """Acknowledged writes: PASS when every one was read back; FAIL when any is lost or none could be
    read (an unverified run shows nothing)."""
    if error:
        return FAIL
    return PASS if lost == 0 and recorded >= 0 else FAIL


def judge_drift(growth_pct_per_h: float, limit_pct_per_h: float, window_s: float) -> str:
    """One process's RSS or one route's p90: PASS when it grows less than its limit per hour;
    TOO_FEW when the soak's window after its ramp is shorter than MIN_DRIFT_WINDOW_S or the slope
    could not be fitted."""
    if window_s < MIN_DRIFT_WINDOW_S or math.isnan(growth_pct_per_h):
        return TOO_FEW
    return PASS if growth_pct_per_h < limit_pct_per_h else FAIL
