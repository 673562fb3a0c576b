"""The Prometheus rules pass `promtool check rules`, the alerts their unit tests (`promtool test rules`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.services import unavailable

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus"
RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    executable = shutil.which("promtool")
    if executable is None:
        unavailable("promtool is not installed (Debian package prometheus)")
    assert executable is not None
    return executable


def _run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_are_valid(promtool: str) -> None:
    assert [path.name for path in RULES] == ["alerts.yml", "recording.yml"]
    result = _run(promtool, "check", "rules", *RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_pass_their_unit_tests(promtool: str) -> None:
    assert RULE_TESTS
    result = _run(promtool, "test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: expecting the fast burn on the clean route instead fails."""
    text = (PROMETHEUS_DIR / "tests" / "alerts_test.yml").read_text()
    broken = text.replace("../rules/", f"{PROMETHEUS_DIR}/rules/").replace(
        "severity: page\n              landscape: l1\n              http_route: /api/v2/Messages",
        "severity: page\n              landscape: l1\n              http_route: /api/v2/Tokens",
        1,
    )
    assert "http_route: /api/v2/Tokens" in broken.split("AvailabilityBudgetBurnSlow")[0]
    path = tmp_path / "broken_test.yml"
    path.write_text(broken)
    result = _run(promtool, "test", "rules", path)
    assert result.returncode != 0
    assert "AvailabilityBudgetBurnFast" in result.stdout + result.stderr
