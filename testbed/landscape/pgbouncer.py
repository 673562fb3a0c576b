"""A PgBouncer per landscape (Debian package `pgbouncer`): transaction pooling in front of its servers.

The landscape's backbone processes connect to PgBouncer on a free loopback port; PgBouncer keeps
`pool_size` server connections per database (the primary's, and each replica's under its own
name) and hands one to a client for the length of a transaction. Clients authenticate by trust
on loopback, as the private server's do; PgBouncer reaches an external server with the profile's
URL, whose password is written only to the configuration file in the landscape's own directory
(mode 0600), never to a log.

PgBouncer refuses to run as root, so as root it runs as the cluster's OS user (`postgres`), like
the private server, and its directory belongs to that user. Its admin console (the database
`pgbouncer`) answers `SHOW POOLS` and `SHOW STATS` to the run's scraper (`pool_samples`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ADMIN_DATABASE = "pgbouncer"
# Client connections beyond every one the backbone's pools may open: the run's scraper, the
# launcher's probe, an operator's psql.
CLIENT_CONNECTION_MARGIN = 20


def pgbouncer_executable() -> str | None:
    """The installed `pgbouncer` (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")


@dataclass(frozen=True)
class PooledDatabase:
    """A database clients ask PgBouncer for (`name`) and the server database behind it."""

    name: str
    host: str
    port: int
    dbname: str
    user: str
    password: str = field(default="", repr=False)

    def connection_string(self) -> str:
        values = {"host": self.host, "port": str(self.port), "dbname": self.dbname, "user": self.user}
        if self.password:
            values["password"] = self.password
        return " ".join(f"{key}={_quoted(value)}" for key, value in values.items())


@dataclass(frozen=True)
class PgBouncerConfig:
    """One PgBouncer: where it listens, who its clients are, its pools."""

    port: int
    user: str
    pool_size: int
    max_client_connections: int
    databases: tuple[PooledDatabase, ...]

    def ini(self, directory: Path) -> str:
        """The configuration file's text (its auth file lives in `directory`)."""
        # The names are the landscape's own (backbone, landscape_<id>, ..._replicaN): PgBouncer 1.18
        # reads a database name only unquoted.
        databases = "\n".join(f"{db.name} = {db.connection_string()}" for db in self.databases)
        return f"""[databases]
{databases}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "users.txt"}
stats_users = {self.user}
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = {self.max_client_connections}
log_connections = 0
log_disconnections = 0
"""

    def url(self, database: str) -> str:
        """A client's URL of one of the pooled databases (or of the admin console)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"


def write_config(directory: Path, config: PgBouncerConfig, account: tuple[int, int] | None) -> Path:
    """Write the configuration and auth files (0600, the account's when given); return the first."""
    files = {
        directory / "pgbouncer.ini": config.ini(directory),
        # Trust on loopback: the file only names who may connect.
        directory / "users.txt": f'{_quoted_name(config.user)} ""\n',
    }
    for path, text in files.items():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        if account is not None:
            os.chown(path, *account)
    if account is not None:
        os.chown(directory, *account)
    return directory / "pgbouncer.ini"


def pool_samples(connection: psycopg.Connection[Any]) -> list[tuple[str, dict[str, str], float]]:
    """PgBouncer's pools and statistics per database as samples (name, labels, value), base units."""
    samples: list[tuple[str, dict[str, str], float]] = []
    for row in _rows(connection, "SHOW POOLS"):
        if row["database"] == ADMIN_DATABASE:
            continue
        labels = {"database": str(row["database"])}
        for column, name in (
            ("cl_active", "pgbouncer_pools_client_active_connections"),
            ("cl_waiting", "pgbouncer_pools_client_waiting_connections"),
            ("sv_active", "pgbouncer_pools_server_active_connections"),
            ("sv_idle", "pgbouncer_pools_server_idle_connections"),
            ("sv_used", "pgbouncer_pools_server_used_connections"),
        ):
            samples.append((name, labels, float(row[column])))
        maxwait_s = float(row["maxwait"]) + float(row.get("maxwait_us", 0)) / 1e6
        samples.append(("pgbouncer_pools_client_maxwait_seconds", labels, maxwait_s))
    for row in _rows(connection, "SHOW STATS"):
        if row["database"] == ADMIN_DATABASE:
            continue
        labels = {"database": str(row["database"])}
        samples += [
            ("pgbouncer_stats_transactions_total", labels, float(row["total_xact_count"])),
            ("pgbouncer_stats_queries_total", labels, float(row["total_query_count"])),
            ("pgbouncer_stats_client_wait_seconds_total", labels, float(row["total_wait_time"]) / 1e6),
            ("pgbouncer_stats_transaction_seconds_total", labels, float(row["total_xact_time"]) / 1e6),
        ]
    return samples


def admin_connection(url: str) -> psycopg.Connection[Any]:
    """A connection to the admin console, which speaks only the simple query protocol."""
    return psycopg.connect(url, autocommit=True, connect_timeout=5, cursor_factory=psycopg.ClientCursor)


def _rows(connection: psycopg.Connection[Any], command: str) -> Sequence[dict[str, Any]]:
    cursor = connection.execute(command)
    names = [column.name for column in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _quoted(value: str) -> str:
    """A connection string value in single quotes (a quote doubled), as PgBouncer reads it."""
    return "'" + value.replace("'", "''") + "'"


def _quoted_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
