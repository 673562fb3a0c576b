"""The load generator of a run: Locust's master and its workers on the load generator's cores.

Locust's own distributed mode: the master (`--master --expect-workers N`) starts the test once N
workers have connected and sends each its share of the schedule (`loadtests/arrival/
locust_plugin.py`); it generates no load itself, but aggregates the workers' statistics, writes
the arrival report and Locust's stats history (the progress line reads it) and ends the run. Each
worker runs one arrival engine on its share and writes its own parts of the requests table. All
of them keep to the cores the CPU plan gave the load generator, apart from the landscape's.

Every process is sampled with its CPU limit: a Locust process is one gevent loop, so one core at
most, and N workers on C cores get C / N cores each when they are more than the cores. The run
is invalid when any of them, or all of them together on their cores, is CPU-bound
(`reports/verdicts.py`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reports.manifest import GeneratorProcess, LoadGeneratorRecord
from reports.rundir import LOAD_GENERATOR
from testbed.processes import LOCUSTFILE, free_port, start_python, stop
from testbed.run.collect import ProcessSampler, SampledProcess

MASTER = "locust-master"
MAX_LOAD_PROCESSES = 64
# How long the master waits for its workers to connect (importing Locust and the flows takes
# seconds on a busy machine) before it gives up and the run fails.
WORKERS_CONNECT_TIMEOUT_S = 60
# How long the workers may take to write their last request parts and exit once the master has.
WORKERS_EXIT_TIMEOUT_S = 15.0


class LoadGeneratorError(Exception):
    """The load generator's plan is impossible (e.g. no worker)."""


@dataclass(frozen=True)
class LoadGeneratorPlan:
    """How many workers run on which cores (`cores` empty: the machine's)."""

    cores: tuple[int, ...]
    workers: int

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= MAX_LOAD_PROCESSES:
            raise LoadGeneratorError(
                f"--load-processes must be an integer in 1..{MAX_LOAD_PROCESSES}, got {self.workers}"
            )

    @property
    def worker_cpu_limit_cores(self) -> float:
        """One core per worker, or the generator's cores shared out when the workers are more."""
        return min(1.0, len(self.cores) / self.workers) if self.cores else 1.0

    def record(self) -> LoadGeneratorRecord:
        """The manifest's description of the generator's processes."""
        workers = tuple(
            GeneratorProcess(worker_name(index), "worker", self.worker_cpu_limit_cores)
            for index in range(1, self.workers + 1)
        )
        return LoadGeneratorRecord(
            cores=self.cores, processes=(GeneratorProcess(MASTER, "master", 1.0), *workers)
        )


@dataclass(frozen=True)
class GeneratorMember:
    """A running process of the load generator, and the port of its arrival metrics (a worker's,
    under `--monitor`)."""

    name: str
    pid: int
    cpu_limit_cores: float
    metrics_port: int | None = None


def worker_name(index: int) -> str:
    return f"locust-worker{index}"


def default_workers(cores: Sequence[int]) -> int:
    """One worker per load-generator core (one when the plan names no core)."""
    return max(1, len(cores))


@dataclass
class LoadGenerator:
    """Locust's master and workers of one stretch of load, started and stopped together."""

    plan: LoadGeneratorPlan
    logs_dir: Path
    environment: dict[str, str]
    # `--monitor`: each worker serves its arrival metrics on a port of its own.
    metrics: bool = False
    master: subprocess.Popen[bytes] | None = None
    workers: tuple[subprocess.Popen[bytes], ...] = ()
    members: list[GeneratorMember] = field(default_factory=list)

    def start(self, master_args: Sequence[str], worker_args: Sequence[str], sampler: ProcessSampler) -> None:
        """Start the master, then the workers, each sampled from the next tick on."""
        port = free_port()
        connect = ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
        master = ["-m", "locust", "-f", str(LOCUSTFILE), "--master", *connect]
        master += ["--expect-workers", str(self.plan.workers)]
        master += ["--expect-workers-max-wait", str(WORKERS_CONNECT_TIMEOUT_S), *master_args]
        worker = ["-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", "127.0.0.1"]
        worker += ["--master-port", str(port), *worker_args]
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.master = self._start(master, MASTER)
        sampler.add(SampledProcess(MASTER, LOAD_GENERATOR, self.master.pid, cpu_limit_cores=1.0))
        self.members.append(GeneratorMember(MASTER, self.master.pid, 1.0))
        started = []
        for index in range(1, self.plan.workers + 1):
            metrics_port = free_port() if self.metrics else None
            metrics = ["--arrival-metrics-port", str(metrics_port)] if metrics_port else []
            process = self._start([*worker, *metrics], worker_name(index))
            started.append(process)
            self.workers = tuple(started)
            self.members.append(
                GeneratorMember(
                    worker_name(index), process.pid, self.plan.worker_cpu_limit_cores, metrics_port
                )
            )
            sampler.add(
                SampledProcess(
                    worker_name(index),
                    LOAD_GENERATOR,
                    process.pid,
                    cpu_limit_cores=self.plan.worker_cpu_limit_cores,
                )
            )

    def _start(self, args: Sequence[str], name: str) -> subprocess.Popen[bytes]:
        with (self.logs_dir / f"{name}.log").open("ab") as log:
            return start_python(args, self.environment, log, cores=self.plan.cores)

    def stop(self) -> None:
        """Stop the load generator: after a run that ended, give the workers time to write their
        last parts and exit; when the master is stopped here (an interruption, an overrun), stop
        the workers at once too."""
        ended = self.master is None or self.master.poll() is not None
        if self.master is not None:
            stop(self.master)
        deadline = time.monotonic() + WORKERS_EXIT_TIMEOUT_S
        for worker in self.workers:
            if not ended:
                stop(worker)
                continue
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(
                    f"testbed run: a load worker (pid {worker.pid}) did not exit; stopping it",
                    file=sys.stderr,
                )
                stop(worker)
