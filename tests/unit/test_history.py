"""The history of a results directory, its pruning, the operators' site and `testbed run --repeat`,
on hand-built result directories."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from reports.history import (
    COMPARISON_HTML,
    COMPARISON_JSON,
    REPEATS,
    RepeatGroup,
    older_than,
    parse_age_s,
    prune,
    read_repeats,
    scan,
    write_repeats,
)
from reports.manifest import read_manifest, write_manifest
from reports.render import render_run
from reports.site import render_site, route_figures, write_site
from reports.synthetic import write_synthetic_run
from testbed.run.repeat import run_repeated
from testbed.run.results import history_command
from tests.unit.test_compare import capacity_dir

DAY_S = 86_400.0


def dated_run(path: Path, started_at_s: float, seed: int = 1, scenario: str = "synthetic") -> Path:
    """A small synthetic run (rendered) whose manifest says it started at `started_at_s`."""
    write_synthetic_run(path, requests=3000, duration_s=10, seed=seed)
    manifest = read_manifest(path)
    write_manifest(
        path,
        dataclasses.replace(
            manifest,
            started_at_s=started_at_s,
            ended_at_s=started_at_s + 10,
            scenario=dataclasses.replace(manifest.scenario, name=scenario),
        ),
    )
    render_run(path)
    return path


def comparison_dir(path: Path, created_at_s: float) -> Path:
    path.mkdir(parents=True)
    (path / COMPARISON_JSON).write_text(
        json.dumps(
            {
                "comparison_id": path.name,
                "created_at_s": created_at_s,
                "baseline": "a",
                "candidate": "b",
                "scenario": "synthetic",
                "verdict": "no regression",
            }
        )
    )
    (path / COMPARISON_HTML).write_text("<!DOCTYPE html><html></html>")
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Old and new entries of every kind, and things that are not the testbed's."""
    now = time.time()
    root = tmp_path_factory.mktemp("template") / "results"
    dated_run(root / "old-run", now - 40 * DAY_S)
    dated_run(root / "new-run", now - 1 * DAY_S, seed=2)
    capacity_dir(root / "old-capacity", "synthetic", [(4.0, 400.0, True), (8.0, 700.0, False)], "node")
    manifest = json.loads((root / "old-capacity" / "capacity.json").read_text())
    manifest["started_at_s"] = now - 45 * DAY_S
    (root / "old-capacity" / "capacity.json").write_text(json.dumps(manifest))
    comparison_dir(root / "old-compare", now - 50 * DAY_S)
    group = root / "new-repeats"
    dated_run(group / "repeat-a", now - 2 * DAY_S, seed=3)
    dated_run(group / "repeat-b", now - 2 * DAY_S + 30, seed=4)
    write_repeats(group, RepeatGroup("new-repeats", now - 2 * DAY_S, 2, ("repeat-a", "repeat-b"), (0, 0)))
    # Not the testbed's: an old directory without a manifest and a loose file are never touched.
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("keep me")
    os.utime(root / "notes", (now - 90 * DAY_S, now - 90 * DAY_S))
    (root / "README.txt").write_text("keep me too")
    # A run directory of an older format: named as unreadable, never listed, never removed.
    (root / "old-format").mkdir()
    (root / "old-format" / "manifest.json").write_text(json.dumps({"run_id": "old-format"}))
    os.utime(root / "old-format", (now - 90 * DAY_S, now - 90 * DAY_S))
    return root


