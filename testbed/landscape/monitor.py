"""The live view of a landscape (`--monitor`): what Prometheus scrapes, how, and where it keeps it.

`testbed up --monitor` and `testbed run --monitor` start, once the landscape is healthy and its
budgets hold, three processes of the landscape (stopped by `down` like every other):

* the CPU exporter (`cpu_exporter.py`): every watched process's CPU use, budget and throttling
  (`testbed_tier_cpu_seconds_total{tier,process}` and its companions), read from the kernel at
  each scrape; the processes are listed in `cpu-processes.json`, to which a run adds the load
  generator's;
* `prometheus-postgres-exporter` against the landscape's database (Debian package), when the
  database is PostgreSQL;
* Prometheus, scraping every node, worker, SSE replica and gateway (HAProxy's built-in
  exporter on the operator port), both exporters and, through `load-generator.json` (file
  discovery, written by the run once Locust's workers are up), the arrival engine of every load
  worker; with the rules of `dashboards/prometheus/rules/` loaded.

Everything lives in the monitor's directory: config, rules, target files and the time series
(`tsdb/`, kept for 100 years so a Prometheus reopened on it later drops nothing). Every target
carries the labels `landscape`, `tier` and `process`, which the boards select on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testbed.landscape.budgets import CpuGroup
from testbed.landscape.prometheus import Prometheus, prometheus_executable, serving
from testbed.processes import REPOSITORY, free_port

# Inside a landscape's or a run's directory.
MONITOR_DIR = "prometheus"
RULES_DIR = REPOSITORY / "dashboards" / "prometheus" / "rules"
CONFIG = "prometheus.yml"
CPU_PROCESSES = "cpu-processes.json"
LOAD_GENERATOR_TARGETS = "load-generator.json"
TSDB = "tsdb"
SCRAPE_INTERVAL = "1s"
RETENTION = "100y"
LOAD_GENERATOR_JOB = "load-generator"
# The CPU exporter labels each series with the tier and process it measures: those win over the
# exporter's own target labels.
CPU_EXPORTER_JOB = "testbed"


@dataclass(frozen=True)
class WatchedProcess:
    """A process whose CPU the exporter reports: its cgroup's counters, else its process tree's."""

    process: str
    tier: str
    pid: int
    # Cores it may use (a cgroup's quota, or its whole cores under affinity); None: no budget.
    budget_cores: float | None = None
    group: CpuGroup | None = None


@dataclass(frozen=True)
class Target:
    """A `host:port` Prometheus scrapes on `path`, with the process and tier it stands for."""

    job: str
    address: str
    process: str
    tier: str
    path: str = "/metrics"


def write_watched(path: Path, processes: Iterable[WatchedProcess]) -> None:
    """Write the list atomically: the exporter may read it at any moment."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps([dataclasses.asdict(process) for process in processes], indent=2))
    os.replace(temporary, path)


def read_watched(path: Path) -> list[WatchedProcess]:
    watched = []
    for item in json.loads(path.read_text()):
        group = item.pop("group")
        if group is not None:
            group = CpuGroup(**{**group, "directories": tuple(group["directories"])})
        watched.append(WatchedProcess(**item, group=group))
    return watched


def add_watched(path: Path, processes: Iterable[WatchedProcess]) -> None:
    write_watched(path, [*read_watched(path), *processes])


def write_load_generator_targets(directory: Path, landscape: str, targets: Sequence[Target]) -> None:
    """Tell Prometheus (file discovery) where the load workers' arrival metrics are."""
    groups = [{"targets": [target.address], "labels": _labels(landscape, target)} for target in targets]
    path = directory / LOAD_GENERATOR_TARGETS
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(groups, indent=2))
    os.replace(temporary, path)


def prepare(directory: Path, landscape: str, targets: Sequence[Target]) -> Path:
    """Write config, rules and an empty load generator target file; return the config's path."""
    rules = directory / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    for rule_file in sorted(RULES_DIR.glob("*.yml")):
        shutil.copyfile(rule_file, rules / rule_file.name)
    write_load_generator_targets(directory, landscape, ())
    jobs: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        jobs.setdefault((target.job, target.path), []).append(target)
    scrape_configs = [
        {
            "job_name": job,
            "honor_labels": job == CPU_EXPORTER_JOB,
            "metrics_path": path,
            "static_configs": [
                {"targets": [target.address], "labels": _labels(landscape, target)} for target in members
            ],
        }
        for (job, path), members in jobs.items()
    ]
    scrape_configs.append(
        {
            "job_name": LOAD_GENERATOR_JOB,
            "file_sd_configs": [
                {"files": [str(directory / LOAD_GENERATOR_TARGETS)], "refresh_interval": "1s"}
            ],
        }
    )
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules / "*.yml")],
        "scrape_configs": scrape_configs,
    }
    path = directory / CONFIG
    # JSON is valid YAML, so the config needs no YAML library.
    path.write_text(json.dumps(config, indent=2))
    return path


def prometheus_command(executable: str, directory: Path, port: int) -> list[str]:
    return [
        executable,
        f"--config.file={directory / CONFIG}",
        f"--storage.tsdb.path={directory / TSDB}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]


def postgres_exporter_executable() -> str | None:
    return shutil.which("prometheus-postgres-exporter")


def _labels(landscape: str, target: Target) -> dict[str, str]:
    return {"landscape": landscape, "tier": target.tier, "process": target.process}


@contextmanager
def serving_recorded(directory: Path, work_dir: Path) -> Iterator[Prometheus]:
    """Serve the time series a monitored landscape or run left in `directory` (read only: no
    scraping, no rules), on a free loopback port; its config and log go to `work_dir`."""
    executable = prometheus_executable()
    if executable is None:
        raise FileNotFoundError("prometheus is not installed (Debian package 'prometheus')")
    if not (directory / TSDB).is_dir():
        raise FileNotFoundError(f"no time series in {directory} (was the run started with --monitor?)")
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "prometheus-recorded.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": SCRAPE_INTERVAL}}))
    port = free_port()
    command = prometheus_command(executable, directory, port)
    command[1] = f"--config.file={config}"
    log_path = work_dir / "prometheus-recorded.log"
    with serving(command, port, log_path) as server:
        yield server
