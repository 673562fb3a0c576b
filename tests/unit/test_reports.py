"""The report's functions on small hand-built tables whose right answers are known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import latency, saturation, server, verdicts
from reports.manifest import redact
from reports.rundir import (
    BUDGET_COLUMNS,
    PROCESS_COLUMNS,
    REQUEST_COLUMNS,
    SERIES_COLUMNS,
    conform,
    flows_table,
    format_labels,
    parse_labels,
)

T0 = 1_000_000.0


def requests_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    defaults = {"flow": "f", "method": "GET", "status": 200, "error_code": "", "ok": True}
    frame = pd.DataFrame([{**defaults, **row} for row in rows])
    if "start_s" not in frame:
        frame["start_s"] = T0
    if "intended_start_s" not in frame:
        frame["intended_start_s"] = frame["start_s"]
    if "corrected_latency_s" not in frame:
        frame["corrected_latency_s"] = frame["latency_s"]
    return conform(frame, REQUEST_COLUMNS, "requests")


def series_frame(rows: list[tuple[float, str, str, str, dict[str, str], float]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                "t_s": T0 + t,
                "process": process,
                "tier": tier,
                "name": name,
                "labels": format_labels(labels),
                "value": value,
            }
            for t, process, tier, name, labels, value in rows
        ]
    )
    return conform(frame, SERIES_COLUMNS, "series")


def processes_frame(rows: list[tuple[float, str, str, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                "t_s": T0 + t,
                "process": process,
                "tier": tier,
                "pid": 1,
                "cpu_percent": cpu,
                "rss_bytes": 1,
                "cpu_limit_cores": limit,
            }
            for t, process, tier, cpu, limit in rows
        ]
    )
    return conform(frame, PROCESS_COLUMNS, "processes") if len(frame) else empty_processes()


def empty_processes() -> pd.DataFrame:
    return conform(pd.DataFrame(columns=list(PROCESS_COLUMNS)), PROCESS_COLUMNS, "processes")


# Percentiles


def test_nearest_rank_is_the_smallest_value_with_p_percent_at_or_below() -> None:
    values = np.arange(1, 101, dtype=float)
    assert list(latency.nearest_rank(values, [50, 90, 99, 99.9, 100])) == [50, 90, 99, 100, 100]
    assert list(latency.nearest_rank(np.array([3.0, 1.0, 2.0, np.nan]), [50])) == [2.0]
    assert math.isnan(latency.nearest_rank(np.array([]), [50])[0])


def test_nearest_rank_takes_the_exact_rank_where_floating_point_would_round_up() -> None:
    values = np.arange(1.0, 10_001.0)
    np.random.default_rng(1).shuffle(values)
    # 99.9 % of 10,000 is rank 9,990 exactly.
    assert latency.nearest_rank(values, [99.9, 99.0]).tolist() == [9990.0, 9900.0]
    _, grouped, _ = latency.grouped_nearest_rank(np.zeros(10_000, dtype=np.int64), values, 1, [99.9, 99.0])
    assert grouped.tolist() == [[9990.0, 9900.0]]


def test_grouped_nearest_rank_matches_per_group_percentiles() -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 3, 1000)
    values = rng.random(1000)
    counts, result, maxima = latency.grouped_nearest_rank(codes, values, 4, [50, 95, 99.9])
    for group in range(3):
        expected = latency.nearest_rank(values[codes == group], [50, 95, 99.9])
        assert list(result[group]) == list(expected)
        assert maxima[group] == values[codes == group].max()
        assert counts[group] == (codes == group).sum()
    assert counts[3] == 0
    assert np.isnan(result[3]).all()


def test_route_summary_counts_rates_errors_and_both_latency_views() -> None:
    rows = [
        {"route": "/a", "latency_s": i / 1000, "corrected_latency_s": (i + 5) / 1000} for i in range(1, 11)
    ]
    rows += [{"route": "/b", "method": "POST", "latency_s": 0.2, "ok": False, "status": 400}]
    table = latency.route_summary(requests_frame(rows), duration_s=5.0).set_index("route")
    assert table.loc["/a", "count"] == 10
    assert table.loc["/a", "rate_per_s"] == 2.0
    assert table.loc["/a", "errors"] == 0
    assert table.loc["/a", "uncorrected_p50_ms"] == pytest.approx(5.0)
    assert table.loc["/a", "uncorrected_p90_ms"] == pytest.approx(9.0)
    assert table.loc["/a", "uncorrected_max_ms"] == pytest.approx(10.0)
    assert table.loc["/a", "corrected_p50_ms"] == pytest.approx(10.0)
    assert table.loc["/a", "corrected_p99.9_ms"] == pytest.approx(15.0)
    assert table.loc["/b", "method"] == "POST"
    assert table.loc["/b", "errors"] == 1
    assert table.loc["/b", "error_ratio"] == 1.0


def test_over_time_buckets_by_send_time() -> None:
    rows = [{"route": "/a", "start_s": T0 + t, "latency_s": 0.01} for t in (0.1, 0.2, 0.3, 2.5)]
    rows += [{"route": "/a", "start_s": T0 + 2.6, "latency_s": 0.05, "ok": False}]
    table = latency.over_time(requests_frame(rows), T0, 1.0)
    assert list(table["t_s"]) == [0.0, 2.0]  # the empty second 1 is absent
    assert list(table["requests_per_s"]) == [3.0, 2.0]
    assert list(table["errors_per_s"]) == [0.0, 1.0]
    assert table["p99_ms"].iloc[1] == pytest.approx(50.0)


def test_errors_by_code_counts_failures_most_frequent_first() -> None:
    rows = [{"route": "/a", "latency_s": 0.01, "ok": False, "status": 400, "error_code": "error.x"}] * 2
    rows += [
        {"route": "/b", "latency_s": 0.01, "ok": False, "status": 0, "error_code": "ConnectionRefusedError"}
    ]
    rows += [{"route": "/b", "latency_s": 0.01}]
    table = latency.errors_by_code(requests_frame(rows))
    assert table.to_dict("records") == [
        {"method": "GET", "route": "/a", "status": 400, "error_code": "error.x", "count": 2},
        {"method": "GET", "route": "/b", "status": 0, "error_code": "ConnectionRefusedError", "count": 1},
    ]


def test_offered_requests_are_the_schedule_times_the_requests_per_started_iteration() -> None:
    """Flow a: 10 starts/s, 2 requests per iteration; flow b: 5 starts/s, 1 request: 25 requests/s,
    whatever the server answered."""
    rows = [{"flow": "a", "route": "/a", "latency_s": 0.01}] * 40 + [
        {"flow": "b", "route": "/b", "latency_s": 0.01}
    ] * 10
    flows = flows_table(
        {
            "flows": [
                {"name": "a", "target_rate_per_s": 10.0, "started": 20},
                {"name": "b", "target_rate_per_s": 5.0, "started": 10},
            ]
        }
    )
    assert latency.offered_requests_per_s(requests_frame(rows), flows) == pytest.approx(25.0)
    assert math.isnan(latency.offered_requests_per_s(requests_frame(rows), flows_table({})))


def test_answered_requests_count_the_responses_inside_the_window() -> None:
    rows = [
        {"start_s": T0 + 0.5, "latency_s": 0.1},  # inside
        {"start_s": T0 + 9.5, "latency_s": 0.4},  # inside, answered at 9.9 s
        {"start_s": T0 + 9.8, "latency_s": 0.5},  # answered after the window
        {"start_s": T0 - 0.5, "latency_s": 0.1},  # answered before it (the warm-up)
        {"start_s": T0 + 1.0, "latency_s": 0.1, "status": 0},  # no answer
    ]
    rows = [{"route": "/a", **row} for row in rows]
    assert latency.answered_per_s(requests_frame(rows), T0, 10.0) == pytest.approx(0.2)


def test_since_keeps_each_process_from_its_last_scrape_before_the_window_on() -> None:
    rows = [(t, process, "node", "c", {}, float(t)) for process in ("n1", "n2") for t in (0.0, 1.0, 2.0)]
    rows.append((1.5, "n3", "node", "c", {}, 1.0))  # scraped only after the window started
    kept = server.since(series_frame(rows), T0 + 1.2)
    by_process = kept.groupby(kept["process"].astype(str))["t_s"].min() - T0
    assert by_process.to_dict() == {"n1": 1.0, "n2": 1.0, "n3": 1.5}


def test_window_for_keeps_charts_to_a_few_hundred_points() -> None:
    assert latency.window_for(60) == 1
    assert latency.window_for(3600) == 15
    assert latency.window_for(86_400) == 300


# Prometheus series


def test_labels_round_trip_with_quotes() -> None:
    labels = {"http_route": "/api/v2/Files/{id}", "b": 'say "hi"\\'}
    assert parse_labels(format_labels(labels)) == labels
    assert format_labels({"b": "2", "a": "1"}) == 'a="1",b="2"'


def test_increase_treats_a_drop_as_a_restart() -> None:
    frame = pd.DataFrame({"t_s": [1, 2, 3, 4], "process": "n", "value": [5.0, 8.0, 2.0, 4.0]})
    assert server.increase(frame, [])["value"].tolist() == [7.0]


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    bounds = np.array([0.1, 0.2, np.inf])
    cumulative = np.array([10.0, 20.0, 20.0])
    assert server.histogram_quantile(bounds, cumulative, 0.5) == pytest.approx(0.1)
    assert server.histogram_quantile(bounds, cumulative, 0.75) == pytest.approx(0.15)
    assert server.histogram_quantile(bounds, cumulative, 0.25) == pytest.approx(0.05)
    # A rank in the +Inf bucket gives the highest finite bound, as PromQL does.
    assert server.histogram_quantile(bounds, np.array([10.0, 10.0, 20.0]), 0.9) == pytest.approx(0.2)
    assert math.isnan(server.histogram_quantile(bounds, np.zeros(3), 0.5))


def test_server_durations_use_the_increase_over_the_run_summed_over_nodes_and_statuses() -> None:
    name = "http_server_request_duration_seconds_bucket"
    rows = []
    for process in ("node-1", "node-2"):
        for status in ("200", "400"):
            labels = {"http_route": "/a", "http_request_method": "GET", "http_response_status_code": status}
            # Before the run: 100 requests under 0.05 s that must not count.
            for le, before, after in (("0.05", 100, 105), ("0.1", 100, 110), ("+Inf", 100, 110)):
                rows.append((0, process, "node", name, {**labels, "le": le}, before))
                rows.append((10, process, "node", name, {**labels, "le": le}, after))
    # A route first observed during the run appears in a later scrape only: all of it counts.
    late = {"http_route": "/b", "http_request_method": "GET", "http_response_status_code": "200"}
    for le in ("0.05", "0.1", "+Inf"):
        rows.append((10, "node-1", "node", name, {**late, "le": le}, 7))
    table = server.server_durations(series_frame(rows))
    assert table.set_index("route").loc["/b", "server_count"] == 7
    row = table.iloc[0]
    assert (row["method"], row["route"]) == ("GET", "/a")
    assert row["server_count"] == 40  # 4 series x 10
    # 20 of 40 under 0.05 s, all 40 under 0.1 s: the median is the 0.05 edge, p75 halfway to 0.1.
    assert row["server_p50_ms"] == pytest.approx(50.0)
    assert row["server_p90_ms"] == pytest.approx(90.0)


# Saturation


def node_series(
    seconds: int, *, slots_full_from: int | None, wait_s: float, wait_from: int = 0, used_full: bool = False
) -> pd.DataFrame:
    """Two workers x 2 threads, pool of 5; slots full and pool waits from the given seconds."""
    rows = []
    checkouts = waited = 0.0
    for t in range(seconds):
        full = slots_full_from is not None and t >= slots_full_from
        # The gauge counts the scrape that reads it: 1 when idle, 5 with all 4 slots busy.
        rows.append((t, "node-1", "node", "http_server_active_requests", {}, 5 if full else 1))
        rows.append((t, "node-1", "node", "backbone_gunicorn_workers", {}, 2))
        used = 5 if used_full and t >= wait_from else 1
        rows.append(
            (t, "node-1", "node", "db_client_connection_count", {"db_client_connection_state": "used"}, used)
        )
        rows.append((t, "node-1", "node", "db_client_connection_max", {}, 5))
        checkouts += 10
        waited += 10 * (wait_s if t >= wait_from else 0.0001)
        rows.append((t, "node-1", "node", "db_client_connection_wait_time_seconds_count", {}, checkouts))
        rows.append((t, "node-1", "node", "db_client_connection_wait_time_seconds_sum", {}, waited))
        for le in ("0.001", "0.01", "0.1", "1", "+Inf"):
            share = 1.0 if wait_s < float(le if le != "+Inf" else "inf") else 0.0
            rows.append(
                (
                    t,
                    "node-1",
                    "node",
                    "db_client_connection_wait_time_seconds_bucket",
                    {"le": le},
                    checkouts * share,
                )
            )
    return series_frame(rows)


def verdict_of(series: pd.DataFrame, processes: pd.DataFrame | None = None) -> saturation.TierVerdict | None:
    rules = saturation.evaluate(
        series,
        empty_processes() if processes is None else processes,
        T0,
        threads_per_worker=2,
        machine_cores=2,
    )
    return saturation.first_saturated(saturation.tier_verdicts(rules))


def test_the_database_tier_is_named_when_pool_wait_dominates_even_with_the_node_slots_full() -> None:
    # A pool that makes requests wait keeps every request slot busy too, in the same seconds.
    first = verdict_of(node_series(30, slots_full_from=5, wait_s=0.2, wait_from=5))
    assert first is not None
    assert first.tier == "database"
    assert first.onset_s == 5
    assert "pool checkout wait p95" in first.figure


def node_budget(
    seconds: int, used_per_s: float, budget: float = 0.125, waited_per_s: float = 0.0
) -> pd.DataFrame:
    """The node's cgroup counters, sampled once a second, ten quota periods a second."""
    t = np.arange(seconds + 1)
    frame = pd.DataFrame(
        {
            "t_s": T0 + t,
            "process": "node-1",
            "tier": "node",
            "mechanism": "cgroup v1",
            "budget_cores": budget,
            "period_s": 0.1,
            "used_s": used_per_s * t,
            "periods": 10 * t,
            "throttled_periods": (7 if used_per_s >= 0.9 * budget else 0) * t,
            "throttled_s": waited_per_s * t,
        }
    )
    return conform(frame, BUDGET_COLUMNS, "budgets")


