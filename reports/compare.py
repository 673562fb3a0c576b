"""Two results side by side: what differs between them, and whether each figure changed beyond its noise.

load (`load_result`: a run directory, the repeats of one experiment, or a capacity search) ->
compare (`compare`, pure) -> write (`render_markdown`, `render_html`, `write_comparison`).

Per route, the relative change of the throughput, the error ratio and each percentile of the
corrected latency gets an interval from a block bootstrap over seconds (reports/bootstrap.py;
with repeats, over repeats too). A route's figures are judged together: each interval is at
1 - 0.05 / m for the route's m judged figures (Bonferroni), so the route's intervals hold at
once with 95 %, and a route whose runs differ by noise alone shows no change in at least 95 of
100 comparisons. The verdict of each figure is `verdicts.judge_change`'s.

Two results are not comparable (`NotComparable`) when they ran different scenarios (or the same
one in another load model), when one is invalid, or when a run is compared with a capacity search.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import secrets
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import bootstrap, charts, latency, saturation, verdicts
from reports.history import (
    COMPARISON_HTML,
    COMPARISON_JSON,
    COMPARISON_MD,
    CapacityResult,
    HistoryError,
    is_capacity,
    is_repeat_group,
    is_run,
    read_capacity,
    read_repeats,
)
from reports.manifest import RunManifest, read_manifest
from reports.page import STYLE, html_table, markdown_table
from reports.render import run_window
from reports.rundir import (
    ARRIVAL,
    PROCESS_COLUMNS,
    PROCESSES,
    REQUEST_COLUMNS,
    REQUESTS,
    SERIES,
    SERIES_COLUMNS,
    TIERS,
    flows_table,
    read_table,
)

CONFIDENCE = 0.95
DEFAULT_THRESHOLD = 0.05
COMPARED_PERCENTILES = (50.0, 90.0, 95.0, 98.0, 99.0, 99.9)
REQUEST_FIELDS = ("start_s", "method", "route", "ok", "latency_s", "corrected_latency_s")
# A tier's peak utilisation: the highest mean CPU share of its limit over this many samples (about
# seconds) of its busiest process, so a single sample's jitter is no peak.
PEAK_SAMPLES = 5
# The random stream of the bootstrap is fixed: comparing the same two results twice says the same.
BOOTSTRAP_SEED = 20250425
# Manifest keys that differ between any two runs and say nothing about what ran (the CPU plan's
# warnings follow from the options, which are compared).
_UNCOMPARED = {
    "run_id",
    "started_at_s",
    "ended_at_s",
    "synthetic",
    "format_version",
    "scrape_failures",
    "profile.landscape_id",
    "profile.up_seconds",
    "profile.source",
    "profile.cpu.warnings",
    "scenario.source",
    "scenario.text",
}
MAX_MARKDOWN_DIFFERENCES = 12


class NotComparable(Exception):
    """The two results cannot be compared; the message is one line saying why."""


@dataclass(frozen=True)
class Figure:
    """One compared figure of a route: its name, unit and which direction is worse."""

    name: str
    higher_is_worse: bool
    percentile: float | None = None

    def show(self, value: float) -> str:
        if math.isnan(value):
            return "-"
        if self.percentile is not None:
            return f"{value * 1000:,.1f} ms"
        if self.name == "error ratio":
            return f"{value:.2%}"
        return f"{value:,.1f}/s"


FIGURES = (
    Figure("throughput", higher_is_worse=False),
    Figure("error ratio", higher_is_worse=True),
    *(Figure(latency.percentile_label(q), higher_is_worse=True, percentile=q) for q in COMPARED_PERCENTILES),
)


@dataclass(frozen=True)
class RunSummary:
    """What a comparison keeps of one run: its blocks of seconds and its verdicts, not its tables."""

    run_id: str
    path: Path
    manifest: RunManifest
    blocks: bootstrap.RunBlocks
    problems: tuple[str, ...]
    tiers: tuple[saturation.TierVerdict, ...]
    first_saturated: saturation.TierVerdict | None
    # Tier -> highest CPU share of its limit (1.0 = at the limit).
    peak_utilisation: Mapping[str, float]


@dataclass(frozen=True)
class Runs:
    """One side of a comparison: a run, or the repeats of one experiment."""

    label: str
    path: Path
    runs: tuple[RunSummary, ...]

    @property
    def manifest(self) -> RunManifest:
        return self.runs[0].manifest


Result = Runs | CapacityResult


def summarise_run(run_dir: Path) -> RunSummary:
    """Read one run directory and keep what a comparison needs (the requests table is let go)."""
    manifest = read_manifest(run_dir)
    requests = read_table(run_dir / REQUESTS, REQUEST_COLUMNS, "requests", only=REQUEST_FIELDS)
    series = read_table(run_dir / SERIES, SERIES_COLUMNS, "series")
    processes = read_table(run_dir / PROCESSES, PROCESS_COLUMNS, "processes")
    arrival_path = run_dir / ARRIVAL
    arrival = json.loads(arrival_path.read_text(encoding="utf-8")) if arrival_path.is_file() else {}
    t0_s, end_s = run_window(manifest, requests, series, processes)
    codes, keys = latency.route_codes(requests)
    blocks = bootstrap.run_blocks(
        codes,
        list(zip(keys["method"], keys["route"], strict=True)),
        requests["start_s"].to_numpy(np.float64),
        requests["ok"].to_numpy(bool),
        requests["corrected_latency_s"].to_numpy(np.float64),
        t0_s,
        max(end_s - t0_s, 1e-9),
    )
    problems = verdicts.validity_problems(
        processes,
        flows_table(arrival),
        len(requests),
        model=manifest.scenario.model,
        window_s=(t0_s, end_s),
    )
    rules = saturation.evaluate(
        series,
        processes,
        t0_s,
        requests=requests,
        threads_per_worker=manifest.profile.threads_per_worker,
        machine_cores=float(manifest.machine.cpus),
    )
    tiers = saturation.tier_verdicts(rules)
    return RunSummary(
        run_id=manifest.run_id,
        path=run_dir,
        manifest=manifest,
        blocks=blocks,
        problems=tuple(map(str, problems)),
        tiers=tuple(tiers),
        first_saturated=saturation.first_saturated(tiers),
        peak_utilisation=peak_utilisation(processes, float(manifest.machine.cpus)),
    )


def peak_utilisation(processes: pd.DataFrame, machine_cores: float) -> dict[str, float]:
    """Per tier: the highest mean CPU share of its limit over PEAK_SAMPLES samples of any of its processes."""
    peaks = {}
    for tier in TIERS:
        rows = processes[processes["tier"].astype(str) == tier].sort_values("t_s")
        if rows.empty:
            continue
        limit = rows["cpu_limit_cores"].fillna(machine_cores).to_numpy(np.float64)
        share = pd.Series(rows["cpu_percent"].to_numpy(np.float64) / 100 / limit, index=rows.index)
        by_process = share.groupby(rows["process"].astype(str).to_numpy())
        window = by_process.transform(lambda values: values.rolling(min(PEAK_SAMPLES, len(values))).mean())
        peaks[tier] = float(window.max())
    return peaks


def load_result(path: Path) -> Result:
    """Read a run directory, a directory of repeats, or a capacity search (HistoryError, ManifestError)."""
    if is_repeat_group(path):
        group = read_repeats(path)
        runs = tuple(summarise_run(path / run) for run in group.runs if is_run(path / run))
        if not runs:
            raise HistoryError(f"{path}: no repeat completed a run")
        return Runs(group.group_id, path, runs)
    if is_capacity(path):
        return read_capacity(path)
    if is_run(path):
        return Runs(path.name, path, (summarise_run(path),))
    raise HistoryError(f"{path}: not a run directory, repeats of one, or a capacity search")


# Comparing


@dataclass(frozen=True)
class TierChange:
    """One tier on both sides: saturated in how many runs, its peak utilisation (per run)."""

    tier: str
    baseline_saturated: tuple[bool, ...]
    candidate_saturated: tuple[bool, ...]
    baseline_peak: tuple[float, ...]
    candidate_peak: tuple[float, ...]
    baseline_figure: str
    candidate_figure: str


@dataclass(frozen=True)
class CapacityChange:
    """Two capacity searches: each capacity with the next failed step, the change and its interval."""

    baseline: CapacityResult
    candidate: CapacityResult
    change: float
    low: float
    high: float
    verdict: str


@dataclass(frozen=True)
class Comparison:
    """Everything a comparison found, ready to be written."""

    baseline: str
    candidate: str
    scenario: str
    profiles: tuple[str, str]
    threshold: float
    differences: tuple[tuple[str, str, str], ...]
    figures: pd.DataFrame
    tiers: tuple[TierChange, ...] = ()
    first_saturated: tuple[str, str] = ("", "")
    repeats: tuple[int, int] = (1, 1)
    capacity: CapacityChange | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def regressions(self) -> pd.DataFrame:
        return self.figures[self.figures["verdict"] == verdicts.REGRESSION]

    @property
    def improvements(self) -> pd.DataFrame:
        return self.figures[self.figures["verdict"] == verdicts.IMPROVEMENT]

    @property
    def regressed(self) -> bool:
        capacity = self.capacity is not None and self.capacity.verdict == verdicts.REGRESSION
        return capacity or bool(len(self.regressions))

    @property
    def exit_status(self) -> int:
        """0 no regression, 1 a regression."""
        return 1 if self.regressed else 0

    def headline(self) -> str:
        """One line: the verdict and the worst changes."""
        threshold = percent_text(self.threshold)
        if self.capacity is not None:
            change = self.capacity
            text = f"capacity {_change(change.change)} [{_change(change.low)}, {_change(change.high)}]"
            if change.verdict == verdicts.REGRESSION:
                return f"Verdict: REGRESSION: {text}, worse by more than {threshold}"
            return f"Verdict: no regression: {text} ({change.verdict})"
        if self.regressed:
            worst = self.regressions.sort_values("change", ascending=False, key=lambda column: column.abs())
            routes = worst[["method", "route"]].drop_duplicates()
            shown = "; ".join(_figure_text(row) for row in worst.head(3).to_dict("records"))
            more = f"; and {len(worst) - 3} more" if len(worst) > 3 else ""
            return (
                f"Verdict: REGRESSION: {len(worst)} figure(s) on {len(routes)} route(s) worse by more than "
                f"{threshold}: {shown}{more}"
            )
        judged = self.figures[self.figures["verdict"] != verdicts.NOT_JUDGED]
        better = len(self.improvements)
        return (
            f"Verdict: no regression: {len(judged)} figures judged at a {threshold} threshold, "
            f"{better} improved, {len(judged) - better} without significant change"
        )


def percent_text(share: float) -> str:
    """0.05 -> 5%, 0.125 -> 12.5%."""
    return f"{share * 100:g}%"


def _change(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "from 0" if value > 0 else "to 0"
    return f"{value:+.1%}"


def _figure_text(row: Mapping[Any, Any], route: bool = True) -> str:
    where = f"{row['method']} {row['route']} " if route else ""
    return f"{where}{row['figure']} {_change(row['change'])} [{_change(row['low'])}, {_change(row['high'])}]"


def check_comparable(baseline: Result, candidate: Result) -> None:
    """Raise NotComparable (one line) unless both ran the same scenario in the same model and are valid."""
    if isinstance(baseline, CapacityResult) != isinstance(candidate, CapacityResult):
        raise NotComparable("a capacity search and a run cannot be compared")
    sides = (("baseline", baseline), ("candidate", candidate))
    scenario = {name: _scenario(result) for name, result in sides}
    if scenario["baseline"] != scenario["candidate"]:
        raise NotComparable(
            f"different scenarios: baseline {scenario['baseline'][0]!r} ({scenario['baseline'][1]} model), "
            f"candidate {scenario['candidate'][0]!r} ({scenario['candidate'][1]} model)"
        )
    for name, result in sides:
        if isinstance(result, CapacityResult):
            if result.problems:
                raise NotComparable(f"the {name} capacity search is invalid: {'; '.join(result.problems)}")
            if result.capacity_rps is None:
                raise NotComparable(f"the {name} capacity search found no capacity")
            continue
        for run in result.runs:
            if run.problems:
                raise NotComparable(f"the {name} run {run.run_id} is invalid: {'; '.join(run.problems)}")


def _scenario(result: Result) -> tuple[str, str]:
    if isinstance(result, CapacityResult):
        return result.scenario, result.manifest.scenario.model if result.manifest else "open"
    return result.manifest.scenario.name, result.manifest.scenario.model


def compare(baseline: Result, candidate: Result, threshold: float = DEFAULT_THRESHOLD) -> Comparison:
    """Compare two results (NotComparable when they cannot be)."""
    check_comparable(baseline, candidate)
    differences = tuple(manifest_differences(baseline.manifest, candidate.manifest))
    if isinstance(baseline, CapacityResult) and isinstance(candidate, CapacityResult):
        return Comparison(
            baseline=baseline.search_id,
            candidate=candidate.search_id,
            scenario=baseline.scenario,
            profiles=(baseline.profile, candidate.profile),
            threshold=threshold,
            differences=differences,
            figures=pd.DataFrame(columns=FIGURE_COLUMNS),
            first_saturated=(baseline.limiting_tier or "none", candidate.limiting_tier or "none"),
            capacity=capacity_change(baseline, candidate, threshold),
        )
    assert isinstance(baseline, Runs)
    assert isinstance(candidate, Runs)
    notes = []
    if (len(baseline.runs) > 1) != (len(candidate.runs) > 1):
        lone = "baseline" if len(baseline.runs) == 1 else "candidate"
        notes.append(
            f"The {lone} is a single run: its noise from run to run is unknown, so the intervals "
            "understate it (`testbed run --repeat N` measures it)."
        )
    return Comparison(
        baseline=baseline.label,
        candidate=candidate.label,
        scenario=baseline.manifest.scenario.name,
        profiles=(baseline.manifest.profile.name, candidate.manifest.profile.name),
        threshold=threshold,
        differences=differences,
        figures=figure_changes(
            [run.blocks for run in baseline.runs], [run.blocks for run in candidate.runs], threshold
        ),
        tiers=tuple(tier_changes(baseline, candidate)),
        first_saturated=(_first_saturated(baseline), _first_saturated(candidate)),
        repeats=(len(baseline.runs), len(candidate.runs)),
        notes=tuple(notes),
    )


FIGURE_COLUMNS = [
    "method",
    "route",
    "figure",
    "baseline",
    "candidate",
    "change",
    "low",
    "high",
    "confidence",
    "verdict",
    "note",
    "baseline_min",
    "baseline_max",
    "candidate_min",
    "candidate_max",
    "baseline_count",
    "candidate_count",
]


def _figures(totals: np.ndarray, first_bin: int) -> np.ndarray:
    """Rows of totals -> rows of figures in FIGURES order (seconds for the percentiles)."""
    return np.column_stack(
        [
            bootstrap.throughput(totals),
            bootstrap.error_ratio(totals),
            bootstrap.percentiles_s(totals, first_bin, COMPARED_PERCENTILES),
        ]
    )


def figure_changes(
    base_runs: Sequence[bootstrap.RunBlocks], cand_runs: Sequence[bootstrap.RunBlocks], threshold: float
) -> pd.DataFrame:
    """One row per route and figure: both values, the change, its interval and the verdict.

    Each side is one run or the repeats of one experiment, as blocks of seconds.
    """
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    keys = sorted({key for run in (*base_runs, *cand_runs) for key in run.routes}, key=lambda k: (k[1], k[0]))
    rows = []
    for key in keys:
        first, width = bootstrap.bin_span((*base_runs, *cand_runs), key)
        point_b = _figures(bootstrap.pooled(base_runs, key, first, width), first)[0]
        point_c = _figures(bootstrap.pooled(cand_runs, key, first, width), first)[0]
        count_b = int(bootstrap.pooled(base_runs, key, first, width)[0, bootstrap.COUNT])
        count_c = int(bootstrap.pooled(cand_runs, key, first, width)[0, bootstrap.COUNT])
        spread_b = np.vstack(
            [_figures(bootstrap.pooled([run], key, first, width), first) for run in base_runs]
        )
        spread_c = np.vstack(
            [_figures(bootstrap.pooled([run], key, first, width), first) for run in cand_runs]
        )
        notes = [_judgeable(figure, count_b, count_c) for figure in FIGURES]
        judged = [index for index, note in enumerate(notes) if not note]
        replicates_b = replicates_c = np.empty((0, len(FIGURES)))
        if judged:
            replicates_b = _figures(bootstrap.replicates(base_runs, key, first, width, rng), first)
            replicates_c = _figures(bootstrap.replicates(cand_runs, key, first, width, rng), first)
        confidence = 1 - (1 - CONFIDENCE) / max(len(judged), 1)
        for index, figure in enumerate(FIGURES):
            change = float(
                bootstrap.relative_change(point_b[index : index + 1], point_c[index : index + 1])[0]
            )
            low = high = math.nan
            verdict = verdicts.NOT_JUDGED
            if index in judged:
                changes = bootstrap.relative_change(replicates_b[:, index], replicates_c[:, index])
                low, high = bootstrap.interval(changes, confidence)
                verdict = verdicts.judge_change(
                    change, low, high, threshold, higher_is_worse=figure.higher_is_worse
                )
            rows.append(
                [
                    *key,
                    figure.name,
                    point_b[index],
                    point_c[index],
                    change,
                    low,
                    high,
                    confidence if index in judged else math.nan,
                    verdict,
                    notes[index],
                    *_spread(spread_b[:, index]),
                    *_spread(spread_c[:, index]),
                    count_b,
                    count_c,
                ]
            )
    return pd.DataFrame(rows, columns=FIGURE_COLUMNS)


def _spread(values: np.ndarray) -> tuple[float, float]:
    present = values[~np.isnan(values)]
    return (float(present.min()), float(present.max())) if present.size else (math.nan, math.nan)


def _judgeable(figure: Figure, count_b: int, count_c: int) -> str:
    """Why a figure is not judged ("" when it is): a side without requests, or too few for a percentile."""
    if count_b == 0:
        return "only in the candidate"
    if count_c == 0:
        return "only in the baseline"
    if figure.percentile is not None:
        needed = verdicts.min_samples(figure.percentile)
        if min(count_b, count_c) < needed:
            return f"too few to compare (n = {min(count_b, count_c):,}, needs {needed:,})"
    return ""


def tier_changes(baseline: Runs, candidate: Runs) -> list[TierChange]:
    """Each tier's saturation and peak utilisation on both sides, run by run (unmeasured tiers left out)."""
    changes = []
    for tier in TIERS:
        sides = []
        for side in (baseline, candidate):
            # The pooler and replica tiers exist only in runs whose landscape has them.
            found = [next((v for v in run.tiers if v.tier == tier), None) for run in side.runs]
            peaks = tuple(run.peak_utilisation.get(tier, math.nan) for run in side.runs)
            saturated = tuple(verdict is not None and verdict.saturated for verdict in found)
            sides.append((saturated, peaks, found[0].figure if found[0] is not None else "no data"))
        measured = any(tier in run.peak_utilisation for run in (*baseline.runs, *candidate.runs))
        if measured or any(figure != "no data" for _, _, figure in sides):
            (base_saturated, base_peaks, base_figure), (cand_saturated, cand_peaks, cand_figure) = sides
            changes.append(
                TierChange(
                    tier, base_saturated, cand_saturated, base_peaks, cand_peaks, base_figure, cand_figure
                )
            )
    return changes


