"""Domain events: written to an outbox in the changing transaction, handed to a bus after commit.

A crash between commit and publish loses nothing: rows left unpublished are relayed later.
Handlers record the ids they handled in an inbox, so a redelivered event has its effect once.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import time
import types
import typing
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, ClassVar, Protocol, Self, TypeVar, cast

import orjson
import sqlalchemy as sa

from backbone.platform.clock import Clock
from backbone.platform.db import Database, UtcDateTime, locked, metadata
from backbone.platform.encoding import format_datetime, parse_datetime
from backbone.platform.ids import Ids
from backbone.platform.metrics import Metrics
from backbone.platform.tracing import Tracing

log = logging.getLogger(__name__)

outbox_events = sa.Table(
    "outbox_events",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("payload", sa.UnicodeText, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("traceparent", sa.String(55)),
    sa.Column("claimed_until", UtcDateTime),
    sa.Column("published_at", UtcDateTime),
    sa.Index(
        "ix_outbox_events_unpublished",
        "created_at",
        sqlite_where=sa.text("published_at IS NULL"),
        postgresql_where=sa.text("published_at IS NULL"),
        mssql_where=sa.text("published_at IS NULL"),
    ),
)

inbox_handled_events = sa.Table(
    "inbox_handled_events",
    metadata,
    sa.Column("handler", sa.String(100), primary_key=True),
    sa.Column("event_id", sa.String(40), primary_key=True),
    sa.Column("handled_at", UtcDateTime, nullable=False),
)

# Statements of every request that changes something, built once (building costs more than
# running them on SQLite).
_ADD_TO_OUTBOX = outbox_events.insert()
_MARK_PUBLISHED = (
    outbox_events.update()
    .where(outbox_events.c.id.in_(sa.bindparam("event_ids", expanding=True)))
    .values(published_at=sa.bindparam("now"), claimed_until=None)
)


class DomainEvent:
    """Base of the events modules publish: frozen dataclasses named in the past tense."""

    event_name: ClassVar[str] = ""

    @classmethod
    def name(cls) -> str:
        return cls.event_name or cls.__name__

    def payload(self) -> dict[str, Any]:
        """Return the fields with PascalCase keys, as the original puts them on the bus."""
        return _plain(cast(Any, self))  # type: ignore[no-any-return]

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Self:
        """Read the event back from its payload; a field the payload lacks raises KeyError, so a
        renamed field fails where the event is consumed (a field with a default may be missing)."""
        return cast(Self, _reader(cls)(payload))


@dataclass(frozen=True)
class PublishedEvent:
    """An event as it travels: id, name, PascalCase payload, and the trace it belongs to."""

    id: str
    name: str
    payload: dict[str, Any]
    created_at: datetime
    traceparent: str | None = None


@dataclass(frozen=True)
class Handler:
    """A reaction of one module to one event; `queue` is `<Module>.<EventName>`."""

    module: str
    event_name: str
    handle: Callable[[PublishedEvent], None]

    @property
    def queue(self) -> str:
        return f"{self.module}.{self.event_name}"


Event = TypeVar("Event", bound=DomainEvent)


def on(module: str, event_type: type[Event], react: Callable[[Event], None]) -> Handler:
    """The handler of `module` for `event_type`; `react` gets the event read back from its payload."""

    def handle(published: PublishedEvent) -> None:
        react(event_type.from_payload(published.payload))

    return Handler(module, event_type.name(), handle)


class EventBus(Protocol):
    """Carry published events to the subscribed handlers."""

    def subscribe(self, handler: Handler) -> None: ...

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        """Deliver the events or raise; the outbox rows stay pending when this raises."""
        ...

    def ping(self) -> None:
        """Raise unless the bus can take events now (the health check)."""
        ...

    def close(self) -> None:
        """Release connections, if any."""
        ...


class Inbox:
    """Remember which handler handled which event, inside the handler's own transaction."""

    def __init__(
        self, db: Database, clock: Clock, *, metrics: Metrics | None = None, tracing: Tracing | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._metrics = metrics
        self._tracing = tracing
        self._claim = db.insert_ignoring_conflicts(inbox_handled_events, ["handler", "event_id"]).returning(
            inbox_handled_events.c.event_id
        )

    def handle_once(self, handler: Handler, event: PublishedEvent) -> bool:
        """Run the handler unless it already handled this event; return whether it ran."""
        started = time.perf_counter()
        try:
            with self._traced(handler, event):
                ran = self._handle_once(handler, event)
        except Exception:
            if self._metrics is not None:
                self._metrics.events_processing_errors.labels(handler.queue).inc()
                self._observe_duration(handler, started)
            raise
        if ran and self._metrics is not None:
            self._metrics.events_handled.labels(handler.queue).inc()
            self._observe_duration(handler, started)
        return ran

    def _traced(self, handler: Handler, event: PublishedEvent) -> AbstractContextManager[object]:
        return self._tracing.handling(handler.queue, event.traceparent) if self._tracing else nullcontext()

    def _observe_duration(self, handler: Handler, started: float) -> None:
        assert self._metrics is not None
        duration_s = time.perf_counter() - started
        self._metrics.events_processing_duration.labels(handler.queue).observe(duration_s)

    def _handle_once(self, handler: Handler, event: PublishedEvent) -> bool:
        with self._db.transaction() as connection:
            inserted = connection.execute(
                self._claim, {"handler": handler.queue, "event_id": event.id, "handled_at": self._clock.now()}
            ).first()
            if inserted is None:
                return False
            handler.handle(event)
        return True

    def handle_together(self, deliveries: Sequence[tuple[Handler, PublishedEvent]]) -> None:
        """Run each handler once per event, all in one transaction; raise if one fails.

        One BEGIN, one COMMIT and one pooled connection for all of them (docs/decisions.md, Hot
        paths). A failure rolls every one of them back, inbox rows included, so the caller can run
        them again one by one; that is why nothing is counted before the commit.
        """
        handled: list[tuple[Handler, float]] = []
        with self._db.transaction():
            for handler, event in deliveries:
                started = time.perf_counter()
                with self._traced(handler, event):
                    ran = self._handle_once(handler, event)
                if ran:
                    handled.append((handler, started))
        if self._metrics is not None:
            for handler, started in handled:
                self._metrics.events_handled.labels(handler.queue).inc()
                self._observe_duration(handler, started)


class InProcessEventBus:
    """Run handlers in the publishing process right after commit (the embedded default)."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, handler: Handler) -> None:
        self._handlers[handler.event_name].append(handler)

    def ping(self) -> None:
        """Always healthy: the handlers run in this process."""

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        deliveries = [
            (handler, published) for published in events for handler in self._handlers.get(published.name, ())
        ]
        if len(deliveries) > 1:
            # The common case costs one transaction; when a handler fails (or two transactions
            # deadlock), each runs again alone, so one failure cannot undo the others' effects.
            try:
                self._inbox.handle_together(deliveries)
                return
            except Exception:
                log.info("%d handlers in one transaction failed; each runs alone now", len(deliveries))
                log.debug("the handlers' transaction failed", exc_info=True)
        failures: list[str] = []
        for handler, published in deliveries:
            try:
                self._inbox.handle_once(handler, published)
            except Exception:
                log.exception("handler %s failed on event %s", handler.queue, published.id)
                failures.append(handler.queue)
        if failures:
            raise HandlerFailed(failures)

    def close(self) -> None:
        pass


class BusUnavailable(Exception):
    """The bus cannot take events now (a broker away); the events stay in the outbox."""


class HandlerFailed(Exception):
    """At least one handler raised; the event stays pending and is relayed again."""


class Outbox:
    """Store events in the current transaction and publish them once it commits."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        ids: Ids,
        clock: Clock,
        *,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._db = db
        self._bus = bus
        self._ids = ids
        self._clock = clock
        self._metrics = metrics
        self.traceparent: Callable[[], str | None] = tracing.current_traceparent if tracing else lambda: None
        self._committed_listeners: list[Callable[[PublishedEvent], None]] = []
        # Ids of events published while an outer publish is running (the in-process bus runs
        # handlers, whose events are published within): marked together when the outer ends.
        self._unmarked: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
            "unmarked_outbox_events", default=None
        )

    def on_committed(self, listener: Callable[[PublishedEvent], None]) -> None:
        """Tell `listener` about each event once its transaction committed, in the committing process."""
        self._committed_listeners.append(listener)

    def add(self, event: DomainEvent) -> None:
        published = PublishedEvent(
            id=self._ids.new("EVT"),
            name=event.name(),
            payload=event.payload(),
            created_at=self._clock.now(),
            traceparent=self.traceparent(),
        )
        payload = orjson.dumps(published.payload).decode("utf-8")
        self._db.current().execute(
            _ADD_TO_OUTBOX,
            {
                "id": published.id,
                "name": published.name,
                "payload": payload,
                "created_at": published.created_at,
                "traceparent": published.traceparent,
            },
        )
        if self._metrics is not None:
            self._metrics.events_message_size.observe(len(payload))
        # One batch per transaction: one publish and one "published" update after commit.
        state = self._db.transaction_state()
        batch: list[PublishedEvent] | None = state.get("outbox")
        if batch is None:
            batch = state["outbox"] = []
            self._db.after_commit(lambda: self._committed(batch))
        batch.append(published)

    def _committed(self, events: list[PublishedEvent]) -> None:
        for published in events:
            for listener in self._committed_listeners:
                try:
                    listener(published)
                except Exception:
                    log.exception("a listener failed on committed event %s", published.id)
        self._publish(events)

    def _publish(self, events: list[PublishedEvent], *, claimed: bool = False) -> Exception | None:
        """Hand the events to the bus and mark them published; return the failure, if any.

        Events published by the handlers of these (in-process bus) are marked with them, in one
        transaction after the outermost publish, instead of one transaction per batch.
        """
        unmarked = self._unmarked.get()
        if unmarked is not None:
            return self._publish_unmarked(events, unmarked, claimed=claimed)
        unmarked = []
        token = self._unmarked.set(unmarked)
        try:
            failure = self._publish_unmarked(events, unmarked, claimed=claimed)
        finally:
            self._unmarked.reset(token)
        if unmarked:
            self._mark_published(unmarked)
        return failure

    def _publish_unmarked(
        self, events: list[PublishedEvent], unmarked: list[str], *, claimed: bool
    ) -> Exception | None:
        started = time.perf_counter()
        try:
            self._bus.publish(events)
        except Exception as error:
            log.warning("publishing %d event(s) failed; they stay in the outbox: %s", len(events), error)
            log.debug("publishing failed", exc_info=True)
            self._count_published(
                events, started, self._metrics.events_publishing_errors if self._metrics else None
            )
            if claimed:
                self._release_claims([published.id for published in events])
            return error
        self._count_published(events, started, self._metrics.events_published if self._metrics else None)
        unmarked.extend(published.id for published in events)
        return None

    def _release_claims(self, event_ids: list[str]) -> None:
        """Let the next relay take the rows at once instead of after the claim expires."""
        try:
            with self._db.transaction() as connection:
                connection.execute(
                    outbox_events.update()
                    .where(outbox_events.c.id.in_(event_ids), outbox_events.c.published_at.is_(None))
                    .values(claimed_until=None)
                )
        except Exception as error:
            log.warning(
                "releasing %d outbox claim(s) failed; they expire on their own: %s", len(event_ids), error
            )

    def _count_published(self, events: list[PublishedEvent], started: float, counter: Any) -> None:
        if self._metrics is None:
            return
        self._metrics.events_publishing_duration.observe(time.perf_counter() - started)
        for published in events:
            counter.labels(published.name).inc()

    def _mark_published(self, event_ids: list[str]) -> None:
        with self._db.transaction() as connection:
            connection.execute(_MARK_PUBLISHED, {"event_ids": event_ids, "now": self._clock.now()})

    def relay_pending(self, *, older_than: timedelta = timedelta(0), batch: int = 100) -> int:
        """Publish rows left unpublished; claim them first so parallel relays never share a row.

        Return how many rows were taken; stop early while the bus is unavailable.
        """
        relayed = 0
        while True:
            claimed = self._claim(older_than, batch)
            if not claimed:
                return relayed
            failure = self._publish(claimed, claimed=True)
            if isinstance(failure, BusUnavailable):
                return relayed
            relayed += len(claimed)
            if len(claimed) < batch:
                return relayed

    def delete_published(self, before: datetime) -> int:
        """Housekeeping: forget events published before the date, and the inbox's memory of them.

        A redelivery older than that no longer happens, so the inbox need not remember it.
        """
        with self._db.transaction() as connection:
            removed = connection.execute(
                outbox_events.delete().where(outbox_events.c.published_at < before)
            ).rowcount
            connection.execute(
                inbox_handled_events.delete().where(inbox_handled_events.c.handled_at < before)
            )
        return int(removed)

    def pending_count(self, limit: int | None = None) -> int:
        """Count unpublished rows, at most `limit` of them (the partial index keeps this cheap)."""
        with self._db.read() as connection:
            pending = sa.select(outbox_events.c.id).where(outbox_events.c.published_at.is_(None))
            if limit is not None:
                pending = pending.limit(limit)
            statement = sa.select(sa.func.count()).select_from(pending.subquery())
            return int(connection.execute(statement).scalar_one())

    def _claim(self, older_than: timedelta, batch: int) -> list[PublishedEvent]:
        now = self._clock.now()
        candidates = (
            sa.select(outbox_events.c.id)
            .where(
                outbox_events.c.published_at.is_(None),
                outbox_events.c.created_at <= now - older_than,
                sa.or_(outbox_events.c.claimed_until.is_(None), outbox_events.c.claimed_until < now),
            )
            .order_by(outbox_events.c.created_at)
            .limit(batch)
        )
        candidates = locked(candidates, outbox_events, skip_locked=True)
        with self._db.transaction() as connection:
            rows = connection.execute(
                outbox_events.update()
                .where(outbox_events.c.id.in_(candidates.scalar_subquery()))
                .values(claimed_until=now + timedelta(seconds=30))
                .returning(
                    outbox_events.c.id,
                    outbox_events.c.name,
                    outbox_events.c.payload,
                    outbox_events.c.created_at,
                    outbox_events.c.traceparent,
                )
            ).all()
        rows = sorted(rows, key=lambda row: row.created_at)
        return [
            PublishedEvent(row.id, row.name, orjson.loads(row.payload), row.created_at, row.traceparent)
            for row in rows
        ]


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_pascal(item.name): _plain(getattr(value, item.name)) for item in dataclasses.fields(value)}
    return value


