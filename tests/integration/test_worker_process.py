"""`backbone worker` as a real process: it relays outbox rows the API left unpublished (and their
handlers take effect), answers /health and /metrics on its metrics port, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import sqlalchemy as sa

from backbone.modules.quotas.model import QuotaPeriod
from backbone.modules.quotas.repository import tier_quota_definitions
from backbone.platform.events import outbox_events
from backbone.wiring import Services
from testbed.processes import free_port, start_python, stop, wait_for_http


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")


def worker_environment(database_url: str, var_dir: Path) -> dict[str, str]:
    return {
        "BACKBONE_DATABASE_URL": database_url.replace("postgresql+psycopg://", "postgresql://", 1),
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_VAR_DIR": str(var_dir),
        "BACKBONE_JWT_SIGNING_KEY": "w" * 32,
    }


@contextmanager
def running_worker(
    environment: dict[str, str], log_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    with open(log_path, "wb") as log:
        args = ["-m", "backbone", "worker", "--metrics-port", str(port), "--relay-interval-s", "0.2"]
        process = start_python(args, environment, log)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/health", process)
            yield url, process
        finally:
            stop(process)


def wait_until(condition: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("the condition did not hold in time")


def leave_unpublished(services: Services, event_id: str, name: str, payload: dict[str, object]) -> None:
    """An outbox row as a crash between commit and publish leaves it."""
    with services.db.transaction() as connection:
        connection.execute(
            outbox_events.insert().values(
                id=event_id,
                name=name,
                payload=orjson.dumps(payload).decode(),
                created_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        )


def test_the_worker_relays_a_left_over_event_serves_health_and_metrics_and_stops_on_sigterm(
    services: Services, database_url: str, tmp_path: Path
) -> None:
    tier = services.tiers.create("Relayed")
    services.quotas.define_tier_quota(tier.id, "NumberOfFiles", 5, QuotaPeriod.Day)
    # The tier is gone, but the event that takes its quota definitions along never left the outbox.
    leave_unpublished(services, "EVT-left-behind-00001", "TierDeleted", {"Id": tier.id})

    def definitions_left() -> int:
        with services.db.read() as connection:
            statement = sa.select(sa.func.count()).where(tier_quota_definitions.c.tier_id == tier.id)
            return int(connection.execute(statement).scalar_one())

    def published() -> bool:
        with services.db.read() as connection:
            row = connection.execute(
                sa.select(outbox_events.c.published_at).where(outbox_events.c.id == "EVT-left-behind-00001")
            ).one()
        return row.published_at is not None

    assert definitions_left() == 1
    log_path = tmp_path / "worker.log"
    with running_worker(worker_environment(database_url, tmp_path), log_path) as (url, process):
        wait_until(published)
        assert definitions_left() == 0
        assert get(f"{url}/health") == (200, "Healthy")
        status, metrics = get(f"{url}/metrics")
        assert status == 200
        assert "backbone_worker_relayed_events_total 1.0" in metrics

        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert "worker stopped" in log_path.read_text()


def test_the_worker_refuses_bad_arguments_with_a_clear_message(tmp_path: Path) -> None:
    environment = {"BACKBONE_VAR_DIR": str(tmp_path)}
    for args, message in [
        (["--relay-interval-s", "0"], "must be positive"),
        (["--relay-interval-s", "soon"], "not a number of seconds"),
        (["--metrics-port", "70000"], "between 0 and 65535"),
    ]:
        process = start_python(["-m", "backbone", "worker", *args], environment, subprocess.PIPE)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 2
        assert message in output.decode()
        assert "Traceback" not in output.decode()