def _first_saturated(side: Runs) -> str:
    """The first saturated tier: "database from 3 s", or of repeats "database (2 of 3), none (1 of 3)"."""
    named = []
    for run in side.runs:
        first = run.first_saturated
        named.append("none" if first is None else first.tier)
    if len(side.runs) == 1:
        first = side.runs[0].first_saturated
        if first is None:
            return "none"
        return first.tier + ("" if math.isnan(first.onset_s) else f" from {first.onset_s:.0f} s")
    counts = {name: named.count(name) for name in dict.fromkeys(named)}
    return ", ".join(f"{name} ({count} of {len(named)})" for name, count in counts.items())


def capacity_change(baseline: CapacityResult, candidate: CapacityResult, threshold: float) -> CapacityChange:
    """The change of capacity; its interval spans each search's resolution (a capacity lies between
    its last passing step and the next failing one)."""
    base, cand = baseline.capacity_rps or math.nan, candidate.capacity_rps or math.nan
    base_high = baseline.next_failed_rps or math.inf
    cand_high = candidate.next_failed_rps or math.inf
    change = cand / base - 1
    low = cand / base_high - 1
    high = cand_high / base - 1
    verdict = verdicts.judge_change(change, low, high, threshold, higher_is_worse=False)
    return CapacityChange(baseline, candidate, change, low, high, verdict)


