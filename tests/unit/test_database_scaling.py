"""Scaling the database out: the profile's pooler and replica options (their processes, budgets and
the problems refused all at once), the backbone's read-replica and prepared-statement settings, and
the PgBouncer configuration `up` writes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from backbone.settings import Settings, SettingsError
from scenarios.landscape import ProfileError, connection_budget_problem, load_profile, parse_profile
from testbed.landscape.commands import add_landscape_commands
from testbed.landscape.cpu import CpuPlanError, budget_table, plan_cpus
from testbed.landscape.launcher import Launcher
from testbed.landscape.pgbouncer import PgBouncerConfig, PooledDatabase
from testbed.landscape.state import LandscapeError

SOURCE = Path("scaled.toml")
SCALED = """
name = "scaled"
[gateway]
instances = 1
cpu_limit = 0.05
[nodes]
count = 2
workers = 2
cpu_limit = 0.15
[database]
kind = "postgresql"
server = "private"
cpu_limit = 0.2
pooler = "pgbouncer"
pooler_pool_size = 8
pooler_cpu_limit = 0.05
replicas = 2
replica_cpu_limit = 0.1
[admin_api]
cpu_limit = 0.05
"""
PRODUCTION = {"BACKBONE_JWT_SIGNING_KEY": "k" * 32}


def problems_of(text: str) -> list[str]:
    with pytest.raises(ProfileError) as raised:
        parse_profile(text, source=SOURCE)
    return raised.value.problems


def test_the_pooler_and_each_replica_are_processes_of_their_own_tiers_with_their_budgets() -> None:
    profile = parse_profile(SCALED, source=SOURCE)
    assert (profile.database.pooler, profile.database.pooler_pool_size, profile.database.replicas) == (
        "pgbouncer",
        8,
        2,
    )
    processes = {process.role: process for process in profile.processes()}
    assert [(p.tier, p.option, p.cpu_limit) for p in (processes["replica1"], processes["replica2"])] == [
        ("replica", "database.replica_cpu_limit", 0.1)
    ] * 2
    pooler = processes["pgbouncer"]
    assert (pooler.tier, pooler.option, pooler.cpu_limit) == ("pooler", "database.pooler_cpu_limit", 0.05)


def test_their_cores_count_in_the_plan_and_the_budget_table() -> None:
    plan = plan_cpus(parse_profile(SCALED, source=SOURCE), available={0, 1}, find=lambda: None)
    # 0.2 + 2 x 0.1 replicas + 0.05 PgBouncer + 2 x 0.15 nodes + 0.05 gateway + 0.05 Admin API
    assert plan.budget_total_cores == pytest.approx(0.85)
    lines = budget_table(plan)
    assert any(
        line.split()[:3] == ["replica", "replica1,", "replica2"]
        and "0.1 each, 0.2 in all (database.replica_cpu_limit)" in line
        for line in lines
    )
    assert any(
        line.startswith("pooler    pgbouncer") and "0.05 (database.pooler_cpu_limit)" in line
        for line in lines
    )


def test_replicas_beyond_the_cores_are_named_with_their_count() -> None:
    with pytest.raises(CpuPlanError) as raised:
        plan_cpus(
            parse_profile(
                SCALED.replace("replica_cpu_limit = 0.1", "replica_cpu_limit = 0.5"), source=SOURCE
            ),
            available={0, 1},
            find=lambda: None,
        )
    assert "database.replicas 2 x database.replica_cpu_limit 0.5" in raised.value.problems[0]


def test_bad_scaling_options_are_refused_all_at_once_each_naming_its_key() -> None:
    problems = problems_of(
        """
