"""The comparison of two results on hand-built tables: the block bootstrap, the verdicts, what differs,
results that cannot be compared, and capacity searches."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import bootstrap, verdicts
from reports.capacity import BRACKETED, LOWER_BOUND, NONE, Conclusion, SearchRecord, write_search, write_steps
from reports.compare import (
    COMPARED_PERCENTILES,
    NotComparable,
    compare,
    figure_changes,
    load_result,
    manifest_differences,
    render_html,
    render_markdown,
)
from reports.history import read_capacity
from reports.manifest import LandscapeRecord, ScenarioRecord, read_manifest, write_manifest
from reports.synthetic import write_synthetic_run
from testbed.run.results import compare_command, parse_threshold

ROUTE = ("POST", "/api/v2/Challenges")
SIGMA = 0.5
MEDIAN_S = 0.020


def lognormal_run(
    seed: int, samples: int = 2000, scale: float = 1.0, duration_s: float = 100.0
) -> bootstrap.RunBlocks:
    """One route's requests: log-normal latencies (sigma 0.5), sent uniformly over the run."""
    rng = np.random.default_rng(seed)
    start_s = np.sort(rng.uniform(0, duration_s, samples))
    latency_s = rng.lognormal(math.log(MEDIAN_S), SIGMA, samples) * scale
    codes = np.zeros(samples, dtype=np.int64)
    return bootstrap.run_blocks(codes, [ROUTE], start_s, np.ones(samples, bool), latency_s, 0.0, duration_s)


def route_verdicts(figures: pd.DataFrame) -> set[str]:
    return set(figures["verdict"]) - {verdicts.NOT_JUDGED}


def test_a_ten_percent_shift_over_2000_samples_is_a_regression_at_five_percent() -> None:
    figures = figure_changes([lognormal_run(1)], [lognormal_run(2, scale=1.10)], threshold=0.05)
    judged = figures.set_index("figure")
    assert verdicts.REGRESSION in route_verdicts(figures)
    assert judged.loc["p50", "verdict"] == verdicts.REGRESSION
    assert judged.loc["p50", "low"] > 0
    assert judged.loc["p50", "change"] == pytest.approx(0.10, abs=0.05)
    # Nothing improved, and a percentile with fewer samples than the SLO judge needs is not judged.
    assert verdicts.IMPROVEMENT not in route_verdicts(figures)
    assert judged.loc["p99.9", "verdict"] == verdicts.NOT_JUDGED
    assert "too few to compare" in judged.loc["p99.9", "note"]


@pytest.mark.slow
def test_two_samples_of_one_distribution_show_no_significant_change_in_95_of_100_seeds() -> None:
    quiet = 0
    for seed in range(100):
        figures = figure_changes([lognormal_run(2 * seed)], [lognormal_run(2 * seed + 1)], threshold=0.05)
        quiet += route_verdicts(figures) == {verdicts.NO_CHANGE}
    assert quiet >= 95


def test_a_shift_inside_the_threshold_is_no_significant_change() -> None:
    # 3 % slower on 40,000 samples: the interval excludes 0, but the change is under the threshold.
    figures = figure_changes(
        [lognormal_run(5, samples=40_000)], [lognormal_run(6, samples=40_000, scale=1.03)], threshold=0.05
    )
    p50 = figures.set_index("figure").loc["p50"]
    assert p50["low"] > 0
    assert p50["verdict"] == verdicts.NO_CHANGE


def test_faster_is_an_improvement_and_less_throughput_a_regression() -> None:
    figures = figure_changes(
        [lognormal_run(7, samples=4000)], [lognormal_run(8, samples=2000, scale=0.8)], threshold=0.05
    ).set_index("figure")
    assert figures.loc["p50", "verdict"] == verdicts.IMPROVEMENT
    assert figures.loc["throughput", "change"] == pytest.approx(-0.5)
    assert figures.loc["throughput", "verdict"] == verdicts.REGRESSION


