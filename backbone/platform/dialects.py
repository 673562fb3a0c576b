"""Where SQLite, PostgreSQL and SQL Server differ: the one place that knows the dialects.

Statements are built once and dialect-neutral; what differs is how each dialect's compiler
renders them, so the statement a test runs on PostgreSQL is the very one SQL Server would get
(`tests/integration/test_sql_server_statements.py` compiles every recorded one for SQL Server):

- `InsertOnConflict`: `INSERT ... ON CONFLICT` on SQLite and PostgreSQL, `MERGE ... WITH
  (HOLDLOCK)` on SQL Server (without HOLDLOCK two MERGEs could both find the key missing).
- `locked`: `FOR UPDATE [SKIP LOCKED]` on PostgreSQL, the table hints `WITH (UPDLOCK, ROWLOCK
  [, READPAST])` on SQL Server (SQLAlchemy renders `with_for_update` as nothing there), nothing
  on SQLite, whose writing transactions hold the database's write lock from their start.
- datetimes are `timestamptz` on PostgreSQL, naive UTC in `datetime2` on SQL Server and SQLite.
- SQL Server's engine writes `varchar(max)`/`nvarchar(max)`/`varbinary(max)`, never the
  deprecated `text`/`image`, and pages with `OFFSET ... FETCH` (SQL Server 2012 and newer).

Partial unique indexes carry their predicate for every dialect (`sqlite_where`,
`postgresql_where`, `mssql_where`: SQL Server's filtered indexes) beside the index itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable, Generative
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.visitors import InternalTraversal

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
SQL_SERVER = "mssql"

# A server that never answers the TCP handshake must not hold a request thread for the
# operating system's two minutes; the pool's pre-ping tries again on the next checkout.
SQL_SERVER_LOGIN_TIMEOUT_S = 5

_LOCK_HINT = "WITH (UPDLOCK, ROWLOCK)"
_LOCK_HINT_SKIPPING_LOCKED = "WITH (UPDLOCK, ROWLOCK, READPAST)"


def kind_of(url: str) -> str:
    """The dialect a database URL names (sqlite, postgresql, mssql); loads no database driver."""
    name: str = sa.make_url(url).get_dialect().name
    return name


def engine_options(url: str) -> dict[str, Any]:
    """What `create_engine` needs for this dialect beyond the pool settings every dialect shares."""
    if kind_of(url) == SQL_SERVER:
        return {
            "deprecate_large_types": True,
            "connect_args": {"timeout": SQL_SERVER_LOGIN_TIMEOUT_S},
        }
    return {}


def offline_dialect_options(url: str) -> dict[str, Any]:
    """Dialect options for rendering SQL without a connection (`backbone migrate --sql`)."""
    return {"deprecate_large_types": True} if kind_of(url) == SQL_SERVER else {}


def sql_server_dialect() -> Dialect:
    """SQL Server's dialect (pyodbc) as a connection to SQL Server 2019 or newer configures it.

    Without a connection the dialect would assume an old server (no OFFSET ... FETCH); checks
    that compile statements for SQL Server use this one.
    """
    dialect: Any = mssql.dialect(deprecate_large_types=True, paramstyle="qmark")  # type: ignore[no-untyped-call]
    dialect.server_version_info = (15, 0)
    dialect._supports_offset_fetch = True
    dialect.supports_multivalues_insert = True
    return cast(Dialect, dialect)


def stores_naive_utc(dialect: Dialect) -> bool:
    """Whether datetimes are stored without offset (as UTC); PostgreSQL keeps timestamptz."""
    return dialect.name != POSTGRESQL


def datetime_type(dialect: Dialect) -> sa.types.TypeEngine[Any]:
    """The column type of a UTC datetime: `datetime2` on SQL Server (as the original's)."""
    if dialect.name == SQL_SERVER:
        return dialect.type_descriptor(mssql.DATETIME2(precision=7))  # type: ignore[no-untyped-call]
    return dialect.type_descriptor(sa.DateTime(timezone=True))


def locked(statement: sa.Select[Any], table: sa.Table, *, skip_locked: bool = False) -> sa.Select[Any]:
    """Lock the rows `statement` selects from `table` until commit; with `skip_locked`, pass over
    rows another transaction holds instead of waiting (parallel claimers)."""
    hint = _LOCK_HINT_SKIPPING_LOCKED if skip_locked else _LOCK_HINT
    return statement.with_for_update(skip_locked=skip_locked).with_hint(table, hint, SQL_SERVER)


def flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    """A condition as a selectable value, 1 or 0: SQL Server selects no bare predicate
    (`SELECT x IS NULL` and `SELECT EXISTS (...)` are PostgreSQL's and SQLite's only)."""
    return sa.case((condition, 1), else_=0)


class InsertOnConflict(Generative, Executable, ClauseElement):
    """An INSERT that, when the key exists, does nothing or updates the named columns.

    Values are either given here (`values`) or with the execution's parameters, by column key.
    """

    __visit_name__ = "insert_on_conflict"
    is_dml = True
    # What SQLAlchemy's compiler reads of the statement it was given once the INSERT that this
    # one renders as has made it an insert (`compiled.isinsert`).
    _inline = False
    _return_defaults = False
    _traverse_internals = [
        ("table", InternalTraversal.dp_clauseelement),
        ("key", InternalTraversal.dp_string_list),
        ("updated", InternalTraversal.dp_string_list),
        ("values", InternalTraversal.dp_string_clauseelement_dict),
        ("returned", InternalTraversal.dp_clauseelement_list),
    ]

    def __init__(
        self,
        table: sa.Table,
        key: Sequence[str],
        *,
        updated: Sequence[str] = (),
        values: Mapping[str, Any] | None = None,
    ) -> None:
        self.table = table
        self.key = list(key)
        self.updated = list(updated)
        self.values = {name: _parameter(name, value, table) for name, value in (values or {}).items()}
        self.returned: list[sa.ColumnElement[Any]] = []

    @property
    def _all_selected_columns(self) -> list[sa.ColumnElement[Any]]:
        """What a result compiled for an equal statement maps its columns by (SQLAlchemy's cache)."""
        return self.returned

    def returning(self, *columns: sa.ColumnElement[Any]) -> InsertOnConflict:
        """Return these columns of the row inserted (or updated); nothing when nothing happened."""
        statement = self._generate()
        statement.returned = [*self.returned, *columns]
        return statement


def _parameter(name: str, value: Any, table: sa.Table) -> sa.BindParameter[Any]:
    """A value as a parameter of its column's type; a parameter given (its value comes with the
    execution) keeps its name."""
    column_type = table.c[name].type
    if isinstance(value, sa.BindParameter):
        if value.required:
            return sa.bindparam(value.key, type_=column_type)
        return sa.bindparam(value.key, value.value, type_=column_type)
    return sa.bindparam(name, value, type_=column_type)


def insert_ignoring_conflicts(table: sa.Table, key: Sequence[str] = ()) -> InsertOnConflict:
    """An INSERT that silently skips a row whose key (default: the primary key) exists."""
    return InsertOnConflict(table, key or [column.name for column in table.primary_key])


def insert_or_touch(table: sa.Table, key: str) -> InsertOnConflict:
    """An INSERT of `{key: value}` (given when executed) that, on conflict, rewrites the key to
    itself: it creates a missing row and locks an existing one in one round trip."""
    return InsertOnConflict(table, [key], updated=[key])


def upsert(
    table: sa.Table, key: Sequence[str], values: Mapping[str, Any], *, keep: Sequence[str] = ()
) -> InsertOnConflict:
    """An INSERT of `values` that, on a conflict of the key, updates the row instead; the key
    columns and those named in `keep` retain their stored values."""
    unchanged = {*key, *keep}
    updated = [name for name in values if name not in unchanged]
    return InsertOnConflict(table, key, updated=updated, values=values)


def _inserted_columns(element: InsertOnConflict, compiler: SQLCompiler) -> list[str]:
    if element.values:
        return list(element.values)
    names = [name for name in compiler.column_keys or () if name in element.table.c]
    if not names:
        raise sa.exc.CompileError(f"an insert into {element.table.name} needs values")
    return names


@compiles(InsertOnConflict, POSTGRESQL)
@compiles(InsertOnConflict, SQLITE)
def _insert_on_conflict(element: InsertOnConflict, compiler: SQLCompiler, **kw: Any) -> str:
    dialect_insert = postgresql.insert if compiler.dialect.name == POSTGRESQL else sqlite.insert
    statement = dialect_insert(element.table)
    if element.values:
        statement = statement.values(element.values)
    if element.updated:
        upserting = statement.on_conflict_do_update(
            index_elements=element.key, set_={name: statement.excluded[name] for name in element.updated}
        )
    else:
        upserting = statement.on_conflict_do_nothing(index_elements=element.key)
    returning = upserting.returning(*element.returned) if element.returned else upserting
    return compiler.process(returning, **kw)


@compiles(InsertOnConflict, SQL_SERVER)
def _merge(element: InsertOnConflict, compiler: SQLCompiler, **kw: Any) -> str:
    quote = compiler.preparer.quote
    names = _inserted_columns(element, compiler)
    parameters = [
        element.values[name]
        if name in element.values
        else sa.bindparam(name, type_=element.table.c[name].type, required=True)
        for name in names
    ]
    source = ", ".join(
        f":{parameter.key} AS {quote(name)}" for parameter, name in zip(parameters, names, strict=True)
    )
    lines = [
        f"MERGE INTO {compiler.preparer.format_table(element.table)} WITH (HOLDLOCK) AS target",
        f"USING (SELECT {source}) AS source",
        "ON " + " AND ".join(f"target.{quote(name)} = source.{quote(name)}" for name in element.key),
    ]
    if element.updated:
        updates = ", ".join(f"target.{quote(name)} = source.{quote(name)}" for name in element.updated)
        lines.append(f"WHEN MATCHED THEN UPDATE SET {updates}")
    inserted = ", ".join(f"source.{quote(name)}" for name in names)
    lines.append(f"WHEN NOT MATCHED THEN INSERT ({', '.join(map(quote, names))}) VALUES ({inserted})")
    returned = _columns(element.returned)
    if returned:
        lines.append("OUTPUT " + ", ".join(f"inserted.{quote(column.name)}" for column in returned))
    # T-SQL ends a MERGE with a semicolon, always.
    text: Any = sa.text("\n".join(lines) + ";").bindparams(*parameters)
    return compiler.process(text.columns(*returned) if returned else text, **kw)


def _columns(elements: Sequence[sa.ColumnElement[Any]]) -> list[sa.ColumnClause[Any]]:
    columns = []
    for element in elements:
        if not isinstance(element, sa.ColumnClause):
            raise sa.exc.CompileError(f"only columns can be returned, not {element}")
        columns.append(element)
    return columns
