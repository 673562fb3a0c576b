"""The report's SSE chart: streams held, events delivered and delivery latency from the SSE
replicas' scraped metrics, with the run's totals in its title; no chart without replicas."""

from __future__ import annotations

import re

import pandas as pd

from reports import render
from reports.rundir import format_labels


def scraped(rows: list[tuple[float, str, str, dict[str, str], float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "t_s": [row[0] for row in rows],
            "process": [row[1] for row in rows],
            "tier": ["sse" for _ in rows],
            "name": [row[2] for row in rows],
            "labels": [format_labels(row[3]) for row in rows],
            "value": [row[4] for row in rows],
        }
    )


def test_the_sse_chart_shows_streams_events_and_latency_with_the_run_totals() -> None:
    rows: list[tuple[float, str, str, dict[str, str], float]] = []
    for second in range(4):
        t = 100.0 + second
        rows += [
            (t, "sse1", "backbone_sse_connections", {}, 50.0),
            (
                t,
                "sse1",
                "backbone_sse_events_delivered_total",
                {"event_name": "ExternalEventCreated"},
                10.0 * second,
            ),
            (t, "sse1", "backbone_sse_delivery_latency_seconds_sum", {}, 0.002 * 10 * second),
            (t, "sse1", "backbone_sse_delivery_latency_seconds_count", {}, 10.0 * second),
            (t, "sse1", "backbone_sse_delivery_latency_seconds_bucket", {"le": "0.001"}, 0.0),
            (t, "sse1", "backbone_sse_delivery_latency_seconds_bucket", {"le": "0.0025"}, 10.0 * second),
            (t, "sse1", "backbone_sse_delivery_latency_seconds_bucket", {"le": "+Inf"}, 10.0 * second),
        ]
    found = render._sse_charts(scraped(rows), 100.0)
    assert len(found) == 1
    chart = found[0]
    assert "30 in the run" in chart
    assert "sse1 streams" in chart
    assert "sse1 events/s" in chart
    assert "sse1 latency (ms)" in chart
    p99_ms = float(re.search(r"p99 ([0-9.]+) ms of 30\)", chart).group(1))  # type: ignore[union-attr]
    # Every observation fell in the bucket (1 ms, 2.5 ms].
    assert 1.0 <= p99_ms <= 2.5


def test_no_sse_chart_without_sse_replicas() -> None:
    rows = [(100.0, "node1", "backbone_gunicorn_workers_busy", {}, 1.0)]
    assert render._sse_charts(scraped(rows), 100.0) == []
