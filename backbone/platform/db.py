"""The SQL database: engines, transactions, and the statements whose SQL differs by dialect
(rendered by `platform/dialects.py`, the one place that knows SQLite, PostgreSQL and SQL Server).

Writing units of work run on the primary; read-only ones on a replica when there are any (round
robin), unless they ask for the primary (docs/decisions.md, "Read replicas").

Round trips are what a request costs most on PostgreSQL (docs/decisions.md, "Hot paths"): a
read-only unit runs its statements without BEGIN and COMMIT (under READ COMMITTED each statement
takes its own snapshot inside a transaction too), a unit of one atomic statement may do the same
(`Database.statement`), and a pooled connection is checked for a server that hung up on it by
looking at its socket, not by a ping to the server.
"""

from __future__ import annotations

import contextvars
import itertools
import select
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection as Connection  # the unit of work's handle, for services
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backbone.platform import dialects
from backbone.platform.dialects import InsertOnConflict

# What repositories without a `Database` at hand use: conditions as values, inserts that skip an
# existing key, rows locked until commit.
from backbone.platform.dialects import flag as flag
from backbone.platform.dialects import insert_ignoring_conflicts as insert_ignoring_conflicts
from backbone.platform.dialects import locked as locked

# The database cannot answer now (server away, pool exhausted, lock wait over): requests get 503
# and event handlers try again later, instead of a 500 that passes an outage off as a bug.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeoutError)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Store aware UTC datetimes: timestamptz on PostgreSQL, naive UTC on SQLite and SQL Server."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialects.datetime_type(dialect)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialects.stores_naive_utc(dialect) else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def id_column(name: str = "id", **kwargs: Any) -> sa.Column[str]:
    """A 20-character strongly typed id column."""
    return sa.Column(name, sa.String(20), **kwargs)


def address_column(name: str, **kwargs: Any) -> sa.Column[str]:
    """An identity address column (at most 80 characters)."""
    return sa.Column(name, sa.String(80), **kwargs)


@dataclass
class _Transaction:
    connection: Connection
    writable: bool
    # Writing units and reads that asked for the primary; a replica may serve the others.
    on_primary: bool
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # What collaborators gather during the transaction, by their own key (e.g. the outbox's batch).
    state: dict[str, Any] = field(default_factory=dict)


_current: contextvars.ContextVar[_Transaction | None] = contextvars.ContextVar("transaction", default=None)


