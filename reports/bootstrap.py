"""Resampling a route's figures to give their change between two results an interval.

Requests of one run are not independent samples: latency is autocorrelated in time (a pause of
the machine, a checkpoint of the database or a burst of arrivals slows every request of the
same seconds). So the resampled unit is a **block of consecutive seconds**, not a request: the
run's window is cut into blocks of `block_length_s` seconds, and a bootstrap replicate draws as
many blocks as the run has, with replacement (a non-overlapping block bootstrap). What happens
inside a block stays together, so its correlation is kept.

Each block is summarised once: per route its request count, its failures, its seconds, and a
histogram of the corrected latency on logarithmic bins of `BIN_RATIO` (0.5 % wide, so a
percentile read from it is within 0.25 % of the exact nearest rank). A replicate is then a
weighted sum of block rows, one matrix product for all replicates at once, and its percentiles
are read from the summed histogram's cumulative counts: a 10-million-request run costs a few
matrix products, not ten million resampled rows.

Repeats of one experiment (`testbed run --repeat N`) add the noise from run to run: a replicate
first draws N repeats with replacement, then blocks inside each drawn repeat (a two-stage
bootstrap), so the interval holds both the noise within a run and the spread between repeats.
A single run is the one-repeat case of the same procedure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Latency histogram: bin i holds [LOW_S * BIN_RATIO**i, LOW_S * BIN_RATIO**(i+1)).
LOW_S = 1e-6
BIN_RATIO = 1.005
_LOG_RATIO = math.log(BIN_RATIO)
# Blocks are the cube root of the run's seconds long, rounded (the usual rate for a block
# bootstrap of a mean or a quantile), and long enough that a run has at most MAX_BLOCKS of them.
MAX_BLOCKS = 250
REPLICATES = 2000
# Columns of a block row before the histogram's bins.
COUNT, ERRORS, SECONDS, FIRST_BIN_COLUMN = 0, 1, 2, 3

RouteKey = tuple[str, str]  # (method, route)


def latency_bins(values_s: np.ndarray) -> np.ndarray:
    """Return each latency's histogram bin (-1 for NaN); latencies below LOW_S fall into bin 0."""
    values = np.asarray(values_s, dtype=np.float64)
    bins = np.full(values.shape, -1, dtype=np.int64)
    present = ~np.isnan(values)
    scaled = np.maximum(values[present], LOW_S) / LOW_S
    bins[present] = np.floor(np.log(scaled) / _LOG_RATIO).astype(np.int64)
    return bins


def bin_value_s(bins: np.ndarray) -> np.ndarray:
    """Return the geometric middle of each bin, in seconds."""
    return LOW_S * np.exp((np.asarray(bins, dtype=np.float64) + 0.5) * _LOG_RATIO)


def block_length_s(seconds: int) -> int:
    """Return the block length for a run of `seconds`: its cube root, rounded; at most MAX_BLOCKS blocks."""
    cube_root: float = seconds ** (1 / 3)
    return max(1, round(cube_root), math.ceil(seconds / MAX_BLOCKS))


@dataclass(frozen=True)
class RouteBlocks:
    """One route of one run, per block: requests, failures and a latency histogram from `first_bin`."""

    counts: np.ndarray
    errors: np.ndarray
    first_bin: int
    histogram: np.ndarray  # blocks x bins

    @property
    def last_bin(self) -> int:
        return self.first_bin + int(self.histogram.shape[1]) - 1


@dataclass(frozen=True)
class RunBlocks:
    """One run cut into blocks of consecutive seconds, with every route's block summaries."""

    block_s: int
    seconds: np.ndarray  # per block (the last block may be shorter)
    routes: Mapping[RouteKey, RouteBlocks]

    def rows(self, key: RouteKey, first_bin: int, width: int) -> np.ndarray:
        """Return the route's block rows: count, errors, seconds, then bins first_bin..first_bin+width-1.

        A route this run never requested has blocks of zero requests: its seconds still count.
        """
        rows = np.zeros((len(self.seconds), FIRST_BIN_COLUMN + width))
        rows[:, SECONDS] = self.seconds
        blocks = self.routes.get(key)
        if blocks is None:
            return rows
        rows[:, COUNT] = blocks.counts
        rows[:, ERRORS] = blocks.errors
        offset = blocks.first_bin - first_bin
        rows[:, FIRST_BIN_COLUMN + offset : FIRST_BIN_COLUMN + offset + blocks.histogram.shape[1]] = (
            blocks.histogram
        )
        return rows


def run_blocks(
    codes: np.ndarray,
    keys: Sequence[RouteKey],
    start_s: np.ndarray,
    ok: np.ndarray,
    latency_s: np.ndarray,
    t0_s: float,
    duration_s: float,
) -> RunBlocks:
    """Summarise one run's requests per route (`codes` index `keys`) and block of seconds since `t0_s`.

    The seconds are those in which requests were sent, up to `duration_s`: a run's drain after its
    last start has no arrivals, and its empty blocks would pass for noise in the throughput.
    """
    start_s = np.asarray(start_s, dtype=np.float64)
    sending_s = math.floor(float(start_s.max()) - t0_s) + 1 if start_s.size else 1
    seconds_total = max(1, min(math.ceil(duration_s - 1e-9), sending_s))
    block_s = block_length_s(seconds_total)
    blocks_n = math.ceil(seconds_total / block_s)
    seconds = np.minimum(block_s, seconds_total - np.arange(blocks_n) * block_s).astype(np.float64)
    second = np.clip(np.floor(start_s - t0_s), 0, seconds_total - 1)
    block = second.astype(np.int64) // block_s
    bins = latency_bins(latency_s)
    failed = ~np.asarray(ok, dtype=bool)
    order = np.argsort(codes, kind="stable")
    per_code = np.bincount(codes, minlength=len(keys))
    ends = np.cumsum(per_code)
    starts = ends - per_code
    routes = {}
    for code, key in enumerate(keys):
        chosen = order[starts[code] : ends[code]]
        if chosen.size == 0:
            continue
        route_block = block[chosen]
        counts = np.bincount(route_block, minlength=blocks_n).astype(np.float64)
        errors = np.bincount(route_block, weights=failed[chosen], minlength=blocks_n)
        route_bins = bins[chosen]
        measured = route_bins >= 0
        if measured.any():
            first = int(route_bins[measured].min())
            width = int(route_bins[measured].max()) - first + 1
            cells = route_block[measured] * width + route_bins[measured] - first
            histogram = np.bincount(cells, minlength=blocks_n * width).reshape(blocks_n, width)
        else:
            first, histogram = 0, np.zeros((blocks_n, 1), dtype=np.int64)
        routes[key] = RouteBlocks(counts, errors, first, histogram.astype(np.float64))
    return RunBlocks(block_s, seconds, routes)


