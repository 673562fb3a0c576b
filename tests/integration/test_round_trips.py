"""On PostgreSQL a unit of work costs no more round trips than it needs (docs/decisions.md, "Hot paths").

Reads and one-statement writes run without BEGIN and COMMIT, a streaming read keeps its
transaction, and a pooled connection the server has closed is replaced at checkout without a ping.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.pq import TransactionStatus

from backbone.platform.db import Database

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url, pool_size=1, max_overflow=0)
    yield database
    database.dispose()


def _status(connection: sa.Connection) -> TransactionStatus:
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver.info.transaction_status


def test_reads_and_single_statements_run_outside_a_transaction(db: Database) -> None:
    with db.read() as connection:
        connection.execute(sa.text("SELECT 1"))
        assert _status(connection) is TransactionStatus.IDLE
    with db.statement() as connection:
        connection.execute(sa.text("SELECT 1"))
        assert _status(connection) is TransactionStatus.IDLE


def test_writing_and_streaming_units_run_in_a_transaction(db: Database) -> None:
    with db.transaction() as connection:
        connection.execute(sa.text("SELECT 1"))
        assert _status(connection) is TransactionStatus.INTRANS
    with db.read(streaming=True) as connection:
        rows = connection.execute(sa.text("SELECT generate_series(1, 5)").execution_options(yield_per=2))
        assert [row[0] for row in rows] == [1, 2, 3, 4, 5]


def test_a_unit_joining_a_transaction_stays_in_it(db: Database) -> None:
    with db.transaction() as outer, db.read() as inner:
        inner.execute(sa.text("SELECT 1"))
        assert inner is outer
        assert _status(inner) is TransactionStatus.INTRANS


def test_a_connection_the_server_closed_is_replaced_at_checkout(db: Database, postgres_url: str) -> None:
    with db.read() as connection:
        first = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        socket = connection.connection.driver_connection.pgconn.socket  # type: ignore[union-attr]
    admin_url = sa.make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    # The server says why and closes the socket; wait until the idle connection could tell.
    deadline = time.monotonic() + 10
    while not select.select([socket], [], [], 0.1)[0]:
        assert time.monotonic() < deadline, "the server did not close the connection"
    with db.read() as connection:
        second = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    assert second != first
