"""The run's collectors write the run directory's tables as the report reads them."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from loadtests.arrival.request_sink import RequestSink
from reports.manifest import RunManifest, write_manifest
from reports.render import render_run
from reports.rundir import parse_labels, read_run
from testbed.run.collect import (
    MetricsScraper,
    ProcessSampler,
    SampledProcess,
    ScrapeTarget,
    parse_exposition,
)
from testbed.run.launched import postgresql_server_pid

EXPOSITION = """# HELP http_server_request_duration_seconds Duration
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{http_route="/api/v2/Tags",le="0.05"} 3.0
http_server_request_duration_seconds_bucket{http_route="/api/v2/Tags",le="+Inf"} 4.0
http_server_request_duration_seconds_count{http_route="/api/v2/Tags"} 4.0
http_server_request_duration_seconds_sum{http_route="/api/v2/Tags"} 0.3
# TYPE backbone_gunicorn_workers gauge
backbone_gunicorn_workers 2.0
"""


def test_parse_exposition_keeps_every_sample_with_sorted_labels() -> None:
    rows = parse_exposition(EXPOSITION, 5.0, "node-1", "node")
    names = [row[3] for row in rows]
    assert names.count("http_server_request_duration_seconds_bucket") == 2
    assert ("backbone_gunicorn_workers", "", 2.0) in [(row[3], row[4], row[5]) for row in rows]
    bucket = next(row for row in rows if row[3].endswith("_bucket"))
    assert parse_labels(bucket[4]) == {"http_route": "/api/v2/Tags", "le": "0.05"}
    assert bucket[:3] == (5.0, "node-1", "node")


def test_the_request_sink_writes_parts_the_report_reads(tmp_path: Path) -> None:
    sink = RequestSink(tmp_path, part_rows=2)
    common = {"flow": "f", "method": "GET", "route": "/api/v2/Tags"}
    sink.add(start_s=100.0, service_s=0.01, corrected_s=0.51, status=200, exception=None, **common)
    sink.add(
        start_s=101.0,
        service_s=0.02,
        corrected_s=0.02,
        status=400,
        exception=RuntimeError("HTTP 400 error.platform.validation.invalidPropertyValue"),
        **common,
    )
    sink.add(
        start_s=102.0,
        service_s=0.03,
        corrected_s=None,
        status=0,
        exception=ConnectionRefusedError("refused"),
        **common,
    )
    sink.flush()
    assert len(list((tmp_path / "requests").glob("*.parquet"))) == 2
    write_manifest(tmp_path, RunManifest(run_id="t"))
    requests = read_run(tmp_path).requests.sort_values("start_s").reset_index(drop=True)
    assert requests["intended_start_s"].tolist() == pytest.approx([99.5, 101.0, 102.0])
    assert requests["error_code"].astype(str).tolist() == [
        "",
        "error.platform.validation.invalidPropertyValue",
        "ConnectionRefusedError",
    ]
    assert requests["ok"].tolist() == [True, False, False]
    assert requests["status"].tolist() == [200, 400, 0]
    # Without an iteration (closed model) the corrected view is the service view.
    assert requests["corrected_latency_s"].iloc[2] == pytest.approx(0.03)


def test_the_process_sampler_samples_a_process_with_its_children(tmp_path: Path) -> None:
    sampler = ProcessSampler(
        [SampledProcess("me", "load-generator", os.getpid(), 1.0)], tmp_path, interval_s=0.05
    )
    sampler.tick()
    sum(i * i for i in range(200_000))  # some CPU between the samples
    sampler.tick()
    sampler.finish()
    write_manifest(tmp_path, RunManifest(run_id="t"))
    processes = read_run(tmp_path).processes
    assert len(processes) == 2
    assert set(processes["pid"]) == {os.getpid()}
    assert (processes["rss_bytes"] > 10 * 2**20).all()
    assert processes["cpu_percent"].iloc[1] > 0
    assert processes["cpu_limit_cores"].tolist() == [1.0, 1.0]


@pytest.fixture
def metrics_url() -> Iterator[str]:
    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = EXPOSITION.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_the_scraper_records_samples_and_each_scrape_like_prometheus(
    tmp_path: Path, metrics_url: str
) -> None:
    dead = metrics_url.rsplit(":", 1)[0] + ":1/metrics"  # nothing listens on port 1
    scraper = MetricsScraper(
        [ScrapeTarget("node-1", "node", metrics_url), ScrapeTarget("node-2", "node", dead)], tmp_path
    )
    scraper.tick()
    scraper.tick()
    scraper.finish()
    write_manifest(tmp_path, RunManifest(run_id="t"))
    series = read_run(tmp_path).series
    up = series[series["name"] == "up"].groupby(series["process"].astype(str), observed=True)["value"].sum()
    assert up.to_dict() == {"node-1": 2.0, "node-2": 0.0}
    assert scraper.failures == {"node-2": 2}
    workers = series[series["name"] == "backbone_gunicorn_workers"]
    assert workers["value"].tolist() == [2.0, 2.0]


def test_an_empty_run_renders_as_failed_and_invalid(tmp_path: Path) -> None:
    write_manifest(tmp_path, RunManifest(run_id="empty"))
    report = render_run(tmp_path)
    assert report.headline() == (
        "SLO: FAIL: no SLO could be judged (no requests)",
        "Validity: INVALID: no request was recorded",
        "First saturated tier: none (no tier met a saturation rule)",
    )
    assert (tmp_path / "report.html").is_file()


def test_the_postgresql_server_found_is_the_postmaster_every_time(postgres_url: str) -> None:
    # Asked many times: a PID read after its backend exited would be missing now and then.
    found = {postgresql_server_pid(postgres_url) for _ in range(25)}
    assert len(found) == 1, found
    (server,) = found
    assert server is not None
    postmaster = psutil.Process(server)
    assert "postgres" in postmaster.name()
    assert postmaster.children(), "the postmaster runs its background processes and backends"
    assert postgresql_server_pid("sqlite:///ignored.db") is None