def test_errors_that_appear_are_a_regression_of_the_error_ratio() -> None:
    rng = np.random.default_rng(3)
    start_s = np.sort(rng.uniform(0, 60, 3000))
    latency_s = rng.lognormal(math.log(MEDIAN_S), SIGMA, 3000)
    codes = np.zeros(3000, dtype=np.int64)
    ok = rng.uniform(size=3000) > 0.05
    clean = bootstrap.run_blocks(codes, [ROUTE], start_s, np.ones(3000, bool), latency_s, 0.0, 60.0)
    failing = bootstrap.run_blocks(codes, [ROUTE], start_s, ok, latency_s, 0.0, 60.0)
    figures = figure_changes([clean], [failing], threshold=0.05).set_index("figure")
    assert figures.loc["error ratio", "change"] == math.inf
    assert figures.loc["error ratio", "verdict"] == verdicts.REGRESSION
    assert figures.loc["p50", "verdict"] == verdicts.NO_CHANGE


def test_repeats_widen_the_interval_by_their_spread() -> None:
    # Two repeats a side whose medians differ by 20 % from run to run: the one-run interval of a
    # 10 % change excludes 0, the interval over repeats does not.
    base = [lognormal_run(11, samples=5000), lognormal_run(12, samples=5000, scale=1.2)]
    cand = [lognormal_run(13, samples=5000, scale=1.1 * 1.2), lognormal_run(14, samples=5000, scale=1.1)]
    single = figure_changes(base[:1], cand[:1], threshold=0.05).set_index("figure").loc["p50"]
    repeated = figure_changes(base, cand, threshold=0.05).set_index("figure").loc["p50"]
    assert single["low"] > 0
    assert repeated["low"] < 0 < repeated["high"]
    assert repeated["verdict"] == verdicts.NO_CHANGE
    # The spread shows each side's repeats.
    assert repeated["baseline_min"] < repeated["baseline"] < repeated["baseline_max"]


def test_percentiles_read_from_the_histogram_agree_with_the_exact_ones() -> None:
    blocks = lognormal_run(21, samples=10_000)
    first, width = bootstrap.bin_span([blocks], ROUTE)
    totals = bootstrap.pooled([blocks], ROUTE, first, width)
    read = bootstrap.percentiles_s(totals, first, COMPARED_PERCENTILES)[0]
    ordered = np.sort(_latencies(21, 10_000))
    ranks = [math.ceil(round(10_000 * percentile / 100, 9)) for percentile in COMPARED_PERCENTILES]
    assert np.allclose(read, ordered[np.array(ranks) - 1], rtol=0.0026)


def _latencies(seed: int, samples: int) -> np.ndarray:
    """The latencies `lognormal_run(seed, samples)` drew."""
    rng = np.random.default_rng(seed)
    rng.uniform(0, 100.0, samples)
    return rng.lognormal(math.log(MEDIAN_S), SIGMA, samples)


def test_block_lengths_grow_with_the_cube_root_and_cap_the_blocks() -> None:
    assert bootstrap.block_length_s(1) == 1
    assert bootstrap.block_length_s(8) == 2
    assert bootstrap.block_length_s(15) == 2
    assert bootstrap.block_length_s(600) == 8
    assert bootstrap.block_length_s(86_400) == math.ceil(86_400 / bootstrap.MAX_BLOCKS)


def test_relative_changes_from_and_to_zero() -> None:
    change = bootstrap.relative_change(np.array([0.0, 0.0, 2.0, 2.0]), np.array([0.0, 1.0, 3.0, 0.0]))
    assert list(change) == [0.0, math.inf, 0.5, -1.0]


def test_the_judge_of_a_change() -> None:
    judge = verdicts.judge_change
    assert judge(0.10, 0.02, 0.20, 0.05, higher_is_worse=True) == verdicts.REGRESSION
    assert judge(0.10, -0.01, 0.20, 0.05, higher_is_worse=True) == verdicts.NO_CHANGE
    assert judge(0.04, 0.01, 0.08, 0.05, higher_is_worse=True) == verdicts.NO_CHANGE
    assert judge(-0.10, -0.20, -0.02, 0.05, higher_is_worse=True) == verdicts.IMPROVEMENT
    assert judge(-0.10, -0.20, -0.02, 0.05, higher_is_worse=False) == verdicts.REGRESSION
    assert judge(math.nan, math.nan, math.nan, 0.05, higher_is_worse=True) == verdicts.NOT_JUDGED


def test_thresholds_are_percentages() -> None:
    assert parse_threshold("5%") == pytest.approx(0.05)
    assert parse_threshold("25") == pytest.approx(0.25)
    assert parse_threshold(" 12.5 % ") == pytest.approx(0.125)
    with pytest.raises(ValueError, match="expected a percentage"):
        parse_threshold("five")


