"""The live view's parts: Prometheus's config, the CPU exporter, the arrival engine's metrics and
the boards' queries as Prometheus runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dashboards.queries import metric_names, runnable
from loadtests.arrival.latency import ArrivalRecorder
from loadtests.arrival.metrics import ArrivalMetrics
from testbed.landscape.budgets import CGROUP_V1, CpuGroup
from testbed.landscape.cpu_exporter import CpuCollector
from testbed.landscape.monitor import (
    CPU_PROCESSES,
    LOAD_GENERATOR_TARGETS,
    Target,
    WatchedProcess,
    add_watched,
    prepare,
    read_watched,
    write_load_generator_targets,
    write_watched,
)
from tests.helpers.services import unavailable


def _samples(collector: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_config_labels_every_target_and_discovers_the_load_generator(tmp_path: Path) -> None:
    targets = [
        Target("node", "127.0.0.1:1001", "node1", "node"),
        Target("node", "127.0.0.1:1002", "node2", "node"),
        Target("testbed", "127.0.0.1:1003", "cpu-exporter", "testbed"),
    ]
    config = json.loads(prepare(tmp_path, "l1", targets).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"node", "testbed", "load-generator"}
    assert jobs["node"]["static_configs"][1] == {
        "targets": ["127.0.0.1:1002"],
        "labels": {"landscape": "l1", "tier": "node", "process": "node2"},
    }
    # The exporter's own tier and process labels name what it measures.
    assert jobs["testbed"]["honor_labels"] is True
    assert jobs["node"]["honor_labels"] is False
    assert sorted(path.name for path in (tmp_path / "rules").iterdir()) == ["alerts.yml", "recording.yml"]
    assert json.loads((tmp_path / LOAD_GENERATOR_TARGETS).read_text()) == []
    write_load_generator_targets(tmp_path, "l1", [Target("load-generator", "127.0.0.1:1004", "w1", "lg")])
    assert json.loads((tmp_path / LOAD_GENERATOR_TARGETS).read_text()) == [
        {"targets": ["127.0.0.1:1004"], "labels": {"landscape": "l1", "tier": "lg", "process": "w1"}}
    ]
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool is not installed (Debian package prometheus)")
    assert promtool is not None
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cpu_exporter_reads_a_cgroup_and_a_process_tree(tmp_path: Path) -> None:
    group_dir = tmp_path / "cpu"
    group_dir.mkdir()
    (group_dir / "cpu.stat").write_text("nr_periods 200\nnr_throttled 50\nthrottled_time 1500000000\n")
    (group_dir / "cpuacct.usage").write_text("2500000000\n")
    group = CpuGroup("node1", CGROUP_V1, 0.25, 100_000, (str(group_dir),))
    path = tmp_path / CPU_PROCESSES
    write_watched(path, [WatchedProcess("node1", "node", 1, 0.25, group)])
    add_watched(path, [WatchedProcess("locust-master", "load-generator", os.getpid())])
    assert read_watched(path)[0].group == group
    samples = _samples(CpuCollector(path))
    node = (("process", "node1"), ("tier", "node"))
    assert samples[("testbed_tier_cpu_seconds_total", node)] == 2.5
    assert samples[("testbed_tier_cpu_budget_cores", node)] == 0.25
    assert samples[("testbed_tier_cpu_periods_total", node)] == 200
    assert samples[("testbed_tier_cpu_throttled_periods_total", node)] == 50
    assert samples[("testbed_tier_cpu_throttled_seconds_total", node)] == 1.5
    master = (("process", "locust-master"), ("tier", "load-generator"))
    assert samples[("testbed_tier_cpu_seconds_total", master)] > 0
    assert ("testbed_tier_cpu_budget_cores", master) not in samples


def test_the_arrival_metrics_add_what_was_reported_to_what_is_held() -> None:
    recorder, warm_up = ArrivalRecorder(), ArrivalRecorder()
    in_flight = {"send": 3}
    metrics = ArrivalMetrics(lambda: (recorder, warm_up), lambda: in_flight)
    recorder.flow("send").counters.scheduled = 10
    recorder.flow("send").counters.started = 9
    recorder.request("POST", "/api/v2/Messages", 0.04, 0.3, failed=False)
    metrics.bank(recorder.take())  # reported to the master: the recorder forgets it
    recorder.flow("send").counters.scheduled = 5
    warm_up.flow("send").counters.dropped = 1
    recorder.request("GET", "/api/v2/Messages", 0.2, None, failed=False)  # all routes in one
    recorder.flow("send").start_delay.record_s(0.002)
    samples = _samples(metrics)
    flow = (("flow", "send"),)
    assert samples[("testbed_arrival_starts_scheduled_total", flow)] == 15
    assert samples[("testbed_arrival_starts_total", flow)] == 9
    assert samples[("testbed_arrival_starts_dropped_total", flow)] == 1
    assert samples[("testbed_arrival_iterations_in_flight", flow)] == 3
    assert samples[("testbed_arrival_start_delay_seconds_bucket", (*flow, ("le", "0.005")))] == 1

    def bucket(view: str, le: str) -> float:
        return samples[("testbed_arrival_request_duration_seconds_bucket", (("le", le), ("view", view)))]

    assert [bucket("service", le) for le in ("0.025", "0.05", "0.19", "0.25", "+Inf")] == [0, 1, 1, 2, 2]
    assert [bucket("corrected", le) for le in ("0.25", "0.5", "+Inf")] == [0, 1, 1]
    assert samples[("testbed_arrival_request_duration_seconds_sum", (("view", "service"),))] == (
        pytest.approx(0.24)
    )
    # Counters only grow: taking the rest for the master changes nothing the metrics count.
    metrics.bank(recorder.take())
    assert _samples(metrics) == samples


def test_a_query_runs_with_grafanas_built_ins_and_variables_substituted() -> None:
    expr = (
        'sum by (http_route) (rate(x_total{landscape=~"$landscape", process=~"${node}"}[$__rate_interval]))'
    )
    assert runnable(expr, {"landscape": "l1"}) == (
        'sum by (http_route) (rate(x_total{landscape=~"l1", process=~".*"}[1m]))'
    )
    assert runnable('label_values(up{landscape=~"$landscape"}, process)', {}) == (
        'count by (process) (up{landscape=~".*"})'
    )
    assert metric_names(
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="b_total{"}[1m]))) / on (le) c:d:rate5m{}'
    ) == {"a_bucket", "c:d:rate5m"}


def test_monitor_refuses_a_directory_without_time_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from testbed.cli import main

    if shutil.which("prometheus") is None:
        unavailable("prometheus is not installed (Debian package prometheus)")
    assert main(["monitor", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"testbed: no time series in {tmp_path} (was the run started with --monitor?)\n"
    )


def test_run_refuses_monitor_with_a_target_elsewhere(capsys: pytest.CaptureFixture[str]) -> None:
    from testbed.cli import main

    assert main(["run", "--target", "http://127.0.0.1:9", "--monitor"]) == 2
    err = capsys.readouterr().err
    assert "--monitor watches a landscape brought up here" in err
    assert "Traceback" not in err