def manifest_differences(
    baseline: RunManifest | None, candidate: RunManifest | None
) -> list[tuple[str, str, str]]:
    """What differs between two manifests (revision, profile and its options, settings, scenario,
    seed, versions, machine): (key, baseline's value, candidate's value), sorted by key."""
    if baseline is None or candidate is None:
        return []
    base, cand = _flat(baseline), _flat(candidate)
    rows = [
        (key, base.get(key, "(none)"), cand.get(key, "(none)"))
        for key in sorted(set(base) | set(cand))
        if base.get(key) != cand.get(key)
    ]
    if baseline.scenario.text != candidate.scenario.text:
        rows.append(("scenario file", _digest(baseline.scenario.text), _digest(candidate.scenario.text)))
    return rows


def _digest(text: str) -> str:
    return "text sha256 " + hashlib.sha256(text.encode()).hexdigest()[:12]


def _flat(manifest: RunManifest) -> dict[str, str]:
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if prefix in _UNCOMPARED:
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list | tuple) and value and isinstance(value[0], Mapping):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)
        elif isinstance(value, list | tuple):
            flat[prefix] = ", ".join(map(str, value))
        elif isinstance(value, float):
            flat[prefix] = f"{value:.4g}"
        else:
            flat[prefix] = str(value)

    walk("", dataclasses.asdict(manifest))
    return flat


