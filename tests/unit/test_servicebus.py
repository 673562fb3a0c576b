"""The Azure Service Bus adapter, checked offline with the real SDK (no namespace runs here): the
message of an event through the SDK's own AMQP encoding and back, batches under their size limit,
the subscriptions and their filters, the dead-letter decision, and the retry policies."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy.exc
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusMessageBatch,
    ServiceBusReceivedMessage,
)
from azure.servicebus._pyamqp._decode import decode_payload
from azure.servicebus._pyamqp._encode import encode_payload
from azure.servicebus._transport._pyamqp_transport import PyamqpTransport
from azure.servicebus.amqp import AmqpMessageHeader
from azure.servicebus.management import CorrelationRuleFilter

from backbone.platform.events import Handler, PublishedEvent
from backbone.platform.servicebus import (
    PublishRefused,
    ServiceBusOptions,
    Settlement,
    after_failure,
    batches,
    client_options,
    event_from,
    subscriptions_of,
    to_message,
)
from backbone.settings import Settings, SettingsError
from backbone.wiring import build_services

KEY = "a-shared-access-key-that-must-never-be-logged="
CONNECTION_STRING = (
    f"Endpoint=sb://backbone.servicebus.windows.net/;SharedAccessKeyName=backbone;SharedAccessKey={KEY}"
)
EVENT = PublishedEvent(
    "EVT0123456789abcdefg",
    "MessageCreated",
    {"Id": "MSG0123456789abcdefg", "Recipients": ["did:e:localhost:dids:0123"], "Text": "Grüße"},
    datetime(2024, 5, 1, 12, 30, 5, 123000, tzinfo=UTC),
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)


def _received(
    event: PublishedEvent | ServiceBusMessage, *, delivery_count: int = 0
) -> ServiceBusReceivedMessage:
    """The message as a receiver gets it: encoded by the SDK as it sends, decoded as it receives."""
    sent = to_message(event) if isinstance(event, PublishedEvent) else event
    message = sent.raw_amqp_message
    message.header = AmqpMessageHeader(delivery_count=delivery_count)
    encoded = bytearray()
    encode_payload(encoded, PyamqpTransport.to_outgoing_amqp_message(message))
    return ServiceBusReceivedMessage(decode_payload(memoryview(bytes(encoded))), receiver=None)


def _handler(module: str, event_name: str) -> Handler:
    return Handler(module, event_name, lambda event: None)


def test_an_event_travels_with_its_id_as_message_id_and_its_name_as_subject() -> None:
    received = _received(EVENT)

    assert received.message_id == EVENT.id  # duplicate detection drops a second publish of it
    assert received.subject == "MessageCreated"  # what the subscriptions' filters match
    assert received.content_type == "application/json"
    assert event_from(received, _handler("Synchronization", "MessageCreated")) == EVENT


def test_an_event_without_trace_travels_without_one() -> None:
    event = PublishedEvent("EVT1", "TierCreated", {"Id": "TIR1"}, EVENT.created_at)

    received = _received(event)

    assert b"traceparent" not in (received.application_properties or {})
    assert event_from(received, _handler("Quotas", "TierCreated")) == event


@pytest.mark.parametrize(
    ("body", "problem"), [(b"not json", ValueError), (b'["not", "an", "object"]', TypeError)]
)
def test_a_message_that_carries_no_event_is_refused(body: bytes, problem: type[Exception]) -> None:
    foreign = ServiceBusMessage(body, message_id="M1", subject="TierCreated")

    with pytest.raises(problem):
        event_from(_received(foreign), _handler("Quotas", "TierCreated"))


def test_events_are_packed_in_order_into_as_few_batches_as_the_size_limit_allows() -> None:
    events = [
        PublishedEvent(f"EVT{number:017d}", "TierCreated", {"Id": "x" * 100}, EVENT.created_at)
        for number in range(10)
    ]
    made: list[ServiceBusMessageBatch] = []

    def new_batch() -> ServiceBusMessageBatch:
        made.append(ServiceBusMessageBatch(max_size_in_bytes=1024))
        return made[-1]

    packed = batches([to_message(event) for event in events], new_batch)

    assert packed == made
    assert [len(batch) for batch in packed] == [4, 4, 2]
    assert all(batch.size_in_bytes <= 1024 for batch in packed)
    ids = [message.message_id for batch in packed for message in batch._messages]
    assert ids == [event.id for event in events]


def test_an_event_larger_than_a_batch_is_refused_not_cut() -> None:
    huge = PublishedEvent("EVT1", "TierCreated", {"Id": "x" * 2000}, EVENT.created_at)

    with pytest.raises(PublishRefused, match="larger than a batch"):
        batches([to_message(huge)], lambda: ServiceBusMessageBatch(max_size_in_bytes=1024))


def test_each_handler_has_a_subscription_whose_one_rule_lets_only_its_event_in() -> None:
    with tempfile.TemporaryDirectory() as directory:
        services = build_services(
            Settings(var_dir=Path(directory), database_url=f"sqlite:///{directory}/x.sqlite3")
        )
        services.close()

    subscriptions = subscriptions_of(services.handlers)

    assert len(subscriptions) == len(services.handlers)
    assert len({subscription.name for subscription in subscriptions}) == len(subscriptions)
    for subscription, handler in zip(subscriptions, services.handlers, strict=True):
        assert len(subscription.name) <= 50
        assert handler.queue.startswith(subscription.name)
        assert subscription.rule_name == handler.event_name
        assert isinstance(subscription.rule_filter, CorrelationRuleFilter)
        assert subscription.rule_filter.label == handler.event_name
    cut = [subscription.name for subscription in subscriptions if len(subscription.name) == 50]
    assert "Synchronization.RelationshipTemplateAllocationsExh" in cut


def test_two_handlers_whose_names_cut_to_one_subscription_are_refused() -> None:
    long_name = "E" * 60
    handlers = [_handler("Module", long_name), _handler("Module", long_name + "Other")]

    with pytest.raises(ValueError, match="share the subscription"):
        subscriptions_of(handlers)


@pytest.mark.parametrize(
    ("delivery_count", "settlement"),
    [(0, Settlement.RETRY), (1, Settlement.RETRY), (3, Settlement.RETRY), (4, Settlement.DEAD_LETTER)],
)
def test_a_failing_handler_is_retried_until_its_fifth_attempt_then_dead_lettered(
    delivery_count: int, settlement: Settlement
) -> None:
    message = _received(EVENT, delivery_count=delivery_count)

    assert after_failure(RuntimeError("handler bug"), message.delivery_count, 5) is settlement


def test_a_database_outage_is_waited_out_whatever_the_delivery_count() -> None:
    outage = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    assert after_failure(outage, 0, 5) is Settlement.HOLD
    assert after_failure(outage, 40, 5) is Settlement.HOLD


def test_the_sdk_retries_exponentially_and_bounded_but_not_for_the_health_check() -> None:
    options = ServiceBusOptions(
        CONNECTION_STRING, retry_total=3, retry_backoff_s=0.5, retry_backoff_max_s=8.0
    )

    clients = {
        purpose: ServiceBusClient.from_connection_string(
            CONNECTION_STRING, **client_options(options, for_health=health)
        )
        for purpose, health in (("publish", False), ("health", True))
    }

    assert client_options(options) == {
        "retry_total": 3,
        "retry_backoff_factor": 0.5,
        "retry_backoff_max": 8.0,
        "retry_mode": "exponential",
    }
    assert clients["publish"]._config.retry_total == 3
    assert clients["publish"]._config.retry_backoff_max == 8.0
    assert clients["health"]._config.retry_total == 0
    for client in clients.values():
        client.close()


def test_the_connection_string_is_required_checked_and_never_shown() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"BACKBONE_BUS": "azureservicebus"})
    assert refused.value.problems == [
        "BACKBONE_SERVICEBUS_CONNECTION_STRING is required with BACKBONE_BUS=azureservicebus"
    ]
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(
            {
                "BACKBONE_BUS": "azureservicebus",
                "BACKBONE_SERVICEBUS_CONNECTION_STRING": f"SharedAccessKey={KEY}",
            }
        )
    assert KEY not in str(refused.value)

    settings = Settings.from_env(
        {"BACKBONE_BUS": "azureservicebus", "BACKBONE_SERVICEBUS_CONNECTION_STRING": CONNECTION_STRING}
    )

    assert settings.describe()["bus"] == "azureservicebus sb://backbone.servicebus.windows.net/ topic default"
    assert KEY not in repr(settings)
    assert KEY not in str(settings.describe())
