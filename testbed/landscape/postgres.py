"""A private PostgreSQL server: `initdb` and `postgres` from the Debian package, on a free loopback port.

The landscape's launcher starts the postmaster itself, as one of its recorded processes, so it
joins its CPU group in the fork hook (its backends inherit the group) and `down` stops it like any
other process; the cluster's directory is thrown away afterwards. Tests crash a cluster and start
it again (`stop("immediate")`, `start()`).

initdb refuses to run as root, so as root the cluster belongs to the `postgres` OS user: the
directory is handed to it, initdb runs as it, and the postmaster's fork hook joins the CPU group
first (which needs root) and then becomes that user.

A replica is a cluster cloned from a running primary with `pg_basebackup`, started as a hot
standby that streams the primary's WAL. `apply_synchronously` then makes every commit in the
landscape's database wait until every replica has applied it (`remote_apply`): a read on a
replica sees every write that was acknowledged (docs/decisions.md, "Read replicas").
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from testbed.landscape.cpu import confine
from testbed.processes import ProcessExited, free_port, wait_until_answers

CLUSTER_USER = "postgres"
DATABASE = "backbone"
INITIAL_DATABASES = ("template1", "postgres")  # the databases initdb makes, besides template0
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


class PostgresError(Exception):
    """The private server could not be made or started; the message says why in one line."""


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory with initdb and postgres, if any."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3])
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def cluster_account() -> tuple[int, int] | None:
    """(uid, gid) of the cluster's OS user when this process is root (initdb refuses root), else None."""
    if os.geteuid() != 0:
        return None
    try:
        account = pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        raise PostgresError(
            f"running as root, but there is no {CLUSTER_USER} OS user to own the cluster "
            "(the Debian package postgresql creates it)"
        ) from None
    return account.pw_uid, account.pw_gid


@dataclass(frozen=True)
class ServerSettings:
    """What the profile sets on a private server; durability stays on unless it says otherwise."""

    max_connections: int = 100
    shared_buffers: str = "128MB"
    work_mem: str = "4MB"
    fsync: bool = True
    synchronous_commit: bool = True
    # Server libraries loaded at start, e.g. pg_stat_statements for `make bench-statements`.
    preload_libraries: tuple[str, ...] = ()

    def options(self) -> list[str]:
        values = {
            "max_connections": str(self.max_connections),
            "shared_buffers": self.shared_buffers,
            "work_mem": self.work_mem,
            "fsync": "on" if self.fsync else "off",
            "synchronous_commit": "on" if self.synchronous_commit else "off",
            # Every autovacuum and auto-analyze in the server's log (logs/postgresql.log): a
            # background pass on a small CPU budget shows as a stall in the run's latencies.
            "log_autovacuum_min_duration": "0",
        }
        if self.preload_libraries:
            values["shared_preload_libraries"] = ",".join(self.preload_libraries)
        return [argument for name, value in values.items() for argument in ("-c", f"{name}={value}")]


