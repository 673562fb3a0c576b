"""`testbed seed` for real: bulk and API mode on SQLite and PostgreSQL, verify, identity check.

The light pool goes through the API in about four minutes here, too slow for CI; CI seeds the
test pool through the API on both databases and the light pool in bulk on PostgreSQL, and
`make bench-seed SEED_ARGS="--pool light --mode api"` times the light pool through the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loadtests.client import ConsumerApiClient, modification
from loadtests.identities import load_identities
from loadtests.seeding import bulk
from loadtests.seeding.bulk import COLUMNS
from loadtests.seeding.bulk_run import seed_bulk
from loadtests.seeding.database import normalise_url, prepare
from loadtests.seeding.planner import plan
from scenarios.pool_schema import load_pool_config
from testbed.cli import main
from tests.helpers.server import running_backbone
from tests.helpers.services import postgres_reachable, throwaway_postgres_database, unavailable

pytestmark = pytest.mark.slow
FAST = ["--password-hash-iterations", "1000"]
SIGNING_KEY = "a-signing-key-for-the-seeding-tests!"


def seed(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(["seed", *args])
    output = capsys.readouterr()
    return status, output.out + output.err


@pytest.fixture
def postgres() -> Iterator[str]:
    if not postgres_reachable():
        unavailable("no PostgreSQL server answers on BACKBONE_TEST_POSTGRES_URL")
    with throwaway_postgres_database() as url:
        yield url


def test_bulk_test_pool_on_sqlite_is_accepted_by_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = f"sqlite:///{tmp_path / 'backbone.sqlite3'}"
    export = tmp_path / "test.json"
    status, out = seed(capsys, "--pool", "test", "--mode", "bulk", "--database-url", database,
                       "--export", str(export), "--verify", *FAST)  # fmt: skip
    assert status == 0, out
    assert "verify: the database matches the plan" in out
    assert "bulk: datawallet_modifications" in out
    assert export.with_suffix(".csv").read_text().startswith("Address,DeviceId,Username,Password,Alias")
    assert "test" not in json.loads(export.read_text()).get("client_secret", "")

    with running_backbone({"BACKBONE_VAR_DIR": str(tmp_path)}, log_path=tmp_path / "server.log") as url:
        status, out = seed(capsys, "--pool", "test", "--check-identities", "50", "--base-url", url,
                           "--export", str(export))  # fmt: skip
        assert status == 0, out
        assert "check: 32 identities used, 0 problems" in out

        # The sync counters continue where the data ends, and seeded relationships carry messages.
        api = ConsumerApiClient(url)
        seeded = load_identities(export)
        heavy = seeded.of_pool("a3")[0]
        session = heavy.session(api, device=2)
        last = heavy.expected["datawallet_modifications"] - 1
        pushed = session.push_modifications(last, [modification("after-seeding")])
        assert pushed["newIndex"] == last + 1
        relationship = heavy.relationships[0]
        session.send_message([relationship.peer], b"after seeding")
        another = session.add_device("another-device-password!")
        assert another.identity()["address"] == heavy.address

    # The push and the message make the database differ from the plan, and verify says so.
    with sa.create_engine(database).begin() as connection:
        connection.exec_driver_sql("DELETE FROM relationship_audit_log")
        connection.exec_driver_sql(f"DELETE FROM relationships WHERE id = '{relationship.id}'")
    status, out = seed(capsys, "--pool", "test", "--verify", "--database-url", database)
    assert status == 1
    assert "verify: relationships: 69 in the database, the plan has 70" in out
    assert f"{heavy.address} (a3) has {last + 2}, wants {last + 1}" in out
    assert "verify: messages: 261 in the database, the plan has 260" in out


def _content(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every seeded row without timestamps, password hashes (random salts) and the database's tier id."""
    engine = sa.create_engine(url)
    content = {}
    with engine.connect() as connection:
        for table, columns in COLUMNS.items():
            kept = [column for column in columns if column not in ("password_hash", "tier_id")]
            rows = connection.exec_driver_sql(
                f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in kept)} FROM {table}"
            ).fetchall()
            content[table] = sorted(
                tuple(value for value in row if not isinstance(value, datetime | str) or not _is_time(value))
                for row in rows
            )
    engine.dispose()
    return content


def _is_time(value: object) -> bool:
    # SQLite hands timestamps back as text.
    return isinstance(value, datetime) or (isinstance(value, str) and len(value) >= 19 and value[4] == "-")


