"""Server-side figures from the scraped Prometheus samples (the series table).

Counters and histogram buckets are cumulative per process; what happened during the run is their
increase from the first to the last scrape, with a drop treated as a restart from zero (as
Prometheus's `increase` does). Quantiles of a histogram are interpolated linearly inside the
bucket that holds the rank, as PromQL's `histogram_quantile` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from reports.latency import PERCENTILES, percentile_label
from reports.rundir import parse_labels

REQUEST_DURATION = "http_server_request_duration_seconds"


def samples(series: pd.DataFrame, name: str, **where: str) -> pd.DataFrame:
    """Return the samples of one name with their labels as extra columns, optionally filtered by labels.

    Columns: t_s, process, tier, value, and one column per label found (missing labels are "").
    """
    rows = series.loc[series["name"] == name, ["t_s", "process", "tier", "labels", "value"]]
    labels = rows["labels"].astype("category")
    parsed = [parse_labels(str(text)) for text in labels.cat.categories]
    keys = sorted({key for item in parsed for key in item})
    frame = rows[["t_s", "process", "tier", "value"]].reset_index(drop=True)
    frame["process"] = frame["process"].astype(str)
    frame["tier"] = frame["tier"].astype(str)
    codes = labels.cat.codes.to_numpy()
    for key in keys:
        lookup = np.array([item.get(key, "") for item in parsed] + [""], dtype=object)
        frame[key] = lookup[codes]
    for key, value in where.items():
        frame = frame[frame[key] == value] if key in frame else frame.iloc[0:0]
    return frame.reset_index(drop=True)


def increase(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Return the increase of cumulative values over the run per series (`by` + process).

    A value lower than the one before counts as a restart: the increase goes on from zero. A
    series that first appears after the process's first scrape started from zero during the run
    (a labelled series exists only after its first observation), so its first value counts.
    """
    keys = ["process", *by]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "value"])
    ordered = frame.sort_values([*keys, "t_s"], kind="stable")
    grouped = ordered.groupby(keys, sort=False, observed=True)
    deltas = grouped["value"].diff()
    restarted = deltas < 0
    deltas = deltas.where(~restarted, ordered["value"])
    process_first_s = ordered.groupby("process", observed=True)["t_s"].transform("min")
    appeared_later = deltas.isna() & (grouped["t_s"].transform("min") > process_first_s)
    deltas = deltas.where(~appeared_later, ordered["value"]).fillna(0.0)
    total = deltas.groupby([ordered[key] for key in keys], sort=False, observed=True).sum()
    return total.rename("value").reset_index()


