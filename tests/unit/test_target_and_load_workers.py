"""A target elsewhere (`--target`, allowed hosts, its Prometheus) and load workers that join
(`testbed load-worker`): the pure parts, each against hand-built inputs."""

from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd
import pytest

from reports.cpu import generator_table
from reports.rundir import PROCESS_COLUMNS, conform
from scenarios.landscape import LandscapeProfile, ProfileError, parse_profile, target_allowed
from testbed.run.load_generator import JoinedWorker, LoadGeneratorError, LoadGeneratorPlan
from testbed.run.load_worker import parse_master
from testbed.run.target import TargetError, check_target, federated_samples

SOURCE = Path("elsewhere.toml")


def profile_allowing(*hosts: str) -> LandscapeProfile:
    listed = ", ".join(f'"{host}"' for host in hosts)
    return parse_profile(f'name = "elsewhere"\nallowed_target_hosts = [{listed}]\n', source=SOURCE)


def test_a_profile_may_name_the_hosts_of_deployments_elsewhere() -> None:
    profile = profile_allowing("backbone.example.org", "10.0.0.5", "::1", "LOCALHOST")
    assert profile.allowed_target_hosts == ("backbone.example.org", "10.0.0.5", "::1", "LOCALHOST")


def test_a_host_list_with_urls_ports_or_wildcards_is_refused_with_every_problem() -> None:
    with pytest.raises(ProfileError) as raised:
        profile_allowing(
            "https://backbone.example.org", "backbone.example.org:8080", "*.example.org", "ok.org"
        )
    problems = "\n".join(raised.value.problems)
    for host in ("https://backbone.example.org", "backbone.example.org:8080", "*.example.org"):
        assert f"{host!r} is not a host name or IP address" in problems
    assert "'ok.org'" not in problems


def test_hosts_match_names_case_insensitively_and_addresses_in_any_spelling() -> None:
    allowed = ("Backbone.Example.org", "::1", "10.0.0.5")
    assert target_allowed("backbone.example.org", allowed)
    assert target_allowed("0:0:0:0:0:0:0:1", allowed)
    assert not target_allowed("10.0.0.6", allowed)
    assert not target_allowed("example.org", allowed)


def test_a_target_on_an_allowed_host_is_driven_and_any_other_refused_naming_the_profile() -> None:
    profile = profile_allowing("backbone.example.org")
    assert check_target("https://backbone.example.org:8443/", profile) == "backbone.example.org"
    with pytest.raises(TargetError) as raised:
        check_target("http://127.0.0.1:8080", profile)
    message = str(raised.value)
    assert "refused: host '127.0.0.1' is not in allowed_target_hosts of profile elsewhere" in message
    assert "elsewhere.toml: backbone.example.org" in message
    for wrong in ("backbone.example.org", "ftp://backbone.example.org", "http://backbone.example.org:http"):
        with pytest.raises(TargetError, match="--target"):
            check_target(wrong, profile)


def test_the_master_of_a_load_worker_is_a_host_with_an_optional_port() -> None:
    assert parse_master("loadmaster.example.org") == ("loadmaster.example.org", 5557)
    assert parse_master("10.0.0.7:6000") == ("10.0.0.7", 6000)
    assert parse_master("[::1]:6000") == ("::1", 6000)
    for wrong in ("http://x:5557", "x:0", "x:port", "a b"):
        with pytest.raises(ValueError, match="--master"):
            parse_master(wrong)


def test_federated_samples_lose_the_labels_prometheus_added() -> None:
    text = (
        "# TYPE http_server_request_duration_seconds_count untyped\n"
        'http_server_request_duration_seconds_count{http_route="/api/v2/Tags",instance="node-a:8080",'
        'job="node"} 12 1700000000000\n'
        "# TYPE up untyped\n"
        'up{instance="node-a:8080",job="node"} 1 1700000000000\n'
    )
    assert federated_samples(text) == [
        ("http_server_request_duration_seconds_count", {"http_route": "/api/v2/Tags"}, 12.0),
        ("up", {}, 1.0),
    ]


def test_a_load_generator_without_workers_of_its_own_needs_workers_that_join() -> None:
    LoadGeneratorPlan((), 0, joining=2)
    with pytest.raises(LoadGeneratorError) as raised:
        LoadGeneratorPlan((), 0, joining=0, master_port=70000, join_timeout_s=0)
    lines = str(raised.value).splitlines()
    assert lines == [
        "--load-processes must be an integer in 1..64, got 0",
        "--master-port must be an integer in 1..65535, got 70000",
        "--load-workers-timeout must be between 0 and 3600 seconds, got 0",
    ]


def worker(
    index: int, host: str, pid: int, samples: tuple[tuple[float, float, int], ...] = ()
) -> JoinedWorker:
    return JoinedWorker(f"load-worker{index + 1}", host, pid, index, 3, samples)


def test_the_record_names_the_runs_own_workers_and_those_that_joined_with_host_and_share() -> None:
    here = socket.gethostname()
    plan = LoadGeneratorPlan((1,), 1, joining=2)
    joined = [worker(0, "elsewhere-a", 40), worker(1, here, 41), worker(2, here, 99)]
    record = plan.record(joined, {41: "locust-worker1"})
    rows = [(p.name, p.role, p.host, p.share, p.joined, p.cpu_limit_cores) for p in record.processes]
    assert rows == [
        ("locust-master", "master", here, "", False, 1.0),
        ("load-worker1", "worker", "elsewhere-a", "1 of 3", True, 1.0),
        ("locust-worker1", "worker", here, "2 of 3", False, 1.0),
        ("load-worker3", "worker", here, "3 of 3", True, 1.0),
    ]
    assert record.workers == 3


def test_the_generator_table_shows_each_process_with_its_host_share_and_cpu_in_the_window() -> None:
    plan = LoadGeneratorPlan((1,), 0, joining=1)
    record = plan.record([worker(0, "elsewhere-a", 40)], {})
    samples = [
        (10.0, "locust-master", 2.0),
        (11.0, "load-worker1", 50.0),
        (12.0, "load-worker1", 70.0),
        (99.0, "load-worker1", 100.0),  # after the window
    ]
    processes = conform(
        pd.DataFrame(
            [(t, name, "load-generator", 1, cpu, 0, 1.0) for t, name, cpu in samples],
            columns=list(PROCESS_COLUMNS),
        ),
        PROCESS_COLUMNS,
        "processes",
    )
    table = generator_table(record, processes, (9.0, 20.0))
    rows = table.values.tolist()
    # p50 of 0.5 and 0.7 cores is 0.6, p95 0.69, the maximum 0.7; the sample after the window is left out.
    assert rows[1] == [
        "load-worker1",
        "worker",
        "elsewhere-a (joined)",
        "1 of 3",
        "0.60",
        "0.69",
        "0.70",
        "1",
    ]
    assert rows[0] == [
        "locust-master",
        "master",
        record.processes[0].host,
        "none",
        "0.02",
        "0.02",
        "0.02",
        "1",
    ]
