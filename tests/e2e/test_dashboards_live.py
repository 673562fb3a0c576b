"""Every query of every generated board, run against the Prometheus of a real monitored run.

`testbed run --profile stage --monitor` drives 30 s of the production mix; then the run's time
series (its `prometheus/` directory) are served again and every panel's query, and every
variable's, runs at the last moment the load generator was scraped, with the variables and
Grafana's built-ins substituted (`dashboards/queries.py`). A query that errors fails the test; one
that returns no series fails it too, unless the allow-list below says why it may be empty, and
then it may name only metrics Prometheus has. Grafana itself never runs here: this is how the
boards are checked.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dashboards.generate import GRAFANA_DIR
from dashboards.queries import board_queries, metric_names, runnable
from testbed.landscape.monitor import MONITOR_DIR, serving_recorded
from tests.e2e.test_landscape import require_stage
from tests.e2e.test_testbed_run import assert_no_secret_in, run_capturing_secrets
from tests.helpers.landscape import require

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.s3]

# Queries that may return no series after a clean run, each with the reason.
ALLOWED_EMPTY = {
    "backbone-red / Client and server errors per route / A": "no 4xx in a clean run of the production mix",
    "backbone-red / Client and server errors per route / B": "no 5xx in a clean run",
    "tiers-use / Event handling failures / A": "no handler raises in a clean run: nothing retried, "
    "dead-lettered or requeued",
}
JOBS = ("node", "worker", "gateway", "database", "testbed", "load-generator")


def _get(url: str, path: str, **params: Any) -> Any:
    address = f"{url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(address, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


MonitoredRun = tuple[Path, subprocess.CompletedProcess[str], dict[str, str]]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> MonitoredRun:
    require_stage()
    require("prometheus", "prometheus-postgres-exporter")
    results = tmp_path_factory.mktemp("results")
    answer, secrets = run_capturing_secrets(
        "run", "--profile", "stage", "--monitor", "--duration", "30", "--results", str(results)
    )
    # 1: an SLO failed on a busy machine; the run and its time series are complete all the same.
    assert answer.returncode in (0, 1), answer.stdout + answer.stderr
    assert "Prometheus on http://127.0.0.1:" in answer.stderr
    match = re.search(r"^monitor: the run's time series in (\S+) ", answer.stdout, re.MULTILINE)
    assert match, answer.stdout
    run_dir = Path(match.group(1)).parent
    assert (run_dir / MONITOR_DIR / "tsdb").is_dir()
    return run_dir, answer, secrets


def test_a_monitored_run_leaves_no_secret_in_its_time_series_config_or_logs(monitored: MonitoredRun) -> None:
    run_dir, answer, secrets = monitored
    logs = {path.name for path in (run_dir / "logs").glob("*.log")}
    assert {"prometheus.log", "postgres-exporter.log", "cpu-exporter.log"} <= logs
    assert_no_secret_in(run_dir, answer, secrets)


def test_every_query_of_every_board_returns_series_from_a_monitored_run(
    monitored: MonitoredRun, tmp_path: Path
) -> None:
    monitored_run = monitored[0]
    manifest = json.loads((monitored_run / "manifest.json").read_text())
    landscape = manifest["profile"]["landscape_id"]
    queries = list(board_queries(GRAFANA_DIR))
    keys = {query.key for query in queries}
    assert set(ALLOWED_EMPTY) <= keys, "an allow-listed query is no longer on a board"
    with serving_recorded(monitored_run / MONITOR_DIR, tmp_path) as prometheus:
        # The last scrape of the load generator: everything was up then (its workers exit first).
        last = _get(
            prometheus.url,
            "/api/v1/query",
            query='max(max_over_time(timestamp(up{job="load-generator"} == 1)[10m:1s]))',
            time=manifest["ended_at_s"] + 5,
        )["data"]["result"]
        assert last, "the load generator was never scraped"
        at = float(last[0]["value"][1])
        up = _get(prometheus.url, "/api/v1/query", query="min by (job) (up)", time=at)["data"]["result"]
        healthy = {sample["metric"]["job"]: sample["value"][1] for sample in up}
        assert set(JOBS) <= set(healthy), healthy
        assert set(healthy.values()) == {"1"}, healthy
        names = set(
            _get(prometheus.url, "/api/v1/label/__name__/values", start=at - 3600, end=at + 60)["data"]
        )
        errors, empty, unknown = [], [], []
        for query in queries:
            expr = runnable(query.expr, {"landscape": landscape})
            assert "or vector(0)" not in re.sub(r"\s+", " ", expr), query.key
            answer = _get(prometheus.url, "/api/v1/query", query=expr, time=at)
            if answer.get("status") != "success":
                errors.append(f"{query.key}: {answer.get('error')} ({expr})")
            elif not answer["data"]["result"] and query.key not in ALLOWED_EMPTY:
                empty.append(f"{query.key}: {expr}")
            elif query.key in ALLOWED_EMPTY and (missing := metric_names(expr) - names):
                unknown.append(f"{query.key}: {sorted(missing)}")
    boards = len(list(GRAFANA_DIR.glob("*.json")))
    print(f"\n{len(queries)} queries of {boards} boards checked against the run's Prometheus data")
    assert not errors, "queries that fail:\n" + "\n".join(errors)
    assert not empty, "queries without series:\n" + "\n".join(empty)
    assert not unknown, "allow-listed queries naming metrics Prometheus never had:\n" + "\n".join(unknown)
