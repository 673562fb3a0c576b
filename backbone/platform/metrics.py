"""Prometheus metrics of a backbone process, safe under gunicorn's worker processes.

In multiprocess mode (`enable_multiprocess`, called by `backbone serve` before gunicorn forks)
every worker writes its values to memory-mapped files in one directory per node, and whichever
worker answers `/metrics` merges them. Without it (tests, one-process tools) the values live in
this object's own registry. Names follow the OpenTelemetry semantic conventions as Prometheus
exposes them; `docs/metrics.md` is the catalogue and a test keeps it in step with this module.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import falcon
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

# The SLO edges 0.05, 0.1, 0.16 and 0.19 s are bucket bounds, so SLO shares are exact.
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.16, 0.19, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The original's event bus buckets: processing 5 ms ... 600 s, publishing 5 ms ... 2.5 s, size 100 ... 2500 B.
EVENT_PROCESSING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
EVENT_PUBLISHING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
EVENT_SIZE_BUCKETS = (100, 250, 500, 750, 1000, 1500, 2000, 2500)
POOL_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)
# A scrape counts at most this many pending outbox rows, so a huge backlog cannot slow it down.
OUTBOX_COUNT_LIMIT = 10_000
UNMATCHED_ROUTE = "(unmatched)"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

_multiprocess_directory: Path | None = None


def enable_multiprocess(directory: Path) -> None:
    """Make every metric created from now on write to `directory`, emptied of old values first.

    prometheus-client chooses its value store when first imported, from PROMETHEUS_MULTIPROC_DIR;
    the command has imported it long before it knows the directory, so the choice is made here.
    Call before gunicorn forks; the workers inherit it.
    """
    global _multiprocess_directory
    directory.mkdir(parents=True, exist_ok=True)
    # Only prometheus-client's own files go: the directory may be one the operator named.
    for stale in directory.glob("*.db"):
        stale.unlink()
    _multiprocess_directory = directory
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def multiprocess_directory() -> Path | None:
    return _multiprocess_directory


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (in-flight requests, pool connections); keep its counters."""
    if _multiprocess_directory is not None:
        multiprocess.mark_process_dead(pid, str(_multiprocess_directory))  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric of a backbone process, created once per process (after fork)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._scrape_collectors: list[Collector] = []
        registry = self.registry
        self.http_duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ["http_route", "http_request_method", "http_response_status_code"],
            buckets=HTTP_DURATION_BUCKETS,
            registry=registry,
        )
        self.http_active = Gauge(
            "http_server_active_requests",
            "Number of HTTP server requests in flight.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.workers = Gauge(
            "backbone_gunicorn_workers",
            "Number of live gunicorn worker processes.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.workers_busy = Gauge(
            "backbone_gunicorn_workers_busy",
            "Number of gunicorn worker processes with at least one request in flight.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.db_connections = Gauge(
            "db_client_connection_count",
            "Open database connections, by state (used: checked out of the pool; idle: in the pool).",
            ["db_client_connection_state"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.db_idle_max = Gauge(
            "db_client_connection_idle_max",
            "Connections each pool keeps open (the pool size), summed over the processes.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.db_max = Gauge(
            "db_client_connection_max",
            "Connections the pools may open (pool size plus overflow), summed over the processes.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.db_overflow = Gauge(
            "db_client_connection_overflow",
            "Open connections beyond the pool size.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.db_wait = Histogram(
            "db_client_connection_wait_time_seconds",
            "Time it took to obtain a connection from the pool.",
            buckets=POOL_WAIT_BUCKETS,
            registry=registry,
        )
        self.events_published = Counter(
            "enmeshed_events_published",
            "Events handed to the event bus.",
            ["event_name"],
            registry=registry,
        )
        self.events_publishing_errors = Counter(
            "enmeshed_events_publishing_errors",
            "Events the bus refused or whose handlers failed while publishing (they stay in the outbox).",
            ["event_name"],
            registry=registry,
        )
        self.events_publishing_duration = Histogram(
            "enmeshed_events_publishing_duration_seconds",
            "Time to hand a batch of events to the bus (with the in-process bus: including its handlers).",
            buckets=EVENT_PUBLISHING_BUCKETS,
            registry=registry,
        )
        self.events_message_size = Histogram(
            "enmeshed_events_message_size_bytes",
            "Size of an event's payload as it travels (JSON).",
            buckets=EVENT_SIZE_BUCKETS,
            registry=registry,
        )
        self.events_handled = Counter(
            "enmeshed_events_handled",
            "Events a handler processed successfully.",
            ["queue_name"],
            registry=registry,
        )
        self.events_processing_errors = Counter(
            "enmeshed_events_processing_errors",
            "Events a handler failed on.",
            ["queue_name"],
            registry=registry,
        )
        self.events_processing_duration = Histogram(
            "enmeshed_events_processing_duration_seconds",
            "Time a handler took for one event, successful or not.",
            ["queue_name"],
            buckets=EVENT_PROCESSING_BUCKETS,
            registry=registry,
        )
        self.quota_rejections = Counter(
            "backbone_quota_rejections",
            "Requests refused with error.platform.quotaExhausted.",
            ["http_route"],
            registry=registry,
        )
        self.identities_created = Counter(
            "backbone_identities_created", "Identities created.", registry=registry
        )
        self.messages_sent = Counter("backbone_messages_sent", "Messages sent.", registry=registry)
        self.uploaded_bytes = Counter(
            "backbone_files_uploaded_bytes", "Bytes of file content uploaded.", registry=registry
        )
        self.workers.set(1)
        self._active_lock = threading.Lock()
        self._active = 0
        self._duration_children: dict[tuple[str, str, int], Any] = {}

    # --- HTTP ----------------------------------------------------------------------------

    def request_started(self) -> None:
        with self._active_lock:
            self._active += 1
            if self._active == 1:
                self.workers_busy.set(1)
        self.http_active.inc()

    def request_finished(self, route: str | None, method: str, status: int, duration_s: float) -> None:
        self.http_active.dec()
        with self._active_lock:
            self._active -= 1
            if self._active == 0:
                self.workers_busy.set(0)
        key = (route or UNMATCHED_ROUTE, method, status)
        child = self._duration_children.get(key)
        if child is None:
            # Unknown methods share one label value, so a client cannot grow the label set.
            label_method = method if method in _KNOWN_METHODS else "_OTHER"
            child = self.http_duration.labels(key[0], label_method, str(status))
            self._duration_children[key] = child
        child.observe(duration_s)

    # --- database ------------------------------------------------------------------------

    def observe_pool(self, engine: Engine, *, pool_size: int, max_overflow: int) -> None:
        """Follow the engine's connection pool through its events."""
        gauges = _PoolGauges(self, pool_size)
        self.db_idle_max.set(pool_size)
        self.db_max.set(pool_size + max_overflow)
        event.listen(engine, "connect", gauges.connected)
        event.listen(engine, "close", gauges.closed)
        event.listen(engine, "close_detached", gauges.closed)
        event.listen(engine, "checkout", gauges.checked_out)
        event.listen(engine, "checkin", gauges.checked_in)

    # --- scrapes -------------------------------------------------------------------------

    def watch_outbox(self, count_pending: Callable[[int], int]) -> None:
        """Report the outbox backlog at each scrape (a bounded count of unpublished rows)."""
        collector = _OutboxBacklog(count_pending)
        self._scrape_collectors.append(collector)
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """Render every metric of this node (all workers in multiprocess mode)."""
        if _multiprocess_directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, str(_multiprocess_directory))  # type: ignore[no-untyped-call]
        for collector in self._scrape_collectors:
            registry.register(collector)
        return generate_latest(registry)

    def names(self) -> dict[str, str]:
        """Every metric family this object defines, with its type (the catalogue test reads it)."""
        families = {}
        for family in self.registry.collect():
            families[family.name] = family.type
        return families


class _PoolGauges:
    """Open and checked-out connections of one pool, counted from its events."""

    def __init__(self, metrics: Metrics, pool_size: int) -> None:
        self._metrics = metrics
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._open = 0
        self._used = 0
        self._used_gauge = metrics.db_connections.labels("used")
        self._idle_gauge = metrics.db_connections.labels("idle")
        self._publish()

    def connected(self, *_: Any) -> None:
        with self._lock:
            self._open += 1
            self._publish()

    def closed(self, *_: Any) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)
            self._publish()

    # Checkouts and checkins happen once per unit of work: they write only the two gauges they change.
    def checked_out(self, *_: Any) -> None:
        with self._lock:
            self._used += 1
            self._publish_use()

    def checked_in(self, *_: Any) -> None:
        with self._lock:
            self._used = max(0, self._used - 1)
            self._publish_use()

    def _publish(self) -> None:
        self._publish_use()
        self._metrics.db_overflow.set(max(0, self._open - self._pool_size))

    def _publish_use(self) -> None:
        self._used_gauge.set(self._used)
        self._idle_gauge.set(max(0, self._open - self._used))


class _OutboxBacklog(Collector):
    """`backbone_outbox_pending_events`, read from the database when scraped."""

    def __init__(self, count_pending: Callable[[int], int]) -> None:
        self._count_pending = count_pending

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            family.add_metric([], self._count_pending(OUTBOX_COUNT_LIMIT))
        except Exception as error:
            # A scrape must still answer when the database does not; the gap shows the outage.
            log.warning("counting the outbox backlog failed: %s", error)
            return
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "backbone_outbox_pending_events",
            f"Events in the outbox not yet published (counted up to {OUTBOX_COUNT_LIMIT}).",
        )


class MetricsResource:
    """`GET /metrics`: the Prometheus exposition of this node (the gateway hides it)."""

    anonymous_methods = frozenset({"GET"})

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.set_header("Cache-Control", "no-store")
        resp.data = self._metrics.exposition()