@pytest.mark.parametrize(
    ("node_cores", "waited_per_s", "named"),
    [(0.124, 0.0, "node"), (0.06, 0.2, "node"), (0.05, 0.0, "database"), (0.05, 0.02, "database")],
)
def test_pool_waits_of_a_node_at_its_cpu_budget_are_the_nodes_not_the_databases(
    node_cores: float, waited_per_s: float, named: str
) -> None:
    # A throttled node holds its connections through the quota periods it waits for: its threads
    # queue for connections the database would serve at once, whether the node spent its budget over
    # the second or waited >= 50 ms for its quota. Otherwise the wait is the pool's.
    # (An exhausted pool is the database's either way: tests/e2e/test_testbed_run.py, a pool of one.)
    series = node_series(30, slots_full_from=None, wait_s=0.2, wait_from=5)
    budgets = node_budget(30, node_cores, waited_per_s=waited_per_s)
    rules = saturation.evaluate(series, empty_processes(), T0, budgets=budgets)
    first = saturation.first_saturated(saturation.tier_verdicts(rules))
    assert first is not None
    assert first.tier == named
    database = next(rule for rule in rules if rule.rule == "pool checkout wait")
    assert database.saturated is (named == "database")


def test_the_node_tier_is_named_when_its_request_slots_saturate_without_pool_waits() -> None:
    first = verdict_of(node_series(30, slots_full_from=3, wait_s=0.0001))
    assert first is not None
    assert first.tier == "node"
    assert first.onset_s == 3
    assert "request slots" in first.figure


