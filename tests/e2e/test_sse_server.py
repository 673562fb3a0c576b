"""The SSE server as processes (`backbone serve-sse`), reached by the push port's SSE connector
from the Consumer API's process (in-process bus) or from `backbone worker` (RabbitMQ)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from falcon import testing

from backbone.consumer_api import create_consumer_app
from backbone.modules.push_notifications.model import PushPlatform
from backbone.platform.auth import Principal
from backbone.wiring import Services, build_services, handler_queues, seed
from testbed.processes import stop
from tests.helpers.api import Account, onboard
from tests.helpers.drain import subscribed_handlers, wait_until_drained
from tests.helpers.peers import relate, send_message, sync
from tests.helpers.rabbitmq import RABBITMQ_URL, BrokerNames, delete_topology, rabbitmq_reachable
from tests.helpers.server import running_worker
from tests.helpers.services import fresh_sqlite, settings_for_tests, unavailable
from tests.helpers.sse import EventStream, SseReplica, start_sse_replica

pytestmark = pytest.mark.slow
SIGNING_KEY = "t" * 32
SHUTDOWN_TIMEOUT_S = 3.0


@dataclass
class Landscape:
    """The Consumer API in this process, SSE replicas and (on RabbitMQ) a worker as processes."""

    api: testing.TestClient
    services: Services
    environment: dict[str, str]
    directory: Path
    database_url: str
    # The worker's handlers (RabbitMQ), or none: the in-process bus is done when a request is.
    handlers: list[tuple[str, str]]
    replicas: list[SseReplica] = field(default_factory=list)

    def settle(self) -> None:
        """Wait until every event is handled (on RabbitMQ the worker handles them later)."""
        if self.handlers:
            wait_until_drained(self.database_url, self.handlers)

    def replica(self, port: int | None = None, **settings: str) -> SseReplica:
        replica = start_sse_replica({**self.environment, **settings}, self.directory / "sse.log", port=port)
        self.replicas.append(replica)
        return replica

    def registration(self, account: Account) -> tuple[str, str] | None:
        """(platform, handle) of the device's push registration, or None."""
        registrations = {r.device_id: r for r in self.services.push.registrations_of(account.address)}
        found = registrations.get(account.device_id)
        return (found.platform.value, found.handle) if found else None


