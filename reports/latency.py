"""Client-side figures from the requests table: per-route percentiles, figures over time, errors.

Percentiles are nearest-rank on the full distribution (the smallest value with at least p % of
all values at or below it), never averages of averages; they agree with the arrival engine's
histograms to within their 1 % resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
VIEWS = {"corrected": "corrected_latency_s", "uncorrected": "latency_s"}


def percentile_label(percentile: float) -> str:
    """Return the column stem of a percentile: 50 -> p50, 99.9 -> p99.9."""
    return f"p{percentile:g}"


def nearest_rank(values: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Return the nearest-rank percentiles of `values` (NaN for an empty array)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return np.full(len(percentiles), math.nan)
    indexes = _ranks(np.array([values.size]), percentiles)[0] - 1
    # A partial sort around the ranks only: a run's ten million latencies need no full sort.
    chosen: np.ndarray = np.partition(values, indexes)[indexes]
    return chosen


def _ranks(counts: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Return the 1-based nearest rank of each percentile for each count: ceil(n p / 100), at least 1.

    (NumPy's `quantile(..., method="inverted_cdf")` rounds 0.999 x 10,000 up to rank 9991; this
    agrees with exact arithmetic for every n up to 20,000 and the SLO percentiles.)
    """
    exact = np.outer(counts, np.asarray(percentiles, dtype=np.float64)) / 100
    return np.maximum(np.ceil(exact).astype(np.int64), 1)