# Writing


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0%}"


def _peaks(values: Sequence[float]) -> str:
    present = [value for value in values if not math.isnan(value)]
    if not present:
        return "-"
    if len(present) == 1:
        return _percent(present[0])
    return f"{_percent(statistics.median(present))} ({_percent(min(present))}-{_percent(max(present))})"


def _saturated(flags: Sequence[bool]) -> str:
    if len(flags) == 1:
        return "SATURATED" if flags[0] else "no"
    return f"{sum(flags)} of {len(flags)}"


def _value(row: Mapping[Any, Any], side: str, figure: Figure, repeats: int) -> str:
    text = figure.show(float(row[side]))
    if repeats > 1 and not math.isnan(float(row[f"{side}_min"])):
        text += f" ({figure.show(float(row[f'{side}_min']))} to {figure.show(float(row[f'{side}_max']))})"
    return text


_BY_NAME = {figure.name: figure for figure in FIGURES}
TABLE_HEADER = ("method", "route", "figure", "baseline", "candidate", "change", "interval", "verdict")


def figure_rows(comparison: Comparison, only_changed: bool = False) -> list[list[str]]:
    """Rows of the figures table (only_changed: regressions and improvements alone)."""
    rows = []
    for row in comparison.figures.to_dict("records"):
        if only_changed and row["verdict"] not in (verdicts.REGRESSION, verdicts.IMPROVEMENT):
            continue
        figure = _BY_NAME[row["figure"]]
        judged = row["verdict"] != verdicts.NOT_JUDGED
        rows.append(
            [
                str(row["method"]),
                str(row["route"]),
                figure.name,
                _value(row, "baseline", figure, comparison.repeats[0]),
                _value(row, "candidate", figure, comparison.repeats[1]),
                _change(float(row["change"])),
                f"[{_change(row['low'])}, {_change(row['high'])}]" if judged else "-",
                str(row["verdict"]) if judged else str(row["note"]),
            ]
        )
    return rows


