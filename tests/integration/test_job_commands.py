"""`backbone job ...` as an operator's cron runs it: the commands run against a database and
refuse bad input with a clear message (exit 2), never a stack trace."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed.processes import start_python


def run(args: list[str], tmp_path: Path) -> tuple[int, str]:
    environment = {"BACKBONE_VAR_DIR": str(tmp_path), "BACKBONE_JWT_SIGNING_KEY": "j" * 32}
    process = start_python(["-m", "backbone", *args], environment, subprocess.PIPE)
    output, _ = process.communicate(timeout=60)
    return process.returncode, output.decode()


def test_the_jobs_run_against_a_development_database(tmp_path: Path) -> None:
    for args, said in [
        (["job", "identity-deletion", "--step", "reminders"], "sent 0 grace-period reminder(s)"),
        (["job", "identity-deletion", "--step", "actual"], "deleted 0 identit"),
        (["job", "housekeeping", "--orphan-settle-s", "0"], "housekeeping removed"),
    ]:
        code, output = run(args, tmp_path)
        assert code == 0, output
        assert said in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["job", "identity-deletion"], "the following arguments are required: --step"),
        (["job", "identity-deletion", "--step", "everything"], "invalid choice: 'everything'"),
        (["job", "housekeeping", "--audit-log-retention-days", "0"], "must be positive"),
        (["job", "housekeeping", "--orphan-settle-s", "-1"], "must not be negative"),
        (["job", "cleanup"], "invalid choice: 'cleanup'"),
    ],
)
def test_bad_job_arguments_get_a_clear_message(args: list[str], message: str, tmp_path: Path) -> None:
    code, output = run(args, tmp_path)
    assert code == 2
    assert message in output
    assert "Traceback" not in output
