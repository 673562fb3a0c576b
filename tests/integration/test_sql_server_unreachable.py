"""A SQL Server that does not answer (a closed loopback port), through the real pyodbc, unixODBC and
FreeTDS: `/health` says Unhealthy with the reason in one log line, and `backbone serve` refuses to
start in one line, without a stack trace or the password."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from falcon import testing

from backbone.consumer_api import create_consumer_app
from backbone.wiring import build_services
from testbed.processes import free_port
from tests.helpers.services import settings_for_tests, unavailable

PASSWORD = "Sql-Server-Password-1"


def _closed_port_url() -> str:
    return (
        f"mssql+pyodbc://backbone:{PASSWORD}@127.0.0.1:{free_port()}/backbone?driver=FreeTDS&TDS_Version=7.4"
    )


@pytest.fixture(autouse=True)
def _odbc_driver() -> None:
    try:
        import pyodbc
    except ImportError as error:
        unavailable(f"pyodbc cannot load unixODBC (Debian: unixodbc): {error}")
        return
    if "FreeTDS" not in pyodbc.drivers():
        unavailable("the FreeTDS ODBC driver is not registered (Debian: tdsodbc; odbcinst -q -d)")


def test_an_unreachable_sql_server_makes_health_unhealthy_with_a_clear_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for_tests(
        _closed_port_url(), tmp_path, environment="production", health_timeout_s=2.0
    )
    services = build_services(settings)
    client = testing.TestClient(create_consumer_app(services))
    try:
        with caplog.at_level(logging.DEBUG):
            started = time.perf_counter()
            answer = client.simulate_get("/health")
            answered_s = time.perf_counter() - started
    finally:
        services.close()

    assert answer.status_code == 503
    assert answer.text == "Unhealthy"
    failures = [
        record.getMessage() for record in caplog.records if "health check database" in record.getMessage()
    ]
    print(f"\n/health answered in {answered_s:.3f} s (timeout {settings.health_timeout_s} s): {failures}")
    # The check failed by itself, within the timeout (not cut off by it), in one line.
    assert len(failures) == 1
    assert failures[0].startswith("health check database failed: cannot reach the database mssql+pyodbc://")
    assert "Unable to connect" in failures[0]
    assert "\n" not in failures[0]
    assert PASSWORD not in caplog.text
    assert not any(record.exc_info for record in caplog.records)


def test_serve_refuses_an_unreachable_sql_server_in_one_line(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "BACKBONE_DATABASE_URL": _closed_port_url(),
        "BACKBONE_JWT_SIGNING_KEY": "k" * 40,
        "BACKBONE_VAR_DIR": str(tmp_path),
    }
    finished = subprocess.run(
        [sys.executable, "-m", "backbone", "serve", "--port", str(free_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 1
    assert finished.stderr.startswith(
        "backbone: cannot reach the database mssql+pyodbc://backbone:***@127.0.0.1:"
    )
    assert "Unable to connect" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert PASSWORD not in finished.stderr + finished.stdout