# Run directories


@pytest.fixture(scope="module")
def synthetic_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("results")
    baseline = write_synthetic_run(root / "baseline", requests=20_000, duration_s=30, seed=1)
    candidate = write_synthetic_run(
        root / "candidate", requests=20_000, duration_s=30, seed=2, stress="database"
    )
    manifest = read_manifest(candidate)
    profile = dataclasses.replace(
        manifest.profile,
        database={**manifest.profile.database, "pool_size": 1},
        overrides={"database.pool_size": "1"},
    )
    write_manifest(candidate, dataclasses.replace(manifest, profile=profile))
    return baseline, candidate


def test_a_comparison_of_two_runs_says_what_differs_first(synthetic_runs: tuple[Path, Path]) -> None:
    baseline, candidate = synthetic_runs
    comparison = compare(load_result(baseline), load_result(candidate), threshold=0.05)
    keys = [key for key, _, _ in comparison.differences]
    assert "profile.database.pool_size" in keys
    assert "seed" in keys
    assert "run_id" not in keys
    markdown = render_markdown(comparison)
    lines = markdown.splitlines()
    assert lines[0].startswith("Verdict: ")
    assert lines.index("## What differs") < lines.index("## Routes")
    assert "| `profile.database.pool_size` | (none) | 1 |" in markdown
    assert comparison.first_saturated[1].startswith("database")
    html = render_html(comparison)
    assert "http://" not in html
    assert "https://" not in html
    assert 'data-chart="change-p90"' in html
    assert len(markdown.splitlines()) < 80