@pytest.fixture(params=["inprocess", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def landscape(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Landscape]:
    with landscape_on(request.param, tmp_path, sqlite_template) as built:
        yield built


@pytest.fixture
def inprocess_landscape(tmp_path: Path, sqlite_template: Path) -> Iterator[Landscape]:
    with landscape_on("inprocess", tmp_path, sqlite_template) as built:
        yield built


@contextmanager
def landscape_on(bus: str, tmp_path: Path, sqlite_template: Path) -> Iterator[Landscape]:
    database_url = fresh_sqlite(sqlite_template, tmp_path)
    environment = {
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_DATABASE_URL": database_url,
        "BACKBONE_VAR_DIR": str(tmp_path),
        "BACKBONE_JWT_SIGNING_KEY": SIGNING_KEY,
        "BACKBONE_SSE_KEEPALIVE_S": "1",
        "BACKBONE_SSE_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
        "BACKBONE_PUSH_TIMEOUT_S": "2",
    }
    overrides: dict[str, object] = {"push_timeout_s": 2.0}
    names: BrokerNames | None = None
    if bus == "rabbitmq":
        if not rabbitmq_reachable():
            unavailable(f"no RabbitMQ broker answers on {RABBITMQ_URL}")
        names = BrokerNames.unique()
        environment.update(names.environment(RABBITMQ_URL))
        overrides.update(
            bus="rabbitmq",
            rabbitmq_url=RABBITMQ_URL,
            rabbitmq_exchange=names.exchange,
            rabbitmq_queue_prefix=names.queue_prefix,
        )
    services = build_services(settings_for_tests(database_url, tmp_path, **overrides))
    seed(services)
    landscape = Landscape(
        testing.TestClient(create_consumer_app(services)),
        services,
        environment,
        tmp_path,
        database_url,
        subscribed_handlers(tmp_path / "handlers") if names is not None else [],
    )
    try:
        if names is None:
            yield landscape
        else:
            with running_worker(environment, log_path=tmp_path / "worker.log"):
                yield landscape
    finally:
        for replica in landscape.replicas:
            stop(replica.process)
        services.close()
        if names is not None:
            delete_topology(names, [names.queue_prefix + queue for queue in handler_queues()])


def principal(account: Account) -> Principal:
    return Principal(account.address, account.device_id, account.username, "test")


def next_event_other_than_keep_alive(stream: EventStream, timeout_s: float) -> str | None:
    received = stream.next_event(timeout_s)
    return received.event if received else None


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_device_receives_the_event_of_a_message_within_a_second_and_no_other_device_does(
    landscape: Landscape,
) -> None:
    replica = landscape.replica()
    sender, recipient, stranger = onboard(landscape.api), onboard(landscape.api), onboard(landscape.api)
    relate(recipient, sender)
    landscape.settle()
    sync(recipient)
    streams = {
        name: EventStream(replica.url, account.token)
        for name, account in (("recipient", recipient), ("stranger", stranger))
    }
    try:
        opened = streams["recipient"]
        assert opened.status == 200
        assert (opened.header("content-type") or "").startswith("text/event-stream")
        assert opened.header("cache-control") == "no-cache"
        for stream in streams.values():
            assert next_event_other_than_keep_alive(stream, 5) == "ConnectionOpened"
        assert landscape.registration(recipient) == (PushPlatform.sse.value, replica.url)

        started = time.monotonic()
        assert send_message(sender, recipient).status_code == 201
        received = streams["recipient"].next_event(5)
        assert received is not None
        assert received.event == "ExternalEventCreated"
        assert received.at - started < 1.0, f"delivered after {received.at - started:.3f} s"
        assert [event for event, _ in sync(recipient)] == ["MessageReceived"]
        # The stranger's stream got nothing in the meantime (keep-alives are comments, not events).
        assert streams["stranger"].next_event(1.5) is None
    finally:
        for stream in streams.values():
            stream.close()
    # The closed stream's registration goes with it.
    deadline = time.monotonic() + 5
    while landscape.registration(recipient) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert landscape.registration(recipient) is None
    assert metric(replica.url, "backbone_sse_events_delivered_total") == 1.0


def test_after_a_killed_replica_the_device_reconnects_and_its_sync_returns_every_event_meanwhile(
    landscape: Landscape,
) -> None:
    first, second = landscape.replica(), landscape.replica()
    sender, recipient = onboard(landscape.api), onboard(landscape.api)
    relate(recipient, sender)
    landscape.settle()
    sync(recipient)
    stream = EventStream(first.url, recipient.token)
    assert next_event_other_than_keep_alive(stream, 5) == "ConnectionOpened"
    first.kill()
    assert stream.ended.wait(5), "the stream ends with its replica"
    stream.close()
    sent = []
    for _ in range(3):
        created = send_message(sender, recipient)
        assert created.status_code == 201
        sent.append(created.json["result"]["id"])

    reconnected = EventStream(second.url, recipient.token)
    try:
        assert next_event_other_than_keep_alive(reconnected, 5) == "ConnectionOpened"
        landscape.settle()
        events = sync(recipient)
        assert sorted(payload["id"] for kind, payload in events if kind == "MessageReceived") == sorted(sent)
        # The registration now names the second replica, and the connector finds it there.
        assert landscape.registration(recipient) == (PushPlatform.sse.value, second.url)
        assert send_message(sender, recipient).status_code == 201
        received = reconnected.next_event(5)
        assert received is not None
        assert received.event == "ExternalEventCreated"
    finally:
        reconnected.close()


def test_an_offline_device_registration_is_deleted_after_the_sse_client_not_registered_answer(
    landscape: Landscape,
) -> None:
    replica = landscape.replica()
    sender, recipient = onboard(landscape.api), onboard(landscape.api)
    relate(recipient, sender)
    landscape.settle()
    sync(recipient)
    # A registration naming a live replica that holds no stream of the device (as after a replica
    # restarted on the same address).
    landscape.services.push.register_sse_stream(principal(recipient), replica.url)
    assert send_message(sender, recipient).status_code == 201
    deadline = time.monotonic() + 10
    while landscape.registration(recipient) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert landscape.registration(recipient) is None
    assert metric(replica.url, "backbone_sse_events_not_registered_total") >= 1.0


def test_sigterm_closes_every_stream_within_the_graceful_timeout(inprocess_landscape: Landscape) -> None:
    # The server's shutdown does not depend on the bus.
    landscape = inprocess_landscape
    replica = landscape.replica()
    accounts = [onboard(landscape.api) for _ in range(3)]
    streams = [EventStream(replica.url, account.token) for account in accounts]
    try:
        for stream in streams:
            assert next_event_other_than_keep_alive(stream, 5) == "ConnectionOpened"
        started = time.monotonic()
        os.killpg(replica.process.pid, signal.SIGTERM)
        for stream in streams:
            assert stream.ended.wait(SHUTDOWN_TIMEOUT_S + 1)
        replica.process.wait(SHUTDOWN_TIMEOUT_S + 2)
        elapsed = time.monotonic() - started
    finally:
        for stream in streams:
            stream.close()
    assert elapsed < SHUTDOWN_TIMEOUT_S, f"streams closed after {elapsed:.2f} s"
    assert replica.process.returncode == 0
    assert all(landscape.registration(account) is None for account in accounts)


def test_a_client_that_stops_reading_is_dropped_and_another_stream_keeps_getting_events(
    inprocess_landscape: Landscape,
) -> None:
    landscape = inprocess_landscape
    replica = landscape.replica()
    slow, quick = onboard(landscape.api), onboard(landscape.api)
    host, port = replica.url.removeprefix("http://").split(":")
    # A client with a tiny receive buffer that never reads after the headers.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((host, int(port)))
    stalled.sendall(
        f"GET /api/v2/sse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {slow.token}\r\n\r\n".encode()
    )
    reading = EventStream(replica.url, quick.token)
    try:
        assert next_event_other_than_keep_alive(reading, 5) == "ConnectionOpened"
        # Large events fill the stalled client's buffers within a few writes.
        big = "E" * 100_000
        deadline = time.monotonic() + 15
        while metric(replica.url, "backbone_sse_streams_dropped_total") < 1 and time.monotonic() < deadline:
            post_event(replica.url, slow.address, big)
            started = time.monotonic()
            post_event(replica.url, quick.address, "Test")
            received = reading.next_event(2)
            assert received is not None
            assert received.event == "Test"
            assert received.at - started < 1.0, "the stalled client held up another stream"
        assert metric(replica.url, "backbone_sse_streams_dropped_total") >= 1
        # Its connection closes once a write has stalled for a keep-alive interval (1 s here).
        deadline = time.monotonic() + 5
        while metric(replica.url, "backbone_sse_connections") > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metric(replica.url, "backbone_sse_connections") == 1
        assert landscape.registration(slow) is None
    finally:
        stalled.close()
        reading.close()


def post_event(url: str, address: str, event_name: str) -> int:
    request = urllib.request.Request(
        f"{url}/{urllib.parse.quote(address, safe='')}/events",
        data=json.dumps({"eventName": event_name}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
