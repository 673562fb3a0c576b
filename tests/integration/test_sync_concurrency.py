"""Two devices of one identity sync against a real multi-worker server at the same time.

Each device repeatedly starts sync runs (both types, some expiring at once so the other device
cancels them), refreshes and finalizes them with datawallet modifications, and pushes
modifications from the index it knows (catching up on `datawalletNotUpToDate`). Afterwards the
database must hold contiguous, unique modification and sync-run indexes, every run must have
been finalized before the next one started, and no request may have failed with anything but the
business errors such a race produces.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from backbone.modules.synchronization.repository import datawallet_modifications, sync_counters, sync_runs
from loadtests.client import DATAWALLET_HEADER, ApiError, ConsumerApiClient, Session
from tests.helpers.server import running_backbone
from tests.helpers.services import (
    FAST_HASH_ITERATIONS,
    POSTGRES_ADMIN_URL,
    postgres_reachable,
    throwaway_postgres_database,
    unavailable,
)

OPERATIONS_PER_DEVICE = 150
PASSWORD = "a-device-password!"
# What two devices racing for one identity's datawallet are told; anything else is a bug.
EXPECTED_ERRORS = {
    "error.platform.validation.syncRun.cannotStartSyncRunWhenAnotherSyncRunIsRunning",
    "error.platform.validation.datawallet.cannotPushDatawalletModificationsDuringActiveSyncRun",
    "error.platform.validation.datawallet.datawalletNotUpToDate",
    # The run expired and the other device cancelled it when starting its own.
    "error.platform.validation.syncRun.syncRunAlreadyFinalized",
}


@dataclass
class Outcome:
    """What happened to every request of the run, shared by the device threads."""

    answers: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    acknowledged_indexes: list[int] = field(default_factory=list)
    created_run_indexes: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, status: int, code: str = "") -> None:
        with self.lock:
            self.answers[(operation, status, code)] += 1

    @property
    def operations(self) -> int:
        return sum(self.answers.values())

    def unexpected(self) -> list[tuple[str, int, str]]:
        return [answer for answer in self.answers if answer[1] >= 400 and answer[2] not in EXPECTED_ERRORS]


class Device:
    """One device of the identity, keeping the latest datawallet index it knows."""

    def __init__(self, client: ConsumerApiClient, session: Session, outcome: Outcome, seed: int) -> None:
        self._client = client
        self._session = session
        self._outcome = outcome
        self._random = random.Random(seed)
        self._known_index: int | None = None
        self._pushed = 0

    def run(self, operations: int, start_together: threading.Barrier) -> None:
        start_together.wait()
        actions: list[Callable[[], None]] = [self._push, self._push, self._upgrade_run, self._event_sync]
        for _ in range(operations):
            self._random.choice(actions)()

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any = None,
        status: Callable[[Any], int] | None = None,
    ) -> Any:
        headers = {**self._session.auth_header, **DATAWALLET_HEADER}
        try:
            answer = self._client.request(method, path, body, headers)
        except ApiError as error:
            self._outcome.record(operation, error.status, _code(error.body))
            raise
        self._outcome.record(operation, status(answer) if status else 200)
        return answer

    def _modifications(self, count: int) -> list[dict[str, Any]]:
        items = []
        for _ in range(count):
            self._pushed += 1
            items.append(
                {
                    "type": "Create",
                    "objectIdentifier": f"{self._session.device_id}-{self._pushed}",
                    "collection": "Devices",
                    "payloadCategory": "TechnicalData",
                    "encryptedPayload": "eyJjcGgiOiJhYmMifQ",
                    "datawalletVersion": 1,
                }
            )
        return items

    def _acknowledge(self, created: list[dict[str, Any]]) -> None:
        with self._outcome.lock:
            self._outcome.acknowledged_indexes.extend(item["index"] for item in created)

    def _catch_up(self) -> None:
        path = "/api/v2/Datawallet/Modifications"
        if self._known_index is not None:
            path += f"?localIndex={self._known_index}"
        page, pages = 1, 1
        while page <= pages:
            separator = "&" if "?" in path else "?"
            answer = self._call("pull", "GET", f"{path}{separator}pageNumber={page}")
            pages = answer.get("pagination", {}).get("totalPages", 1)
            for item in answer["result"]:
                self._known_index = max(item["index"], -1 if self._known_index is None else self._known_index)
            page += 1

    def _push(self) -> None:
        body = {
            "localIndex": self._known_index,
            "modifications": self._modifications(self._random.randint(1, 3)),
        }
        try:
            answer = self._call("push", "POST", "/api/v2/Datawallet/Modifications", body)
        except ApiError as error:
            if _code(error.body).endswith("datawalletNotUpToDate"):
                self._catch_up()
            return
        self._acknowledge(answer["result"]["modifications"])
        self._known_index = answer["result"]["newIndex"]

    def _start(self, run_type: str) -> dict[str, Any] | None:
        # Some runs expire at once, so the other device's next start cancels them.
        duration = self._random.choice([0, 10, 10, 10])
        try:
            answer = self._call(
                "start",
                "POST",
                "/api/v2/SyncRuns",
                {"type": run_type, "duration": duration},
                status=lambda answer: 201 if answer["result"]["syncRun"] else 200,
            )
        except ApiError:
            return None
        run: dict[str, Any] | None = answer["result"]["syncRun"]
        if run is not None:
            with self._outcome.lock:
                self._outcome.created_run_indexes.append(run["index"])
        return run

    def _upgrade_run(self) -> None:
        run = self._start("DatawalletVersionUpgrade")
        if run is None:
            return
        base = f"/api/v2/SyncRuns/{run['id']}"
        try:
            if self._random.random() < 0.3:
                self._call("refresh", "PUT", f"{base}/RefreshExpirationTime")
            body = {
                "newDatawalletVersion": 1,
                "datawalletModifications": self._modifications(self._random.randint(0, 2)),
            }
            answer = self._call("finalize", "PUT", f"{base}/FinalizeDatawalletVersionUpgrade", body)
        except ApiError:
            return
        self._acknowledge(answer["result"]["datawalletModifications"])

    def _event_sync(self) -> None:
        run = self._start("ExternalEventSync")
        if run is not None:  # nothing creates external events here, so this stays NoNewEvents
            self._call("finalize", "PUT", f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync", {})


def _code(body: str) -> str:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backbone(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A `backbone serve` with several workers and threads; yields its URL and its database URL."""
    environment = {
        "BACKBONE_VAR_DIR": str(tmp_path),
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_PASSWORD_HASH_ITERATIONS": str(FAST_HASH_ITERATIONS),
    }
    serve = ("serve", "--workers", "2", "--threads", "4")
    log = tmp_path / "server.log"
    if request.param == "sqlite":
        with running_backbone(environment, args=serve, log_path=log) as url:
            yield url, f"sqlite:///{tmp_path / 'backbone.sqlite3'}"
        return
    if not postgres_reachable():
        unavailable(f"no PostgreSQL server answers on {POSTGRES_ADMIN_URL}")
    with throwaway_postgres_database() as database_url:
        environment["BACKBONE_DATABASE_URL"] = database_url
        with running_backbone(environment, args=serve, log_path=log) as url:
            yield url, database_url