@pytest.fixture
def results(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template for each test (pruning changes it)."""
    return Path(shutil.copytree(template, tmp_path / "results"))


def test_the_history_lists_every_kind_oldest_first(results: Path) -> None:
    history = scan(results)
    assert [(entry.kind, entry.path.name) for entry in history.entries] == [
        ("comparison", "old-compare"),
        ("capacity", "old-capacity"),
        ("run", "old-run"),
        ("repeats", "new-repeats"),
        ("run", "new-run"),
    ]
    run = history.entries[2]
    assert run.profile == "synthetic"
    assert run.scenario == "synthetic"
    assert run.verdicts.startswith("SLO ")
    assert run.report == "report.html"
    assert run.size_bytes > 0
    capacity = history.entries[1]
    assert capacity.capacity == "400.0 requests/s at x4, limited by node"
    repeats = history.entries[3]
    assert repeats.members == ("new-repeats/repeat-a", "new-repeats/repeat-b")
    (unreadable,) = history.unreadable
    assert "old-format/manifest.json: no format_version" in unreadable


def test_pruning_removes_exactly_what_is_older_and_nothing_else(results: Path) -> None:
    before = {path.name for path in results.iterdir()}
    history = scan(results)
    chosen = older_than(history.entries, 30 * DAY_S, time.time())
    assert sorted(entry.path.name for entry in chosen) == ["old-capacity", "old-compare", "old-run"]
    prune(history, chosen)
    assert {path.name for path in results.iterdir()} == before - {"old-capacity", "old-compare", "old-run"}
    assert (results / "notes" / "todo.txt").read_text() == "keep me"
    assert (results / "README.txt").is_file()
    assert (results / "old-format" / "manifest.json").is_file()
    assert (results / "new-repeats" / "repeat-a" / "report.html").is_file()


def test_the_command_prunes_and_says_what_it_removed(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dry = argparse.Namespace(results=results, prune_older_than="30d", dry_run=True)
    assert history_command(dry) == 0
    assert "would remove 3 entries" in capsys.readouterr().out
    assert (results / "old-run").is_dir()
    real = argparse.Namespace(results=results, prune_older_than="30d", dry_run=False)
    assert history_command(real) == 0
    out = capsys.readouterr().out
    assert re.search(r"removed run .*old-run", out)
    assert "removed 3 entries" in out
    assert not (results / "old-run").exists()
    assert "new-run" in out  # the remaining history is listed
    bad = argparse.Namespace(results=results, prune_older_than="30 days", dry_run=False)
    assert history_command(bad) == 2
    assert "not an age" in capsys.readouterr().err


def test_an_entry_outside_the_history_is_never_removed(results: Path, tmp_path: Path) -> None:
    history = scan(results)
    elsewhere = dataclasses.replace(history.entries[0], path=tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ValueError, match="not an entry"):
        prune(history, [history.entries[1], elsewhere])
    assert (tmp_path / "elsewhere").is_dir()
    assert history.entries[1].path.is_dir()


def test_ages() -> None:
    assert parse_age_s("30d") == 30 * DAY_S
    assert parse_age_s("12h") == 12 * 3600
    assert parse_age_s("2w") == 14 * DAY_S
    for text in ("30", "0d", "-1d", "30 days", ""):
        with pytest.raises(ValueError, match="not an age"):
            parse_age_s(text)


def test_the_site_shows_history_trends_capacities_and_links(results: Path) -> None:
    page = render_site(scan(results))
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page
    assert 'id="history-table"' in page
    assert 'href="old-run/report.html"' in page
    assert 'href="new-repeats/repeat-a/report.html"' in page
    assert 'href="old-compare/comparison.html"' in page
    # Four runs of the synthetic scenario on the synthetic profile: one trend per figure.
    for figure in ("p90_ms", "p98_ms", "rate_per_s"):
        assert f'data-chart="trend-1-{figure}"' in page
    assert 'data-points="4"' in page
    assert "limited by node" in page or ">node<" in page
    path = write_site(results)
    assert path == results / "index.html"


def test_route_figures_of_a_run(results: Path) -> None:
    figures = route_figures(results / "new-run").set_index(["method", "route"])
    assert len(figures) == 10
    assert (figures["count"] > 0).all()
    assert (figures["p98_ms"] >= figures["p90_ms"]).all()
    assert figures["rate_per_s"].sum() == pytest.approx(3000 / 10)


def test_repeats_group_the_runs_and_keep_the_worst_status(tmp_path: Path) -> None:
    statuses = iter([0, 1, 0])
    calls: list[Path] = []

    def run_once(args: argparse.Namespace) -> int:
        calls.append(args.results)
        (args.results / f"run-{len(calls)}").mkdir(parents=True)
        return next(statuses)

    args = argparse.Namespace(repeat=3, results=tmp_path, scenario="smoke", profile="stage")
    assert run_repeated(args, run_once) == 1
    (group,) = tmp_path.iterdir()
    assert re.fullmatch(r"\d{8}T\d{6}Z-smoke-stage-x3-[0-9a-f]{4}", group.name)
    assert set(calls) == {group}
    repeats = read_repeats(group)
    assert repeats.runs == ("run-1", "run-2", "run-3")
    assert repeats.exit_statuses == (0, 1, 0)
    assert (group / REPEATS).is_file()


def test_repeats_stop_at_a_run_that_failed_to_run(tmp_path: Path) -> None:
    statuses = iter([0, 3, 0])

    def run_once(args: argparse.Namespace) -> int:
        (args.results / f"run-{time.monotonic_ns()}").mkdir(parents=True)
        return next(statuses)

    args = argparse.Namespace(repeat=3, results=tmp_path, scenario=None, profile="dev")
    assert run_repeated(args, run_once) == 3
    (group,) = tmp_path.iterdir()
    assert len(read_repeats(group).runs) == 2
    assert (
        run_repeated(argparse.Namespace(repeat=0, results=tmp_path, scenario=None, profile="dev"), run_once)
        == 2
    )