_READERS: dict[type, Callable[[Mapping[str, Any]], Any]] = {}


def _reader(cls: type) -> Callable[[Mapping[str, Any]], Any]:
    """What reads a dataclass back from its PascalCase payload, built once per class."""
    reader = _READERS.get(cls)
    if reader is None:
        reader = _READERS[cls] = _build_reader(cls)
    return reader


def _build_reader(cls: type) -> Callable[[Mapping[str, Any]], Any]:
    hints = typing.get_type_hints(cls)
    fields = [
        (field.name, _pascal(field.name), _converter(hints[field.name]), field.default)
        for field in dataclasses.fields(cls)
    ]

    def read(payload: Mapping[str, Any]) -> Any:
        values = {}
        for name, key, convert, default in fields:
            if key in payload:
                values[name] = convert(payload[key])
            elif default is dataclasses.MISSING:
                raise KeyError(f"{cls.__name__} payload has no {key!r}")
            else:
                values[name] = default
        return cls(**values)

    return read


def _converter(kind: Any) -> Callable[[Any], Any]:
    """How a payload value becomes a field of the given type (the reverse of `_plain`)."""
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if kind is datetime:
        return parse_datetime
    if origin in (typing.Union, types.UnionType):
        inner = _converter(next(argument for argument in arguments if argument is not type(None)))
        return lambda value: None if value is None else inner(value)
    if origin in (tuple, list):
        item = _converter(arguments[0])
        return lambda values: origin(item(value) for value in values)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _reader(kind)
    return lambda value: value
