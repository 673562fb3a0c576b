"""A local Prometheus server for tests and landscapes (the Debian package `prometheus`).

`running_prometheus(data_dir, targets)` writes a config that scrapes the given `host:port`
targets, starts the server on a free loopback port and stops it afterwards. `query` runs an
instant PromQL query over the HTTP API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.processes import answers_200, free_port, stop, wait_until_answers

READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus server and where its log goes."""

    url: str
    log_path: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query; return the result vector (each item: `metric` labels and `value`)."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(address, timeout=10) as response:  # noqa: S310 - our own loopback server
            answer = json.loads(response.read())
        if answer.get("status") != "success":
            raise RuntimeError(f"PromQL {promql!r} failed: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def targets_up(self) -> dict[str, str]:
        """Each scrape target's URL and health (`up`, `down`, `unknown`)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as response:  # noqa: S310
            answer = json.loads(response.read())
        return {target["scrapeUrl"]: target["health"] for target in answer["data"]["activeTargets"]}

    def last_scrape(self, job: str) -> float:
        """The newest scrape time (Unix seconds) of the job's `up` series; 0 before the first."""
        samples = self.query(f'timestamp(up{{job="{job}"}})')
        return min((float(sample["value"][1]) for sample in samples), default=0.0)


def prometheus_executable() -> str | None:
    return shutil.which("prometheus")


def config_text(targets: dict[str, list[str]], scrape_interval_s: float) -> str:
    """A Prometheus config scraping each job's `host:port` targets on `/metrics`."""
    # JSON is valid YAML, so the config needs no YAML library.
    interval = f"{int(scrape_interval_s * 1000)}ms"
    return json.dumps(
        {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": hosts}]}
                for job, hosts in targets.items()
            ],
        },
        indent=2,
    )


@contextmanager
def running_prometheus(
    data_dir: Path, targets: dict[str, list[str]], *, scrape_interval_s: float = 1.0
) -> Iterator[Prometheus]:
    """Run Prometheus on a free loopback port, scraping `targets` (job -> host:port list)."""
    executable = prometheus_executable()
    if executable is None:
        raise FileNotFoundError("prometheus is not installed (Debian package 'prometheus')")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "prometheus.yml"
    config.write_text(config_text(targets, scrape_interval_s))
    port = free_port()
    log_path = data_dir / "prometheus.log"
    command = [
        executable,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with serving(command, port, log_path) as server:
        yield server


@contextmanager
def serving(command: list[str], port: int, log_path: Path) -> Iterator[Prometheus]:
    """Start the Prometheus `command` (listening on `port`), wait until it is ready, stop it after."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = Prometheus(f"http://127.0.0.1:{port}", log_path)
        try:
            wait_until_answers(
                answers_200(f"{server.url}/-/ready", timeout_s=1.0),
                process,
                what=f"prometheus (log {log_path})",
                timeout_s=READY_TIMEOUT_S,
            )
            yield server
        finally:
            stop(process)