def route_rows(comparison: Comparison) -> list[list[str]]:
    """One row per route: requests on both sides, its verdict and the figures that changed."""
    rows = []
    for (method, route), figures in comparison.figures.groupby(["method", "route"], sort=False):
        found = set(figures["verdict"])
        verdict = (
            verdicts.REGRESSION
            if verdicts.REGRESSION in found
            else verdicts.IMPROVEMENT
            if verdicts.IMPROVEMENT in found
            else verdicts.NO_CHANGE
            if verdicts.NO_CHANGE in found
            else str(figures["note"].iloc[0])
        )
        changed = figures[figures["verdict"].isin([verdicts.REGRESSION, verdicts.IMPROVEMENT])]
        rows.append(
            [
                str(method),
                str(route),
                f"{int(figures['baseline_count'].iloc[0]):,} / {int(figures['candidate_count'].iloc[0]):,}",
                verdict,
                "; ".join(_figure_text(row, route=False) for row in changed.to_dict("records")) or "-",
            ]
        )
    return rows


ROUTE_HEADER = ("method", "route", "requests (baseline / candidate)", "verdict", "changed figures")
TIER_HEADER = (
    "tier",
    "saturated (baseline)",
    "saturated (candidate)",
    "peak CPU of its limit (baseline)",
    "peak CPU of its limit (candidate)",
)


