"""The SLO verdict and the validity verdict of a run.

SLOs come from the scenario file (`[slo."METHOD /route"]`); every route that ran without one
gets the original's thresholds (its k6 tests, see docs/reports.md): p90 < 50 ms and p98 < 100 ms,
and p90 < 160 ms and p98 < 190 ms for file upload, file download and token creation. They are
judged on the corrected view unless the SLO says `view = "service"`.

A run is **invalid** when its figures cannot be trusted: the load generator was CPU-bound, or the
arrival engine missed its schedule (the same limits as `loadtests/arrival/report.py`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.latency import nearest_rank
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


@dataclass(frozen=True)
class SloSpec:
    """Thresholds for one route (method None: every method), judged on one latency view."""

    route: str
    method: str | None
    percentiles_ms: tuple[tuple[float, float], ...]
    view: str = "corrected"
    max_failure_ratio: float | None = None
    source: str = "scenario"

    @property
    def key(self) -> str:
        return f"{self.method} {self.route}" if self.method else self.route


def scenario_slos(slos: Iterable[Mapping[str, object]]) -> list[SloSpec]:
    """Return SLOs from their manifest form (the scenario's `[slo]` tables as parsed)."""
    specs = []
    for item in slos:
        percentiles = item.get("percentiles_ms") or ()
        ratio = item.get("max_failure_ratio")
        specs.append(
            SloSpec(
                route=str(item["route"]),
                method=str(item["method"]) if item.get("method") else None,
                percentiles_ms=tuple((float(p), float(limit)) for p, limit in percentiles),  # type: ignore[union-attr]
                view=str(item.get("view") or "corrected"),
                max_failure_ratio=None if ratio is None else float(ratio),  # type: ignore[arg-type]
            )
        )
    return specs


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
    """Return one row per threshold: slo, source, view, threshold, limit, measured, count, passed.

    An SLO whose route had no requests fails: it was meant to be measured and was not.
    """
    columns = ["slo", "source", "view", "threshold", "limit", "measured", "count", "passed"]
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
            passed = bool(count) and not math.isnan(value) and value < limit_ms
            rows.append(
                [slo.key, slo.source, slo.view, f"p{percentile:g}_ms", limit_ms, value, count, passed]
            )
        if slo.max_failure_ratio is not None:
            failures = int((~requests["ok"].to_numpy()[chosen]).sum())
            ratio = failures / count if count else math.nan
            passed = bool(count) and ratio <= slo.max_failure_ratio
            rows.append(
                [slo.key, slo.source, slo.view, "failure_ratio", slo.max_failure_ratio, ratio, count, passed]
            )
    return pd.DataFrame(rows, columns=columns)


def validity_problems(
    processes: pd.DataFrame,
    flows: pd.DataFrame,
    requests_count: int,
    model: str = "open",
    window_s: tuple[float, float] | None = None,
) -> list[str]:
    """Return why a run's figures cannot be trusted (empty: the run is valid).

    `window_s`: the load's window; the generator's CPU counts only there. A sample says how busy
    the process was in the second before it, so the generator's start-up (imports, logins of the
    personas before the first intended start) does not count against the run.
    """
    problems = []
    if requests_count == 0:
        problems.append("no request was recorded")
    generator = processes[processes["tier"].astype(str) == LOAD_GENERATOR]
    if window_s is not None:
        seconds = generator["t_s"].to_numpy(dtype=np.float64)
        generator = generator[(seconds - 1.0 >= window_s[0]) & (seconds <= window_s[1])]
    for name, rows in generator.groupby(generator["process"].astype(str), observed=True):
        limit = rows["cpu_limit_cores"].fillna(1.0).to_numpy(dtype=np.float64) * 100
        busy = rows["cpu_percent"].to_numpy(dtype=np.float64) >= GENERATOR_CPU_PERCENT / 100 * limit
        share = float(busy.mean()) if len(busy) else 0.0
        if busy.sum() >= 2 and share >= GENERATOR_CPU_BOUND_SHARE:
            problems.append(
                f"load generator {name} was CPU-bound: >= {GENERATOR_CPU_PERCENT:g} % of its core in "
                f"{share:.0%} of seconds (peak {rows['cpu_percent'].max():.0f} %)"
            )
    if model != "open":
        return problems
    for flow in flows.itertuples(index=False):
        if flow.started and flow.late_unqueued / flow.started > MAX_LATE_RATIO:
            problems.append(
                f"{flow.flow}: missed its schedule: {flow.late_unqueued / flow.started:.2%} of starts late "
                f"(limit {MAX_LATE_RATIO:.0%})"
            )
        if flow.scheduled and flow.target_rate_per_s > 0:
            ratio = flow.achieved_rate_per_s / flow.target_rate_per_s
            if ratio < MIN_RATE_RATIO:
                problems.append(f"{flow.flow}: achieved start rate is {ratio:.2%} of the target")
        if flow.dropped:
            problems.append(f"{flow.flow}: {flow.dropped} starts dropped")
        if flow.unfinished:
            problems.append(f"{flow.flow}: {flow.unfinished} iterations still running when the run stopped")
    return problems
