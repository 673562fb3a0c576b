"""The RabbitMQ adapter of the event bus (AMQP 0-9-1 through pika's blocking connection).

Topology, as the original's: a durable direct exchange (`enmeshed`), one durable queue per
subscribed handler named `<Module>.<EventName>` and bound by the event name, and the dead-letter
exchange and queue `deadletterexchange.<exchange>` / `deadletterqueue.<exchange>`. Messages are
persistent, carry the event id as message id and the trace context in the `traceparent` header,
and are published with confirms: `publish` returns only once the broker has taken them.

pika's connections are not thread-safe, so each publishing thread borrows a connection from a
small pool, and each consumer thread owns one.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exchange_type import ExchangeType
from pika.spec import Basic, BasicProperties

from backbone.platform.backoff import Backoff
from backbone.platform.bus_metrics import BusMetrics
from backbone.platform.db import DATABASE_UNAVAILABLE
from backbone.platform.events import BusUnavailable, Handler, Inbox, PublishedEvent

log = logging.getLogger(__name__)

SYSTEM = "rabbitmq"
# The type stubs declare these enum members without values, which mypy misreads.
DIRECT: Any = ExchangeType.direct
FANOUT: Any = ExchangeType.fanout
PERSISTENT = 2  # AMQP delivery mode: written to disk by a durable queue
ATTEMPTS_HEADER = "x-backbone-attempts"
CREATED_AT_HEADER = "x-backbone-created-at"
# Connection trouble of any kind: the broker is away, the socket broke, the channel was closed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)
# The database is away, not the handler wrong: such failures do not count as handler attempts.
INFRASTRUCTURE_ERRORS = DATABASE_UNAVAILABLE


class PublishRefused(Exception):
    """The broker refused (nacked) a message."""


@dataclass(frozen=True)
class RabbitMqOptions:
    """How to reach the broker and how to behave on it."""

    url: str
    exchange: str = "enmeshed"
    queue_prefix: str = ""
    max_handler_attempts: int = 5
    prefetch: int = 20
    consumer_threads: int = 2
    connect_timeout_s: float = 2.0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    heartbeat_s: int = 30
    depth_poll_s: float = 5.0

    @property
    def dead_letter_exchange(self) -> str:
        return f"deadletterexchange.{self.exchange}"

    @property
    def dead_letter_queue(self) -> str:
        return f"deadletterqueue.{self.exchange}"


class RabbitMqEventBus:
    """Publish events to RabbitMQ; in the worker, consume them and run the handlers once each."""

    def __init__(self, options: RabbitMqOptions, inbox: Inbox, metrics: BusMetrics) -> None:
        self.options = options
        self._inbox = inbox
        self.metrics = metrics
        self._handlers: dict[str, Handler] = {}
        self._pool: queue.LifoQueue[_Publisher] = queue.LifoQueue()
        self._backoff = Backoff(options.reconnect_min_s, options.reconnect_max_s)
        self._topology_declared = False
        self._consumers_connected = 0
        self._consumers_lock = threading.Lock()
        self.metrics.connection_up.labels(SYSTEM, "publisher").set(0)

    # --- topology ---------------------------------------------------------------------------

    def subscribe(self, handler: Handler) -> None:
        self._handlers[self.queue_name(handler)] = handler
        self._topology_declared = False

    def queue_name(self, handler: Handler) -> str:
        return self.options.queue_prefix + handler.queue

    @property
    def queues(self) -> list[str]:
        """The queues of the subscribed handlers, then the dead-letter queue."""
        return [*self._handlers, self.options.dead_letter_queue]

    @property
    def handlers(self) -> list[Handler]:
        return list(self._handlers.values())

    def declare(self, channel: BlockingChannel) -> None:
        """Declare exchanges and queues (idempotent), so no published event finds a missing queue."""
        options = self.options
        channel.exchange_declare(options.exchange, DIRECT, durable=True)
        channel.exchange_declare(options.dead_letter_exchange, FANOUT, durable=True)
        channel.queue_declare(options.dead_letter_queue, durable=True)
        channel.queue_bind(options.dead_letter_queue, options.dead_letter_exchange)
        for queue_name, handler in self._handlers.items():
            channel.queue_declare(
                queue_name, durable=True, arguments={"x-dead-letter-exchange": options.dead_letter_exchange}
            )
            channel.queue_bind(queue_name, options.exchange, routing_key=handler.event_name)

    # --- publishing -------------------------------------------------------------------------

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        """Hand the events to the broker and wait for its confirms; raise if it did not take them all."""
        if not events:
            return
        for attempt in (1, 2):
            try:
                publisher = self._borrow()
            except BusUnavailable:
                self._count_sent(len(events), "unavailable")
                raise
            started = time.perf_counter()
            try:
                for event in events:
                    publisher.publish(self.options.exchange, event)
            except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as error:
                self._count_sent(len(events), "nack")
                self._return(publisher)
                raise PublishRefused(str(error)) from error
            except CONNECTION_ERRORS as error:
                # A pooled connection the broker dropped meanwhile fails on first use; the
                # other pooled ones share its fate, so all go and one fresh connection is tried.
                publisher.close()
                self._discard_pool()
                if attempt == 2:
                    self._count_sent(len(events), type(error).__name__)
                    raise BusUnavailable(f"publishing failed: {error!r}") from error
                continue
            self.metrics.operation_duration.labels(SYSTEM, "publish").observe(time.perf_counter() - started)
            self._count_sent(len(events), "")
            self._return(publisher)
            return

    def ping(self) -> None:
        """Raise unless this process can talk to the broker right now."""
        publisher = self._borrow()
        try:
            publisher.connection.process_data_events(time_limit=0)
        except CONNECTION_ERRORS:
            publisher.close()
            self._discard_pool()
            raise
        self._return(publisher)

    def close(self) -> None:
        self._discard_pool()

    def _borrow(self) -> _Publisher:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        if not self._backoff.ready():
            # Fail fast while the broker is known to be away: the request must not wait for it.
            raise BusUnavailable(
                f"the broker is unreachable; next attempt in {self._backoff.remaining_s():.1f} s"
            )
        try:
            connection = self._connect("publisher")
            channel = connection.channel()
            if not self._topology_declared:
                self.declare(channel)
                self._topology_declared = True
            channel.confirm_delivery()
        except CONNECTION_ERRORS as error:
            self._backoff.failed()
            self.metrics.connection_up.labels(SYSTEM, "publisher").set(0)
            raise BusUnavailable(f"cannot connect to the broker: {error!r}") from error
        self._backoff.succeeded()
        self.metrics.connection_up.labels(SYSTEM, "publisher").set(1)
        return _Publisher(connection, channel)

    def _return(self, publisher: _Publisher) -> None:
        if publisher.connection.is_open:
            self._pool.put(publisher)

    def _discard_pool(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break
        self._topology_declared = False
        self.metrics.connection_up.labels(SYSTEM, "publisher").set(0)

    def _count_sent(self, count: int, error_type: str) -> None:
        self.metrics.sent_messages.labels(SYSTEM, self.options.exchange, error_type).inc(count)

    def _connect(self, role: str) -> BlockingConnection:
        parameters = pika.URLParameters(self.options.url)
        parameters.socket_timeout = self.options.connect_timeout_s
        parameters.stack_timeout = self.options.connect_timeout_s * 2
        parameters.blocked_connection_timeout = self.options.connect_timeout_s
        parameters.connection_attempts = 1
        parameters.heartbeat = self.options.heartbeat_s
        parameters.client_properties = {"connection_name": f"backbone {role} pid {os.getpid()}"}
        return BlockingConnection(parameters)

    # --- consuming --------------------------------------------------------------------------

    def consume(self, stop: threading.Event) -> None:
        """Run the subscribed handlers on delivered events until `stop` is set (the worker's loop)."""
        threads = [
            threading.Thread(target=self._consume_until, args=(stop,), name=f"consumer-{number}", daemon=True)
            for number in range(self.options.consumer_threads)
        ]
        threads.append(
            threading.Thread(target=self._watch_depth, args=(stop,), name="queue-depth", daemon=True)
        )
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def consumers_ping(self) -> None:
        """Raise unless every consumer thread holds a connection (the worker's health)."""
        with self._consumers_lock:
            connected = self._consumers_connected
        if connected < self.options.consumer_threads:
            raise BusUnavailable(f"{connected} of {self.options.consumer_threads} consumers are connected")

    def _consume_until(self, stop: threading.Event) -> None:
        backoff = Backoff(self.options.reconnect_min_s, self.options.reconnect_max_s)
        while not stop.is_set():
            try:
                connection = self._connect("consumer")
            except CONNECTION_ERRORS as error:
                backoff.failed()
                log.warning("consumer cannot connect (%r); retrying in %.1f s", error, backoff.remaining_s())
                stop.wait(backoff.remaining_s())
                continue
            backoff.succeeded()
            self._consumer_connected(+1)
            try:
                channel = connection.channel()
                self.declare(channel)
                channel.basic_qos(prefetch_count=self.options.prefetch)
                for queue_name, handler in self._handlers.items():
                    channel.basic_consume(queue_name, self._on_message_for(handler, queue_name, stop))
                log.info("consuming %d queue(s) on exchange %s", len(self._handlers), self.options.exchange)
                while not stop.is_set():
                    connection.process_data_events(time_limit=1)
            except CONNECTION_ERRORS as error:
                # Unacknowledged deliveries go back to their queues; the inbox absorbs repeats.
                log.warning("consumer connection lost (%r); reconnecting", error)
            finally:
                self._consumer_connected(-1)
                _close_quietly(connection)

    def _consumer_connected(self, change: int) -> None:
        with self._consumers_lock:
            self._consumers_connected += change
            self.metrics.connection_up.labels(SYSTEM, "consumer").set(
                1 if self._consumers_connected == self.options.consumer_threads else 0
            )

    def _on_message_for(
        self, handler: Handler, queue_name: str, stop: threading.Event
    ) -> Callable[[BlockingChannel, Basic.Deliver, BasicProperties, bytes], None]:
        infrastructure_pause = Backoff(self.options.reconnect_min_s, min(self.options.reconnect_max_s, 5.0))

        def on_message(
            channel: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes
        ) -> None:
            tag = method.delivery_tag or 0
            try:
                event = _event_from(handler, properties, body)
            except (ValueError, TypeError, KeyError) as error:
                log.error("malformed message on %s dead-lettered: %s", queue_name, error)
                channel.basic_reject(tag, requeue=False)
                self.metrics.consumed_messages.labels(SYSTEM, queue_name, "dead_lettered").inc()
                return
            self.metrics.consumer_lag.labels(SYSTEM, queue_name).observe(
                max(0.0, time.time() - event.created_at.timestamp())
            )
            started = time.perf_counter()
            try:
                handled = self._inbox.handle_once(handler, event)
            except INFRASTRUCTURE_ERRORS as error:
                infrastructure_pause.failed()
                log.warning(
                    "%s could not handle %s (%r); back in the queue, pausing %.1f s",
                    queue_name,
                    event.id,
                    error,
                    infrastructure_pause.remaining_s(),
                )
                channel.basic_nack(tag, requeue=True)
                self.metrics.consumed_messages.labels(SYSTEM, queue_name, "requeued").inc()
                stop.wait(infrastructure_pause.remaining_s())
                return
            except Exception:
                infrastructure_pause.succeeded()
                self._retry_or_dead_letter(channel, method, properties, body, queue_name, event.id)
                return
            infrastructure_pause.succeeded()
            self.metrics.operation_duration.labels(SYSTEM, "process").observe(time.perf_counter() - started)
            channel.basic_ack(tag)
            outcome = "handled" if handled else "duplicate"
            self.metrics.consumed_messages.labels(SYSTEM, queue_name, outcome).inc()

        return on_message

    def _retry_or_dead_letter(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
        queue_name: str,
        event_id: str,
    ) -> None:
        headers = dict(properties.headers or {})
        attempts = int(headers.get(ATTEMPTS_HEADER, 1))
        if attempts >= self.options.max_handler_attempts:
            log.exception("%s failed on %s %d times; dead-lettered", queue_name, event_id, attempts)
            channel.basic_reject(method.delivery_tag or 0, requeue=False)
            self.metrics.consumed_messages.labels(SYSTEM, queue_name, "dead_lettered").inc()
            return
        log.warning("%s failed on %s (attempt %d); retrying", queue_name, event_id, attempts, exc_info=True)
        headers[ATTEMPTS_HEADER] = attempts + 1
        properties.headers = headers
        # The copy goes to the back of this queue only (default exchange); the original is
        # acknowledged after it, on the same channel, so a lost connection in between repeats
        # the message rather than losing it.
        channel.basic_publish("", queue_name, body, properties)
        channel.basic_ack(method.delivery_tag or 0)
        self.metrics.consumed_messages.labels(SYSTEM, queue_name, "retried").inc()

    def _watch_depth(self, stop: threading.Event) -> None:
        """Poll the ready-message count of every queue into the depth gauge."""
        connection: BlockingConnection | None = None
        while not stop.wait(self.options.depth_poll_s):
            try:
                if connection is None or connection.is_closed:
                    connection = self._connect("monitor")
                channel = connection.channel()
                for queue_name in self.queues:
                    declared = channel.queue_declare(queue_name, passive=True)
                    self.metrics.queue_depth.labels(SYSTEM, queue_name).set(
                        declared.method.message_count or 0
                    )
                channel.close()
            except CONNECTION_ERRORS as error:
                log.debug("queue depth unavailable: %r", error)
                if connection is not None:
                    _close_quietly(connection)
                connection = None
        if connection is not None:
            _close_quietly(connection)


class _Publisher:
    """One connection with a confirming channel, used by one thread at a time."""

    def __init__(self, connection: BlockingConnection, channel: BlockingChannel) -> None:
        self.connection = connection
        self.channel = channel

    def publish(self, exchange: str, event: PublishedEvent) -> None:
        headers: dict[str, Any] = {CREATED_AT_HEADER: event.created_at.isoformat()}
        if event.traceparent:
            headers["traceparent"] = event.traceparent
        self.channel.basic_publish(
            exchange,
            event.name,
            orjson.dumps(event.payload),
            BasicProperties(
                content_type="application/json",
                delivery_mode=PERSISTENT,
                message_id=event.id,
                type=event.name,
                timestamp=int(event.created_at.timestamp()),
                headers=headers,
            ),
        )

    def close(self) -> None:
        _close_quietly(self.connection)


def _event_from(handler: Handler, properties: BasicProperties, body: bytes) -> PublishedEvent:
    if not properties.message_id:
        raise ValueError("the message has no message id (the event id)")
    headers = properties.headers or {}
    created_text = headers.get(CREATED_AT_HEADER)
    if isinstance(created_text, bytes):
        created_text = created_text.decode("utf-8")
    created_at = (
        datetime.fromisoformat(created_text)
        if isinstance(created_text, str)
        else datetime.fromtimestamp(properties.timestamp or time.time(), UTC)
    )
    payload = orjson.loads(body)
    if not isinstance(payload, dict):
        raise TypeError("the message body is not a JSON object")
    traceparent = headers.get("traceparent")
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode("ascii")
    return PublishedEvent(
        id=properties.message_id,
        name=properties.type or handler.event_name,
        payload=payload,
        created_at=created_at,
        traceparent=traceparent if isinstance(traceparent, str) else None,
    )


def _close_quietly(connection: BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except CONNECTION_ERRORS:
        pass
