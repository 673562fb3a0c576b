"""The Azure Service Bus adapter of the event bus (azure-servicebus, AMQP 1.0).

Topology, as the original's: one topic (`default`) with duplicate detection on, and one
subscription per subscribed handler, named `<Module>.<EventName>` (cut to Service Bus's 50
characters, as the original does), whose only rule, named after the event, is a correlation
filter on the message's subject. Messages carry the event id as message id (duplicate detection
drops a second publish of one event), the event name as subject, the JSON payload as body, and
the trace context and creation time as application properties.

The SDK's clients, senders and receivers are not thread-safe: each publishing thread borrows a
sender with its own client from a small pool, and each subscription is received by a thread of
its own with its own client (the original runs one processor per subscription too).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusMessageBatch,
    ServiceBusReceivedMessage,
    ServiceBusReceiver,
    ServiceBusSender,
)
from azure.servicebus.exceptions import MessageSizeExceededError, ServiceBusError
from azure.servicebus.management import CorrelationRuleFilter, ServiceBusAdministrationClient

from backbone.platform.backoff import Backoff
from backbone.platform.bus_metrics import BusMetrics
from backbone.platform.db import DATABASE_UNAVAILABLE
from backbone.platform.events import BusUnavailable, Handler, Inbox, PublishedEvent

log = logging.getLogger(__name__)

SYSTEM = "servicebus"  # OpenTelemetry's messaging.system for Azure Service Bus
MAX_ENTITY_NAME_LENGTH = 50  # of a subscription or rule
CREATED_AT_PROPERTY = "backbone-created-at"
TRACEPARENT_PROPERTY = "traceparent"
MAX_DESCRIPTION_LENGTH = 1024  # of a dead-lettered message's error description
DEFAULT_RULE = "$Default"  # the catch-all rule every new subscription gets
DUPLICATE_DETECTION_WINDOW = timedelta(minutes=10)
LOCK_DURATION = timedelta(minutes=1)
# Anything of the SDK's (connection, authorisation, timeouts, entity not found) and the sockets under it.
SERVICE_BUS_ERRORS: tuple[type[BaseException], ...] = (ServiceBusError, AzureError, OSError)
# The database is away, not the handler wrong: such failures are retried in place, uncounted.
INFRASTRUCTURE_ERRORS = DATABASE_UNAVAILABLE


class PublishRefused(Exception):
    """Service Bus cannot take a message (larger than a batch may be)."""


@dataclass(frozen=True)
class ServiceBusOptions:
    """How to reach the namespace and how to behave on it."""

    connection_string: str = field(repr=False)
    topic: str = "default"
    manage_topology: bool = True
    max_handler_attempts: int = 5
    prefetch: int = 10
    retry_total: int = 2
    retry_backoff_s: float = 0.2
    retry_backoff_max_s: float = 10.0
    # A network operation that takes longer has failed (the SDK then retries it).
    operation_timeout_s: float = 5.0
    depth_poll_s: float = 5.0

    @property
    def endpoint(self) -> str:
        """The namespace's endpoint, for logs: the connection string without its key."""
        for part in self.connection_string.split(";"):
            name, _, value = part.partition("=")
            if name.strip().lower() == "endpoint":
                return value.strip()
        return "(no endpoint)"


def client_options(options: ServiceBusOptions, *, for_health: bool = False) -> dict[str, Any]:
    """The SDK's retry policy: exponential, bounded; none for the health check, whose probe must
    answer within the health timeout instead of retrying behind it."""
    return {
        "retry_total": 0 if for_health else options.retry_total,
        "retry_backoff_factor": options.retry_backoff_s,
        "retry_backoff_max": options.retry_backoff_max_s,
        "retry_mode": "exponential",
    }


def subscription_name(handler: Handler) -> str:
    """`<Module>.<EventName>`, cut to the 50 characters Service Bus allows (as the original)."""
    return handler.queue[:MAX_ENTITY_NAME_LENGTH]