class PostgresCluster:
    """One cluster in `directory` on a loopback port; its postmaster is started by the caller or `start()`.

    With `standby_of` it is a replica of that (running) primary, named `name` there.
    """

    def __init__(
        self,
        bin_dir: Path,
        directory: Path,
        settings: ServerSettings = ServerSettings(),
        port: int | None = None,
        account: tuple[int, int] | None = None,
        standby_of: PostgresCluster | None = None,
        name: str = "postgresql",
    ) -> None:
        self.bin_dir = bin_dir
        self.directory = directory
        self.data_dir = directory / "data"
        self.settings = settings
        self.port = port or free_port()
        self.account = account
        self.standby_of = standby_of
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{CLUSTER_USER}@127.0.0.1:{self.port}/{database}"

    def _run_as_cluster_user(
        self, command: list[str], environment: Mapping[str, str] | None, timeout_s: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool in the cluster's directory, as the cluster's user when root."""
        if self.account is not None:
            os.chown(self.directory, *self.account)
        uid, gid = self.account or (None, None)
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env=dict(environment) if environment is not None else None,
            cwd=self.directory,
            user=uid,
            group=gid,
            extra_groups=[] if self.account is not None else None,
            timeout=timeout_s,
        )

    def init(self, environment: Mapping[str, str] | None = None) -> None:
        """Run initdb (as the cluster's user when root): trust on loopback, UTF-8, C locale."""
        command = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", CLUSTER_USER]
        command += ["-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        result = self._run_as_cluster_user(command, environment)
        if result.returncode != 0:
            raise PostgresError(f"initdb failed ({result.returncode}): {result.stderr.strip()[-500:]}")

    def clone(self, environment: Mapping[str, str] | None = None) -> None:
        """Copy the primary into this replica's data directory (pg_basebackup), as the cluster's user."""
        primary = self.standby_of
        if primary is None:
            raise PostgresError(f"{self.name} is not a replica: it has no primary to clone")
        command = [str(self.bin_dir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port)]
        # -R: standby.signal, so the copy starts as a standby; the connection to the primary is
        # the command line's (`command`), under the replica's name.
        command += ["-U", CLUSTER_USER, "-D", str(self.data_dir), "-R", "-X", "stream", "-c", "fast"]
        command += ["--no-sync"]
        result = self._run_as_cluster_user(command, environment, timeout_s=300)
        if result.returncode != 0:
            raise PostgresError(
                f"pg_basebackup of {self.name} failed ({result.returncode}): {result.stderr.strip()[-500:]}"
            )

    def command(self) -> list[str]:
        """The postmaster's command line: loopback only, its socket in the cluster's directory."""
        command = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.directory}",
            *self.settings.options(),
        ]
        if self.standby_of is not None:
            conninfo = (
                f"host=127.0.0.1 port={self.standby_of.port} user={CLUSTER_USER} application_name={self.name}"
            )
            # Feedback keeps the primary from vacuuming rows a replica's query still reads: such a
            # conflict would hold up the replay, and every commit waits for the replay.
            command += ["-c", f"primary_conninfo={conninfo}", "-c", "hot_standby_feedback=on"]
        return command

    def wait_until_ready(
        self,
        process: subprocess.Popen[bytes],
        log: Path,
        timeout_s: float = 60.0,
        checkpoint: Callable[[], None] = lambda: None,
    ) -> None:
        """Wait until the server accepts connections; say why in one line when it exits instead."""
        try:
            wait_until_answers(
                self._accepts, process, what=self.name, timeout_s=timeout_s, checkpoint=checkpoint
            )
        except (ProcessExited, TimeoutError) as error:
            if "Address already in use" in _read(log):
                raise PostgresError(
                    f"{self.name}: port {self.port} on 127.0.0.1 is in use by another process"
                ) from None
            raise PostgresError(f"{self.name} did not start ({error}): {_last_lines(log)}") from None

    def create_database(self, name: str = DATABASE) -> str:
        """Create the landscape's database; return its URL."""
        self.analyse_initial_databases()
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def analyse_initial_databases(self) -> None:
        """Vacuum and analyse the databases initdb made (template1, postgres), once, at full speed.

        initdb leaves their catalogs unanalysed, and autovacuum's first round through them comes a
        minute or two after the start, inside a measured step: on a server at 0.05 core it held
        the server 0.9 s of one second and failed the step's p98 (docs/capacity.md).
        """
        for database in INITIAL_DATABASES:
            with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as connection:
                connection.execute("VACUUM (ANALYZE)")

    def wait_until_streaming(
        self,
        replicas: Sequence[str],
        timeout_s: float = 60.0,
        checkpoint: Callable[[], None] = lambda: None,
        states: tuple[str, ...] = ("async", "potential", "sync", "quorum"),
    ) -> None:
        """Wait until every named replica streams from this primary, in one of the sync `states`."""
        deadline = time.monotonic() + timeout_s
        streaming: set[str] = set()
        while time.monotonic() < deadline:
            checkpoint()
            with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as admin:
                rows = admin.execute(
                    "SELECT application_name, sync_state FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchall()
            streaming = {name for name, state in rows if state in states}
            if streaming >= set(replicas):
                return
            time.sleep(0.1)
        missing = ", ".join(sorted(set(replicas) - streaming))
        raise PostgresError(
            f"{missing} did not stream from the primary ({'/'.join(states)}) within {timeout_s:g} s"
        )

    def apply_synchronously(
        self,
        replicas: Sequence[str],
        database: str = DATABASE,
        timeout_s: float = 60.0,
        checkpoint: Callable[[], None] = lambda: None,
    ) -> None:
        """Make every commit in `database` wait until every replica has applied it (remote_apply)."""
        names = ", ".join(f'"{name}"' for name in replicas)
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"ALTER SYSTEM SET synchronous_standby_names = 'ANY {len(replicas)} ({names})'")
            admin.execute("SELECT pg_reload_conf()")
            admin.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = remote_apply')
        # Once the primary counts them in its quorum, a commit cannot return before they applied it.
        self.wait_until_streaming(replicas, timeout_s, checkpoint, states=("quorum", "sync"))

    def start(self) -> None:
        """Start the postmaster as a child of this process (tests); wait until it accepts connections."""
        log = self.directory / "log"
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                self.command(),
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
                preexec_fn=confine((), (), self.account),
            )
        self.wait_until_ready(self.process, log)

    def stop(self, mode: str = "fast") -> None:
        """Stop the postmaster `start()` started; `immediate` is a crash: only what the WAL holds survives."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(STOP_SIGNALS[mode])
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _accepts(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False


def new_cluster_directory(prefix: str) -> Path:
    """A fresh directory for a cluster (in the temporary directory: the cluster's user can reach it)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@contextmanager
def private_postgres_cluster(
    bin_dir: Path, settings: ServerSettings = ServerSettings()
) -> Iterator[PostgresCluster]:
    """Create and start a private cluster; finally stop it and remove its directory."""
    cluster = PostgresCluster(
        bin_dir, new_cluster_directory("backbone-pg-"), settings, account=cluster_account()
    )
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop("fast")
        shutil.rmtree(cluster.directory, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _last_lines(path: Path, lines: int = 5) -> str:
    return " | ".join(_read(path).strip().splitlines()[-lines:]) or f"(no log at {path})"


def replication_samples(connection: psycopg.Connection[Any]) -> list[tuple[str, dict[str, str], float]]:
    """Each replica's lag as the primary sees it (`pg_stat_replication`): samples (name, labels, value).

    A lag the primary shows as NULL (the replica has caught up and no WAL came since) is 0.
    """
    rows = connection.execute(
        "SELECT application_name, "
        "EXTRACT(EPOCH FROM write_lag), EXTRACT(EPOCH FROM flush_lag), EXTRACT(EPOCH FROM replay_lag), "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) "
        "FROM pg_stat_replication"
    ).fetchall()
    samples: list[tuple[str, dict[str, str], float]] = []
    for name, write_s, flush_s, replay_s, behind_bytes in rows:
        labels = {"application_name": str(name)}
        samples += [
            ("pg_stat_replication_write_lag_seconds", labels, float(write_s or 0)),
            ("pg_stat_replication_flush_lag_seconds", labels, float(flush_s or 0)),
            ("pg_stat_replication_replay_lag_seconds", labels, float(replay_s or 0)),
            ("pg_stat_replication_replay_lag_bytes", labels, float(behind_bytes or 0)),
        ]
    return samples
