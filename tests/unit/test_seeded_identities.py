"""Seeded identities for load users: reading the credentials file, disjoint worker partitions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.identities import (
    IdentitiesFileError,
    SeededIdentities,
    disjoint,
    load_identities,
    worker_share,
)
from loadtests.seeding.export import bulk_entries, write_export
from loadtests.seeding.planner import plan
from scenarios.pool_schema import load_pool_config


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeededIdentities:
    the_plan = plan(load_pool_config("light"))
    path = write_export(
        tmp_path_factory.mktemp("x") / "light.json", the_plan, "bulk", "test", bulk_entries(the_plan)
    )
    return load_identities(path)


def test_the_file_carries_devices_relationships_and_promises(seeded: SeededIdentities) -> None:
    assert len(seeded) == 542
    assert seeded.pool_config == "light"
    heavy_app = seeded.of_pool("a3")[0]
    assert len(heavy_app.devices) == 3
    assert len(heavy_app.relationships) == 5
    assert heavy_app.expected["messages"] == 50
    assert heavy_app.key.address("localhost") == heavy_app.address
    assert all(r.peer in {i.address for i in seeded.of_type("connector")} for r in heavy_app.relationships)
    connector = seeded.of_pool("c3")[0]
    assert len(connector.templates) == 30
    assert {r.template for r in connector.relationships} <= set(connector.templates)


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_workers_take_disjoint_parts_that_cover_every_pool(seeded: SeededIdentities, workers: int) -> None:
    parts = [seeded.partition(index, workers) for index in range(workers)]
    assert disjoint(parts)
    assert sum(len(part) for part in parts) == len(seeded)
    for part in parts:
        for alias in ("e", "a1", "a2", "a3", "c2", "c3"):
            assert len(part.of_pool(alias)) >= len(seeded.of_pool(alias)) // workers


def test_a_worker_outside_the_count_is_refused(seeded: SeededIdentities) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        seeded.partition(2, 2)


def test_missing_and_foreign_files_get_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IdentitiesFileError, match="run `testbed seed"):
        load_identities(tmp_path / "none.json")
    (tmp_path / "other.json").write_text(json.dumps({"identities": []}))
    with pytest.raises(IdentitiesFileError, match="not a credentials file"):
        load_identities(tmp_path / "other.json")


class _Runner:
    worker_index = 2


class WorkerRunner(_Runner):
    pass


class _Options:
    expect_workers = 4


class _Environment:
    def __init__(self, runner: object) -> None:
        self.runner = runner
        self.parsed_options = _Options()


def test_worker_share_reads_the_locust_runner() -> None:
    assert worker_share(_Environment(WorkerRunner())) == (2, 4)
    assert worker_share(_Environment(_Runner())) == (0, 1)