def grouped_nearest_rank(
    codes: np.ndarray, values: np.ndarray, groups: int, percentiles: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (count, percentiles[group, p], max) per group code 0..groups-1, with one sort for all.

    Rows whose value is NaN are left out; a group without values gets count 0 and NaN.
    """
    keep = ~np.isnan(values)
    codes, values = codes[keep], values[keep]
    order = np.lexsort((values, codes))
    sorted_values = values[order]
    counts = np.bincount(codes, minlength=groups)[:groups]
    ends = np.cumsum(counts)
    starts = ends - counts
    result = np.full((groups, len(percentiles)), math.nan)
    maxima = np.full(groups, math.nan)
    present = counts > 0
    ranks = _ranks(counts, percentiles)
    for column in range(len(percentiles)):
        result[present, column] = sorted_values[starts[present] + ranks[present, column] - 1]
    maxima[present] = sorted_values[ends[present] - 1]
    return counts, result, maxima


def route_codes(requests: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Return a group code per request and the (method, route) of each code, without per-row strings."""
    method = requests["method"].astype("category")
    route = requests["route"].astype("category")
    width = len(route.cat.categories) + 1
    combined = method.cat.codes.to_numpy(np.int64) * width + route.cat.codes.to_numpy(np.int64)
    codes, uniques = pd.factorize(combined)
    keys = pd.DataFrame(
        {
            "method": np.asarray(method.cat.categories, dtype=object)[uniques // width],
            "route": np.asarray(route.cat.categories, dtype=object)[uniques % width],
        }
    )
    return codes, keys


def route_summary(requests: pd.DataFrame, duration_s: float) -> pd.DataFrame:
    """Return one row per (method, route): count, rate, errors, and both latency views in ms.

    Columns: method, route, count, rate_per_s, errors, error_ratio, then for view in
    (corrected, uncorrected): <view>_p50_ms, _p90_ms, _p95_ms, _p99_ms, _p99.9_ms, _max_ms.
    """
    columns = ["method", "route", "count", "rate_per_s", "errors", "error_ratio"]
    columns += [
        f"{view}_{stem}_ms" for view in VIEWS for stem in [*map(percentile_label, PERCENTILES), "max"]
    ]
    if requests.empty:
        return pd.DataFrame(columns=columns)
    codes, frame = route_codes(requests)
    uniques = frame
    frame["count"] = np.bincount(codes, minlength=len(uniques))
    frame["rate_per_s"] = frame["count"] / duration_s if duration_s > 0 else math.nan
    errors = np.bincount(codes, weights=(~requests["ok"].to_numpy()).astype(np.int64), minlength=len(uniques))
    frame["errors"] = errors.astype(np.int64)
    frame["error_ratio"] = frame["errors"] / frame["count"]
    for view, column in VIEWS.items():
        _, values, maxima = grouped_nearest_rank(
            codes, requests[column].to_numpy(dtype=np.float64), len(uniques), PERCENTILES
        )
        for index, percentile in enumerate(PERCENTILES):
            frame[f"{view}_{percentile_label(percentile)}_ms"] = values[:, index] * 1000
        frame[f"{view}_max_ms"] = maxima * 1000
    return frame.sort_values(["route", "method"], ignore_index=True)[columns]


def setup_summary(setup: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Return the setup phase per (method, route), with its latencies in ms, and its length in s.

    Columns: method, route, count, errors, p50_ms, p90_ms, p99_ms, max_ms (as sent: setup
    requests have no intended start of their own).
    """
    columns = ["method", "route", "count", "errors", "p50_ms", "p90_ms", "p99_ms", "max_ms"]
    if setup.empty:
        return pd.DataFrame(columns=columns), 0.0
    length_s = float((setup["start_s"] + setup["latency_s"]).max() - setup["start_s"].min())
    summary = route_summary(setup, length_s)
    renamed = {f"uncorrected_{stem}_ms": f"{stem}_ms" for stem in ("p50", "p90", "p99", "max")}
    return summary.rename(columns=renamed)[columns], length_s


def window_for(duration_s: float, points: int = 300) -> float:
    """Return a window (1, 2, 5, 10, 30, 60 ... s) that gives at most about `points` windows."""
    for window_s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if duration_s / window_s <= points:
            return float(window_s)
    return float(math.ceil(duration_s / points / 600) * 600)


def over_time(requests: pd.DataFrame, t0_s: float, window_s: float) -> pd.DataFrame:
    """Return per window since `t0_s` (by send time): requests/s, errors/s, corrected p50/p95/p99 ms.

    Columns: t_s (window start, seconds since t0), requests_per_s, errors_per_s, p50_ms, p95_ms,
    p99_ms. Windows without requests are absent.
    """
    columns = ["t_s", "requests_per_s", "errors_per_s", "p50_ms", "p95_ms", "p99_ms"]
    if requests.empty:
        return pd.DataFrame(columns=columns)
    windows = np.floor((requests["start_s"].to_numpy() - t0_s) / window_s).astype(np.int64)
    windows = np.maximum(windows, 0)
    groups = int(windows.max()) + 1
    counts = np.bincount(windows, minlength=groups)
    errors = np.bincount(windows, weights=(~requests["ok"].to_numpy()).astype(np.int64), minlength=groups)
    _, values, _ = grouped_nearest_rank(
        windows, requests["corrected_latency_s"].to_numpy(dtype=np.float64), groups, (50.0, 95.0, 99.0)
    )
    frame = pd.DataFrame(
        {
            "t_s": np.arange(groups) * window_s,
            "requests_per_s": counts / window_s,
            "errors_per_s": errors / window_s,
            "p50_ms": values[:, 0] * 1000,
            "p95_ms": values[:, 1] * 1000,
            "p99_ms": values[:, 2] * 1000,
        }
    )
    return frame[counts > 0].reset_index(drop=True)[columns]


def offered_requests_per_s(requests: pd.DataFrame, flows: pd.DataFrame) -> float:
    """Return the requests per second the schedule offered: per flow, its target start rate times
    the requests per started iteration (both over the measured window); NaN without start accounting."""
    if flows.empty:
        return math.nan
    per_flow = requests["flow"].astype(str).value_counts()
    sent = flows["flow"].astype(str).map(per_flow).fillna(0).to_numpy(dtype=np.float64)
    started = flows["started"].to_numpy(dtype=np.float64)
    rates = flows["target_rate_per_s"].to_numpy(dtype=np.float64)
    counted = (started > 0) & np.isfinite(rates)
    return float((rates[counted] * sent[counted] / started[counted]).sum())


def answered_per_s(requests: pd.DataFrame, start_s: float, window_s: float) -> float:
    """Return the requests answered (a response arrived) inside [start_s, start_s + window_s], per second."""
    if window_s <= 0:
        return math.nan
    ends = requests["start_s"].to_numpy(dtype=np.float64) + requests["latency_s"].to_numpy(dtype=np.float64)
    inside = (requests["status"].to_numpy() > 0) & (ends >= start_s) & (ends <= start_s + window_s)
    return float(inside.sum()) / window_s


def errors_by_code(requests: pd.DataFrame) -> pd.DataFrame:
    """Return failed requests counted by method, route, status and error code, most frequent first."""
    columns = ["method", "route", "status", "error_code", "count"]
    failed = requests.loc[~requests["ok"], ["method", "route", "status", "error_code"]]
    if failed.empty:
        return pd.DataFrame(columns=columns)
    counted = (
        failed.astype({"method": str, "route": str, "error_code": str})
        .groupby(["method", "route", "status", "error_code"], observed=True)
        .size()
        .reset_index(name="count")
    )
    return counted.sort_values(["count", "route"], ascending=[False, True], ignore_index=True)[columns]