def test_a_tier_saturating_clearly_later_is_not_the_first() -> None:
    first = verdict_of(node_series(60, slots_full_from=2, wait_s=0.2, wait_from=30))
    assert first is not None
    assert first.tier == "node"
    verdicts_by_tier = {
        v.tier: v
        for v in saturation.tier_verdicts(
            saturation.evaluate(
                node_series(60, slots_full_from=2, wait_s=0.2, wait_from=30),
                empty_processes(),
                T0,
                threads_per_worker=2,
            )
        )
    }
    assert verdicts_by_tier["database"].saturated
    assert verdicts_by_tier["database"].onset_s == 30


def test_an_exhausted_pool_alone_names_the_database() -> None:
    first = verdict_of(node_series(30, slots_full_from=None, wait_s=0.0001, used_full=True))
    assert first is not None
    assert first.tier == "database"
    assert "pool size + overflow (5)" in first.figure


def test_no_tier_is_saturated_under_light_load() -> None:
    assert verdict_of(node_series(30, slots_full_from=None, wait_s=0.0001)) is None


def test_short_blips_are_not_saturation() -> None:
    # Slots full in 4 of 30 seconds (13 %): below the 20 % share.
    rows = node_series(30, slots_full_from=None, wait_s=0.0001)
    blips = series_frame(
        [(t, "node-1", "node", "http_server_active_requests", {}, 5) for t in (3, 9, 15, 21)]
    )
    rows = pd.concat(
        [
            rows[
                ~(
                    (rows["name"] == "http_server_active_requests")
                    & rows["t_s"].isin([T0 + t for t in (3, 9, 15, 21)])
                )
            ],
            blips,
        ],
        ignore_index=True,
    )
    assert verdict_of(rows) is None


