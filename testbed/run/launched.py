"""A run's landscape: a profile brought up by `testbed up`'s launcher in the run's work directory.

One way up: `dev` comes up as one node on SQLite, `stage` and `prod` with their gateways,
PostgreSQL, RabbitMQ, SeaweedFS and workers, exactly as an operator starts them by hand. The run
asks it for what the `Landscape` protocol (`experiment.py`) lists.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import sys
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from reports.manifest import BudgetRecord, CpuRecord, LandscapeRecord
from reports.rundir import LOAD_GENERATOR
from scenarios.landscape import LandscapeProfile
from testbed.landscape import budgets
from testbed.landscape.cpu import CpuPlan
from testbed.landscape.launcher import Launcher
from testbed.landscape.monitor import (
    CPU_PROCESSES,
    LOAD_GENERATOR_JOB,
    Target,
    WatchedProcess,
    add_watched,
    write_load_generator_targets,
)
from testbed.landscape.pgbouncer import ADMIN_DATABASE, admin_connection, pool_samples
from testbed.landscape.postgres import replication_samples
from testbed.landscape.process_groups import group_alive, signal_group
from testbed.landscape.proxy import ProxyControl
from testbed.landscape.state import LandscapeError, LandscapeState
from testbed.landscape.teardown import STOP_TIMEOUT_S, tear_down
from testbed.run.collect import SampledGroup, SampledProcess, ScrapeTarget, StatisticsReader
from testbed.run.experiment import LandscapeAccess, RunError, relative_to_repository
from testbed.run.load_generator import GeneratorMember

BROKER_TIER = "broker"
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "postgresql": 5432}


@dataclass
class LaunchedLandscape:
    """A profile brought up by `testbed up`'s launcher inside the run's work directory."""

    profile: LandscapeProfile
    cpu: CpuPlan
    work_dir: Path
    logs_dir: Path
    overrides: Mapping[str, str] = field(default_factory=dict)
    state: LandscapeState | None = None
    # What `sampled_processes` could not find, with the reason (for the manifest).
    unsampled: list[str] = field(default_factory=list)
    # The servers reached through a proxy of the landscape's own (its faults cut or slow them).
    proxied: frozenset[str] = frozenset()
    launcher: Launcher | None = None
    # `--monitor`: Prometheus's directory (in the run directory); None: no monitor.
    monitor_dir: Path | None = None

    def up(self) -> LandscapeAccess:
        launcher = Launcher(
            self.profile,
            self.cpu,
            state_path=self.work_dir / "landscape.json",
            runs_dir=self.work_dir / "landscape",
            say=lambda text: print(f"testbed run: {text}", file=sys.stderr),
            proxied=self.proxied,
            monitor_dir=self.monitor_dir,
        )
        self.state = launcher.state
        self.launcher = launcher
        # While the launcher starts processes a signal only takes note (raising inside a fork
        # handler would be swallowed); the launcher stops at its next step and tears down.
        previous = {
            number: signal.signal(number, lambda *_: launcher.interrupted.set())
            for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            state = launcher.up()
        except LandscapeError as error:
            raise RunError(f"the {self.profile.name} landscape did not come up: {error}") from None
        finally:
            self._keep_logs()
            for number, handler in previous.items():
                signal.signal(number, handler)
        return LandscapeAccess(
            # With several gateways the load goes through the first (Locust targets one host).
            base_url=state.consumer_urls[0],
            # SQLite (dev) lives in the landscape's run directory, where the backbone puts it.
            database_url=state.database_url
            or f"sqlite:///{Path(state.run_dir) / 'var' / 'backbone.sqlite3'}",
            did_domain=self.profile.backbone.get("DID_DOMAIN", "localhost"),
            client_id=state.client_id,
            client_secret=state.client_secret,
            load_generator_cores=self.cpu.load_generator_cores,
        )

    def down(self) -> None:
        if self.state is None:
            return
        problems = tear_down(self.state, say=lambda text: print(f"testbed run: {text}", file=sys.stderr))
        self._keep_logs()
        if problems:
            raise RunError("the landscape did not go down cleanly: " + "; ".join(problems))

    def _keep_logs(self) -> None:
        """Copy the landscape's process logs into the run directory (they are evidence)."""
        if self.state is None:
            return
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        for log in (Path(self.state.run_dir) / "logs").glob("*.log"):
            shutil.copyfile(log, self.logs_dir / log.name)

    @property
    def _state(self) -> LandscapeState:
        if self.state is None:
            raise RunError("the landscape is not up")
        return self.state

    # What a scenario's faults do (testbed/run/faults.py): only to what this landscape's state records.

    def roles(self, tier: str) -> list[str]:
        """The roles of a tier's processes, in the profile's order (node1, node2)."""
        return [process.role for process in self.profile.processes() if process.tier == tier]

    def kill(self, role: str) -> int:
        """SIGKILL the process group of `role` (its current life), wait until it is gone; its PID."""
        return self._stop_group(role, signal.SIGKILL)

    def stop_database(self) -> int:
        """Stop the landscape's own PostgreSQL server (fast shutdown: its sessions end at once)."""
        return self._stop_group("postgresql", signal.SIGINT)

    def restart(self, role: str) -> int:
        if self.launcher is None:
            raise RunError("the landscape is not up")
        return self.launcher.restart(role)

    def cut(self, proxy: str) -> None:
        self._proxy(proxy).cut()

    def restore(self, proxy: str) -> None:
        self._proxy(proxy).restore()

    def delay(self, proxy: str, milliseconds: float) -> None:
        self._proxy(proxy).delay(milliseconds)

    def throttle(self, tier: str, cores: float | None) -> list[str]:
        """Give every budgeted process of `tier` `cores` (None: its own budget again); return them."""
        changed = []
        for group in self._state.cpu_groups:
            planned = self.cpu.process(group.role)
            if planned is None or planned.tier != tier:
                continue
            budgets.enforce(group if cores is None else dataclasses.replace(group, cores=cores))
            changed.append(group.role)
        if not changed:
            raise RunError(
                f"the {tier} tier has no CPU group to change (budgets held by {self.cpu.mechanism})"
            )
        return changed

    def _stop_group(self, role: str, number: int) -> int:
        recorded = [process for process in self._state.processes if process.role == role]
        if not recorded:
            raise RunError(f"no process {role} in this landscape")
        leader = recorded[-1].pid
        signal_group(leader, number)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while group_alive(leader):
            if self.launcher is not None:
                self.launcher.reap()
            if time.monotonic() > deadline:
                signal_group(leader, signal.SIGKILL)
            time.sleep(0.05)
        return leader

    def _proxy(self, role: str) -> ProxyControl:
        port = self._state.proxy_control_ports.get(role)
        if port is None:
            raise RunError(f"this landscape has no {role} (the launcher starts it for the scenario's faults)")
        return ProxyControl(port)

    def scrape_targets(self) -> list[ScrapeTarget]:
        state = self._state
        targets = [
            ScrapeTarget(f"node{index}", "node", _loopback(url) + "/metrics")
            for index, url in enumerate(state.node_urls, start=1)
        ]
        targets += [
            ScrapeTarget(f"worker{index}", "events", _loopback(url) + "/metrics")
            for index, url in enumerate(state.worker_urls, start=1)
        ]
        targets += [
            ScrapeTarget(f"sse{index}", "sse", _loopback(url) + "/metrics")
            for index, url in enumerate(state.sse_urls, start=1)
        ]
        targets += [
            ScrapeTarget(f"gateway{index}", "gateway", _loopback(url) + "/metrics")
            for index, url in enumerate(state.gateway_operator_urls, start=1)
        ]
        return targets + database_statistics_targets(state)

    def sampled_processes(self) -> list[SampledProcess]:
        """Every long-running process of the landscape with its tier and CPU limit, and the servers
        it shares with the machine (an external PostgreSQL server, the broker) where visible."""
        state = self._state
        sampled = []
        for process in state.processes:
            planned = self.cpu.process(process.role)
            if planned is None or not psutil.pid_exists(process.pid):
                continue  # the migration has exited
            sampled.append(
                SampledProcess(process.role, planned.tier, process.pid, cpu_limit_cores=planned.limit_cores)
            )
        self.unsampled = []
        if self.profile.database.kind == "postgresql" and not self.profile.database.private:
            # The machine's shared server: its CPU includes other databases' work, if any.
            if (server := postgresql_server_pid(state.database_url)) is not None:
                sampled.append(SampledProcess("postgresql", "database", server))
            else:
                self.unsampled.append("postgresql (the external server): not a process of this machine")
        if state.rabbitmq_url:
            # The machine's shared broker: never budgeted, never touched, only watched.
            if (broker := listening_pid(state.rabbitmq_url)) is not None:
                sampled.append(SampledProcess("rabbitmq", BROKER_TIER, broker))
            else:
                self.unsampled.append(
                    "rabbitmq (the shared broker): no process of this machine visible to this user "
                    "listens on its port"
                )
        return sampled

    @property
    def monitored(self) -> bool:
        return self.monitor_dir is not None

    def watch_load_generator(self, members: Sequence[GeneratorMember]) -> None:
        """Add the load generator's processes to the CPU exporter's list, and its workers'
        arrival metrics to Prometheus's targets."""
        if self.monitor_dir is None:
            return
        add_watched(
            self.monitor_dir / CPU_PROCESSES,
            [
                WatchedProcess(member.name, LOAD_GENERATOR, member.pid, member.cpu_limit_cores)
                for member in members
            ],
        )
        targets = [
            Target(LOAD_GENERATOR_JOB, f"127.0.0.1:{member.metrics_port}", member.name, LOAD_GENERATOR)
            for member in members
            if member.metrics_port is not None
        ]
        write_load_generator_targets(self.monitor_dir, self._state.id, targets)

    def budget_groups(self) -> list[SampledGroup]:
        """The cgroup of every budgeted process, whose usage and throttling the run samples."""
        groups = []
        for group in self._state.cpu_groups:
            planned = self.cpu.process(group.role)
            groups.append(SampledGroup(group.role, planned.tier if planned else "", group))
        return groups

    def manifest(self) -> LandscapeRecord:
        profile, state = self.profile, self._state
        return LandscapeRecord(
            name=profile.name,
            description=profile.description,
            source=relative_to_repository(profile.source),
            overrides=dict(self.overrides),
            environment=profile.environment,
            landscape_id=state.id,
            up_seconds=state.up_seconds,
            load_target="gateway1" if state.gateway_urls else "node1",
            threads_per_worker=profile.nodes.threads,
            gateway=dataclasses.asdict(profile.gateway),
            nodes=dataclasses.asdict(profile.nodes),
            # write_manifest writes the passwords in these URLs as ***.
            database=dataclasses.asdict(profile.database),
            bus=dataclasses.asdict(profile.bus),
            blob_store=dataclasses.asdict(profile.blob_store),
            worker=dataclasses.asdict(profile.worker),
            admin_api=dataclasses.asdict(profile.admin_api),
            cpu=self._cpu_record(),
            backbone=dict(profile.backbone),
            unsampled=tuple(self.unsampled),
        )

    def _cpu_record(self) -> CpuRecord:
        period_ms = self.cpu.period_us / 1000
        return CpuRecord(
            landscape_cores=self.cpu.landscape_cores,
            load_generator_cores=self.cpu.load_generator_cores,
            period_ms=period_ms,
            mechanism=self.cpu.mechanism,
            budgets=tuple(
                BudgetRecord(
                    process=planned.role,
                    tier=planned.tier,
                    option=planned.option,
                    cores=planned.cpu_limit or 0.0,
                    mechanism=planned.mechanism,
                    period_ms=period_ms,
                    pinned_cores=planned.cores,
                )
                for planned in self.cpu.budgeted
            ),
            warnings=self.cpu.warnings,
        )


