"""The run directory's manifest: typed, versioned, written and read in one module."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reports.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    BudgetRecord,
    CpuRecord,
    FlowRate,
    GitRevision,
    LandscapeRecord,
    ManifestError,
    RunManifest,
    ScenarioRecord,
    SloSpec,
    read_manifest,
    write_manifest,
)
from reports.rundir import read_run
from testbed.cli import main

# What `testbed run` wrote before run directories had a format version (trimmed).
PRE_VERSION_MANIFEST = {
    "run_id": "20250101T000000Z-smoke-dev-abcd",
    "started_at_s": 1735689600.0,
    "ended_at_s": 1735689630.0,
    "started_at": "2025-01-01T00:00:00+00:00",
    "seed": 1,
    "pool": "test",
    "git": {"revision": "0" * 40, "dirty": False},
    "profile": {"name": "dev", "threads_per_worker": 4, "nodes": {"count": 1}},
    "scenario": {"name": "smoke", "model": "open", "slos": [], "text": "name = 'smoke'\n"},
    "machine": {"cpus": 2},
}


def a_manifest() -> RunManifest:
    return RunManifest(
        run_id="r1",
        started_at_s=100.0,
        ended_at_s=130.0,
        seed=7,
        pool="test",
        pool_pbkdf2_iterations=1000,
        git=GitRevision("a" * 40, dirty=True),
        profile=LandscapeRecord(
            name="stage",
            overrides={"database.pool_size": "1"},
            load_target="gateway1",
            threads_per_worker=8,
            nodes={"count": 2, "workers": 1, "threads": 8, "cpu_limit": 0.5},
            bus={"kind": "rabbitmq", "url": "amqp://guest:hunter2@127.0.0.1:5672/"},
            cpu=CpuRecord(
                landscape_cores=(0,),
                load_generator_cores=(1,),
                mechanism="cgroup v1",
                budgets=(BudgetRecord("node1", "node", "nodes.cpu_limit", 0.25, "cgroup v1", 100.0, (0,)),),
            ),
            backbone={"LOG_LEVEL": "INFO"},
        ),
        scenario=ScenarioRecord(
            name="smoke",
            source="scenarios/smoke.toml",
            multiplier=40.0,
            duration_s=30.0,
            flows=(FlowRate("challenges", "smoke.challenge", 20.0),),
            slos=(SloSpec("/api/v2/Tags", "GET", ((90.0, 50.0), (98.0, 100.0)), max_failure_ratio=0.01),),
            overrides={"multiplier": 40.0, "duration_s": 30.0, "seed": 7},
            text='name = "smoke"\n',
        ),
        versions={"python": "3.11.2"},
        scrape_failures={"node2": 1},
    )


def test_a_manifest_reads_back_as_it_was_written_with_its_secrets_redacted(tmp_path: Path) -> None:
    written = a_manifest()
    write_manifest(tmp_path, written)

    assert json.loads((tmp_path / MANIFEST).read_text())["format_version"] == FORMAT_VERSION
    read = read_manifest(tmp_path)
    assert read.profile.bus["url"] == "amqp://guest:***@127.0.0.1:5672/"
    bus = {"kind": "rabbitmq", "url": "amqp://guest:***@127.0.0.1:5672/"}
    assert read == dataclasses.replace(written, profile=dataclasses.replace(written.profile, bus=bus))
    assert read.scenario.slos[0].percentiles_ms == ((90.0, 50.0), (98.0, 100.0))
    assert read.started_at == "1970-01-01T00:01:40+00:00"


def test_a_run_directory_from_before_the_versions_gets_one_line_naming_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / str(PRE_VERSION_MANIFEST["run_id"])
    old.mkdir()
    (old / MANIFEST).write_text(json.dumps(PRE_VERSION_MANIFEST), encoding="utf-8")

    with pytest.raises(ManifestError) as raised:
        read_run(old)
    assert "no format_version" in str(raised.value)
    assert f"this testbed reads format_version {FORMAT_VERSION}" in str(raised.value)

    assert main(["report", str(old)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"testbed report: {old / MANIFEST}: no format_version")
    assert "Traceback" not in captured.err
    assert not (old / "report.html").exists()


def test_another_format_version_or_a_wrong_field_is_named(tmp_path: Path) -> None:
    write_manifest(tmp_path, a_manifest())
    document = json.loads((tmp_path / MANIFEST).read_text())

    (tmp_path / MANIFEST).write_text(json.dumps({**document, "format_version": 99}))
    expected = f"format_version 99, but this testbed reads format_version {FORMAT_VERSION}"
    with pytest.raises(ManifestError, match=expected):
        read_manifest(tmp_path)

    document["scenario"]["duration_s"] = "thirty"
    (tmp_path / MANIFEST).write_text(json.dumps(document))
    with pytest.raises(ManifestError, match=r"scenario\.duration_s: expected float, got 'thirty'"):
        read_manifest(tmp_path)

    document["scenario"]["duration_s"] = 30
    document["profile"]["colour"] = "blue"
    (tmp_path / MANIFEST).write_text(json.dumps(document))
    with pytest.raises(ManifestError, match=r"profile: unknown key\(s\) colour"):
        read_manifest(tmp_path)


def test_a_directory_without_a_manifest_is_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a run directory"):
        read_run(tmp_path)
