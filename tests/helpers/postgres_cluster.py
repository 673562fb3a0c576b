"""A private PostgreSQL cluster (`initdb`/`pg_ctl`) that a test may stop and start at will.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` OS user. Its data
directory lives in a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.processes import free_port

CLUSTER_USER = "postgres"


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory with initdb and pg_ctl, if any."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3])
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """One cluster on a free loopback port; `stop()` crashes it (immediate), `start()` recovers."""

    def __init__(self, bin_dir: Path, directory: Path) -> None:
        self._bin_dir = bin_dir
        self.directory = directory
        self.data_dir = directory / "data"
        self.port = free_port()
        self._as_cluster_user = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://{CLUSTER_USER}@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        if self._as_cluster_user:
            account = pwd.getpwnam(CLUSTER_USER)
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", CLUSTER_USER, "-A", "trust", "--no-sync", "-E", "UTF8"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; `immediate` is a crash: only what the WAL holds survives."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        status = subprocess.run(
            self._command("pg_ctl", "-D", str(self.data_dir), "status"), capture_output=True, check=False
        )
        return status.returncode == 0

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self._bin_dir / program), *args]
        return ["runuser", "-u", CLUSTER_USER, "--", *command] if self._as_cluster_user else command

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(self._command(program, *args), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr[-2000:]}")


@contextmanager
def private_postgres_cluster(bin_dir: Path) -> Iterator[PostgresCluster]:
    """Create, start, and finally stop and remove a private cluster."""
    directory = Path(tempfile.mkdtemp(prefix="backbone-pg-"))
    directory.chmod(0o755)
    cluster = PostgresCluster(bin_dir, directory)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.data_dir.exists() and cluster.running():
            cluster.stop("fast")
        shutil.rmtree(directory, ignore_errors=True)
