"""`testbed seed` refuses bad input with a message and exit status 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(["seed", *args])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_an_unknown_pool_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(capsys, "--pool", "medium", "--verify")
    assert status == 2
    assert "known pool configs: heavy, light, sse, test" in out


def test_an_invalid_pool_file_lists_its_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[pools]]\ntype = "app"\nname = "A"\nalias = "a"\namount = -2\n')
    status, out = run(capsys, "--pool", str(path), "--verify")
    assert status == 2
    assert f"{path}: pools[0].amount: must be an integer >= 0, got -2" in out


def test_nothing_to_do_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(capsys, "--pool", "test")
    assert status == 2
    assert "--mode api|bulk, --verify and/or --check-identities N" in out


def test_an_unreachable_backbone_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(
        capsys, "--pool", "test", "--mode", "api", "--base-url", "http://localhost:9", "--export",
        str(tmp_path / "x.json"),
    )  # fmt: skip
    assert status == 2
    assert "cannot reach http://localhost:9" in out


def test_an_unusable_database_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(
        capsys, "--pool", "test", "--verify", "--database-url", f"sqlite:///{tmp_path}/no/such.db"
    )
    assert status == 2
    assert "cannot use the database" in out