@dataclass(frozen=True)
class Subscription:
    """A handler's subscription: its name and the rule that lets exactly its event in."""

    name: str
    rule_name: str
    event_name: str

    @property
    def rule_filter(self) -> CorrelationRuleFilter:
        return CorrelationRuleFilter(label=self.event_name)


def subscriptions_of(handlers: Iterable[Handler]) -> list[Subscription]:
    """The subscriptions of the handlers; two handlers whose names cut to one name are refused."""
    subscriptions: dict[str, Subscription] = {}
    for handler in handlers:
        name = subscription_name(handler)
        if name in subscriptions:
            raise ValueError(f"two handlers share the subscription {name}: {handler.queue} and another")
        subscriptions[name] = Subscription(
            name, handler.event_name[:MAX_ENTITY_NAME_LENGTH], handler.event_name
        )
    return list(subscriptions.values())


def to_message(event: PublishedEvent) -> ServiceBusMessage:
    """The message of an event: id = event id, subject = event name, body = the JSON payload."""
    properties: dict[str | bytes, Any] = {CREATED_AT_PROPERTY: event.created_at.isoformat()}
    if event.traceparent:
        properties[TRACEPARENT_PROPERTY] = event.traceparent
    return ServiceBusMessage(
        orjson.dumps(event.payload),
        message_id=event.id,
        subject=event.name,
        content_type="application/json",
        application_properties=properties,
    )


def event_from(message: ServiceBusReceivedMessage, handler: Handler) -> PublishedEvent:
    """The event a received message carries; raise ValueError, TypeError or KeyError if malformed."""
    if not message.message_id:
        raise ValueError("the message has no message id (the event id)")
    properties = {_text(key): value for key, value in (message.application_properties or {}).items()}
    created = properties.get(CREATED_AT_PROPERTY)
    created_at = (
        datetime.fromisoformat(_text(created))
        if created is not None
        else (message.enqueued_time_utc or datetime.now(UTC))
    )
    payload = orjson.loads(b"".join(message.body))
    if not isinstance(payload, dict):
        raise TypeError("the message body is not a JSON object")
    traceparent = properties.get(TRACEPARENT_PROPERTY)
    return PublishedEvent(
        id=message.message_id,
        name=message.subject or handler.event_name,
        payload=payload,
        created_at=created_at,
        traceparent=_text(traceparent) if traceparent is not None else None,
    )


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class BatchFactory(Protocol):
    def __call__(self) -> ServiceBusMessageBatch: ...


def batches(messages: Sequence[ServiceBusMessage], new_batch: BatchFactory) -> list[ServiceBusMessageBatch]:
    """Pack the messages, in order, into as few batches as their size limit allows."""
    packed: list[ServiceBusMessageBatch] = []
    current: ServiceBusMessageBatch | None = None
    for message in messages:
        if current is not None:
            try:
                current.add_message(message)
                continue
            except MessageSizeExceededError:
                pass
        current = new_batch()
        try:
            current.add_message(message)
        except MessageSizeExceededError as error:
            limit = current.max_size_in_bytes
            raise PublishRefused(
                f"event {message.message_id} is larger than a batch ({limit} bytes)"
            ) from error
        packed.append(current)
    return packed


class Settlement(enum.Enum):
    """What becomes of a delivery whose handling failed."""

    RETRY = "retried"  # abandoned: Service Bus delivers it again, counting the attempt
    DEAD_LETTER = "dead_lettered"
    HOLD = "requeued"  # kept locked and handled again after a pause, uncounted


def after_failure(error: BaseException, delivery_count: int | None, max_attempts: int) -> Settlement:
    """Decide about a failed handling: a database that is away is not the handler's fault and is
    waited out; a handler that failed on its `max_attempts`-th delivery dead-letters the message.

    `delivery_count` is the AMQP header's: the deliveries before this one (0 on the first).
    """
    if isinstance(error, INFRASTRUCTURE_ERRORS):
        return Settlement.HOLD
    attempt = (delivery_count or 0) + 1
    return Settlement.DEAD_LETTER if attempt >= max_attempts else Settlement.RETRY