def test_different_scenarios_are_not_comparable_exit_2(
    synthetic_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline, _ = synthetic_runs
    other = write_synthetic_run(tmp_path / "other", requests=2000, duration_s=10)
    manifest = read_manifest(other)
    write_manifest(
        other, dataclasses.replace(manifest, scenario=dataclasses.replace(manifest.scenario, name="smoke"))
    )
    status = compare_command(_args(baseline, other, tmp_path))
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert "not comparable: different scenarios: baseline 'synthetic'" in err
    assert not any(path.name.endswith("compare") for path in tmp_path.iterdir())


def test_an_invalid_run_is_not_comparable(
    synthetic_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline, _ = synthetic_runs
    invalid = write_synthetic_run(tmp_path / "invalid", requests=2000, duration_s=10)
    arrival = json.loads((invalid / "arrival.json").read_text())
    arrival["flows"][0]["dropped"] = 7
    (invalid / "arrival.json").write_text(json.dumps(arrival))
    assert compare_command(_args(baseline, invalid, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "not comparable: the candidate run invalid is invalid: synthetic: 7 starts dropped" in err


def test_the_command_writes_the_comparison_and_the_markdown(
    synthetic_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline, candidate = synthetic_runs
    markdown = tmp_path / "pr" / "comparison.md"
    status = compare_command(_args(baseline, candidate, tmp_path, markdown=markdown))
    out = capsys.readouterr().out
    (written,) = [path for path in tmp_path.iterdir() if "-compare-" in path.name]
    summary = json.loads((written / "comparison.json").read_text())
    assert status == (1 if summary["verdict"] == "REGRESSION" else 0)
    assert out.splitlines()[0].startswith("Verdict: ")
    assert markdown.read_text() == (written / "comparison.md").read_text()
    assert (written / "comparison.html").is_file()


def test_a_missing_result_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert compare_command(_args(tmp_path / "nothing", tmp_path / "else", tmp_path)) == 2
    err = capsys.readouterr().err
    assert "no such result" in err
    assert "Traceback" not in err


def _args(baseline: Path, candidate: Path, results: Path, markdown: Path | None = None) -> object:
    import argparse

    return argparse.Namespace(
        baseline=str(baseline), candidate=str(candidate), threshold="5%", markdown=markdown, results=results
    )


# Capacity searches


def capacity_dir(path: Path, scenario: str, steps: list[tuple[float, float, bool]], tier: str) -> Path:
    """A capacity search as `testbed capacity` leaves it (reports/capacity.py's writers): steps of
    (multiplier, achieved requests/s, held); the first step that did not hold names `tier`."""
    rows = []
    for index, (multiplier, achieved, held) in enumerate(steps, start=1):
        rows.append(
            {
                "step": index,
                "multiplier": multiplier,
                "run_dir": f"step-{index:02d}",
                "offered_iterations_per_s": multiplier,
                "offered_requests_per_s": achieved,
                "achieved_requests_per_s": achieved,
                "requests": int(achieved * 30),
                "errors": 0,
                "p50_ms": 10.0,
                "p90_ms": 20.0,
                "p99_ms": 40.0,
                "slo_passed": held,
                "valid": True,
                "outcome": "good" if held else "bad",
                "reason": "every SLO met on a valid run" if held else "SLO failed",
                "first_saturated_tier": "" if held else tier,
                "saturation_evidence": "",
                "slo_missed": "" if held else "GET /a p90_ms 80.0 (limit 50)",
                "problems": "",
            }
        )
    good = [row for row in rows if row["slo_passed"]]
    bad = [row for row in rows if not row["slo_passed"]]
    if good and bad:
        conclusion = Conclusion(
            BRACKETED, "bracketed", good[-1]["multiplier"], good[-1]["step"], bad[0]["step"], True
        )
    elif good:
        conclusion = Conclusion(LOWER_BOUND, "every step held", good[-1]["multiplier"], good[-1]["step"])
    else:
        conclusion = Conclusion(NONE, "the first step was already bad", bad_step=bad[0]["step"])
    path.mkdir(parents=True)
    write_search(
        path,
        SearchRecord(
            search_id=path.name,
            started_at_s=1_700_000_000.0,
            profile=LandscapeRecord(name="stage"),
            scenario=ScenarioRecord(name=scenario),
            conclusion=conclusion,
        ),
    )
    write_steps(path, rows)
    return path


def test_a_capacity_search_is_read_with_its_resolution(tmp_path: Path) -> None:
    steps = [(1.0, 100.0, True), (2.0, 200.0, True), (4.0, 400.0, True), (8.0, 700.0, False)]
    result = read_capacity(capacity_dir(tmp_path / "search", "smoke", steps, "database"))
    assert result.capacity_rps == 400.0
    assert result.next_failed_rps == 700.0
    assert result.limiting_tier == "database"
    assert result.manifest is None


def test_capacities_compare_by_their_steps(tmp_path: Path) -> None:
    base_steps = [(2.0, 200.0, True), (4.0, 400.0, True), (8.0, 800.0, False)]
    baseline = read_capacity(capacity_dir(tmp_path / "a", "smoke", base_steps, "node"))
    worse = read_capacity(
        capacity_dir(tmp_path / "b", "smoke", [(1.0, 100.0, True), (2.0, 190.0, False)], "database")
    )
    close = read_capacity(
        capacity_dir(tmp_path / "c", "smoke", [(4.0, 420.0, True), (8.0, 810.0, False)], "node")
    )
    regression = compare(baseline, worse, threshold=0.05)
    assert regression.capacity is not None
    assert regression.capacity.verdict == verdicts.REGRESSION
    assert regression.exit_status == 1
    assert regression.first_saturated == ("node", "database")
    assert "## Capacity" in render_markdown(regression)
    # 420 against 400 with steps of 400 -> 800: inside the search's resolution.
    noise = compare(baseline, close, threshold=0.05)
    assert noise.capacity is not None
    assert noise.capacity.verdict == verdicts.NO_CHANGE
    assert noise.exit_status == 0
    other = read_capacity(capacity_dir(tmp_path / "d", "production-mix", [(1.0, 50.0, True)], "node"))
    with pytest.raises(NotComparable, match="different scenarios"):
        compare(baseline, other)


def test_a_run_and_a_capacity_search_are_not_comparable(
    synthetic_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    baseline, _ = synthetic_runs
    search = read_capacity(capacity_dir(tmp_path / "a", "synthetic", [(4.0, 400.0, True)], "node"))
    with pytest.raises(NotComparable, match="a capacity search and a run"):
        compare(load_result(baseline), search)


def test_identical_manifests_differ_in_nothing(synthetic_runs: tuple[Path, Path]) -> None:
    baseline, _ = synthetic_runs
    manifest = read_manifest(baseline)
    assert manifest_differences(manifest, dataclasses.replace(manifest, run_id="other")) == []
