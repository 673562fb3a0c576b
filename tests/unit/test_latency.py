"""Both latency views, their histograms, and the report built from them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from loadtests.arrival.latency import ArrivalRecorder, IterationLatency, LatencyHistogram, merged
from loadtests.arrival.report import build_report, format_report, write_csv, write_json
from scenarios.schema import parse_scenario

SCENARIO = parse_scenario(
    """
name = "unit"
[shape]
kind = "constant"
duration_s = 10
[[flows]]
name = "f"
flow = "bare.constant"
rate_per_s = 10
[slo."GET /constant"]
p90_ms = 50
p99_ms = 100
""",
    source=Path("unit.toml"),
)


def test_only_the_first_request_of_an_iteration_carries_its_start_delay() -> None:
    iteration = IterationLatency(start_delay_s=1.5)

    assert iteration.corrected_s(0.002) == pytest.approx(1.502)
    assert iteration.corrected_s(0.003) == pytest.approx(0.003)


def test_the_closed_model_has_no_corrected_view() -> None:
    assert IterationLatency(0.0, open_model=False).corrected_s(0.01) is None


def test_percentiles_come_from_the_full_distribution_within_one_percent() -> None:
    histogram = LatencyHistogram()
    for value_ms in range(1, 10_001):
        histogram.record_s(value_ms / 1000)

    summary = histogram.summary()

    assert summary.count == 10_000
    assert (summary.min_ms, summary.max_ms) == (1.0, 10_000.0)
    assert summary.mean_ms == pytest.approx(5000.5)
    for measured, exact in ((summary.p50_ms, 5000), (summary.p90_ms, 9000), (summary.p99_ms, 9900)):
        assert measured == pytest.approx(exact, rel=0.01)
    assert summary.p999_ms == pytest.approx(9990, rel=0.01)


def test_sub_millisecond_values_keep_microsecond_resolution() -> None:
    histogram = LatencyHistogram()
    for value_us in (120, 80, 95):
        histogram.record_s(value_us / 1_000_000)

    assert histogram.percentile_ms(50) == 0.095


def test_an_empty_histogram_has_no_percentiles() -> None:
    assert math.isnan(LatencyHistogram().summary().p99_ms)


def test_merged_histograms_equal_one_histogram_of_all_values() -> None:
    left, right, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for value_s in (0.001, 0.5, 2.0, 0.0003):
        left.record_s(value_s)
        both.record_s(value_s)
    for value_s in (0.02, 7.5):
        right.record_s(value_s)
        both.record_s(value_s)

    left.merge(LatencyHistogram.from_data(json.loads(json.dumps(right.to_data()))))

    assert left.to_data() == both.to_data()


def test_workers_hand_over_what_they_recorded_once() -> None:
    worker = ArrivalRecorder()
    worker.request("GET", "/constant", 0.002, 0.5, failed=False)
    worker.flow("f").counters.scheduled = 3
    worker.flow("f").counters.last_intended_offset_s = 4.0
    master = ArrivalRecorder()

    master.merge_data(worker.take())
    master.merge_data(worker.take())

    route = master.routes[("GET", "/constant")]
    assert (route.service.count, route.corrected.count) == (1, 1)
    assert master.flows["f"].counters.scheduled == 3
    assert master.flows["f"].counters.last_intended_offset_s == 4.0
    assert worker.routes == {}


def test_offsets_merge_by_maximum_and_counts_by_sum() -> None:
    first, second = ArrivalRecorder(), ArrivalRecorder()
    for recorder, scheduled, offset_s in ((first, 5, 9.0), (second, 7, 9.5)):
        recorder.flow("f").counters.scheduled = scheduled
        recorder.flow("f").counters.last_start_offset_s = offset_s

    counters = merged([first, second]).flows["f"].counters

    assert (counters.scheduled, counters.last_start_offset_s) == (12, 9.5)


def recorder_of_a_run(*, started: int, late_unqueued: int, dropped: int = 0) -> ArrivalRecorder:
    recorder = ArrivalRecorder()
    counters = recorder.flow("f").counters
    counters.scheduled = started + dropped
    counters.started = counters.completed = started
    counters.late = counters.late_unqueued = late_unqueued
    counters.dropped = dropped
    counters.last_intended_offset_s = counters.last_start_offset_s = 10.0
    for _ in range(started):
        recorder.request("GET", "/constant", 0.002, 0.003, failed=False)
    return recorder


def test_a_run_that_kept_its_schedule_is_valid() -> None:
    report = build_report(recorder_of_a_run(started=100, late_unqueued=1), SCENARIO)

    flow = report.flow("f")
    assert (flow.target_rate_per_s, flow.achieved_rate_per_s, flow.late_ratio) == (10.0, 10.0, 0.01)
    assert report.valid, report.problems
    # p99 needs 1,000 samples; 100 are too few to judge it.
    assert [slo.verdict for slo in report.slos] == ["pass", "too few"]
    assert report.slo_passed
    assert {slo.view for slo in report.slos} == {"corrected"}
    assert "Schedule kept" in format_report(report)


def test_a_run_that_missed_its_schedule_says_so() -> None:
    report = build_report(recorder_of_a_run(started=90, late_unqueued=10, dropped=10), SCENARIO)

    assert not report.valid
    assert report.problems == (
        "f: missed its schedule: 11.11% of starts late without waiting for the in-flight cap (limit 1%)",
        "f: achieved start rate is 90.00% of the target",
        "f: 10 starts dropped (in-flight cap and queue full)",
    )
    assert "INVALID" in format_report(report)


def test_a_closed_model_run_is_judged_on_the_service_view() -> None:
    report = build_report(recorder_of_a_run(started=10, late_unqueued=0), SCENARIO, model="closed")

    assert {slo.view for slo in report.slos} == {"service"}


def test_the_report_is_written_as_json_and_csv(tmp_path: Path) -> None:
    report = build_report(recorder_of_a_run(started=10, late_unqueued=0), SCENARIO)

    write_json(report, tmp_path / "report.json")
    paths = write_csv(report, str(tmp_path / "run"))

    data = json.loads((tmp_path / "report.json").read_text())
    assert data["valid"] is True
    assert data["routes"][0]["corrected"]["count"] == 10
    assert [path.name for path in paths] == ["run_arrival_latency.csv", "run_arrival_starts.csv"]
    assert "route,GET,/constant,corrected" in paths[0].read_text()