class _Publisher:
    """A client with its topic sender, used by one thread at a time."""

    def __init__(self, client: ServiceBusClient, sender: ServiceBusSender) -> None:
        self.client = client
        self.sender = sender

    def close(self) -> None:
        _close_quietly(self.sender)
        _close_quietly(self.client)


class AzureServiceBusEventBus:
    """Publish events to a Service Bus topic; in the worker, receive each handler's subscription."""

    def __init__(self, options: ServiceBusOptions, inbox: Inbox, metrics: BusMetrics) -> None:
        self.options = options
        self._inbox = inbox
        self.metrics = metrics
        self._handlers: dict[str, Handler] = {}
        self._pool: queue.LifoQueue[_Publisher] = queue.LifoQueue()
        self._backoff = Backoff(options.retry_backoff_s, options.retry_backoff_max_s)
        self._topology_declared = False
        self._health_client: ServiceBusClient | None = None
        self._receivers_connected = 0
        self._receivers_lock = threading.Lock()
        self.metrics.connection_up.labels(SYSTEM, "publisher").set(0)

    # --- topology ---------------------------------------------------------------------------

    def subscribe(self, handler: Handler) -> None:
        self._handlers[subscription_name(handler)] = handler
        subscriptions_of(self._handlers.values())  # refuses two handlers sharing a cut name
        self._topology_declared = False

    @property
    def subscriptions(self) -> list[Subscription]:
        return subscriptions_of(self._handlers.values())

    def declare(self) -> None:
        """Create the topic, the subscriptions and their rules where missing (idempotent), so no
        published event finds a topic without its subscriptions (it would be dropped)."""
        if not self.options.manage_topology:
            return
        admin = self._admin_client()
        with admin:
            topic = self.options.topic
            _create_if_missing(
                admin.create_topic,
                topic,
                requires_duplicate_detection=True,
                duplicate_detection_history_time_window=DUPLICATE_DETECTION_WINDOW,
            )
            for subscription in self.subscriptions:
                _create_if_missing(
                    admin.create_subscription,
                    topic,
                    subscription.name,
                    max_delivery_count=self.options.max_handler_attempts,
                    dead_lettering_on_message_expiration=True,
                    lock_duration=LOCK_DURATION,
                )
                with contextlib.suppress(ResourceNotFoundError):
                    admin.delete_rule(topic, subscription.name, DEFAULT_RULE)
                _create_if_missing(
                    admin.create_rule,
                    topic,
                    subscription.name,
                    subscription.rule_name,
                    filter=subscription.rule_filter,
                )

    def _admin_client(self) -> ServiceBusAdministrationClient:
        return ServiceBusAdministrationClient.from_connection_string(
            self.options.connection_string, **client_options(self.options)
        )

    def _client(self, *, for_health: bool = False) -> ServiceBusClient:
        return ServiceBusClient.from_connection_string(
            self.options.connection_string,
            socket_timeout=self.options.operation_timeout_s,
            **client_options(self.options, for_health=for_health),
        )

    # --- publishing -------------------------------------------------------------------------

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        """Send the events in as few batches as fit; raise if Service Bus did not take them all."""
        if not events:
            return
        try:
            publisher = self._borrow()
        except BusUnavailable:
            self._count_sent(len(events), "unavailable")
            raise
        started = time.perf_counter()
        try:
            for batch in batches(
                [to_message(event) for event in events], publisher.sender.create_message_batch
            ):
                publisher.sender.send_messages(batch, timeout=self.options.operation_timeout_s)
        except PublishRefused:
            self._count_sent(len(events), "too_large")
            self._pool.put(publisher)
            raise
        except SERVICE_BUS_ERRORS as error:
            # The SDK has retried already; the others in the pool share this one's fate.
            publisher.close()
            self._discard_pool()
            self._backoff.failed()
            self._count_sent(len(events), type(error).__name__)
            raise BusUnavailable(f"publishing failed: {_one_line(error)}") from error
        self.metrics.operation_duration.labels(SYSTEM, "publish").observe(time.perf_counter() - started)
        self._count_sent(len(events), "")
        self._pool.put(publisher)

    def ping(self) -> None:
        """Raise unless Service Bus takes a link to the topic right now (one try, no retries)."""
        client = self._health_client or self._client(for_health=True)
        try:
            with client.get_topic_sender(self.options.topic) as sender:
                sender.create_message_batch()
        except SERVICE_BUS_ERRORS as error:
            self._health_client = None
            _close_quietly(client)
            raise BusUnavailable(
                f"Service Bus {self.options.endpoint} is unreachable: {_one_line(error)}"
            ) from error
        self._health_client = client

    def close(self) -> None:
        self._discard_pool()
        if self._health_client is not None:
            _close_quietly(self._health_client)
            self._health_client = None

    def _borrow(self) -> _Publisher:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        if not self._backoff.ready():
            # Fail fast while Service Bus is known to be away: the request must not wait for it.
            raise BusUnavailable(
                f"Service Bus is unreachable; next attempt in {self._backoff.remaining_s():.1f} s"
            )
        client = self._client()
        try:
            if not self._topology_declared:
                self.declare()
                self._topology_declared = True
            sender = client.get_topic_sender(self.options.topic)
            sender.create_message_batch()  # opens the link now, so a failure is a connection failure
        except SERVICE_BUS_ERRORS as error:
            _close_quietly(client)
            self._backoff.failed()
            self.metrics.connection_up.labels(SYSTEM, "publisher").set(0)
            raise BusUnavailable(
                f"cannot reach Service Bus {self.options.endpoint}: {_one_line(error)}"
            ) from error
        self._backoff.succeeded()
        self.metrics.connection_up.labels(SYSTEM, "publisher").set(1)
        return _Publisher(client, sender)

    def _discard_pool(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break
        self._topology_declared = False
        self.metrics.connection_up.labels(SYSTEM, "publisher").set(0)

    def _count_sent(self, count: int, error_type: str) -> None:
        self.metrics.sent_messages.labels(SYSTEM, self.options.topic, error_type).inc(count)

    # --- consuming --------------------------------------------------------------------------

    def consume(self, stop: threading.Event) -> None:
        """Run the subscribed handlers on received events until `stop` is set (the worker's loop)."""
        self._declare_until_done(stop)
        threads = [
            threading.Thread(
                target=self._receive_until, args=(stop, name, handler), name=f"receiver-{name}", daemon=True
            )
            for name, handler in self._handlers.items()
        ]
        if self.options.manage_topology:
            threads.append(
                threading.Thread(target=self._watch_depth, args=(stop,), name="depth", daemon=True)
            )
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def consumers_ping(self) -> None:
        """Raise unless every subscription has a connected receiver (the worker's health)."""
        with self._receivers_lock:
            connected = self._receivers_connected
        if connected < len(self._handlers):
            raise BusUnavailable(f"{connected} of {len(self._handlers)} subscriptions are being received")

    def _declare_until_done(self, stop: threading.Event) -> None:
        backoff = Backoff(self.options.retry_backoff_s, self.options.retry_backoff_max_s)
        while not stop.is_set():
            try:
                self.declare()
                return
            except SERVICE_BUS_ERRORS as error:
                backoff.failed()
                log.warning(
                    "cannot declare the topology (%s); retrying in %.1f s",
                    _one_line(error),
                    backoff.remaining_s(),
                )
                stop.wait(backoff.remaining_s())

    def _receive_until(self, stop: threading.Event, name: str, handler: Handler) -> None:
        backoff = Backoff(self.options.retry_backoff_s, self.options.retry_backoff_max_s)
        while not stop.is_set():
            client = self._client()
            try:
                with client.get_subscription_receiver(
                    self.options.topic, name, prefetch_count=self.options.prefetch
                ) as receiver:
                    self._receiver_connected(+1)
                    try:
                        backoff.succeeded()
                        while not stop.is_set():
                            for message in receiver.receive_messages(
                                max_message_count=self.options.prefetch, max_wait_time=1
                            ):
                                self._deliver(receiver, message, handler, name, stop)
                    finally:
                        self._receiver_connected(-1)
            except SERVICE_BUS_ERRORS as error:
                # Unsettled messages come back when their locks expire; the inbox absorbs repeats.
                backoff.failed()
                log.warning(
                    "receiving %s failed (%s); again in %.1f s", name, _one_line(error), backoff.remaining_s()
                )
                stop.wait(backoff.remaining_s())
            finally:
                _close_quietly(client)

    def _receiver_connected(self, change: int) -> None:
        with self._receivers_lock:
            self._receivers_connected += change
            self.metrics.connection_up.labels(SYSTEM, "consumer").set(
                1 if self._receivers_connected == len(self._handlers) else 0
            )

    def _deliver(
        self,
        receiver: ServiceBusReceiver,
        message: ServiceBusReceivedMessage,
        handler: Handler,
        name: str,
        stop: threading.Event,
    ) -> None:
        try:
            event = event_from(message, handler)
        except (ValueError, TypeError, KeyError) as error:
            log.error("malformed message on %s dead-lettered: %s", name, error)
            receiver.dead_letter_message(
                message, reason="MalformedMessage", error_description=str(error)[:1024]
            )
            self.metrics.consumed_messages.labels(SYSTEM, name, Settlement.DEAD_LETTER.value).inc()
            return
        self.metrics.consumer_lag.labels(SYSTEM, name).observe(
            max(0.0, time.time() - event.created_at.timestamp())
        )
        pause = Backoff(self.options.retry_backoff_s, min(self.options.retry_backoff_max_s, 5.0))
        while True:
            started = time.perf_counter()
            try:
                handled = self._inbox.handle_once(handler, event)
            except Exception as error:
                settlement = after_failure(error, message.delivery_count, self.options.max_handler_attempts)
                self.metrics.consumed_messages.labels(SYSTEM, name, settlement.value).inc()
                if settlement is Settlement.HOLD:
                    pause.failed()
                    log.warning(
                        "%s could not handle %s (%r); again in %.1f s",
                        name,
                        event.id,
                        error,
                        pause.remaining_s(),
                    )
                    if stop.wait(pause.remaining_s()):
                        receiver.abandon_message(message)
                        return
                    receiver.renew_message_lock(message)
                    continue
                self._settle_failure(receiver, message, settlement, name, event.id, error)
                return
            self.metrics.operation_duration.labels(SYSTEM, "process").observe(time.perf_counter() - started)
            receiver.complete_message(message)
            self.metrics.consumed_messages.labels(SYSTEM, name, "handled" if handled else "duplicate").inc()
            return

    def _settle_failure(
        self,
        receiver: ServiceBusReceiver,
        message: ServiceBusReceivedMessage,
        settlement: Settlement,
        name: str,
        event_id: str,
        error: Exception,
    ) -> None:
        attempt = (message.delivery_count or 0) + 1
        if settlement is Settlement.DEAD_LETTER:
            log.error("%s failed on %s %d times; dead-lettered", name, event_id, attempt, exc_info=error)
            receiver.dead_letter_message(
                message, reason="HandlerFailed", error_description=_one_line(error)[:1024]
            )
        else:
            log.warning("%s failed on %s (attempt %d); retrying", name, event_id, attempt, exc_info=error)
            receiver.abandon_message(message)

    def _watch_depth(self, stop: threading.Event) -> None:
        """Poll the active-message count of every subscription into the depth gauge."""
        while not stop.wait(self.options.depth_poll_s):
            try:
                with self._admin_client() as admin:
                    for name in self._handlers:
                        properties = admin.get_subscription_runtime_properties(self.options.topic, name)
                        self.metrics.queue_depth.labels(SYSTEM, name).set(
                            properties.active_message_count or 0
                        )
            except SERVICE_BUS_ERRORS as error:
                log.debug("subscription depth unavailable: %s", _one_line(error))


def _create_if_missing(create: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(ResourceExistsError):
        create(*args, **kwargs)


def _close_quietly(client: ServiceBusClient | ServiceBusSender) -> None:
    with contextlib.suppress(*SERVICE_BUS_ERRORS):
        client.close()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
