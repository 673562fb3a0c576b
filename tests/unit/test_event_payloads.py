"""Every event reads back from its payload: handlers consume typed events, never payload keys."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest

import backbone.modules
from backbone.modules.messages.events import MessageCreated, MessageRecipient
from backbone.modules.relationships.events import RelationshipStatusChanged
from backbone.platform.events import DomainEvent, PublishedEvent, on


def every_event_type() -> list[type[DomainEvent]]:
    for module in pkgutil.iter_modules(backbone.modules.__path__):
        try:
            importlib.import_module(f"backbone.modules.{module.name}.events")
        except ModuleNotFoundError:
            continue  # a module that publishes nothing
    found, waiting = [], list(DomainEvent.__subclasses__())
    while waiting:
        kind = waiting.pop()
        found.append(kind)
        waiting.extend(kind.__subclasses__())
    return sorted(found, key=lambda kind: kind.__name__)


def sample(kind: Any, seed: int) -> Any:
    """A value of the type, different per field, that survives the payload (milliseconds only)."""
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if kind is datetime:
        return datetime(2026, 3, 1, 10, 15, seed % 60, 123000, tzinfo=UTC)
    if origin in (typing.Union, types.UnionType):
        return sample(next(argument for argument in arguments if argument is not type(None)), seed)
    if origin is tuple:
        return (sample(arguments[0], seed), sample(arguments[0], seed + 1))
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        fields = dataclasses.fields(kind)
        return kind(**{field.name: sample(hints[field.name], seed + n) for n, field in enumerate(fields)})
    if isinstance(kind, type) and issubclass(kind, Enum):
        return list(kind)[seed % len(kind)]
    return {str: f"value-{seed}", int: seed, bool: seed % 2 == 1}[kind]


EVENT_TYPES = every_event_type()


def test_the_modules_publish_events() -> None:
    assert {"MessageCreated", "IdentityToBeDeleted", "TierCreated", "PeerToBeDeleted"} <= {
        kind.__name__ for kind in EVENT_TYPES
    }


@pytest.mark.parametrize("kind", EVENT_TYPES, ids=lambda kind: kind.__name__)
def test_an_event_reads_back_from_its_payload(kind: type[DomainEvent]) -> None:
    event = sample(kind, 1)
    assert kind.from_payload(event.payload()) == event


@pytest.mark.parametrize("kind", EVENT_TYPES, ids=lambda kind: kind.__name__)
def test_a_payload_without_a_required_field_is_refused(kind: type[DomainEvent]) -> None:
    payload = sample(kind, 1).payload()
    # Payloads list the fields in their order (TierCreated names `tier_name` "Name").
    required = next(
        key
        for key, field in zip(payload, dataclasses.fields(kind), strict=True)
        if field.default is dataclasses.MISSING
    )
    del payload[required]
    with pytest.raises(KeyError, match=required):
        kind.from_payload(payload)


def test_a_field_with_a_default_may_be_missing() -> None:
    payload = {"RelationshipId": "REL1", "NewStatus": "Active", "Initiator": "did:a", "Peer": "did:b"}
    assert RelationshipStatusChanged.from_payload(payload).was_due_to_identity_deletion is False


def test_a_handler_gets_the_typed_event() -> None:
    received: list[MessageCreated] = []
    handler = on("Synchronization", MessageCreated, received.append)
    event = MessageCreated(id="MSG1", created_by="did:a", recipients=(MessageRecipient("did:b", "REL1"),))
    handler.handle(PublishedEvent("EVT1", "MessageCreated", event.payload(), datetime.now(UTC)))
    assert handler.queue == "Synchronization.MessageCreated"
    assert received == [event]