def per_interval(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Return the per-scrape increase of cumulative values per series (restarts as in `increase`).

    Columns: t_s (end of the interval), process, *by, value, interval_s.
    """
    keys = ["process", *by]
    ordered = frame.sort_values([*keys, "t_s"], kind="stable").reset_index(drop=True)
    grouped = ordered.groupby(keys, sort=False, observed=True)
    deltas = grouped["value"].diff()
    deltas = deltas.where(deltas >= 0, ordered["value"])
    result = ordered[["t_s", *keys]].copy()
    result["value"] = deltas
    result["interval_s"] = grouped["t_s"].diff()
    return result.dropna(subset=["interval_s"]).reset_index(drop=True)


def histogram_quantile(bounds: np.ndarray, cumulative: np.ndarray, quantile: float) -> float:
    """Return the quantile of a histogram given its upper bounds (with +Inf last) and cumulative counts.

    As PromQL: linear inside the bucket holding the rank, from 0 for the first bucket; a rank in
    the +Inf bucket gives the highest finite bound.
    """
    order = np.argsort(bounds)
    bounds, cumulative = bounds[order], np.maximum.accumulate(cumulative[order])
    if len(bounds) == 0 or not math.isinf(bounds[-1]) or cumulative[-1] <= 0:
        return math.nan
    rank = float(quantile * cumulative[-1])
    index = int(np.searchsorted(cumulative, rank, side="left"))
    if index >= len(bounds) - 1:
        return float(bounds[-2]) if len(bounds) > 1 else math.nan
    upper = float(bounds[index])
    lower = 0.0 if index == 0 else float(bounds[index - 1])
    below = 0.0 if index == 0 else float(cumulative[index - 1])
    in_bucket = float(cumulative[index]) - below
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / in_bucket


def histogram_quantiles(
    buckets: pd.DataFrame, by: Sequence[str], percentiles: Sequence[float]
) -> pd.DataFrame:
    """Return count and interpolated percentiles per group of summed buckets (columns *by, le, value).

    Output columns: *by, count, and p<N> (seconds) per percentile.
    """
    columns = [*by, "count", *map(percentile_label, percentiles)]
    if buckets.empty:
        return pd.DataFrame(columns=columns)
    frame = buckets.assign(bound=buckets["le"].map(_bound))
    summed = frame.groupby([*by, "bound"], observed=True)["value"].sum().reset_index()
    rows = []
    for key, group in summed.groupby(list(by), observed=True, sort=True) if by else [((), summed)]:
        bounds = group["bound"].to_numpy(dtype=np.float64)
        cumulative = group["value"].to_numpy(dtype=np.float64)
        key_values = key if isinstance(key, tuple) else (key,)
        total = float(cumulative[np.isinf(bounds)].sum()) if np.isinf(bounds).any() else math.nan
        quantiles = [histogram_quantile(bounds, cumulative, p / 100) for p in percentiles]
        rows.append([*key_values, total, *quantiles])
    return pd.DataFrame(rows, columns=columns)


def _bound(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


def since(series: pd.DataFrame, t_s: float) -> pd.DataFrame:
    """Return the samples from each process's last scrape at or before `t_s` on.

    That scrape is the baseline of every increase, so counters and histograms cover what happened
    after `t_s` (a warm-up before it is left out).
    """
    if series.empty:
        return series
    times = series["t_s"].to_numpy(dtype=np.float64)
    process = series["process"].astype(str)
    earlier = times <= t_s
    baseline = series.loc[earlier, "t_s"].groupby(process[earlier]).max()
    first = process.map(baseline).fillna(-math.inf).to_numpy(dtype=np.float64)
    return series[times >= first].reset_index(drop=True)


def server_durations(series: pd.DataFrame) -> pd.DataFrame:
    """Return per (method, route) the server's request count and duration percentiles (ms) over the run.

    Columns: method, route, server_count, server_p50_ms ... server_p99.9_ms; from the increase of
    `http_server_request_duration_seconds_bucket` summed over processes and status codes.
    """
    stems = list(map(percentile_label, PERCENTILES))
    columns = ["method", "route", "server_count", *(f"server_{stem}_ms" for stem in stems)]
    buckets = samples(series, f"{REQUEST_DURATION}_bucket")
    if buckets.empty or "http_route" not in buckets:
        return pd.DataFrame(columns=columns)
    grown = increase(buckets, ["http_request_method", "http_route", "http_response_status_code", "le"])
    table = histogram_quantiles(grown, ["http_request_method", "http_route"], PERCENTILES)
    table = table.rename(
        columns={"http_request_method": "method", "http_route": "route", "count": "server_count"}
    )
    for stem in stems:
        table[f"server_{stem}_ms"] = table.pop(stem) * 1000
    return table[columns]


def run_quantile(series: pd.DataFrame, name: str, percentile: float, **where: str) -> tuple[float, float]:
    """Return (count, interpolated percentile in seconds) of one histogram over the whole run."""
    buckets = samples(series, f"{name}_bucket", **where)
    if buckets.empty:
        return 0.0, math.nan
    grown = increase(buckets, label_keys(buckets))
    table = histogram_quantiles(grown, [], [percentile])
    return float(table["count"].iloc[0]), float(table[percentile_label(percentile)].iloc[0])


def gauge(series: pd.DataFrame, name: str, *, by_process: bool = True, **where: str) -> pd.DataFrame:
    """Return a gauge summed over its other labels, per scrape time (and process).

    Columns: t_s, process (when by_process), value.
    """
    frame = samples(series, name, **where)
    keys = ["t_s", "process"] if by_process else ["t_s"]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "value"])
    if not by_process:
        # Scrapes of different processes happen at slightly different instants: align to seconds.
        frame = frame.assign(t_s=np.floor(frame["t_s"]))
    return frame.groupby(keys, observed=True)["value"].sum().reset_index()


def mean_per_interval(series: pd.DataFrame, name: str) -> pd.DataFrame:
    """Return a histogram's mean observation per scrape interval and process (Δsum / Δcount).

    Columns: t_s, process, value (seconds; NaN where nothing was observed in the interval).
    """
    sums = samples(series, f"{name}_sum")
    counts = samples(series, f"{name}_count")
    if sums.empty or counts.empty:
        return pd.DataFrame(columns=["t_s", "process", "value"])
    # Scrapes of one process are at one instant per second: align them to whole seconds.
    sum_deltas = _summed_intervals(sums)
    count_deltas = _summed_intervals(counts)
    joined = pd.concat({"sum": sum_deltas, "count": count_deltas}, axis=1).dropna()
    mean = joined["sum"] / joined["count"].where(joined["count"] > 0)
    return mean.rename("value").reset_index()


def _summed_intervals(frame: pd.DataFrame) -> pd.Series:
    deltas = per_interval(frame, label_keys(frame))
    return deltas.groupby(["t_s", "process"])["value"].sum()


def label_keys(frame: pd.DataFrame) -> list[str]:
    """Return the label columns of a `samples` table."""
    return [column for column in frame.columns if column not in ("t_s", "process", "tier", "value")]


def totals(series: pd.DataFrame, names: Mapping[str, str]) -> dict[str, float]:
    """Return the increase over the run of several counters, summed over processes and labels."""
    result = {}
    for key, name in names.items():
        frame = samples(series, name)
        if frame.empty:
            result[key] = math.nan
            continue
        result[key] = float(increase(frame, label_keys(frame))["value"].sum())
    return result
