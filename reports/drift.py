"""Drift over a soak: the slope of each process's RSS and of each route's p90, after the ramp.

A soak (`shape.kind = "soak"`) is run to show what a short run cannot: a leak, or a landscape that
slows down as its tables grow. After the ramp (the warm-up), a straight line is fitted by least
squares to each landscape process's RSS samples (once a second) and to each route's p90 per
bin of DRIFT_BINS; its slope is expressed per hour and as a percentage of the fitted value at the
window's start. The verdict per row is `reports/verdicts.py`'s `judge_drift` against the soak's
limits (`max_rss_growth_pct_per_h`, `max_p90_growth_pct_per_h`, read from the scenario's text
in the manifest). A window shorter than MIN_DRIFT_WINDOW_S is reported, not judged.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from reports import verdicts
from reports.latency import nearest_rank
from reports.manifest import RunManifest
from reports.rundir import LOAD_GENERATOR

# The p90 of a route is taken per bin: a minute at least, and at most this many bins per run.
DRIFT_BINS = 30
MIN_BIN_S = 60.0
# A bin's p90 counts when it rests on at least this many requests (10 above the p90).
MIN_BIN_REQUESTS = verdicts.min_samples(90.0)
HOUR_S = 3600.0
RSS_COLUMNS = ("process", "tier", "samples", "start_mib", "end_mib", "mib_per_h", "pct_per_h", "verdict")
P90_COLUMNS = ("method", "route", "bins", "start_ms", "end_ms", "ms_per_h", "pct_per_h", "verdict")


@dataclass(frozen=True)
class SoakLimits:
    """A soak's warm-up and drift limits, as its scenario file says."""

    ramp_s: float
    max_rss_growth_pct_per_h: float
    max_p90_growth_pct_per_h: float


def soak_limits(manifest: RunManifest) -> SoakLimits | None:
    """The soak's limits from the scenario text in the manifest (None: not a soak)."""
    try:
        shape = tomllib.loads(manifest.scenario.text).get("shape", {})
    except tomllib.TOMLDecodeError:
        return None
    if not isinstance(shape, dict) or shape.get("kind") != "soak":
        return None
    return SoakLimits(
        ramp_s=float(shape.get("ramp_s", 0.0)),
        max_rss_growth_pct_per_h=float(shape.get("max_rss_growth_pct_per_h", 10.0)),
        max_p90_growth_pct_per_h=float(shape.get("max_p90_growth_pct_per_h", 50.0)),
    )


def fit(t_s: np.ndarray, values: np.ndarray, start_s: float, end_s: float) -> tuple[float, float, float]:
    """(fitted value at start, at end, slope per hour) of a least-squares line (NaN: < 2 points)."""
    keep = ~np.isnan(values)
    t_s, values = t_s[keep], values[keep]
    if len(t_s) < 2 or float(np.ptp(t_s)) == 0.0:
        return math.nan, math.nan, math.nan
    slope, intercept = np.polyfit(t_s - start_s, values, 1)
    return float(intercept), float(intercept + slope * (end_s - start_s)), float(slope * HOUR_S)


def _percent(per_h: float, start: float) -> float:
    return per_h / start * 100 if start > 0 and not math.isnan(per_h) else math.nan


def rss_drift(processes: pd.DataFrame, limits: SoakLimits, start_s: float, end_s: float) -> pd.DataFrame:
    """One row per landscape process (the load generator is left out): RSS growth per hour."""
    window = processes[
        (processes["t_s"].to_numpy(float) >= start_s) & (processes["tier"].astype(str) != LOAD_GENERATOR)
    ]
    rows = []
    for (process, tier), samples in window.groupby(["process", "tier"], observed=True):
        t_s = samples["t_s"].to_numpy(float)
        rss_mib = samples["rss_bytes"].to_numpy(float) / 2**20
        first, last, per_h = fit(t_s, rss_mib, start_s, end_s)
        percent = _percent(per_h, first)
        verdict = verdicts.judge_drift(percent, limits.max_rss_growth_pct_per_h, end_s - start_s)
        rows.append([str(process), str(tier), len(samples), first, last, per_h, percent, verdict])
    return pd.DataFrame(rows, columns=list(RSS_COLUMNS))


def p90_bins(requests: pd.DataFrame, start_s: float, end_s: float) -> pd.DataFrame:
    """Each route's p90 (corrected, ms) per bin after `start_s`: method, route, t_s (bin middle), p90_ms."""
    bin_s = max(MIN_BIN_S, (end_s - start_s) / DRIFT_BINS)
    intended = requests["intended_start_s"].to_numpy(float)
    window = requests[intended >= start_s].assign(
        bin=lambda frame: ((frame["intended_start_s"] - start_s) // bin_s).astype(int)
    )
    rows = []
    for key, group in window.groupby(["method", "route", "bin"], observed=True):
        method, route, index = cast(tuple[str, str, int], key)
        if len(group) < MIN_BIN_REQUESTS:
            continue
        (p90,) = nearest_rank(group["corrected_latency_s"].to_numpy(float), (90.0,))
        rows.append([str(method), str(route), start_s + (index + 0.5) * bin_s, float(p90) * 1000])
    return pd.DataFrame(rows, columns=["method", "route", "t_s", "p90_ms"])


def p90_drift(bins: pd.DataFrame, limits: SoakLimits, start_s: float, end_s: float) -> pd.DataFrame:
    """One row per route with at least two judged bins: p90 growth per hour."""
    rows = []
    for (method, route), group in bins.groupby(["method", "route"]):
        first, last, per_h = fit(
            group["t_s"].to_numpy(float), group["p90_ms"].to_numpy(float), start_s, end_s
        )
        if math.isnan(per_h):
            continue
        percent = _percent(per_h, first)
        verdict = verdicts.judge_drift(percent, limits.max_p90_growth_pct_per_h, end_s - start_s)
        rows.append([method, route, len(group), first, last, per_h, percent, verdict])
    return pd.DataFrame(rows, columns=list(P90_COLUMNS))
