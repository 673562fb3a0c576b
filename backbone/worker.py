"""The event-handler process: relays outbox rows left unpublished, runs the handlers of a broker
when one is configured, and serves /metrics and /health on its metrics port."""

from __future__ import annotations

import logging
import socketserver
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest

from backbone.platform.health import HealthChecks, HealthResource
from backbone.platform.http import App, create_app
from backbone.wiring import Services

log = logging.getLogger(__name__)

# The APIs publish right after commit; the relay leaves a row that long before taking it over,
# so both rarely publish the same row (a repeat costs only a duplicate that the inbox drops).
RELAY_GRACE = timedelta(seconds=2)

RELAYED_EVENTS = Counter(
    "backbone_worker_relayed_events", "Outbox rows the worker published after the API left them pending"
)
RELAY_FAILURES = Counter("backbone_worker_relay_failures", "Relay passes that failed (e.g. database away)")

# A broker consumer: runs the subscribed handlers until `stop` is set. The in-process bus has
# none (its handlers run in the API processes); a broker adapter supplies one.
Consumer = Callable[[threading.Event], None]


class Worker:
    """Relay what the APIs could not publish and, with a broker, consume its queues."""

    def __init__(
        self,
        services: Services,
        *,
        relay_interval_s: float = 1.0,
        relay_grace: timedelta = RELAY_GRACE,
        consumers: list[Consumer] | None = None,
    ) -> None:
        self._services = services
        self._relay_interval_s = relay_interval_s
        self._relay_grace = relay_grace
        self._consumers = list(consumers or [])
        self.health = HealthChecks()
        self.health.add("database", services.db.ping)

    def add_consumer(self, consumer: Consumer, health_check: Callable[[], None] | None = None) -> None:
        """Plug in a broker consumer (and its health check); it runs in its own thread."""
        self._consumers.append(consumer)
        if health_check is not None:
            self.health.add("bus", health_check)

    def run(self, stop: threading.Event) -> None:
        """Work until `stop` is set, then wait for the consumers to finish."""
        threads = [
            threading.Thread(target=consumer, args=(stop,), name=f"consumer-{number}")
            for number, consumer in enumerate(self._consumers)
        ]
        for thread in threads:
            thread.start()
        self.relay_once()
        while not stop.wait(self._relay_interval_s):
            self.relay_once()
        for thread in threads:
            thread.join()

    def relay_once(self) -> int:
        """Publish outbox rows left unpublished; a failing database is waited out, not fatal."""
        try:
            relayed = self._services.outbox.relay_pending(older_than=self._relay_grace)
        except Exception as error:
            RELAY_FAILURES.inc()
            log.warning("relaying the outbox failed: %s", error)
            return 0
        if relayed:
            RELAYED_EVENTS.inc(relayed)
            log.info("relayed %d event(s) left in the outbox", relayed)
        return relayed


class MetricsResource:
    """`GET /metrics`: the Prometheus exposition of this process."""

    anonymous_methods = frozenset({"GET"})

    def __init__(self, registries: Sequence[CollectorRegistry]) -> None:
        self._registries = registries

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = b"".join(generate_latest(registry) for registry in self._registries)


def create_worker_app(health: HealthChecks, *registries: CollectorRegistry) -> App:
    """The worker's only HTTP face: its health and its metrics (the default registry and `registries`)."""
    app = create_app(middleware=[])
    app.add_route("/health", HealthResource(health))
    app.add_route("/metrics", MetricsResource([REGISTRY, *registries]))
    return app


class _ThreadingWsgiServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: scrapes every few seconds would drown the log."""


def serve_metrics(health: HealthChecks, host: str, port: int, *registries: CollectorRegistry) -> WSGIServer:
    """Serve /metrics and /health from a background thread; the caller shuts the server down."""
    app = create_worker_app(health, *registries)
    server = make_server(host, port, app, server_class=_ThreadingWsgiServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