def tier_rows(comparison: Comparison, figures: bool = False) -> list[list[str]]:
    """Per tier: saturated and peak CPU on both sides (figures: and the clearest rule's figure, first run)."""
    return [
        [
            tier.tier,
            _saturated(tier.baseline_saturated),
            _saturated(tier.candidate_saturated),
            _peaks(tier.baseline_peak),
            _peaks(tier.candidate_peak),
            *((tier.baseline_figure, tier.candidate_figure) if figures else ()),
        ]
        for tier in comparison.tiers
    ]


def _capacity_rows(change: CapacityChange) -> list[list[str]]:
    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}/s"

    return [
        [
            side,
            result.search_id,
            rate(result.capacity_rps),
            rate(result.next_failed_rps) if result.next_failed_rps else "none failed",
            f"x{result.multiplier:g}" if result.multiplier else "-",
            result.limiting_tier or "-",
        ]
        for side, result in (("baseline", change.baseline), ("candidate", change.candidate))
    ]


CAPACITY_HEADER = ("side", "search", "capacity", "next failed step", "multiplier", "limiting tier")


def method_text(comparison: Comparison) -> str:
    """How the intervals were made, in one paragraph."""
    if comparison.capacity is not None:
        return (
            "A capacity lies between the search's highest passing step and its next failing one; the "
            "interval of the change spans both searches' steps."
        )
    repeats = comparison.repeats
    resampled = (
        "repeats, then blocks of seconds inside each (a two-stage bootstrap)"
        if max(repeats) > 1
        else "blocks of consecutive seconds (a block bootstrap: latency is correlated in time)"
    )
    return (
        f"Baseline {repeats[0]} run(s), candidate {repeats[1]} run(s). Intervals: {bootstrap.REPLICATES} "
        f"bootstrap replicates over {resampled}; a route's intervals hold together with "
        f"{CONFIDENCE:.0%} (each at 1 - 0.05 / the route's judged figures). A figure is a regression when "
        f"its whole interval lies on the worse side of 0 and its change is worse than "
        f"{percent_text(comparison.threshold)}. Percentiles are the corrected latency's, read from 0.5 % "
        "bins; a percentile is compared when both sides have the samples the SLO judge needs for it."
    )