name = "bad"
[database]
kind = "postgresql"
url = "postgresql://postgres@127.0.0.1:5432/postgres"
replicas = 1
replica_cpu_limit = 0.1
pooler_pool_size = 0
pooler_cpu_limit = 0.1
"""
    )
    assert problems == [
        f"{SOURCE}: database.pooler_pool_size: must be an integer in 1..10000, got 0",
        f'{SOURCE}: database.replicas: is only for server = "private": up streams replicas from a server it '
        "starts, and an external server's replicas are its operator's",
        f'{SOURCE}: database.replica_cpu_limit: is only for server = "private"; an external server is '
        "configured (and budgeted) by its operator",
        f'{SOURCE}: database.pooler_pool_size: is only for pooler = "pgbouncer"',
        f'{SOURCE}: database.pooler_cpu_limit: is only for pooler = "pgbouncer"',
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("replicas = 2", "replicas = 0"),
            "database.replica_cpu_limit: is set, but there are no replicas (database.replicas = 0)",
        ),
        (
            ("replicas = 2", "replicas = 1\nsynchronous_commit = false"),
            "database.synchronous_commit: must stay true with replicas: every commit waits until the "
            "replicas have applied it (remote_apply), so that a read there sees every acknowledged write",
        ),
        (("replicas = 2", "replicas = 9"), "database.replicas: must be an integer in 0..8, got 9"),
        (
            ('pooler = "pgbouncer"', 'pooler = "pgpool"'),
            "database.pooler: must be one of none, pgbouncer, got 'pgpool'",
        ),
        (
            ("pooler_pool_size = 8", "pooler_pool_size = 95"),
            "PgBouncer may open 95 connections to the server (database.pooler_pool_size), but the server "
            "allows 90 (max_connections 100 - database.connection_reserve 10); lower "
            "database.pooler_pool_size to 90 or less, or raise database.max_connections",
        ),
    ],
)
def test_scaling_options_that_do_not_fit_together_are_refused(change: tuple[str, str], expected: str) -> None:
    assert any(expected in problem for problem in problems_of(SCALED.replace(*change)))


def test_sqlite_has_no_pooler_and_no_replicas() -> None:
    problems = problems_of('name = "x"\n[database]\npooler = "pgbouncer"\nreplicas = 1\n')
    assert problems == [
        f'{SOURCE}: database.pooler: is only for kind = "postgresql" (SQLite runs inside the node)',
        f'{SOURCE}: database.replicas: is only for kind = "postgresql" (SQLite runs inside the node)',
    ]


def test_the_settings_the_pooler_and_the_replicas_derive_are_not_set_under_backbone() -> None:
    problems = problems_of(
        'name = "x"\n[backbone]\nDATABASE_READ_URLS = "x"\nDB_PREPARED_STATEMENTS = false\n'
    )
    assert problems == [
        f"{SOURCE}: backbone.DATABASE_READ_URLS: is set by the profile's database.replicas, not here",
        f"{SOURCE}: backbone.DB_PREPARED_STATEMENTS: is set by the profile's database.pooler, not here",
    ]


def test_with_a_pooler_the_server_sees_its_pool_not_the_clients_pools() -> None:
    many = SCALED.replace("count = 2\nworkers = 2", "count = 8\nworkers = 4").replace("cpu_limit = 0.15", "")
    profile = parse_profile(many, source=SOURCE)
    # 8 x 4 node workers + 1 Admin API worker, each up to 5 + 10 connections: to PgBouncer, not the server.
    assert profile.database_connections_needed() == 495
    assert profile.server_connections_needed() == 8
    assert connection_budget_problem(profile, 100) is None
    without = many.replace('pooler = "pgbouncer"\npooler_pool_size = 8\npooler_cpu_limit = 0.05\n', "")
    assert "the landscape may open 495 database connections" in problems_of(without)[0]


def test_the_shipped_scaling_profiles_are_capacity_with_a_pooler_and_with_a_replica_at_their_cost() -> None:
    capacity, pooled, replicated = (
        load_profile(name) for name in ("capacity", "capacity-pgbouncer", "capacity-replica")
    )
    plans = [
        plan_cpus(profile, available={0, 1}, find=lambda: None) for profile in (capacity, pooled, replicated)
    ]
    assert [plan.budget_total_cores for plan in plans] == pytest.approx([0.95, 1.0, 0.95])
    assert (pooled.database.pooler, pooled.database.pooler_pool_size) == ("pgbouncer", 5)
    database = replicated.database
    assert (database.replicas, database.cpu_limit, database.replica_cpu_limit) == (1, 0.2, 0.2)
    # Everything else is the capacity landscape's.
    for profile in (pooled, replicated):
        assert profile.nodes == capacity.nodes
        assert profile.gateway == capacity.gateway
        assert profile.admin_api == capacity.admin_api


def test_the_profile_command_lists_every_problem_of_a_bad_profile_in_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_landscape_commands(parser.add_subparsers())
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\n[database]\nkind = "postgresql"\nurl = "postgresql://db/x"\n'
        'pooler = "pgbouncer"\npooler_pool_size = 0\nreplicas = 1\n'
    )
    args = parser.parse_args(["profile", str(bad)])
    assert args.run(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{bad}: database.pooler_pool_size: must be an integer in 1..10000, got 0",
        f'{bad}: database.replicas: is only for server = "private": up streams replicas from a server it '
        "starts, and an external server's replicas are its operator's",
    ]
    args = parser.parse_args(["profile", "capacity-pgbouncer"])
    assert args.run(args) == 0
    assert "up to 50 connections to PgBouncer, which opens 5 per database" in capsys.readouterr().out


def test_a_pooler_without_pgbouncer_installed_is_refused_before_anything_starts(tmp_path: Path) -> None:
    profile = parse_profile(SCALED, source=SOURCE)
    plan = plan_cpus(profile, available={0, 1}, find=lambda: None)
    launcher = Launcher(
        profile,
        plan,
        state_path=tmp_path / "state.json",
        runs_dir=tmp_path,
        postgres_bin=lambda: tmp_path,
        pgbouncer=lambda: None,
    )
    with pytest.raises(LandscapeError) as raised:
        launcher.up()
    assert str(raised.value) == (
        f"the profile scaled needs pg_basebackup in {tmp_path} for database.replicas (apt-get install "
        'postgresql), pgbouncer for database.pooler = "pgbouncer" (apt-get install pgbouncer)'
    )
    assert not (tmp_path / "state.json").exists()


def test_read_urls_need_a_postgresql_primary_and_are_redacted() -> None:
    settings = Settings.from_env(
        {
            **PRODUCTION,
            "BACKBONE_DATABASE_URL": "postgresql://u:secret@primary/backbone",
            "BACKBONE_DATABASE_READ_URLS": (
                " postgresql://u:secret@replica1/backbone, postgres://u@replica2/backbone ,"
            ),
            "BACKBONE_DB_PREPARED_STATEMENTS": "false",
        }
    )
    assert settings.database_read_urls == (
        "postgresql+psycopg://u:secret@replica1/backbone",
        "postgresql+psycopg://u@replica2/backbone",
    )
    assert settings.db_prepared_statements is False
    shown = repr(settings) + str(settings.describe())
    assert "secret" not in shown
    assert settings.describe()["database_read"] == (
        "postgresql+psycopg://u:***@replica1/backbone, postgresql+psycopg://u@replica2/backbone"
    )
    assert Settings.from_env({}).database_read_urls == ()
    assert Settings.from_env({}).db_prepared_statements is True


def test_read_urls_beside_sqlite_or_not_postgresql_are_refused_with_the_other_problems() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "BACKBONE_DATABASE_READ_URLS": "mysql://u:secret@replica/x",
                "BACKBONE_DB_PREPARED_STATEMENTS": "maybe",
            }
        )
    assert raised.value.problems == [
        "BACKBONE_DATABASE_READ_URLS needs a PostgreSQL primary in BACKBONE_DATABASE_URL "
        "(SQLite has no replicas)",
        "BACKBONE_DATABASE_READ_URLS: 'mysql://u:***@replica/x' is not a postgresql:// URL of a replica",
        "BACKBONE_DB_PREPARED_STATEMENTS: 'maybe' is not true or false",
    ]


def test_pgbouncer_pools_every_database_in_transaction_mode_with_the_profiles_pool() -> None:
    primary = PooledDatabase("landscape_1", "db.example", 5433, "landscape_1", "load", "it's secret")
    config = PgBouncerConfig(
        port=6500,
        user="load",
        pool_size=7,
        max_client_connections=120,
        databases=(primary, PooledDatabase("landscape_1_replica1", "127.0.0.1", 5434, "landscape_1", "load")),
    )
    text = config.ini(Path("/tmp/pgb"))
    assert (
        "landscape_1 = host='db.example' port='5433' dbname='landscape_1' user='load' password='it''s secret'"
        in text.splitlines()
    )
    assert (
        "landscape_1_replica1 = host='127.0.0.1' port='5434' dbname='landscape_1' user='load'"
        in text.splitlines()
    )
    for line in (
        "listen_addr = 127.0.0.1",
        "listen_port = 6500",
        "pool_mode = transaction",
        "default_pool_size = 7",
        "max_client_conn = 120",
        "auth_type = trust",
        "stats_users = load",
        "unix_socket_dir =",
    ):
        assert line in text.splitlines()
    assert "it's secret" not in repr(config)
    assert config.url("landscape_1_replica1") == "postgresql://load@127.0.0.1:6500/landscape_1_replica1"