def database_statistics_targets(state: LandscapeState) -> list[ScrapeTarget]:
    """PgBouncer's pools and statistics (its admin console), and each replica's lag as the primary
    sees it: the servers' own views, read once a second like a `/metrics`."""
    targets = []
    if state.pooler_url:
        console = urllib.parse.urlsplit(state.pooler_url)._replace(path=f"/{ADMIN_DATABASE}").geturl()
        reader = StatisticsReader(lambda: admin_connection(console), pool_samples)
        targets.append(ScrapeTarget("pgbouncer", "pooler", console, read=reader))
    if state.replica_urls:
        primary = state.database_url

        def connect() -> psycopg.Connection[Any]:
            # A scrape never waits long: the next second asks again.
            return psycopg.connect(
                primary, autocommit=True, connect_timeout=5, options="-c statement_timeout=5000"
            )

        reader = StatisticsReader(connect, replication_samples)
        targets.append(ScrapeTarget("replication", "replica", primary, read=reader))
    return targets


def _loopback(url: str) -> str:
    return url.replace("//localhost:", "//127.0.0.1:")


def listening_pid(url: str) -> int | None:
    """The PID of the local process listening on the port of `url` (None: elsewhere, or not visible)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        return None
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    return next(
        (
            connection.pid
            for connection in connections
            # laddr is (ip, port), or empty for a socket without an address.
            if connection.status == psutil.CONN_LISTEN and connection.laddr[1:2] == (port,) and connection.pid
        ),
        None,
    )


def postgresql_server_pid(database_url: str) -> int | None:
    """The PID of the PostgreSQL server behind `database_url` when it runs on this machine."""
    if not database_url.startswith(("postgresql", "postgres:")):
        return None
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        with psycopg.connect(url, connect_timeout=5) as connection:
            row = connection.execute("SELECT pg_backend_pid()").fetchone()
            # Asked while the connection is open: once closed, its backend exits and has no parent.
            # A backend's parent is the postmaster, which the sampler follows to every backend.
            return psutil.Process(int(row[0])).ppid() if row else None
    except psycopg.Error:
        return None
    except psutil.Error:
        return None  # a server on another host or in another PID namespace
