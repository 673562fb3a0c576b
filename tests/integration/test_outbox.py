"""Events travel through the outbox: after commit only, once per handler, relayed when left behind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from backbone.platform.events import DomainEvent, Handler, PublishedEvent
from backbone.wiring import Services, build_services
from tests.helpers.services import settings_for_tests


@dataclass(frozen=True)
class ThingHappened(DomainEvent):
    thing_id: str
    count: int


@pytest.fixture
def seen(services: Services) -> list[PublishedEvent]:
    received: list[PublishedEvent] = []
    services.bus.subscribe(Handler("Tests", "ThingHappened", received.append))
    return received


def test_handlers_run_after_commit_with_pascal_case_payloads(
    services: Services, seen: list[PublishedEvent]
) -> None:
    with services.db.transaction():
        services.outbox.add(ThingHappened(thing_id="T1", count=2))
        assert seen == []
    assert [(event.name, event.payload) for event in seen] == [
        ("ThingHappened", {"ThingId": "T1", "Count": 2})
    ]
    assert services.outbox.pending_count() == 0


def test_a_rolled_back_change_publishes_nothing(services: Services, seen: list[PublishedEvent]) -> None:
    def refused_change() -> None:
        with services.db.transaction():
            services.outbox.add(ThingHappened(thing_id="T1", count=1))
            raise RuntimeError("change refused")

    with pytest.raises(RuntimeError):
        refused_change()
    assert seen == []
    assert services.outbox.pending_count() == 0


def test_a_failing_handler_leaves_the_event_pending_and_the_relay_delivers_it_once(
    services: Services,
) -> None:
    # What a handler changes lands with its transaction's commit, so effects are counted there.
    effects = {"good": 0, "flaky": 0}
    downstream_up = False

    def effect(name: str) -> None:
        services.db.after_commit(lambda: effects.__setitem__(name, effects[name] + 1))

    def good(event: PublishedEvent) -> None:
        effect("good")

    def flaky(event: PublishedEvent) -> None:
        if not downstream_up:
            raise ConnectionError("downstream unavailable")
        effect("flaky")

    services.bus.subscribe(Handler("Good", "ThingHappened", good))
    services.bus.subscribe(Handler("Flaky", "ThingHappened", flaky))
    with services.db.transaction():
        services.outbox.add(ThingHappened(thing_id="T1", count=1))
    assert effects == {"good": 1, "flaky": 0}, "one handler's failure does not undo the other's effect"
    assert services.outbox.pending_count() == 1

    downstream_up = True
    assert services.outbox.relay_pending() == 1
    assert effects == {"good": 1, "flaky": 1}, "the inbox keeps the good handler from having its effect twice"
    assert services.outbox.pending_count() == 0
    assert services.outbox.relay_pending() == 0


def test_the_handlers_of_one_publish_share_one_transaction(services: Services) -> None:
    connections: list[object] = []

    def remember(event: PublishedEvent) -> None:
        connections.append(services.db.current())

    services.bus.subscribe(Handler("First", "ThingHappened", remember))
    services.bus.subscribe(Handler("Second", "ThingHappened", remember))
    with services.db.transaction():
        services.outbox.add(ThingHappened(thing_id="T1", count=1))
        services.outbox.add(ThingHappened(thing_id="T2", count=1))
    assert len(connections) == 4
    assert all(connection is connections[0] for connection in connections)
    assert services.outbox.pending_count() == 0


class BatchRecordingBus:
    """Remembers each publish call's events."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def subscribe(self, handler: Handler) -> None:
        pass

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        self.batches.append([event.payload["ThingId"] for event in events])

    def ping(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_events_of_one_transaction_are_published_in_one_batch_in_order(
    database_url: str, tmp_path: Path
) -> None:
    bus = BatchRecordingBus()
    services = build_services(settings_for_tests(database_url, tmp_path), bus=bus)
    try:
        with services.db.transaction():
            services.outbox.add(ThingHappened(thing_id="T1", count=1))
            services.outbox.add(ThingHappened(thing_id="T2", count=1))
        with services.db.transaction():
            services.outbox.add(ThingHappened(thing_id="T3", count=1))
        assert bus.batches == [["T1", "T2"], ["T3"]]
        assert services.outbox.pending_count() == 0
    finally:
        services.close()
