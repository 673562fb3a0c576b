"""The RabbitMQ bus against the real broker: topology, message shape, exactly-once effects,
bounded retries into the dead-letter queue, and failing fast while the broker is away."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest
import sqlalchemy.exc
from falcon import testing
from prometheus_client import CollectorRegistry

from backbone.consumer_api import create_consumer_app
from backbone.platform.clock import ManualClock
from backbone.platform.events import BusUnavailable, DomainEvent, Handler, PublishedEvent
from backbone.platform.rabbitmq import RabbitMqEventBus
from backbone.wiring import Services, build_services, seed
from testbed.processes import free_port
from tests.helpers.rabbitmq import (
    RABBITMQ_URL,
    BrokerNames,
    channel_on,
    delete_topology,
    rabbitmq_reachable,
)
from tests.helpers.services import settings_for_tests, unavailable
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.rabbitmq
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass(frozen=True)
class ThingHappened(DomainEvent):
    thing_id: str


@pytest.fixture(scope="module")
def broker() -> str:
    if not rabbitmq_reachable():
        unavailable(f"no RabbitMQ broker answers on {RABBITMQ_URL}")
    return RABBITMQ_URL


def rabbitmq_services(
    database_url: str, tmp_path: Path, clock: ManualClock, names: BrokerNames, url: str, **overrides: object
) -> Services:
    settings = settings_for_tests(
        database_url,
        tmp_path,
        bus="rabbitmq",
        rabbitmq_url=url,
        rabbitmq_exchange=names.exchange,
        rabbitmq_queue_prefix=names.queue_prefix,
        rabbitmq_reconnect_max_s=0.5,
        **overrides,
    )
    built = build_services(settings, clock=clock)
    seed(built)
    return built


@pytest.fixture
def names(broker: str) -> BrokerNames:
    return BrokerNames.unique()


@pytest.fixture
def rabbit(
    database_url: str, tmp_path: Path, clock: ManualClock, names: BrokerNames, broker: str
) -> Iterator[Services]:
    """Services on the broker, with names of their own that are deleted afterwards."""
    built = rabbitmq_services(database_url, tmp_path, clock, names, broker, rabbitmq_max_handler_attempts=3)
    yield built
    bus = built.bus
    assert isinstance(bus, RabbitMqEventBus)
    built.close()
    delete_topology(names, bus.queues, broker)


def start(bus: RabbitMqEventBus) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=bus.consume, args=(stop,), daemon=True).start()
    wait_until(lambda: _consumers_up(bus), "the consumers to connect", 15)
    return stop


def _consumers_up(bus: RabbitMqEventBus) -> bool:
    try:
        bus.consumers_ping()
    except BusUnavailable:
        return False
    return True


def publish_thing(services: Services, thing_id: str, traceparent: str | None = None) -> None:
    services.outbox.traceparent = lambda: traceparent
    with services.db.transaction():
        services.outbox.add(ThingHappened(thing_id=thing_id))


def test_an_event_travels_as_a_persistent_message_with_its_id_and_trace_context(rabbit: Services) -> None:
    bus = rabbit.bus
    assert isinstance(bus, RabbitMqEventBus)
    bus.subscribe(Handler("Tests", "ThingHappened", lambda event: None))
    publish_thing(rabbit, "T1", TRACEPARENT)
    assert rabbit.outbox.pending_count() == 0, "a confirmed publish marks the row published"

    queue = f"{bus.options.queue_prefix}Tests.ThingHappened"
    with channel_on(bus.options.url) as channel:
        declared = channel.queue_declare(queue, passive=True)
        assert declared.method.message_count == 1
        method, properties, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None
    assert method.exchange == bus.options.exchange
    assert method.routing_key == "ThingHappened"
    assert properties.delivery_mode == 2
    assert properties.message_id.startswith("EVT")
    assert properties.headers["traceparent"] == TRACEPARENT
    assert body == b'{"ThingId":"T1"}'


def test_queues_and_exchanges_are_durable_and_bound_by_event_name(rabbit: Services) -> None:
    bus = rabbit.bus
    assert isinstance(bus, RabbitMqEventBus)
    assert f"{bus.options.queue_prefix}Synchronization.MessageCreated" in bus.queues
    publish_thing(rabbit, "T0")  # connects and declares
    with channel_on(bus.options.url) as channel:
        # A passive declare with other flags than the broker's would close the channel.
        channel.exchange_declare(bus.options.exchange, "direct", durable=True, passive=True)
        channel.exchange_declare(f"deadletterexchange.{bus.options.exchange}", "fanout", passive=True)
        for queue in bus.queues:
            channel.queue_declare(queue, passive=True)
        # Durable queues must be redeclared durable; a non-durable declaration is refused.
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            channel.queue_declare(bus.queues[0], durable=False)


def test_each_handler_has_its_effect_once_even_when_the_event_is_delivered_twice(rabbit: Services) -> None:
    bus = rabbit.bus
    assert isinstance(bus, RabbitMqEventBus)
    seen: list[PublishedEvent] = []
    bus.subscribe(Handler("Tests", "ThingHappened", seen.append))
    bus.subscribe(Handler("Other", "ThingHappened", seen.append))
    stop = start(bus)
    try:
        publish_thing(rabbit, "T1", TRACEPARENT)
        with rabbit.db.read() as connection:
            row = connection.exec_driver_sql("SELECT id, created_at FROM outbox_events").first()
        assert row is not None
        # The same event once more, as a relay after a lost confirm would send it.
        duplicate = PublishedEvent(
            row[0], "ThingHappened", {"ThingId": "T1"}, rabbit.clock.now(), TRACEPARENT
        )
        bus.publish([duplicate])
        wait_until(lambda: _count(bus, "duplicate") >= 2, "the repeated delivery to both handlers")
    finally:
        stop.set()
    assert sorted(event.payload["ThingId"] for event in seen) == ["T1", "T1"], "once per handler"
    assert {event.traceparent for event in seen} == {TRACEPARENT}
    assert {event.id for event in seen} == {row[0]}


def test_a_failing_handler_is_retried_a_bounded_number_of_times_then_dead_lettered(rabbit: Services) -> None:
    bus = rabbit.bus
    assert isinstance(bus, RabbitMqEventBus)
    attempts: list[str] = []

    def broken(event: PublishedEvent) -> None:
        attempts.append(event.id)
        raise ValueError("this handler cannot handle it")

    bus.subscribe(Handler("Broken", "ThingHappened", broken))
    stop = start(bus)
    try:
        publish_thing(rabbit, "T1")
        dead_letters = bus.options.dead_letter_queue

        def dead_lettered() -> bool:
            with channel_on(bus.options.url) as channel:
                return bool(channel.queue_declare(dead_letters, passive=True).method.message_count == 1)

        wait_until(dead_lettered, "the event in the dead-letter queue")
    finally:
        stop.set()
    assert len(attempts) == 3, "max handler attempts is 3 in this test"
    with channel_on(bus.options.url) as channel:
        method, properties, body = channel.basic_get(bus.options.dead_letter_queue, auto_ack=True)
    assert method is not None
    assert properties.message_id == attempts[0]
    assert body == b'{"ThingId":"T1"}'
    with rabbit.db.read() as connection:
        handled = connection.exec_driver_sql("SELECT count(*) FROM inbox_handled_events").scalar_one()
    assert handled == 0, "a failed attempt records nothing in the inbox"


def test_while_the_broker_is_away_publishing_fails_fast_and_the_outbox_keeps_the_events(
    database_url: str, tmp_path: Path, clock: ManualClock, names: BrokerNames
) -> None:
    closed_port = free_port()
    services = rabbitmq_services(database_url, tmp_path, clock, names, f"amqp://127.0.0.1:{closed_port}/%2F")
    try:
        pending_before = services.outbox.pending_count()
        for number in range(5):
            publish_thing(services, f"T{number}")
        assert services.outbox.pending_count() == pending_before + 5
        started = time.perf_counter()
        with pytest.raises(BusUnavailable):
            services.bus.publish([PublishedEvent("EVTX", "ThingHappened", {}, clock.now())])
        assert time.perf_counter() - started < 0.5, "in back-off a publish fails without waiting"
        assert services.outbox.relay_pending() == 0, "the relay stops while the bus is unavailable"
        assert services.outbox.pending_count() == pending_before + 5
        assert services.health.status() == "Degraded", "the APIs work on without the broker"
        assert services.health.failing() == ["bus"]
        assert _sent(services.metrics_registry, names.exchange, "") == 0
        assert _sent(services.metrics_registry, names.exchange, "unavailable") >= 6
    finally:
        services.close()


def test_the_relay_publishes_what_the_api_could_not(rabbit: Services, broker: str) -> None:
    bus = rabbit.bus
    assert isinstance(bus, RabbitMqEventBus)
    seen: list[str] = []
    bus.subscribe(Handler("Tests", "ThingHappened", lambda event: seen.append(event.payload["ThingId"])))
    # Rows committed without a publish (a process that died right after commit).
    with rabbit.db.transaction():
        rabbit.outbox.add(ThingHappened(thing_id="T1"))
        rabbit.outbox.add(ThingHappened(thing_id="T2"))
    # after_commit already published them; make them pending again to play the crash.
    with rabbit.db.transaction() as connection:
        connection.exec_driver_sql("UPDATE outbox_events SET published_at = NULL")
    stop = start(bus)
    try:
        relayed = rabbit.outbox.relay_pending()
        assert relayed >= 2
        wait_until(lambda: sorted(seen) == ["T1", "T2"], "the relayed events to be handled")
        wait_until(lambda: _count(bus, "duplicate") >= 2, "the repeated deliveries")
    finally:
        stop.set()
    assert sorted(seen) == ["T1", "T2"]
    assert rabbit.outbox.pending_count() == 0
    assert rabbit.health.status() == "Healthy"


def test_bus_metrics_count_confirms_consumption_and_lag(rabbit: Services) -> None:
    bus = rabbit.bus
    assert isinstance(bus, RabbitMqEventBus)
    bus.subscribe(Handler("Tests", "ThingHappened", lambda event: None))
    before = _sent(bus.metrics.registry, bus.options.exchange, "")
    stop = start(bus)
    try:
        publish_thing(rabbit, "T1")
        queue = f"{bus.options.queue_prefix}Tests.ThingHappened"
        wait_until(lambda: _consumed(bus.metrics.registry, queue, "handled") == 1, "the event to be handled")
    finally:
        stop.set()
    assert _sent(bus.metrics.registry, bus.options.exchange, "") == before + 1
    lag_count = bus.metrics.registry.get_sample_value(
        "messaging_consumer_lag_seconds_count",
        {"messaging_system": "rabbitmq", "messaging_destination_name": queue},
    )
    assert lag_count == 1
    up = bus.metrics.registry.get_sample_value(
        "messaging_client_connection_up", {"messaging_system": "rabbitmq", "connection_role": "publisher"}
    )
    assert up == 1


def _sent(registry: CollectorRegistry, exchange: str, error_type: str) -> float:
    value = registry.get_sample_value(
        "messaging_client_sent_messages_total",
        {"messaging_system": "rabbitmq", "messaging_destination_name": exchange, "error_type": error_type},
    )
    return value or 0.0


def _consumed(registry: CollectorRegistry, queue: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "messaging_client_consumed_messages_total",
        {"messaging_system": "rabbitmq", "messaging_destination_name": queue, "outcome": outcome},
    )
    return value or 0.0


def _count(bus: RabbitMqEventBus, outcome: str) -> float:
    return sum(_consumed(bus.metrics.registry, queue, outcome) for queue in bus.queues)


def test_a_database_outage_in_a_handler_is_waited_out_not_dead_lettered(rabbit: Services) -> None:
    bus = rabbit.bus
    assert isinstance(bus, RabbitMqEventBus)
    calls: list[str] = []

    def database_away_at_first(event: PublishedEvent) -> None:
        calls.append(event.id)
        if len(calls) <= 4:  # more often than the 3 attempts a failing handler gets
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("server away"))

    bus.subscribe(Handler("Tests", "ThingHappened", database_away_at_first))
    stop = start(bus)
    try:
        publish_thing(rabbit, "T1")
        queue = f"{bus.options.queue_prefix}Tests.ThingHappened"
        wait_until(
            lambda: _consumed(bus.metrics.registry, queue, "handled") == 1,
            "the event to be handled once the database is back",
        )
    finally:
        stop.set()
    assert len(calls) == 5
    assert _consumed(bus.metrics.registry, queue, "requeued") == 4
    assert _consumed(bus.metrics.registry, queue, "dead_lettered") == 0


def test_the_api_health_is_degraded_not_unhealthy_while_the_broker_is_away(
    database_url: str, tmp_path: Path, clock: ManualClock, names: BrokerNames
) -> None:
    services = rabbitmq_services(database_url, tmp_path, clock, names, f"amqp://127.0.0.1:{free_port()}/%2F")
    try:
        answer = testing.TestClient(create_consumer_app(services)).simulate_get("/health")
    finally:
        services.close()
    assert answer.status_code == 200
    assert answer.text == "Degraded"