def served_series(seconds: int, server_s: float) -> pd.DataFrame:
    """The duration histogram's sum and count of a node serving 10 requests a second of `server_s`."""
    labels = {"http_route": "/a", "http_request_method": "GET", "http_response_status_code": "200"}
    scrape = {"http_route": "/metrics", "http_request_method": "GET", "http_response_status_code": "200"}
    rows = []
    for t in range(seconds + 1):
        rows.append(
            (t + 0.5, "node-1", "node", "http_server_request_duration_seconds_count", labels, 10.0 * t)
        )
        rows.append(
            (t + 0.5, "node-1", "node", "http_server_request_duration_seconds_sum", labels, 10 * t * server_s)
        )
        # The scrapes themselves are fast and must not dilute the mean.
        rows.append(
            (t + 0.5, "node-1", "node", "http_server_request_duration_seconds_count", scrape, 50.0 * t)
        )
        rows.append((t + 0.5, "node-1", "node", "http_server_request_duration_seconds_sum", scrape, 0.0))
    return series_frame(rows)


@pytest.mark.parametrize(("server_s", "tier"), [(0.005, "node"), (0.045, None)])
def test_requests_waiting_outside_the_server_saturate_the_node(server_s: float, tier: str | None) -> None:
    # The client sees 50 ms; the server measured 5 ms (45 ms waiting for a worker) or 45 ms.
    requests = requests_frame(
        [{"route": "/a", "start_s": T0 + t + i / 10, "latency_s": 0.05} for t in range(20) for i in range(10)]
    )
    rules = saturation.evaluate(served_series(20, server_s), empty_processes(), T0, requests=requests)
    first = saturation.first_saturated(saturation.tier_verdicts(rules))
    assert (first.tier if first else None) == tier
    if first is not None:
        assert "requests waited for a worker 45.0 ms" in first.figure


