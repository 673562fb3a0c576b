"""SQL Server, checked offline: the migration chain as T-SQL, and every statement the backbone ran
on PostgreSQL in this session compiled for SQL Server; both parsed by sqlfluff's T-SQL grammar.

No SQL Server runs here (decisions.md, "SQL Server and Azure Service Bus"): these tests prove
that SQL Server would read every statement, not how it would run them.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from backbone.platform.db import locked
from backbone.platform.events import outbox_events
from tests.helpers.t_sql import (
    StatementRecorder,
    as_t_sql,
    describe,
    parse_problems,
    split_postgresql_script,
    split_script,
    unlocked_on_sql_server,
)

SQL_SERVER_URL = "mssql+pyodbc://backbone:a-password@127.0.0.1:1433/backbone?driver=FreeTDS"
POSTGRESQL_URL = "postgresql://backbone:a-password@127.0.0.1:5432/backbone"

# Renders the chain in a fresh interpreter and tells which database drivers it loaded.
_RENDER_AND_LIST_DRIVERS = """
import sys
from backbone.cli import main
code = main(["migrate", "--sql", "--database-url", sys.argv[1]])
loaded = sorted(name for name in ("pyodbc", "psycopg", "psycopg2") if name in sys.modules)
print("-- drivers loaded: " + ",".join(loaded))
sys.exit(code)
"""


def _migration_sql(url: str) -> str:
    finished = subprocess.run(
        [sys.executable, "-c", _RENDER_AND_LIST_DRIVERS, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    script, _, drivers = finished.stdout.rpartition("-- drivers loaded: ")
    assert drivers.strip() == "", f"rendering the SQL loaded a database driver: {drivers}"
    assert "a-password" not in finished.stderr
    return script


def _revision_count() -> int:
    from alembic.script import ScriptDirectory

    from backbone.migrations import alembic_config

    return len(list(ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()))


def test_the_migration_chain_is_t_sql_that_sql_server_parses() -> None:
    script = _migration_sql(SQL_SERVER_URL)

    statements = split_script(script)
    assert script.count("-- Running upgrade") == _revision_count()
    assert script.startswith("BEGIN TRANSACTION;")
    assert script.rstrip().endswith("COMMIT;\n\nGO")
    for deprecated in ("DATETIMEOFFSET", " TEXT", "NTEXT", "IMAGE"):
        assert deprecated not in script
    for wanted in ("DATETIME2(7)", "VARBINARY(max)", "NVARCHAR(max)", "VARBINARY(32)"):
        assert wanted in script
    filtered = [text for text in statements if text.startswith("CREATE UNIQUE INDEX") and " WHERE " in text]
    assert len(filtered) == 4, filtered
    started = time.perf_counter()
    problems = parse_problems(statements, "tsql")
    parsed_s = time.perf_counter() - started
    print(f"\n{len(statements)} T-SQL statements of the migration chain parsed in {parsed_s:.1f} s")
    assert not problems, describe(problems)


def test_the_migration_chain_for_postgresql_parses_too() -> None:
    """The control: the same chain for PostgreSQL parses with sqlfluff's PostgreSQL grammar."""
    script = _migration_sql(POSTGRESQL_URL)

    statements = split_postgresql_script(script)
    assert script.count("-- Running upgrade") == _revision_count()
    assert not parse_problems(statements, "postgres")


def test_postgresql_only_sql_fails_the_check() -> None:
    table = sa.Table("probe", sa.MetaData(), sa.Column("id", sa.String(20), primary_key=True))
    recorder = StatementRecorder()
    recorder.statements[1] = (postgresql.insert(table).on_conflict_do_nothing(), {"id": "x"})
    recorder.statements[2] = (sa.text("SELECT id FROM probe LIMIT 5"), {})
    recorder.statements[3] = (sa.select(table).with_for_update(skip_locked=True), {})
    recorder.statements[4] = (locked(sa.select(table), table, skip_locked=True), {})

    texts, problems = recorder.t_sql()
    problems += parse_problems(texts, "tsql")

    reasons = describe(problems)
    assert "does not compile for SQL Server" in reasons
    assert "ON CONFLICT" in reasons
    assert "LIMIT 5" in reasons
    assert "locks rows on PostgreSQL (FOR UPDATE) but not on SQL Server" in reasons
    assert len(problems) == 3, reasons
    assert "WITH (UPDLOCK, ROWLOCK, READPAST)" in as_t_sql(locked(sa.select(table), table, skip_locked=True))


def test_the_outbox_claim_skips_locked_rows_on_sql_server() -> None:
    candidates = sa.select(outbox_events.c.id).order_by(outbox_events.c.created_at).limit(100)
    claim = outbox_events.update().where(
        outbox_events.c.id.in_(locked(candidates, outbox_events, skip_locked=True).scalar_subquery())
    )

    sql = as_t_sql(claim.values(claimed_until=None))

    assert "SELECT TOP 100 outbox_events.id \nFROM outbox_events WITH (UPDLOCK, ROWLOCK, READPAST)" in sql
    assert not unlocked_on_sql_server(claim)


@pytest.mark.postgres
@pytest.mark.after_all_others
def test_every_statement_the_backbone_ran_on_postgresql_is_t_sql(
    postgres_url: str, statements_run_on_postgresql: StatementRecorder
) -> None:
    """Every distinct statement the backbone's code ran on PostgreSQL in this session (recorded by
    a `before_execute` listener, tests/conftest.py), compiled for SQL Server and parsed as T-SQL."""
    recorder = statements_run_on_postgresql
    assert recorder.statements, (
        "no statement of the backbone ran on PostgreSQL in this session: run this test together "
        "with the PostgreSQL integration tests (pytest tests/integration)"
    )
    started = time.perf_counter()
    texts, problems = recorder.t_sql()
    compiled_s = time.perf_counter() - started
    problems += parse_problems(texts, "tsql")
    print(
        f"\n{recorder.postgresql_executions} executions on PostgreSQL, {len(recorder.statements)} distinct "
        f"statements of the backbone, {len(texts)} distinct T-SQL texts; compiled in {compiled_s:.1f} s, "
        f"parsed in {time.perf_counter() - started - compiled_s:.1f} s"
    )
    assert not problems, describe(problems)
