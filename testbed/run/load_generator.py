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

Workers on other hosts join the same way (`testbed load-worker --master HOST:PORT`, Locust's
`--worker`): with `joining` workers expected the master listens on every interface at a known
port and waits for them (at most `join_timeout_s`). Each such worker samples its own CPU and
returns its samples and its request parts to the master (`loadtests/arrival/locust_plugin.py`);
the master writes who joined, from which host, with which share (`--load-workers-json`), and
the run adds their samples to its processes table.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reports.manifest import GeneratorProcess, LoadGeneratorRecord
from reports.rundir import LOAD_GENERATOR, PROCESS_COLUMNS, PROCESSES, read_table, write_table
from testbed.processes import LOCUSTFILE, free_port, start_python, stop
from testbed.run.collect import ProcessSampler, SampledProcess

MASTER = "locust-master"
MAX_LOAD_PROCESSES = 64
# Locust's own default port of the master, which `testbed load-worker` connects to by default.
DEFAULT_MASTER_PORT = 5557
DEFAULT_JOIN_TIMEOUT_S = 120.0
MAX_JOIN_TIMEOUT_S = 3600.0
# Locust's words when the expected workers did not connect in time (locust/main.py).
GAVE_UP = "Gave up waiting for workers to connect"
# How long the master waits for its workers to connect (importing Locust and the flows takes
# seconds on a busy machine) before it gives up and the run fails.
WORKERS_CONNECT_TIMEOUT_S = 60
# How long the workers may take to write their last request parts and exit once the master has.
WORKERS_EXIT_TIMEOUT_S = 15.0


class LoadGeneratorError(Exception):
    """The load generator's plan is impossible (e.g. no worker)."""


@dataclass(frozen=True)
class LoadGeneratorPlan:
    """How many workers run on which cores (`cores` empty: the machine's), how many join from
    other hosts, on which port of the master and how long it waits for them."""

    cores: tuple[int, ...]
    workers: int
    joining: int = 0
    master_port: int | None = None
    join_timeout_s: float = DEFAULT_JOIN_TIMEOUT_S

    def __post_init__(self) -> None:
        problems = []
        lowest = 0 if self.joining else 1
        if not lowest <= self.workers <= MAX_LOAD_PROCESSES:
            problems.append(
                f"--load-processes must be an integer in {lowest}..{MAX_LOAD_PROCESSES}, got {self.workers}"
            )
        if not 0 <= self.joining <= MAX_LOAD_PROCESSES:
            problems.append(
                f"--expect-load-workers must be an integer in 0..{MAX_LOAD_PROCESSES}, got {self.joining}"
            )
        if self.master_port is not None and not 1 <= self.master_port <= 65535:
            problems.append(f"--master-port must be an integer in 1..65535, got {self.master_port}")
        if not 0 < self.join_timeout_s <= MAX_JOIN_TIMEOUT_S:
            problems.append(
                f"--load-workers-timeout must be between 0 and {MAX_JOIN_TIMEOUT_S:g} seconds, "
                f"got {self.join_timeout_s:g}"
            )
        if problems:
            raise LoadGeneratorError("\n".join(problems))

    @property
    def worker_cpu_limit_cores(self) -> float:
        """One core per worker, or the generator's cores shared out when the workers are more."""
        return min(1.0, len(self.cores) / self.workers) if self.cores else 1.0

    def record(
        self, joined: Sequence[JoinedWorker] = (), local: Mapping[int, str] | None = None
    ) -> LoadGeneratorRecord:
        """The manifest's description of the generator's processes: the master, then every worker
        with its host and share as the master gave them out (`joined`, from the master's file),
        the run's own by the names they were started under (`local`: PID -> name)."""
        host = socket.gethostname()
        master = GeneratorProcess(MASTER, "master", 1.0, host=host)
        if not joined:
            workers = tuple(
                GeneratorProcess(worker_name(index), "worker", self.worker_cpu_limit_cores, host=host)
                for index in range(1, self.workers + 1)
            )
            return LoadGeneratorRecord(cores=self.cores, processes=(master, *workers))
        names = local or {}
        processes = [master]
        for worker in joined:
            own = worker.host == host and worker.pid in names
            processes.append(
                GeneratorProcess(
                    names[worker.pid] if own else worker.name,
                    "worker",
                    self.worker_cpu_limit_cores if own else 1.0,
                    host=worker.host,
                    share=worker.share,
                    joined=not own,
                )
            )
        return LoadGeneratorRecord(cores=self.cores, processes=tuple(processes))