def bin_span(runs: Sequence[RunBlocks], key: RouteKey) -> tuple[int, int]:
    """Return (first bin, width) covering the route's histograms in every run."""
    present = [run.routes[key] for run in runs if key in run.routes]
    if not present:
        return 0, 1
    first = min(blocks.first_bin for blocks in present)
    return first, max(blocks.last_bin for blocks in present) - first + 1


def pooled(runs: Sequence[RunBlocks], key: RouteKey, first_bin: int, width: int) -> np.ndarray:
    """Return the route's totals over every block of every run (one row, the point estimate's data)."""
    total: np.ndarray = np.sum([run.rows(key, first_bin, width).sum(axis=0) for run in runs], axis=0)
    return total[np.newaxis, :]


def replicates(
    runs: Sequence[RunBlocks],
    key: RouteKey,
    first_bin: int,
    width: int,
    rng: np.random.Generator,
    count: int = REPLICATES,
) -> np.ndarray:
    """Return `count` bootstrap replicates of the route's totals (one row each, as `pooled`).

    Each replicate draws len(runs) runs with replacement, and for each drawn run as many of its
    blocks as it has, with replacement.
    """
    if len(runs) == 1:
        return _resampled(runs[0].rows(key, first_bin, width), count, 1, rng)
    drawn = rng.integers(0, len(runs), size=(count, len(runs)))
    totals = np.zeros((count, FIRST_BIN_COLUMN + width))
    for index, run in enumerate(runs):
        rows = run.rows(key, first_bin, width)
        # How often each replicate draws this run, over all its draws.
        times = (drawn == index).sum(axis=1)
        for draws in range(1, len(runs) + 1):
            chosen = np.flatnonzero(times == draws)
            if chosen.size:
                totals[chosen] += _resampled(rows, chosen.size, draws, rng)
    return totals


def _resampled(rows: np.ndarray, count: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Return `count` sums of `draws` block resamples of one run (each as many blocks as it has)."""
    blocks_n = len(rows)
    picks = rng.integers(0, blocks_n, size=(count, draws * blocks_n))
    cells = (np.arange(count)[:, np.newaxis] * blocks_n + picks).ravel()
    weights = np.bincount(cells, minlength=count * blocks_n).reshape(count, blocks_n)
    totals: np.ndarray = weights.astype(np.float64) @ rows
    return totals


def throughput(totals: np.ndarray) -> np.ndarray:
    """Requests per second of each row of totals."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result: np.ndarray = totals[:, COUNT] / totals[:, SECONDS]
    return result


def error_ratio(totals: np.ndarray) -> np.ndarray:
    """Failed share of the requests of each row (NaN without requests)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result: np.ndarray = totals[:, ERRORS] / totals[:, COUNT]
    return result


def percentiles_s(totals: np.ndarray, first_bin: int, percentiles: Sequence[float]) -> np.ndarray:
    """Return the nearest-rank percentiles (rows x percentiles, seconds) read from each row's histogram.

    NaN for a row without a measured latency.
    """
    histogram = totals[:, FIRST_BIN_COLUMN:]
    rows, width = histogram.shape
    cumulative = np.cumsum(histogram, axis=1)
    measured = cumulative[:, -1]
    # Each row's cumulative counts rise; shifting row i by i x (the largest total + 1) makes the
    # flattened array rise too, so one searchsorted finds every row's rank.
    shift = np.arange(rows, dtype=np.float64) * (float(measured.max(initial=0.0)) + 1)
    flat = (cumulative + shift[:, np.newaxis]).ravel()
    result = np.full((rows, len(percentiles)), math.nan)
    for column, percentile in enumerate(percentiles):
        ranks = np.maximum(np.ceil(np.round(measured * percentile / 100, 9)), 1)
        found = np.searchsorted(flat, ranks + shift, side="left") - np.arange(rows) * width
        values = bin_value_s(first_bin + np.minimum(found, width - 1))
        result[:, column] = np.where(measured > 0, values, math.nan)
    return result


def relative_change(baseline: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Return candidate / baseline - 1; 0 when both are 0, +inf from 0 to more, NaN where either is."""
    with np.errstate(divide="ignore", invalid="ignore"):
        change = candidate / baseline - 1
    change = np.where((baseline == 0) & (candidate == 0), 0.0, change)
    return np.where((baseline == 0) & (candidate > 0), math.inf, change)


def interval(changes: np.ndarray, confidence: float) -> tuple[float, float]:
    """Return the percentile interval of bootstrap changes (NaN replicates left out)."""
    finite = changes[~np.isnan(changes)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)
