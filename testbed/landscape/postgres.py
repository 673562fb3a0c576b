"""A private PostgreSQL server: `initdb` and `postgres` from the Debian package, on a free loopback port.

The landscape's launcher starts the postmaster itself, as one of its recorded processes, so it
joins its CPU group in the fork hook (its backends inherit the group) and `down` stops it like any
other process; the cluster's directory is thrown away afterwards. Tests crash a cluster and start
it again (`stop("immediate")`, `start()`).

initdb refuses to run as root, so as root the cluster belongs to the `postgres` OS user: the
directory is handed to it, initdb runs as it, and the postmaster's fork hook joins the CPU group
first (which needs root) and then becomes that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from testbed.landscape.cpu import confine
from testbed.processes import ProcessExited, free_port, wait_until_answers

CLUSTER_USER = "postgres"
DATABASE = "backbone"
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

    def options(self) -> list[str]:
        values = {
            "max_connections": str(self.max_connections),
            "shared_buffers": self.shared_buffers,
            "work_mem": self.work_mem,
            "fsync": "on" if self.fsync else "off",
            "synchronous_commit": "on" if self.synchronous_commit else "off",
        }
        return [argument for name, value in values.items() for argument in ("-c", f"{name}={value}")]


class PostgresCluster:
    """One cluster in `directory` on a loopback port; its postmaster is started by the caller or `start()`."""

    def __init__(
        self,
        bin_dir: Path,
        directory: Path,
        settings: ServerSettings = ServerSettings(),
        port: int | None = None,
        account: tuple[int, int] | None = None,
    ) -> None:
        self.bin_dir = bin_dir
        self.directory = directory
        self.data_dir = directory / "data"
        self.settings = settings
        self.port = port or free_port()
        self.account = account
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{CLUSTER_USER}@127.0.0.1:{self.port}/{database}"

    def init(self, environment: Mapping[str, str] | None = None) -> None:
        """Run initdb (as the cluster's user when root): trust on loopback, UTF-8, C locale."""
        if self.account is not None:
            os.chown(self.directory, *self.account)
        command = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", CLUSTER_USER]
        command += ["-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        uid, gid = self.account or (None, None)
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env=dict(environment) if environment is not None else None,
            cwd=self.directory,
            user=uid,
            group=gid,
            extra_groups=[] if self.account is not None else None,
        )
        if result.returncode != 0:
            raise PostgresError(f"initdb failed ({result.returncode}): {result.stderr.strip()[-500:]}")

    def command(self) -> list[str]:
        """The postmaster's command line: loopback only, its socket in the cluster's directory."""
        return [
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
                self._accepts, process, what="postgresql", timeout_s=timeout_s, checkpoint=checkpoint
            )
        except (ProcessExited, TimeoutError) as error:
            if "Address already in use" in _read(log):
                raise PostgresError(
                    f"postgresql: port {self.port} on 127.0.0.1 is in use by another process"
                ) from None
            raise PostgresError(f"postgresql did not start ({error}): {_last_lines(log)}") from None

    def create_database(self, name: str = DATABASE) -> str:
        """Create the landscape's database; return its URL."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

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