def test_a_node_answering_its_own_scrape_late_is_saturated() -> None:
    rows = []
    for t in range(20):
        took, up = (2.0, 1.0) if 4 <= t < 12 else (4.0, 0.0) if t >= 12 else (0.02, 1.0)
        rows.append((t, "node-1", "node", "scrape_duration_seconds", {}, took))
        rows.append((t, "node-1", "node", "up", {}, up))
        rows.append((t, "worker-1", "events", "scrape_duration_seconds", {}, 3.0))  # not a node
        rows.append((t, "worker-1", "events", "up", {}, 1.0))
    first = verdict_of(series_frame(rows))
    assert first is not None
    assert first.tier == "node"
    assert first.onset_s == 4
    assert "8 scrapes failed" in first.figure


def test_cpu_at_the_limit_saturates_a_tier() -> None:
    processes = processes_frame(
        [(t, "node-1", "node", 95.0, 1.0) for t in range(20)]
        + [(t, "postgresql", "database", 50.0, math.nan) for t in range(20)]
    )
    first = verdict_of(node_series(20, slots_full_from=None, wait_s=0.0001), processes)
    assert first is not None
    assert first.tier == "node"
    assert "node-1 CPU p95 0.95 of 1 cores" in first.figure


def test_the_database_process_limit_defaults_to_the_machine() -> None:
    # 1.9 cores of 2 (the machine's) is >= 90 %; 1.5 would not be.
    processes = processes_frame([(t, "postgresql", "database", 190.0, math.nan) for t in range(20)])
    first = verdict_of(node_series(20, slots_full_from=None, wait_s=0.0001), processes)
    assert first is not None
    assert first.tier == "database"


def test_outbox_backlog_saturates_the_events_tier() -> None:
    rows = [(t, "node-1", "node", "backbone_outbox_pending_events", {}, 50 * t) for t in range(20)]
    first = verdict_of(series_frame(rows))
    assert first is not None
    assert first.tier == "events"
    assert first.onset_s == 2
    assert "outbox backlog max 950" in first.figure


def test_onset_needs_three_of_five_seconds() -> None:
    held = pd.Series([False, True, False, False, False, True, True, True, False], index=range(9))
    assert saturation.onset(held) == 5
    assert math.isnan(saturation.onset(pd.Series([True, False, False, True, False, False])))


# Verdicts