def test_bulk_is_deterministic_and_resumes_after_an_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    the_plan = plan(load_pool_config("test"), seed=7)
    whole = f"sqlite:///{tmp_path / 'whole.sqlite3'}"
    seed_bulk(the_plan, whole, client_id="test", client_secret="test", export_path=tmp_path / "a.json",
              password_hash_iterations=1000, progress=lambda line: None)  # fmt: skip

    cut = f"sqlite:///{tmp_path / 'cut.sqlite3'}"

    def interrupted(self: Any, group: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(bulk.BulkWriter, "_challenge_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        seed_bulk(the_plan, cut, client_id="test", client_secret="test", export_path=tmp_path / "b.json",
                  password_hash_iterations=1000, progress=lambda line: None)  # fmt: skip
    monkeypatch.undo()
    engine = sa.create_engine(cut)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM challenges").scalar_one() == 0
        assert connection.exec_driver_sql("SELECT count(*) FROM messages").scalar_one() == 260
    engine.dispose()
    resumed = seed_bulk(the_plan, cut, client_id="test", client_secret="test",
                        export_path=tmp_path / "b.json", password_hash_iterations=1000,
                        progress=lambda line: None)  # fmt: skip
    assert resumed.resumed
    assert resumed.report.steps_skipped == 4
    assert resumed.report.tables["challenges"].rows == 110 + 30  # the pool's and the device registrations'
    assert "messages" not in resumed.report.tables
    assert _content(whole) == _content(cut)
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()


def test_bulk_refuses_a_database_with_other_identities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    assert seed(capsys, "--pool", "test", "--mode", "bulk", "--database-url", database, *FAST)[0] == 0
    status, out = seed(
        capsys, "--pool", "test", "--seed", "2", "--mode", "bulk", "--database-url", database, *FAST
    )
    assert status == 2
    assert "already holds another data set (test:1:" in out


def test_api_mode_test_pool_on_sqlite_passes_verify_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environment = {"BACKBONE_VAR_DIR": str(tmp_path), "BACKBONE_PASSWORD_HASH_ITERATIONS": "1000"}
    database = f"sqlite:///{tmp_path / 'backbone.sqlite3'}"
    export = tmp_path / "api.json"
    with running_backbone(environment, log_path=tmp_path / "server.log") as url:
        args = ["--pool", "test", "--mode", "api", "--base-url", url, "--database-url", database,
                "--export", str(export), "--threads", "4"]  # fmt: skip
        status, out = seed(capsys, *args, "--verify", "--check-identities", "50")
        assert status == 0, out
        assert "verify: the database matches the plan" in out
        assert "check: 32 identities used, 0 problems" in out
        # Everything is in the journal: a second run has nothing left to do.
        status, out = seed(capsys, *args)
        assert status == 0, out
        assert "api: resuming from" in out
        assert "api: messages: 0 done" in out
    assert len(load_identities(export)) == 32


@pytest.mark.postgres
def test_light_pool_bulk_on_postgresql(
    postgres: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "light.json"
    status, out = seed(capsys, "--pool", "light", "--mode", "bulk", "--database-url", postgres,
                       "--export", str(export), "--verify", *FAST)  # fmt: skip
    assert status == 0, out
    assert "verify: the database matches the plan" in out
    # Vacuumed as well as analysed: no table is left with enough rows inserted since its last
    # vacuum for autovacuum to take it up during a load (PostgreSQL 13+ vacuums after inserts).
    with sa.create_engine(normalise_url(postgres)).connect() as connection:
        stats = connection.execute(
            sa.text(
                "SELECT s.relname, n_live_tup, n_ins_since_vacuum, last_vacuum, last_analyze,"
                " current_setting('autovacuum_vacuum_insert_threshold')::float"
                " + current_setting('autovacuum_vacuum_insert_scale_factor')::float"
                " * greatest(c.reltuples, 0) AS insert_threshold"
                " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
                " WHERE s.relname = ANY(:names)"
            ),
            {"names": list(COLUMNS)},
        ).all()
    filled = [row for row in stats if row.n_live_tup > 0]
    assert {row.relname for row in filled} >= {"identities", "devices", "relationships", "messages"}
    # Without the VACUUM the biggest tables are over their threshold (fails with ANALYZE alone).
    assert max(row.n_live_tup for row in filled) > 2_000
    for row in filled:
        assert row.n_ins_since_vacuum <= row.insert_threshold, row
        assert row.last_vacuum is not None, row
        assert row.last_analyze is not None, row
    environment = {
        "BACKBONE_DATABASE_URL": postgres,
        "BACKBONE_JWT_SIGNING_KEY": SIGNING_KEY,
        "BACKBONE_VAR_DIR": str(tmp_path / "var"),
    }
    with running_backbone(environment, log_path=tmp_path / "server.log") as url:
        status, out = seed(capsys, "--pool", "light", "--check-identities", "50", "--base-url", url,
                           "--export", str(export))  # fmt: skip
    assert status == 0, out
    # 50 of each pool, or the whole pool where it is smaller (e 10, c1 2, c2 and c3 15).
    assert "check: 192 identities used, 0 problems" in out


@pytest.mark.postgres
def test_api_mode_on_postgresql(postgres: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prepare(postgres, client_id="test", client_secret="test")[0].dispose()
    environment = {
        "BACKBONE_DATABASE_URL": postgres,
        "BACKBONE_JWT_SIGNING_KEY": SIGNING_KEY,
        "BACKBONE_VAR_DIR": str(tmp_path / "var"),
        "BACKBONE_PASSWORD_HASH_ITERATIONS": "1000",
    }
    with running_backbone(environment, log_path=tmp_path / "server.log") as url:
        status, out = seed(capsys, "--pool", "test", "--mode", "api", "--base-url", url,
                           "--database-url", normalise_url(postgres), "--export", str(tmp_path / "t.json"),
                           "--verify", "--check-identities", "50")  # fmt: skip
    assert status == 0, out
    assert "verify: the database matches the plan" in out
    assert "check: 32 identities used, 0 problems" in out