@pytest.mark.slow
def test_two_devices_syncing_at_once_keep_the_indexes_straight(backbone: tuple[str, str]) -> None:
    url, database_url = backbone
    client = ConsumerApiClient(url)
    first = client.onboard(PASSWORD)
    second = client.add_device(first, PASSWORD)
    outcome = Outcome()
    start_together = threading.Barrier(2)
    devices = [Device(client, session, outcome, seed) for seed, session in enumerate((first, second))]
    threads = [
        threading.Thread(target=device.run, args=(OPERATIONS_PER_DEVICE, start_together))
        for device in devices
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    duration_s = time.perf_counter() - started
    assert not any(thread.is_alive() for thread in threads), "the devices did not finish"

    summary = dict(sorted(outcome.answers.items()))
    print(f"\n{outcome.operations} requests in {duration_s:.1f} s: {summary}")
    assert outcome.unexpected() == [], summary
    assert not [answer for answer in outcome.answers if answer[1] >= 500], summary

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            indexes = list(
                connection.execute(
                    sa.select(datawallet_modifications.c.index)
                    .where(datawallet_modifications.c.owner == first.address)
                    .order_by(datawallet_modifications.c.index)
                ).scalars()
            )
            next_index = connection.execute(
                sa.select(sync_counters.c.next_modification_index).where(
                    sync_counters.c.owner == first.address
                )
            ).scalar_one()
            runs = connection.execute(
                sa.select(sync_runs.c.index, sync_runs.c.created_at, sync_runs.c.finalized_at)
                .where(sync_runs.c.created_by == first.address)
                .order_by(sync_runs.c.index)
            ).all()
    finally:
        engine.dispose()

    assert indexes == list(range(len(indexes)))
    assert next_index == len(indexes)
    assert sorted(outcome.acknowledged_indexes) == indexes, "every stored modification was acknowledged once"
    assert [run.index for run in runs] == list(range(len(runs)))
    # Run 0 is the version upgrade of onboarding; every other run was announced to one device.
    assert sorted(outcome.created_run_indexes) == list(range(1, len(runs)))
    assert sum(run.finalized_at is None for run in runs) <= 1
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finalized_at is not None
        assert earlier.finalized_at <= later.created_at, "a run started while another was open"
    assert len(indexes) > 0
    assert len(runs) > 1