def test_default_slos_are_the_originals_with_looser_ones_for_transfers_and_token_creation() -> None:
    slos = verdicts.with_defaults(
        [verdicts.SloSpec(route="/a", method=None, percentiles_ms=((95.0, 10.0),))],
        [("GET", "/a"), ("POST", "/api/v2/Tokens"), ("GET", "/api/v2/Files/{id}"), ("GET", "/api/v2/Tokens")],
    )
    by_key = {slo.key: slo for slo in slos}
    assert by_key["/a"].percentiles_ms == ((95.0, 10.0),)  # the scenario's own, no default added
    assert by_key["POST /api/v2/Tokens"].percentiles_ms == ((90.0, 160.0), (98.0, 190.0))
    assert by_key["GET /api/v2/Files/{id}"].percentiles_ms == ((90.0, 160.0), (98.0, 190.0))
    assert by_key["GET /api/v2/Tokens"].percentiles_ms == ((90.0, 50.0), (98.0, 100.0))
    assert len(slos) == 4


def test_slos_are_judged_on_the_chosen_view_and_missing_routes_fail() -> None:
    rows = [
        {"route": "/a", "latency_s": i / 1000, "corrected_latency_s": (i + 50) / 1000} for i in range(1, 101)
    ]
    requests = requests_frame(rows)
    slos = [
        verdicts.SloSpec(route="/a", method="GET", percentiles_ms=((90.0, 100.0),)),
        verdicts.SloSpec(route="/a", method=None, percentiles_ms=((90.0, 100.0),), view="service"),
        verdicts.SloSpec(route="/a", method=None, percentiles_ms=((50.0, 100.0),), max_failure_ratio=0.0),
        verdicts.SloSpec(route="/never", method=None, percentiles_ms=((50.0, 100.0),)),
    ]
    table = verdicts.judge_slos(requests, slos)
    assert table["measured"].round(6).tolist()[:3] == [140.0, 90.0, 100.0]
    # 100 ms is not < 100 ms
    assert table["verdict"].tolist() == ["fail", "pass", "fail", "pass", "fail"]
    assert table.iloc[3]["threshold"] == "failure_ratio"
    assert table.iloc[4]["count"] == 0


def test_a_run_is_invalid_when_the_load_generator_is_cpu_bound() -> None:
    processes = processes_frame(
        [(t, "locust", "load-generator", 97.0 if t < 5 else 30.0, 1.0) for t in range(40)]
    )
    problems = verdicts.validity_problems(processes, flows_table({}), requests_count=10)
    assert len(problems) == 1
    assert "load generator locust was CPU-bound" in problems[0].text
    assert problems[0].cause == verdicts.GENERATOR
    calm = processes_frame([(t, "locust", "load-generator", 60.0, 1.0) for t in range(40)])
    assert verdicts.validity_problems(calm, flows_table({}), requests_count=10) == []
    # Busy only while starting up, before the load's window: that is not the load's doing.
    assert (
        verdicts.validity_problems(processes, flows_table({}), requests_count=10, window_s=(T0 + 5, T0 + 40))
        == []
    )
    assert verdicts.validity_problems(
        processes, flows_table({}), requests_count=10, window_s=(T0 + 2, T0 + 40)
    )


def flow(**overrides: float) -> dict[str, float]:
    base = {
        "name": "f",
        "target_rate_per_s": 10.0,
        "achieved_rate_per_s": 10.0,
        "scheduled": 1000,
        "started": 1000,
        "late": 0,
        "late_unqueued": 0,
        "queued": 0,
        "dropped": 0,
        "completed": 1000,
        "failed": 0,
        "unfinished": 0,
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("overrides", "problem", "cause"),
    [
        ({"late": 20, "late_unqueued": 20}, "missed its schedule: 2.00% of starts late", verdicts.SCHEDULE),
        ({"achieved_rate_per_s": 9.7}, "achieved start rate is 97.00% of the target", verdicts.SCHEDULE),
        # Starts that waited for the in-flight cap: the system was too slow, not the dispatcher.
        (
            {"achieved_rate_per_s": 9.7, "queued": 40},
            "achieved start rate is 97.00% of the target",
            verdicts.SYSTEM,
        ),
        ({"dropped": 3}, "3 starts dropped", verdicts.SYSTEM),
        ({"unfinished": 2}, "2 iterations still running", verdicts.SYSTEM),
    ],
)
def test_a_run_is_invalid_when_it_missed_its_schedule(
    overrides: dict[str, float], problem: str, cause: str
) -> None:
    flows = flows_table({"flows": [flow(**overrides)]})
    problems = verdicts.validity_problems(empty_processes(), flows, requests_count=1000)
    assert len(problems) == 1
    assert problem in problems[0].text
    assert problems[0].cause == cause