@dataclass(frozen=True)
class JoinedWorker:
    """A worker as the master saw it: its host and PID, its share, the CPU samples it sent."""

    name: str
    host: str
    pid: int
    index: int
    count: int
    samples: tuple[tuple[float, float, int], ...]

    @property
    def share(self) -> str:
        return f"{self.index + 1} of {self.count}"


def read_joined(path: Path) -> list[JoinedWorker]:
    """The workers in the master's `--load-workers-json` file, by share (none when it is missing)."""
    try:
        entries: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries.sort(key=lambda entry: int(entry["index"]))
    return [
        JoinedWorker(
            name=f"load-worker{int(entry['index']) + 1}",
            host=str(entry.get("host", "?")),
            pid=int(entry.get("pid", 0)),
            index=int(entry["index"]),
            count=int(entry["count"]),
            samples=tuple((float(t), float(cpu), int(rss)) for t, cpu, rss in entry.get("samples", [])),
        )
        for entry in entries
    ]


def add_joined_samples(run_dir: Path, record: LoadGeneratorRecord, joined: Sequence[JoinedWorker]) -> None:
    """Add the CPU samples of the workers that joined from elsewhere to the processes table (the
    run's sampler sees only its own processes)."""
    names = {process.name for process in record.processes if process.joined}
    rows = [
        (t_s, worker.name, LOAD_GENERATOR, worker.pid, cpu, rss, 1.0)
        for worker in joined
        if worker.name in names
        for t_s, cpu, rss in worker.samples
    ]
    if not rows:
        return
    path = run_dir / PROCESSES
    frame = pd.DataFrame(rows, columns=list(PROCESS_COLUMNS))
    if path.is_file():
        frame = pd.concat([read_table(path, PROCESS_COLUMNS, "processes").astype(object), frame])
    write_table(frame.reset_index(drop=True), path, PROCESS_COLUMNS, "processes")


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
        plan = self.plan
        port = plan.master_port or free_port()
        # Workers from other hosts reach the master on any of its interfaces.
        bind = "*" if plan.joining else "127.0.0.1"
        connect = ["--master-bind-host", bind, "--master-bind-port", str(port)]
        master = ["-m", "locust", "-f", str(LOCUSTFILE), "--master", *connect]
        master += ["--expect-workers", str(plan.workers + plan.joining)]
        wait_s = plan.join_timeout_s if plan.joining else WORKERS_CONNECT_TIMEOUT_S
        master += ["--expect-workers-max-wait", f"{wait_s:g}", *master_args]
        if plan.joining:
            print(
                f"testbed run: waiting up to {wait_s:g} s for {plan.joining} load worker(s): start each "
                f"with `testbed load-worker --master {socket.gethostname()}:{port}`",
                file=sys.stderr,
            )
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

    @property
    def local_names(self) -> dict[int, str]:
        """The PID of every worker the run started, with its name."""
        return {process.pid: worker_name(index) for index, process in enumerate(self.workers, start=1)}

    def _start(self, args: Sequence[str], name: str) -> subprocess.Popen[bytes]:
        with (self.logs_dir / f"{name}.log").open("ab") as log:
            return start_python(args, self.environment, log, cores=self.plan.cores, die_with_parent=True)

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