@dataclass(frozen=True)
class Page:
    """Which page of a list the client asked for."""

    number: int = 1
    size: int = 50

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass(frozen=True)
class Paged:
    """One page of a list with the total the client pages by."""

    items: list[Any]
    page: Page
    total_records: int

    @property
    def total_pages(self) -> int:
        return max(1, -(-self.total_records // self.page.size))


class Database:
    """Hand out transactions; nested use joins the outermost one, so services compose atomically.

    Engines hide bound parameters in errors and logs: they hold password hashes, push handles and
    addresses, and a 500's log line must not carry them.
    """

    def __init__(
        self,
        url: str,
        *,
        read_urls: Sequence[str] = (),
        prepared_statements: bool = True,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout_s: float = 30.0,
        sqlite_busy_timeout_ms: int = 30_000,
    ) -> None:
        self.url = url
        if url.startswith("sqlite"):
            if read_urls:
                raise ValueError("SQLite has no replicas: read URLs need a PostgreSQL primary")
            self.engine = _sqlite_engine(url, pool_size, max_overflow, pool_timeout_s, sqlite_busy_timeout_ms)
        else:
            self.engine = _server_engine(url, pool_size, max_overflow, pool_timeout_s, prepared_statements)
        # One pool per replica in every process: round robin over them spreads the reads evenly.
        self.read_engines = tuple(
            _server_engine(read_url, pool_size, max_overflow, pool_timeout_s, prepared_statements)
            for read_url in read_urls
        )
        self._turns = itertools.count()
        self.dialect = self.engine.dialect.name
        # Told how long each unit of work waited for its pooled connection (the metrics set it).
        self.connection_wait_observer: Callable[[float], None] | None = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Run a writing unit of work; on SQLite it takes the write lock up front (no upgrade deadlocks)."""
        yield from self._unit(writable=True)

    @contextmanager
    def statement(self) -> Iterator[Connection]:
        """Run a writing unit of exactly one statement, atomic by itself; or join the open unit.

        On PostgreSQL it runs without BEGIN and COMMIT: two round trips fewer. A second statement
        in it would commit on its own: use `transaction` for more than one.
        """
        yield from self._unit(writable=True, single_statement=True)

    @property
    def engines(self) -> tuple[Engine, ...]:
        """The primary's engine and every replica's."""
        return (self.engine, *self.read_engines)

    @contextmanager
    def read(self, *, primary: bool = False, streaming: bool = False) -> Iterator[Connection]:
        """Run a read-only unit of work (on a replica, if any, unless `primary`), or join the open one.

        `streaming`: its rows come through a server-side cursor (`yield_per`), which lives in a
        transaction on PostgreSQL; other reads run without BEGIN and COMMIT there.
        """
        yield from self._unit(writable=False, on_primary=primary, single_statement=not streaming)

    def _unit(
        self, *, writable: bool, on_primary: bool = True, single_statement: bool = False
    ) -> Iterator[Connection]:
        outer = _current.get()
        if outer is not None:
            if writable and not outer.writable:
                raise RuntimeError("a writing unit of work cannot start inside a read-only one")
            if on_primary and not outer.on_primary:
                raise RuntimeError("a read of the primary cannot join a read-only unit a replica may serve")
            yield outer.connection
            return
        engine = self.engine
        if not on_primary and self.read_engines:
            engine = self.read_engines[next(self._turns) % len(self.read_engines)]
        waiting_since = time.perf_counter()
        with engine.connect() as connection:
            if self.connection_wait_observer is not None:
                self.connection_wait_observer(time.perf_counter() - waiting_since)
            if self.dialect == "sqlite":
                connection = connection.execution_options(
                    sqlite_begin="IMMEDIATE" if writable else "DEFERRED"
                )
            elif single_statement and self.dialect == "postgresql":
                # The driver's autocommit: no BEGIN before the first statement, no COMMIT after the
                # last; the pool resets it when the connection comes back.
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            unit = _Transaction(connection, writable, on_primary)
            token = _current.set(unit)
            try:
                with connection.begin():
                    yield connection
            finally:
                _current.reset(token)
        for callback in unit.after_commit:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current transaction has committed (never if it rolls back)."""
        unit = _current.get()
        if unit is None:
            raise RuntimeError("after_commit needs an open transaction")
        unit.after_commit.append(callback)

    def transaction_state(self) -> dict[str, Any]:
        """Return a dict that lives as long as the current transaction (for per-transaction batches)."""
        unit = _current.get()
        if unit is None:
            raise RuntimeError("transaction_state needs an open transaction")
        return unit.state

    def current(self) -> Connection:
        """Return the connection of the open transaction."""
        unit = _current.get()
        if unit is None:
            raise RuntimeError("no open transaction")
        return unit.connection

    def insert_ignoring_conflicts(self, table: sa.Table, index_elements: Sequence[str]) -> InsertOnConflict:
        """Build an INSERT that silently skips rows violating the given unique key."""
        return dialects.insert_ignoring_conflicts(table, index_elements)

    def insert_or_touch(self, table: sa.Table, key: str) -> InsertOnConflict:
        """Build an INSERT of `{key: value}` (given when executed) that, on conflict, rewrites the
        key to itself.

        The no-op update makes PostgreSQL (and SQL Server's MERGE) lock the existing row, so the
        statement both creates a missing row and takes its lock in one round trip.
        """
        return dialects.insert_or_touch(table, key)

    def upsert(
        self,
        table: sa.Table,
        index_elements: Sequence[str],
        values: dict[str, Any],
        *,
        keep: Sequence[str] = (),
    ) -> InsertOnConflict:
        """Build an INSERT of `values` that, on a conflict of the key, updates the row instead.

        The key columns and those named in `keep` retain their stored values on update.
        """
        return dialects.upsert(table, index_elements, values, keep=keep)

    def for_update(self, statement: sa.Select[Any], table: sa.Table) -> sa.Select[Any]:
        """Lock the rows of `table` selected until commit (SQLite already holds the write lock)."""
        return dialects.locked(statement, table)

    def ping(self) -> None:
        """Raise `DatabaseUnreachable` (one line, no password) unless the primary and every replica
        answer now: a node whose reads fail is not healthy."""
        for engine in self.engines:
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("SELECT 1")
            except DATABASE_UNAVAILABLE as error:
                raise DatabaseUnreachable(engine.url, error) from error

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


class DatabaseUnreachable(Exception):
    """The database server did not answer; the message names it (without password) and the driver's
    first line of why, for a log line or a command's error."""

    def __init__(self, url: sa.URL, error: Exception) -> None:
        reason = " ".join(str(getattr(error, "orig", None) or error).split("\n", 1)[0].split())
        super().__init__(f"cannot reach the database {url.render_as_string(hide_password=True)}: {reason}")


@contextmanager
def violation_raises(error: Callable[[], Exception]) -> Iterator[None]:
    """Turn a constraint's refusal of the statements inside into the domain's `error()`.

    Repositories wrap the inserts whose unique index backs a service's check: a request that
    raced past the check gets the check's error, never a 500.
    """
    try:
        yield
    except IntegrityError:
        raise error() from None


def fetch_page(connection: Connection, statement: sa.Select[Any], page: Page) -> Paged:
    """Fetch one page; count only when the page is full (the original's totalRecords rule)."""
    rows = list(connection.execute(statement.limit(page.size).offset(page.offset)))
    total = _total_told_by(rows, page)
    if total is None:
        counted = sa.select(sa.func.count()).select_from(statement.order_by(None).subquery())
        total = connection.execute(counted).scalar_one()
    return Paged(rows, page, total)


def _total_told_by(rows: list[Any], page: Page) -> int | None:
    """The total when the page itself tells it (a short page that is not past the end), else None.

    The original's totalRecords rule: only a full page, or an empty page after the first, needs
    a count.
    """
    if len(rows) < page.size and (rows or page.number == 1):
        return page.offset + len(rows)
    return None


class PrebuiltPage:
    """A paged list whose statements are built once: `statement` takes its values as bindparams.

    Fetches like `fetch_page`; for lists on hot paths, where building the statement per call
    costs more than running it.
    """

    def __init__(self, statement: sa.Select[Any]) -> None:
        # 64-bit: the last page a client may ask for starts beyond a 32-bit offset.
        self._page = statement.limit(sa.bindparam("page_limit", type_=sa.BigInteger)).offset(
            sa.bindparam("page_offset", type_=sa.BigInteger)
        )
        self._count = sa.select(sa.func.count()).select_from(statement.order_by(None).subquery())

    def fetch(self, connection: Connection, parameters: dict[str, Any], page: Page) -> Paged:
        """Fetch one page; count only when the page is full (the original's totalRecords rule)."""
        bound = {**parameters, "page_limit": page.size, "page_offset": page.offset}
        rows = list(connection.execute(self._page, bound))
        total = _total_told_by(rows, page)
        if total is None:
            total = connection.execute(self._count, parameters).scalar_one()
        return Paged(rows, page, total)


def _server_engine(
    url: str, pool_size: int, max_overflow: int, pool_timeout_s: float, prepared_statements: bool
) -> Engine:
    options = dialects.engine_options(url)
    connect_args = options.pop("connect_args", {})
    if not prepared_statements:
        # psycopg prepares a statement on its connection after 5 uses; None never prepares.
        connect_args = {**connect_args, "prepare_threshold": None}
    postgresql = dialects.kind_of(url) == dialects.POSTGRESQL
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        # A ping costs a round trip per unit of work; PostgreSQL's connections are checked below.
        pool_pre_ping=not postgresql,
        pool_recycle=1800,
        # Bound parameters hold password hashes, push handles and addresses: never in errors or logs.
        hide_parameters=True,
        connect_args=connect_args,
        **options,
    )
    if postgresql:
        event.listen(engine, "checkout", _refuse_hung_up)
    return engine


def _refuse_hung_up(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Make the pool replace a connection the server has closed or spoken on while it was idle.

    A restarted or crashed server closes its connections (and says why first): the socket of an
    idle connection is then readable. The pool retries the checkout with a new connection, so a
    process recovers from an outage as it did with a ping, without a round trip per checkout.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection or sent something while it was idle")


def _sqlite_engine(
    url: str, pool_size: int, max_overflow: int, pool_timeout_s: float, busy_timeout_ms: int
) -> Engine:
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        poolclass=sa.pool.QueuePool,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE can be issued explicitly.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def count_created(
    connection: Connection,
    table: sa.Table,
    created_by: str,
    since: datetime | None,
    until: datetime,
    *,
    total_of: str | None = None,
) -> int:
    """Count rows (or sum a column) created by `created_by` in [since, until): quota usage."""
    measure = sa.func.count() if total_of is None else sa.func.coalesce(sa.func.sum(table.c[total_of]), 0)
    statement = sa.select(measure).where(table.c.created_by == created_by, table.c.created_at < until)
    if since is not None:
        statement = statement.where(table.c.created_at >= since)
    return int(connection.execute(statement).scalar_one())