def test_the_load_generators_processes_are_cpu_bound_together_when_they_fill_its_cores() -> None:
    """A master and two workers on one core: 45 + 45 + 5 % is a full core, though none is at 90 %."""
    rows = [
        (t, name, "load-generator", cpu, 1.0)
        for t in range(40)
        for name, cpu in (("locust-master", 5.0), ("locust-worker1", 45.0), ("locust-worker2", 45.0))
    ]
    problems = verdicts.validity_problems(processes_frame(rows), flows_table({}), 10, generator_cores=1)
    assert [problem.cause for problem in problems] == [verdicts.GENERATOR]
    assert "the load generator (3 processes together on 1 core(s)) was CPU-bound" in problems[0].text
    # On two cores the same processes leave room.
    assert verdicts.validity_problems(processes_frame(rows), flows_table({}), 10, generator_cores=2) == []
    # Each process is judged against its own limit: a worker at half a core's limit of 0.5 is CPU-bound.
    halves = [(t, "locust-worker1", "load-generator", 48.0, 0.5) for t in range(40)]
    (problem,) = verdicts.validity_problems(processes_frame(halves), flows_table({}), 10, generator_cores=1)
    assert "load generator locust-worker1 was CPU-bound" in problem.text


SCHEDULE_MISSED = verdicts.Problem(verdicts.SCHEDULE, "f: missed its schedule")
DROPPED = verdicts.Problem(verdicts.SYSTEM, "f: 3 starts dropped")
CPU_BOUND = verdicts.Problem(verdicts.GENERATOR, "load generator locust-worker1 was CPU-bound")


@pytest.mark.parametrize(
    ("slo_passed", "problems", "saturated", "outcome", "reason"),
    [
        (True, [], False, verdicts.GOOD, "every SLO met on a valid run"),
        (True, [], True, verdicts.GOOD, "every SLO met"),  # saturation alone ends nothing
        (False, [], True, verdicts.BAD, "SLO failed: GET /a p90_ms 80.0 (limit 50)"),
        (True, [DROPPED], False, verdicts.BAD, "invalid because of the system under test: f: 3 starts"),
        # A missed schedule is the system's when a tier saturated or its caps filled, else the generator's.
        (True, [SCHEDULE_MISSED], True, verdicts.BAD, "invalid because of the system under test"),
        (True, [SCHEDULE_MISSED, DROPPED], False, verdicts.BAD, "system under test: f: missed its sc"),
        (True, [SCHEDULE_MISSED], False, verdicts.GENERATOR_LIMITED, "could not drive it: f: missed"),
        # A CPU-bound generator's figures say nothing of the system, failed SLO or not.
        (False, [CPU_BOUND, DROPPED], True, verdicts.GENERATOR_LIMITED, "locust-worker1 was CPU-bound"),
    ],
)
def test_a_capacity_step_is_good_bad_or_generator_limited(
    slo_passed: bool, problems: list[verdicts.Problem], saturated: bool, outcome: str, reason: str
) -> None:
    missed = [] if slo_passed else ["GET /a p90_ms 80.0 (limit 50)"]
    verdict = verdicts.judge_step(slo_passed, missed, problems, saturated)
    assert verdict.outcome == outcome
    assert reason in verdict.reason


def test_a_run_that_kept_its_schedule_is_valid_and_late_queued_starts_do_not_count() -> None:
    flows = flows_table({"flows": [flow(late=50, late_unqueued=5, queued=50)]})
    assert verdicts.validity_problems(empty_processes(), flows, requests_count=1000) == []
    # 1.4 % late, but one start of 70: too few to say the dispatcher missed its schedule.
    few = flows_table({"flows": [flow(scheduled=70, started=70, completed=70, late=1, late_unqueued=1)]})
    assert verdicts.validity_problems(empty_processes(), few, requests_count=70) == []
    many = flows_table({"flows": [flow(late=11, late_unqueued=11)]})
    assert "1.10% of starts late" in verdicts.validity_problems(empty_processes(), many, 1000)[0].text
    assert verdicts.validity_problems(empty_processes(), flows, requests_count=0) == [
        verdicts.Problem(verdicts.GENERATOR, "no request was recorded")
    ]