def render_markdown(comparison: Comparison) -> str:
    """Return the comparison's Markdown, short enough to paste into a pull request."""
    lines = [
        f"{comparison.headline()}  ",
        "",
        f"# {comparison.baseline} -> {comparison.candidate}",
        "",
        f"Scenario `{comparison.scenario}`, profile `{comparison.profiles[0]}` -> "
        f"`{comparison.profiles[1]}`.",
        "",
        "## What differs",
        "",
    ]
    differences = comparison.differences
    if differences:
        shown = [list(row) for row in differences[:MAX_MARKDOWN_DIFFERENCES]]
        lines += markdown_table(("", "baseline", "candidate"), [[f"`{a}`", b, c] for a, b, c in shown])
        if len(differences) > MAX_MARKDOWN_DIFFERENCES:
            lines += [
                "",
                f"and {len(differences) - MAX_MARKDOWN_DIFFERENCES} more (the HTML report lists all)",
            ]
    else:
        lines.append("nothing in the manifests")
    if comparison.capacity is not None:
        lines += [
            "",
            "## Capacity",
            "",
            *markdown_table(CAPACITY_HEADER, _capacity_rows(comparison.capacity)),
        ]
    else:
        lines += ["", "## Routes", "", *markdown_table(ROUTE_HEADER, route_rows(comparison))]
        lines += [
            "",
            "## Saturation",
            "",
            f"First saturated tier: {comparison.first_saturated[0]} -> {comparison.first_saturated[1]}",
            "",
            *markdown_table(TIER_HEADER, tier_rows(comparison)),
        ]
    lines += ["", *(f"{note}  " for note in comparison.notes), method_text(comparison)]
    return "\n".join(lines) + "\n"


def render_html(comparison: Comparison) -> str:
    """Return the comparison as one self-contained HTML page (the run report's look)."""
    regressed = comparison.regressed
    body = [
        f"<h1>Comparison {escape(comparison.baseline)} &rarr; {escape(comparison.candidate)}</h1>",
        '<section class="verdicts">',
        f'<p class="{"fail" if regressed else "pass"}" id="comparison-verdict">'
        f"{escape(comparison.headline())}</p>",
        f'<p class="info" id="first-saturated">First saturated tier: '
        f"{escape(comparison.first_saturated[0])} &rarr; {escape(comparison.first_saturated[1])}</p>",
        "</section>",
        f"<p>Scenario <b>{escape(comparison.scenario)}</b>, profile <b>{escape(comparison.profiles[0])}</b> "
        f"&rarr; <b>{escape(comparison.profiles[1])}</b>.</p>",
        "<h2>What differs</h2>",
        html_table(("key", "baseline", "candidate"), [list(row) for row in comparison.differences])
        if comparison.differences
        else "<p>Nothing in the manifests.</p>",
    ]
    if comparison.capacity is not None:
        body += ["<h2>Capacity</h2>", html_table(CAPACITY_HEADER, _capacity_rows(comparison.capacity))]
    else:
        body += [
            "<h2>Routes</h2>",
            html_table(ROUTE_HEADER, route_rows(comparison)),
            *_change_charts(comparison),
            "<h2>Every figure</h2>",
            html_table(TABLE_HEADER, figure_rows(comparison)),
            "<h2>Saturation per tier</h2>",
            html_table(
                (*TIER_HEADER, "figure (baseline)", "figure (candidate)"), tier_rows(comparison, figures=True)
            ),
        ]
    body += [f"<p>{escape(note)}</p>" for note in comparison.notes]
    body.append(f"<p>{escape(method_text(comparison))}</p>")
    title = f"Comparison {escape(comparison.baseline)} to {escape(comparison.candidate)}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _change_charts(comparison: Comparison) -> list[str]:
    """Per route, the change of p90 and of the throughput as points with their intervals (inline SVG)."""
    found = []
    for name in ("p90", "throughput"):
        rows = comparison.figures[
            (comparison.figures["figure"] == name) & (comparison.figures["verdict"] != verdicts.NOT_JUDGED)
        ]
        if len(rows):
            found.append(
                interval_chart(
                    f"change-{name}",
                    f"Change of {name} per route with its interval (red: regression, green: improvement, "
                    "dashed: the threshold)",
                    [f"{row['method']} {row['route']}" for row in rows.to_dict("records")],
                    rows[["change", "low", "high"]].to_numpy(np.float64),
                    [str(verdict) for verdict in rows["verdict"]],
                    comparison.threshold,
                )
            )
    return found


