"""A private PostgreSQL cluster crashes and comes back under a running `backbone serve`.

/health turns 503 within 5 s and 200 again without restarting the backbone; requests during the
outage get a 503 envelope quickly; every write acknowledged (201) before, during and after the
outage is in the database afterwards.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from loadtests.client import ApiError, ConsumerApiClient, Session
from testbed.landscape.postgres import PostgresCluster, postgres_bin_dir, private_postgres_cluster
from tests.helpers.peers import CONTENT
from tests.helpers.server import running_backbone
from tests.helpers.services import unavailable
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
HEALTH_DEADLINE_S = 5.0
OUTAGE_S = 3.0


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        unavailable("initdb/postgres are not installed (Debian package postgresql)")
    with private_postgres_cluster(bin_dir) as running:
        yield running


@dataclass
class Writer:
    """Create relationship templates until told to stop; remember what was acknowledged."""

    client: ConsumerApiClient
    session: Session
    acknowledged: list[str] = field(default_factory=list)
    refusals: list[tuple[int, str, float]] = field(default_factory=list)
    max_latency_s: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                created = self.client.request(
                    "POST", "/api/v2/RelationshipTemplates", {"content": CONTENT}, self.session.auth_header
                )
                self.acknowledged.append(created["result"]["id"])
            except ApiError as error:
                self.refusals.append((error.status, error.body, time.perf_counter() - started))
                time.sleep(0.05)
            self.max_latency_s = max(self.max_latency_s, time.perf_counter() - started)


def health(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=HEALTH_DEADLINE_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_backbone_survives_a_database_crash_without_losing_acknowledged_writes(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    environment = {
        "BACKBONE_DATABASE_URL": cluster.url(),
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_VAR_DIR": str(tmp_path),
        "BACKBONE_PASSWORD_HASH_ITERATIONS": "1000",
        "BACKBONE_DB_POOL_TIMEOUT_S": "3",
    }
    with running_backbone(
        environment, args=("serve", "--workers", "2"), log_path=tmp_path / "serve.log"
    ) as url:
        client = ConsumerApiClient(url)
        writer = Writer(client, client.onboard("a-device-password!"))
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(writer.acknowledged) >= 20, "writes before the crash")
            acknowledged_before = len(writer.acknowledged)

            cluster.stop("immediate")
            stopped = time.monotonic()
            wait_until(lambda: health(url) == 503, "/health to turn 503", HEALTH_DEADLINE_S)
            unhealthy_after_s = time.monotonic() - stopped
            refusals_before = len(writer.refusals)
            wait_until(
                lambda: len(writer.refusals) >= refusals_before + 5, "writes refused during the outage"
            )

            cluster.start()
            started = time.monotonic()
            wait_until(lambda: health(url) == 200, "/health to turn 200 again", 30)
            healthy_after_s = time.monotonic() - started
            acknowledged_at_restart = len(writer.acknowledged)
            wait_until(
                lambda: len(writer.acknowledged) >= acknowledged_at_restart + 20, "writes after the restart"
            )
        finally:
            writer.stop.set()
            thread.join(timeout=30)

    with psycopg.connect(cluster.url()) as connection:
        stored = {
            row[0]
            for row in connection.execute(
                "SELECT id FROM relationship_templates WHERE id = ANY(%s)", (writer.acknowledged,)
            )
        }
    lost = set(writer.acknowledged) - stored
    print(
        f"\ndatabase outage: /health 503 after {unhealthy_after_s:.2f} s, 200 again {healthy_after_s:.2f} s"
        f" after restart; {len(writer.acknowledged)} writes acknowledged ({acknowledged_before} before"
        f" the crash), {len(writer.refusals)} refused, {len(lost)} lost;"
        f" max request latency {writer.max_latency_s:.2f} s"
    )
    assert not lost, f"acknowledged writes lost: {sorted(lost)[:5]}"
    assert unhealthy_after_s < HEALTH_DEADLINE_S
    statuses = {status for status, _, _ in writer.refusals}
    assert statuses == {503}, f"an outage is a 503, never a 500: {statuses}"
    assert all('"error.platform.serviceUnavailable"' in body for _, body, _ in writer.refusals)
    assert max(latency for _, _, latency in writer.refusals) < HEALTH_DEADLINE_S
