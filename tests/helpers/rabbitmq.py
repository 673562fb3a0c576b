"""RabbitMQ for tests: the shared broker, names of our own, cleaned up afterwards, and a drain check.

The broker has no management plugin, so tests cannot create a vhost of their own; instead every
session uses a unique exchange and queue prefix and deletes them at the end, so other users of
the broker are never disturbed.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pika
import pika.exceptions
import sqlalchemy as sa

from backbone.platform.events import inbox_handled_events, outbox_events

RABBITMQ_URL = os.environ.get("BACKBONE_TEST_RABBITMQ_URL", "amqp://127.0.0.1:5672/%2F")


def rabbitmq_reachable(url: str = RABBITMQ_URL) -> bool:
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = 3
    try:
        pika.BlockingConnection(parameters).close()
    except (pika.exceptions.AMQPError, OSError):
        return False
    return True


@dataclass(frozen=True)
class BrokerNames:
    """An exchange and a queue prefix no one else uses."""

    exchange: str
    queue_prefix: str

    @classmethod
    def unique(cls) -> BrokerNames:
        tag = uuid.uuid4().hex[:10]
        return cls(exchange=f"backbone-test-{tag}", queue_prefix=f"test-{tag}.")

    @property
    def dead_letter_queue(self) -> str:
        return f"deadletterqueue.{self.exchange}"

    def environment(self, url: str = RABBITMQ_URL) -> dict[str, str]:
        """The `BACKBONE_*` variables of a backbone process on this broker with these names."""
        return {
            "BACKBONE_BUS": "rabbitmq",
            "BACKBONE_RABBITMQ_URL": url,
            "BACKBONE_RABBITMQ_EXCHANGE": self.exchange,
            "BACKBONE_RABBITMQ_QUEUE_PREFIX": self.queue_prefix,
        }


def delete_topology(names: BrokerNames, queues: Iterable[str], url: str = RABBITMQ_URL) -> None:
    """Delete the queues and exchanges a test declared."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for queue in [*queues, f"deadletterqueue.{names.exchange}"]:
            channel.queue_delete(queue)
        channel.exchange_delete(names.exchange)
        channel.exchange_delete(f"deadletterexchange.{names.exchange}")
    finally:
        connection.close()


@contextmanager
def channel_on(url: str = RABBITMQ_URL) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield connection.channel()
    finally:
        connection.close()


@functools.cache
def _engine(database_url: str) -> sa.Engine:
    return sa.create_engine(database_url, pool_size=1)


def drained(database_url: str, handlers: Iterable[tuple[str, str]]) -> bool:
    """Whether every event is published and handled by each handler subscribed to it.

    `handlers` are (inbox name, event name) pairs; the inbox records (inbox name, event id) once
    an event is handled. One counting query, so polling it costs the database little.
    """
    pairs = sorted(set(handlers))
    subscribed = sa.union_all(
        *(
            sa.select(sa.literal(handler).label("handler"), sa.literal(name).label("name"))
            for handler, name in pairs
        )
    ).subquery("subscribed")
    unhandled = (
        sa.select(sa.func.count())
        .select_from(
            outbox_events.join(subscribed, subscribed.c.name == outbox_events.c.name).outerjoin(
                inbox_handled_events,
                sa.and_(
                    inbox_handled_events.c.handler == subscribed.c.handler,
                    inbox_handled_events.c.event_id == outbox_events.c.id,
                ),
            )
        )
        .where(inbox_handled_events.c.event_id.is_(None))
    )
    pending = sa.select(sa.func.count()).where(outbox_events.c.published_at.is_(None))
    with _engine(database_url).connect() as connection:
        return (
            connection.execute(pending).scalar_one() == 0 and connection.execute(unhandled).scalar_one() == 0
        )
