"""Landscape profiles: the shipped ones are valid, bad ones are refused with every problem at once;
the CPU plan keeps the load generator apart and flags oversubscribed nodes; the connection budget
names the option to change; the generated gateway configuration routes only the public API."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scenarios.landscape import (
    PROFILES_DIR,
    ProfileError,
    connection_budget_problem,
    load_profile,
    parse_profile,
)
from testbed.cli import main as run_testbed
from testbed.landscape.commands import add_landscape_commands
from testbed.landscape.cpu import CpuPlanError, plan_cpus
from testbed.landscape.gateway import GatewayPorts, haproxy_config
from tests.helpers.services import unavailable

SOURCE = Path("my-landscape.toml")


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_profile(text, source=SOURCE)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ProfileError) as raised:
        parse(text)
    return raised.value.problems


@pytest.mark.parametrize("name", ["dev", "stage", "prod"])
def test_the_shipped_profiles_are_valid(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert set(profile.allowed_target_hosts) <= {"localhost", "127.0.0.1"}


def test_the_shipped_profiles_say_what_the_landscapes_are() -> None:
    dev, stage, prod = (load_profile(name) for name in ("dev", "stage", "prod"))
    assert (dev.environment, dev.database.kind, dev.bus.kind, dev.blob_store.kind) == (
        "development",
        "sqlite",
        "inprocess",
        "local",
    )
    assert (dev.nodes.count, dev.nodes.workers, dev.gateway.instances, dev.worker.replicas) == (1, 2, 0, 0)
    assert (stage.database.kind, stage.bus.kind, stage.blob_store.kind) == ("postgresql", "rabbitmq", "s3")
    assert (stage.nodes.count, stage.gateway.instances, stage.worker.replicas) == (2, 1, 1)
    assert prod.nodes.count > stage.nodes.count
    assert prod.nodes.workers > stage.nodes.workers
    assert prod.database.pool_size > stage.database.pool_size
    assert prod.gateway.instances > stage.gateway.instances
    # Each shipped profile fits a PostgreSQL server with the default max_connections.
    for profile in (stage, prod):
        assert connection_budget_problem(profile, 100) is None


def test_a_profile_file_written_by_an_operator_is_read_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n[nodes]\nworkers = 3\n')
    profile = load_profile(str(path))
    assert (profile.name, profile.nodes.workers, profile.source) == ("mine", 3, path)


def test_an_unknown_profile_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ProfileError) as raised:
        load_profile("nonexistent")
    assert "dev" in raised.value.problems[0]
    assert "stage" in raised.value.problems[0]


def test_every_problem_is_reported_at_once_with_file_and_key() -> None:
    problems = problems_of(
        """
        name = "broken"
        environment = "testing"
        colour = "blue"
        allowed_target_hosts = ["localhost", "http://example.org"]
        [gateway]
        instances = -1
        max_request_body_bytes = "big"
        [nodes]
        count = 0
        workers = 1.5
        cpu_limit = -2
        [database]
        kind = "oracle"
        pool_size = 0
        [bus]
        kind = "kafka"
        [backbone]
        LOG_LEVEL = "LOUD"
        DATABASE_URL = "sqlite:///x"
        lower = "x"
        """
    )
    text = "\n".join(problems)
    for expected in (
        "environment: must be one of development, production, got 'testing'",
        "colour: is not a known option",
        "'http://example.org' is not a host name or IP address",
        "gateway.instances: must be an integer in 0..16, got -1",
        "gateway.max_request_body_bytes: must be an integer",
        "nodes.count: must be an integer in 1..64, got 0",
        "nodes.workers: must be an integer in 1..256, got 1.5",
        "nodes.cpu_limit: must be a number >= 0.01, got -2",
        "database.kind: must be one of sqlite, postgresql, sqlserver, got 'oracle'",
        "database.pool_size: must be an integer in 1..1000, got 0",
        "bus.kind: must be one of inprocess, rabbitmq, azureservicebus, got 'kafka'",
        "BACKBONE_LOG_LEVEL: 'LOUD' is not one of",
        "backbone.DATABASE_URL: is set by the profile's database.url",
        "backbone.lower: setting names are upper case",
    ):
        assert expected in text, f"missing {expected!r} in:\n{text}"
    assert all(problem.startswith(f"{SOURCE}: ") for problem in problems)


def test_a_missing_name_and_invalid_toml_are_refused() -> None:
    assert problems_of("[nodes]\ncount = 1\n") == [f"{SOURCE}: name: is required"]
    assert "not valid TOML" in problems_of("name = \n")[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[nodes]\ncount = 2\n[gateway]\ninstances = 1", "one SQLite file serves one node"),
        (
            '[database]\nkind = "postgresql"',
            'database.url: with kind = "postgresql" must be the server\'s URL',
        ),
        (
            '[bus]\nkind = "rabbitmq"\nurl = "amqp://h/"\n[worker]\nreplicas = 0',
            "worker.replicas: must be >= 1",
        ),
        ("[worker]\nreplicas = 1", 'worker.replicas: must be 0 with bus.kind = "inprocess"'),
        (
            '[database]\nkind = "postgresql"\nurl = "postgresql://h/p"\n'
            "[nodes]\ncount = 2\n[gateway]\ninstances = 0",
            "2 nodes need a gateway",
        ),
        ("[cpu]\nlandscape_cores = [0, 1]\nload_generator_cores = [1]", "shares core(s) 1"),
        ('[bus]\nkind = "rabbitmq"', 'bus.url: with kind = "rabbitmq" must be the broker\'s'),
        ("allowed_target_hosts = []", "allowed_target_hosts: must be a non-empty list"),
    ],
)
def test_options_that_do_not_fit_together_are_refused(text: str, expected: str) -> None:
    problems = problems_of(f'name = "x"\n{text}\n')
    assert any(expected in problem for problem in problems), problems


def test_a_rabbitmq_profile_gets_one_worker_unless_it_says_otherwise() -> None:
    profile = parse('name = "x"\n[bus]\nkind = "rabbitmq"\nurl = "amqp://guest:guest@127.0.0.1:5672/"\n')
    assert profile.worker.replicas == 1


def test_loopback_hosts_are_accepted_in_every_spelling() -> None:
    profile = parse('name = "x"\nallowed_target_hosts = ["localhost", "127.0.0.2", "::1"]\n')
    assert profile.allowed_target_hosts == ("localhost", "127.0.0.2", "::1")


def test_secrets_of_the_profile_stay_out_of_its_representation() -> None:
    profile = parse(
        'name = "x"\n[database]\nkind = "postgresql"\nurl = "postgresql://u:hunter2@h/p"\n'
        '[bus]\nkind = "rabbitmq"\nurl = "amqp://u:hunter3@h/"\n'
    )
    assert "hunter2" not in repr(profile)
    assert "hunter3" not in repr(profile)


def test_the_connection_budget_counts_every_pool_and_names_the_options() -> None:
    profile = parse(
        'name = "big"\n[database]\nkind = "postgresql"\nurl = "postgresql://h/p"\npool_size = 10\n'
        "max_overflow = 5\nconnection_reserve = 10\n[nodes]\ncount = 3\nworkers = 4\n"
        "[gateway]\ninstances = 1\n"
    )
    # (3 x 4 node workers + 1 Admin API worker) x (10 + 5)
    assert profile.database_connections_needed() == 195
    assert connection_budget_problem(profile, 205) is None
    problem = connection_budget_problem(profile, 204)
    assert problem is not None
    for option in (
        "database.pool_size",
        "database.max_overflow",
        "nodes.workers",
        "nodes.count",
        "max_connections",
    ):
        assert option in problem
    assert "195" in problem
    assert "194" in problem  # what the server allows: 204 - 10 reserved


def test_the_load_generator_gets_cores_of_its_own() -> None:
    profile = parse('name = "x"\n')
    plan = plan_cpus(profile, available={0, 1, 2, 3})
    assert plan.load_generator_cores == (3,)
    assert plan.landscape_cores == (0, 1, 2)
    assert not set(plan.load_generator_cores) & set(plan.landscape_cores)
    assert all(set(process.cores) <= {0, 1, 2} for process in plan.processes)


def test_without_a_cgroup_hierarchy_budgets_are_whole_cores_of_the_landscape_share_round_robin() -> None:
    profile = parse(
        'name = "x"\n[database]\nkind = "postgresql"\nurl = "postgresql://h/p"\n'
        "[nodes]\ncount = 3\nworkers = 1\ncpu_limit = 1.2\n[cpu]\nlandscape_cores = [0, 1, 2, 3]\n"
    )
    plan = plan_cpus(profile, available={0, 1, 2, 3, 4, 5}, find=lambda: None)
    assert [plan.cores_of(f"node{index}") for index in (1, 2, 3)] == [(0, 1), (2, 3), (0, 1)]
    assert plan.load_generator_cores == (4, 5)
    assert plan.mechanism == "affinity"
    assert plan.process("node1").limit_cores == 2.0  # type: ignore[union-attr]
    assert plan.cores_of("admin-api") == (0, 1, 2, 3)  # no budget: the landscape's cores


def test_more_node_workers_than_cores_without_a_budget_is_flagged() -> None:
    crowded = parse('name = "x"\n[nodes]\nworkers = 4\n')
    plan = plan_cpus(crowded, available={0, 1, 2})
    assert any("4 workers on 2 core(s)" in warning for warning in plan.warnings)
    roomy = parse('name = "x"\n[nodes]\nworkers = 2\n')
    assert plan_cpus(roomy, available={0, 1, 2}).warnings == ()


def test_cores_the_machine_does_not_give_are_refused() -> None:
    profile = parse('name = "x"\n[cpu]\nlandscape_cores = [7]\n')
    with pytest.raises(CpuPlanError, match="core\\(s\\) 7"):
        plan_cpus(profile, available={0, 1})


def gateway_config() -> str:
    profile = load_profile("prod")
    return haproxy_config(profile.gateway, GatewayPorts(20001, 20002), [20011, 20012, 20013], "gateway1")


def test_the_gateway_balances_every_node_with_health_checks_and_retries() -> None:
    config = gateway_config()
    for port in (20011, 20012, 20013):
        assert f"127.0.0.1:{port} check" in config
    assert "http-check send meth GET uri /health" in config
    assert "retry-on conn-failure" in config
    assert "http-request disable-l7-retry unless METH_GET || METH_HEAD" in config
    assert "gt 20971520" in config
    assert "bind 127.0.0.1:20001" in config


def test_haproxy_accepts_the_generated_configuration(tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        unavailable("haproxy is not installed (apt-get install haproxy)")
    path = tmp_path / "gateway.cfg"
    path.write_text(gateway_config())
    result = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_commands_reject_a_bad_profile_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_landscape_commands(parser.add_subparsers())
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[nodes]\ncount = 0\n')
    args = parser.parse_args(["up", "--profile", str(bad), "--state", str(tmp_path / "state.json")])
    assert args.run(args) == 2
    error = capsys.readouterr().err
    assert "nodes.count: must be an integer in 1..64, got 0" in error
    assert not (tmp_path / "state.json").exists()
    args = parser.parse_args(["profile", "dev", str(bad)])
    assert args.run(args) == 2
    assert "dev: 0 gateway(s), 1 node(s)" in capsys.readouterr().out


def test_down_without_a_state_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_landscape_commands(parser.add_subparsers())
    args = parser.parse_args(["down", "--state", str(tmp_path / "none.json")])
    assert args.run(args) == 2
    assert "no landscape state" in capsys.readouterr().err


def test_profiles_directory_holds_only_valid_profiles() -> None:
    for path in PROFILES_DIR.glob("*.toml"):
        load_profile(str(path))


def test_overrides_replace_profile_values_before_validation() -> None:
    profile = load_profile(
        "stage",
        {
            "database.pool_size": "1",
            "nodes.workers": "1",
            "nodes.cpu_limit": "0.25",
            "backbone.LOG_LEVEL": '"INFO"',
        },
    )
    assert (profile.database.pool_size, profile.nodes.workers, profile.nodes.cpu_limit) == (1, 1, 0.25)
    assert profile.backbone["LOG_LEVEL"] == "INFO"
    # The file itself is untouched: the next load has the shipped values.
    assert load_profile("stage").database.pool_size == 3


def test_overrides_are_held_to_the_profiles_rules() -> None:
    with pytest.raises(ProfileError) as raised:
        load_profile(
            "stage",
            {"nodes.workers": "0", "nodes.colour": "red", "backbone.DB_POOL_SIZE": '"1"', "a.b.c": "1"},
        )
    problems = "\n".join(raised.value.problems)
    assert "option a.b.c: expected KEY or TABLE.KEY" in problems
    with pytest.raises(ProfileError) as raised:
        load_profile("stage", {"nodes.workers": "0", "nodes.colour": "red", "backbone.DB_POOL_SIZE": '"1"'})
    problems = "\n".join(raised.value.problems)
    assert "nodes.workers: must be an integer in 1..256, got 0" in problems
    assert "nodes.colour" in problems
    assert "backbone.DB_POOL_SIZE: is set by the profile's database.pool_size" in problems


SQL_SERVER_AND_SERVICE_BUS = (
    'name = "azure"\n[database]\nkind = "sqlserver"\n'
    'url = "mssql+pyodbc://backbone:pw@sql.example.org:1433/backbone?driver=FreeTDS"\n'
    "[nodes]\ncount = 2\n[gateway]\ninstances = 1\n"
    '[bus]\nkind = "azureservicebus"\n'
    'url = "Endpoint=sb://backbone.servicebus.windows.net/;SharedAccessKeyName=b;SharedAccessKey=k"\n'
)
SERVICE_BUS = (
    '[bus]\nkind = "azureservicebus"\nurl = "Endpoint=sb://x/;SharedAccessKeyName=a;SharedAccessKey=b"'
)


def test_a_profile_may_name_sql_server_and_service_bus_for_a_landscape_elsewhere() -> None:
    profile = parse(SQL_SERVER_AND_SERVICE_BUS)

    assert profile.database.kind == "sqlserver"
    assert profile.bus.kind == "azureservicebus"
    assert profile.worker.replicas == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[database]\nkind = "sqlserver"',
            'database.url: with kind = "sqlserver" must be the server\'s URL, mssql',
        ),
        (
            '[bus]\nkind = "azureservicebus"',
            'bus.url: with kind = "azureservicebus" must be the namespace\'s',
        ),
        (f"{SERVICE_BUS}\n[worker]\nreplicas = 0", 'must be >= 1 with bus.kind = "azureservicebus"'),
        (
            '[database]\nurl = "mssql+pyodbc://h/d"',
            'database.url: is only for kind = "postgresql" or "sqlserver"',
        ),
    ],
)
def test_sql_server_and_service_bus_need_their_server(text: str, expected: str) -> None:
    problems = problems_of(f'name = "x"\n{text}\n')
    assert any(expected in problem for problem in problems), problems


def test_up_refuses_a_landscape_that_runs_elsewhere_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "azure.toml"
    profile.write_text(SQL_SERVER_AND_SERVICE_BUS)

    code = run_testbed(["up", "--profile", str(profile), "--state", str(tmp_path / "state.json")])

    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert error.startswith(
        'testbed: the profile azure names database.kind = "sqlserver" and bus.kind = "azureservicebus": '
    )
    assert error.endswith("testbed up starts local processes only and no SQL Server or Service Bus runs here")
    assert not (tmp_path / "state.json").exists()