VERDICT_COLOURS = {verdicts.REGRESSION: "#d62728", verdicts.IMPROVEMENT: "#2ca02c"}
ROW_HEIGHT, LABEL_WIDTH = 20, 320


def interval_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    changes: np.ndarray,
    found: Sequence[str],
    threshold: float,
) -> str:
    """Return a figure with one row per label: the change (dot) and its interval (bar), as inline SVG.

    `changes` has the columns change, low, high (shares: 0.1 = +10 %); infinite ends are drawn at
    the chart's edge.
    """
    finite = changes[np.isfinite(changes)]
    reach = max(float(np.abs(finite).max(initial=0.0)), threshold) * 1.1 or 0.1
    width, top = charts.WIDTH, 28
    height = top + ROW_HEIGHT * len(labels) + 8
    plot_w = width - LABEL_WIDTH - charts.RIGHT

    def sx(value: float) -> float:
        clipped = min(max(value, -reach), reach)
        return LABEL_WIDTH + (clipped + reach) / (2 * reach) * plot_w

    parts = [
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<rect class="plot" x="{LABEL_WIDTH}" y="{top - 6}" width="{plot_w}" height="{height - top}" '
        'fill="#fff" stroke="#ccc"/>',
    ]
    for value in (-threshold, threshold):
        x = sx(value)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" y2="{height - 2}" stroke="#888" '
            'stroke-dasharray="6 4"/>'
        )
    parts.append(f'<line x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="{top - 6}" y2="{height - 2}" stroke="#444"/>')
    for value, anchor in ((-reach, "start"), (0.0, "middle"), (reach, "end")):
        parts.append(
            f'<text x="{sx(value):.1f}" y="{top - 10}" text-anchor="{anchor}">{_change(value)}</text>'
        )
    for index, (label, (change, low, high), verdict) in enumerate(zip(labels, changes, found, strict=True)):
        y = top + ROW_HEIGHT * index + ROW_HEIGHT / 2
        colour = VERDICT_COLOURS.get(verdict, "#555")
        parts.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        parts.append(
            f'<line class="interval" data-label="{escape(label)}" data-verdict="{escape(verdict)}" '
            f'x1="{sx(low):.1f}" x2="{sx(high):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            'stroke-width="3"/>'
        )
        parts.append(f'<circle cx="{sx(change):.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
    parts.append("</svg>")
    return (
        f'<figure class="chart" data-chart="{escape(chart_id)}" id="chart-{escape(chart_id)}">'
        f"<figcaption>{escape(title)}</figcaption>{''.join(parts)}</figure>"
    )


def write_comparison(comparison: Comparison, results_dir: Path, now_s: float | None = None) -> Path:
    """Write comparison.html, comparison.md and comparison.json into a new directory under results_dir."""
    created = datetime.now(UTC) if now_s is None else datetime.fromtimestamp(now_s, UTC)
    comparison_id = f"{created:%Y%m%dT%H%M%SZ}-compare-{secrets.token_hex(2)}"
    path = results_dir / comparison_id
    path.mkdir(parents=True)
    (path / COMPARISON_HTML).write_text(render_html(comparison), encoding="utf-8")
    (path / COMPARISON_MD).write_text(render_markdown(comparison), encoding="utf-8")
    summary = {
        "comparison_id": comparison_id,
        "created_at_s": created.timestamp(),
        "baseline": comparison.baseline,
        "candidate": comparison.candidate,
        "scenario": comparison.scenario,
        "profile": " -> ".join(dict.fromkeys(comparison.profiles)),
        "threshold": comparison.threshold,
        "verdict": "REGRESSION" if comparison.regressed else "no regression",
        "regressions": len(comparison.regressions),
        "improvements": len(comparison.improvements),
    }
    (path / COMPARISON_JSON).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path