def locust_side_and_report_side(
    latencies_s: list[float], failures: int, slo_toml: str
) -> tuple[list[str], list[str]]:
    """Judge the same requests through the summary Locust prints and through the run's report."""
    from loadtests.arrival.latency import ArrivalRecorder
    from loadtests.arrival.report import build_report
    from scenarios.schema import parse_scenario

    scenario = parse_scenario(
        f"""
name = "judge"
[shape]
kind = "constant"
duration_s = 10
[[flows]]
name = "f"
flow = "bare.constant"
rate_per_s = 10
{slo_toml}
""",
        source=Path("judge.toml"),
    )
    recorder = ArrivalRecorder()
    for index, latency_s in enumerate(latencies_s):
        recorder.request("GET", "/a", latency_s, latency_s, failed=index < failures)
    locust_side = [slo.verdict for slo in build_report(recorder, scenario).slos]
    requests = requests_frame(
        [
            {"route": "/a", "latency_s": latency_s, "ok": index >= failures}
            for index, latency_s in enumerate(latencies_s)
        ]
    )
    report_side = verdicts.judge_slos(requests, scenario.slos)["verdict"].tolist()
    return locust_side, report_side


def test_a_measurement_equal_to_its_limit_gets_one_verdict_from_both_judges() -> None:
    # 200 requests of exactly 50 ms, 10 of them failed: p90 = 50 ms, failure ratio = 0.05.
    slo = '[slo."GET /a"]\np90_ms = 50\nmax_failure_ratio = 0.05'
    locust_side, report_side = locust_side_and_report_side([0.050] * 200, failures=10, slo_toml=slo)
    # A percentile passes strictly below its limit (the original's k6 thresholds are `<`); a
    # failure ratio at or below.
    assert locust_side == report_side == ["fail", "pass"]


def test_a_percentile_on_too_few_samples_is_not_judged_by_either_side() -> None:
    slo = '[slo."GET /a"]\np90_ms = 50\np98_ms = 100'
    locust_side, report_side = locust_side_and_report_side([0.500] * 3, failures=0, slo_toml=slo)
    assert locust_side == report_side == ["too few", "too few"]
    # 150 samples judge p90 (it needs 100) but not p98 (500).
    locust_side, report_side = locust_side_and_report_side([0.500] * 150, failures=0, slo_toml=slo)
    assert locust_side == report_side == ["fail", "too few"]


@pytest.mark.parametrize(
    ("percentile", "samples"),
    [(50.0, 20), (90.0, 100), (95.0, 200), (98.0, 500), (99.0, 1000), (99.9, 10000)],
)
def test_a_percentile_needs_ten_samples_above_it(percentile: float, samples: int) -> None:
    assert verdicts.min_samples(percentile) == samples
    assert verdicts.judge_percentile(percentile, 100.0, 1.0, samples) == verdicts.PASS
    assert verdicts.judge_percentile(percentile, 100.0, 1.0, samples - 1) == verdicts.TOO_FEW
    assert verdicts.describe_verdict(verdicts.TOO_FEW, samples - 1) == f"too few to judge (n = {samples - 1})"


def test_a_route_without_requests_fails_its_slo_rather_than_being_too_few() -> None:
    assert verdicts.judge_percentile(90.0, 50.0, math.nan, 0) == verdicts.FAIL
    assert verdicts.judge_failure_ratio(0.01, 0, 0) == verdicts.FAIL


def test_a_run_whose_only_failing_threshold_has_too_few_samples_passes_its_slo() -> None:
    rows = [{"route": "/busy", "latency_s": 0.010} for _ in range(120)]
    rows += [{"route": "/rare", "latency_s": 0.900} for _ in range(3)]
    requests = requests_frame(rows)
    slos = verdicts.with_defaults([], [("GET", "/busy"), ("GET", "/rare")])
    table = verdicts.judge_slos(requests, slos)
    assert table["verdict"].tolist() == ["pass", "too few", "too few", "too few"]
    assert verdicts.slo_passed(table["verdict"])
    assert not verdicts.slo_passed([*table["verdict"], verdicts.FAIL])


# Secrets


def test_redact_hides_secret_keys_and_url_passwords() -> None:
    data = {
        "database_url": "postgresql://backbone:s3cret@127.0.0.1:5432/db",
        "client_secret": "abc",
        "nested": [{"admin_api_key": "k", "jwt_signing_key": "x" * 32, "workers": 2}],
        "empty_password": "",
    }
    assert redact(data) == {
        "database_url": "postgresql://backbone:***@127.0.0.1:5432/db",
        "client_secret": "***",
        "nested": [{"admin_api_key": "***", "jwt_signing_key": "***", "workers": 2}],
        "empty_password": "",
    }
