"""The statements whose SQL differs by dialect, as each dialect renders them (platform/dialects.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

import backbone.wiring  # noqa: F401 - declares every module's tables on the metadata
from backbone.platform import dialects
from backbone.platform.db import UtcDateTime, metadata

TABLE = sa.Table(
    "counters",
    sa.MetaData(),
    sa.Column("owner", sa.String(80), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("note", sa.Unicode(20)),
)
SQL_SERVER = dialects.sql_server_dialect()


def _sql(statement: sa.ClauseElement, dialect: Dialect, keys: list[str] | None = None) -> str:
    return " ".join(str(statement.compile(dialect=dialect, column_keys=keys)).split())


def test_an_insert_ignoring_conflicts_is_on_conflict_or_a_merge_holding_its_key_range() -> None:
    statement = dialects.insert_ignoring_conflicts(TABLE).returning(TABLE.c.owner)

    assert _sql(statement, postgresql.dialect(), ["owner", "value"]) == (
        "INSERT INTO counters (owner, value) VALUES (%(owner)s::VARCHAR, %(value)s::BIGINT) "
        "ON CONFLICT (owner) DO NOTHING RETURNING counters.owner"
    )
    assert _sql(statement, sqlite.dialect(), ["owner", "value"]) == (
        "INSERT INTO counters (owner, value) VALUES (?, ?) ON CONFLICT (owner) DO NOTHING RETURNING owner"
    )
    assert _sql(statement, SQL_SERVER, ["owner", "value"]) == (
        "MERGE INTO counters WITH (HOLDLOCK) AS target USING (SELECT ? AS owner, ? AS value) AS source "
        "ON target.owner = source.owner "
        "WHEN NOT MATCHED THEN INSERT (owner, value) VALUES (source.owner, source.value) "
        "OUTPUT inserted.owner;"
    )


def test_an_upsert_updates_all_but_the_key_and_the_kept_columns() -> None:
    statement = dialects.upsert(TABLE, ["owner"], {"owner": "a", "value": 1, "note": "x"}, keep=["note"])

    assert _sql(statement, postgresql.dialect()).endswith(
        "ON CONFLICT (owner) DO UPDATE SET value = excluded.value"
    )
    merged = _sql(statement, SQL_SERVER)
    assert "WHEN MATCHED THEN UPDATE SET target.value = source.value WHEN NOT MATCHED" in merged
    assert statement.compile(dialect=SQL_SERVER).construct_params() == {"owner": "a", "value": 1, "note": "x"}


def test_an_upsert_built_once_takes_its_values_with_each_execution() -> None:
    statement = dialects.upsert(TABLE, ["owner"], {name: sa.bindparam(name) for name in ("owner", "value")})

    merged = statement.compile(dialect=SQL_SERVER)
    upserted = statement.compile(dialect=postgresql.dialect())

    assert "USING (SELECT ? AS owner, ? AS value) AS source" in str(merged)
    assert merged.construct_params({"owner": "a", "value": 2}) == {"owner": "a", "value": 2}
    assert "VALUES (%(owner)s::VARCHAR, %(value)s::BIGINT) ON CONFLICT (owner)" in str(upserted)


def test_insert_or_touch_rewrites_the_key_to_lock_the_row() -> None:
    statement = dialects.insert_or_touch(TABLE, "owner")

    assert _sql(statement, sqlite.dialect(), ["owner"]).endswith(
        "ON CONFLICT (owner) DO UPDATE SET owner = excluded.owner"
    )
    assert "WHEN MATCHED THEN UPDATE SET target.owner = source.owner" in _sql(
        statement, SQL_SERVER, ["owner"]
    )


def test_equal_upserts_share_one_compiled_statement_whatever_their_values() -> None:
    first = dialects.upsert(TABLE, ["owner"], {"owner": "a", "value": 1})
    second = dialects.upsert(TABLE, ["owner"], {"owner": "b", "value": 2})
    other_key = dialects.upsert(TABLE, ["value"], {"owner": "b", "value": 2})

    first_key, second_key = first._generate_cache_key(), second._generate_cache_key()
    assert first_key is not None
    assert second_key is not None
    assert first_key.key == second_key.key
    assert first_key.key != other_key._generate_cache_key().key  # type: ignore[union-attr]


def test_locked_rows_are_for_update_on_postgresql_and_table_hints_on_sql_server() -> None:
    selected = sa.select(TABLE.c.owner).where(TABLE.c.value > 1).order_by(TABLE.c.owner).limit(10)

    assert _sql(dialects.locked(selected, TABLE), postgresql.dialect()).endswith("FOR UPDATE")
    assert _sql(dialects.locked(selected, TABLE, skip_locked=True), postgresql.dialect()).endswith(
        "FOR UPDATE SKIP LOCKED"
    )
    assert "FOR UPDATE" not in _sql(dialects.locked(selected, TABLE), sqlite.dialect())
    assert "FROM counters WITH (UPDLOCK, ROWLOCK) WHERE" in _sql(dialects.locked(selected, TABLE), SQL_SERVER)
    assert "FROM counters WITH (UPDLOCK, ROWLOCK, READPAST) WHERE" in _sql(
        dialects.locked(selected, TABLE, skip_locked=True), SQL_SERVER
    )


def test_sql_server_pages_with_offset_fetch_and_selects_conditions_as_flags() -> None:
    page = sa.select(TABLE).order_by(TABLE.c.owner).limit(sa.bindparam("size")).offset(sa.bindparam("skip"))
    flagged = sa.select(dialects.flag(TABLE.c.note.is_(None)))

    assert _sql(page, SQL_SERVER).endswith("ORDER BY counters.owner OFFSET ? ROWS FETCH FIRST ? ROWS ONLY")
    assert _sql(flagged, SQL_SERVER) == (
        "SELECT CASE WHEN (counters.note IS NULL) THEN ? ELSE ? END AS anon_1 FROM counters"
    )


@pytest.mark.parametrize(
    ("dialect", "column_type", "stored"),
    [
        (postgresql.dialect(), "TIMESTAMP WITH TIME ZONE", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        (sqlite.dialect(), "DATETIME", datetime(2024, 5, 1, 10)),
        (SQL_SERVER, "DATETIME2(7)", datetime(2024, 5, 1, 10)),
    ],
)
def test_utc_datetimes_are_timestamptz_on_postgresql_and_naive_utc_elsewhere(
    dialect: Dialect, column_type: str, stored: datetime
) -> None:
    column = UtcDateTime()
    bind = column.process_bind_param(datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))), dialect)

    assert column.load_dialect_impl(dialect).compile(dialect=dialect) == column_type
    assert bind == stored


def test_every_partial_index_has_its_predicate_on_every_dialect() -> None:
    partial = [index for table in metadata.tables.values() for index in table.indexes if index.kwargs]

    assert len(partial) == 5
    for index in partial:
        for dialect in ("sqlite", "postgresql", "mssql"):
            assert index.dialect_options[dialect]["where"] is not None, (index.name, dialect)


def test_free_text_is_unicode_and_keys_stay_narrow_on_sql_server() -> None:
    """What people write is nvarchar (as in the original); ids, addresses and hashes are keys:
    varchar and bounded varbinary, which SQL Server can index."""
    ddl = "\n".join(
        str(sa.schema.CreateTable(table).compile(dialect=SQL_SERVER)) for table in metadata.sorted_tables
    )

    assert "title NVARCHAR(max) NOT NULL" in ddl
    assert "name NVARCHAR(30) NOT NULL" in ddl
    assert "address VARCHAR(80) NOT NULL" in ddl
    assert "identity_address_hash VARBINARY(32) NOT NULL" in ddl
    assert "username_hash VARBINARY(32) NOT NULL" in ddl
    for deprecated in ("TEXT", "IMAGE", "DATETIMEOFFSET"):
        assert f" {deprecated}" not in ddl
