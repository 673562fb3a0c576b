"""The SSE server (`backbone serve-sse`): Falcon's ASGI app on uvicorn, one process holding many
event streams of connected apps (docs/sse.md).

`GET /api/v2/sse` (and v1) with a device's bearer token records the stream in the device's push
registration (platform `sse`, handle: this replica's internal URL), answers `text/event-stream`,
writes `ConnectionOpened` and then one event per push; the registration goes when the stream
does. The push port's SSE connector posts `POST /{address}/events` here; that route, `/metrics`
and `/health` are internal: the gateway routes only the two stream paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import falcon
import falcon.asgi
import orjson
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest

from backbone.platform.auth import Principal
from backbone.platform.http import error_body
from backbone.platform.push.sse import NOT_REGISTERED
from backbone.platform.sse import SseMetrics, Stream, Streams
from backbone.settings import Settings
from backbone.wiring import Services

log = logging.getLogger(__name__)

STREAM_PATHS = ("/api/v2/sse", "/api/v1/sse")
# Where the ASGI adapter finds the response's stream, to end it when the client goes away.
_STREAM_KEY = "backbone.sse.stream"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _error(resp: falcon.asgi.Response, status: int, code: str, message: str) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = error_body(code, message)


def _principal(req: falcon.asgi.Request, verify: Callable[[str], Principal | None]) -> Principal | None:
    header = req.get_header("Authorization") or ""
    return verify(header[7:].strip()) if header[:7].lower() == "bearer " else None


class StreamResource:
    """`GET /api/v2/sse`: the calling device's event stream."""

    def __init__(self, services: Services, streams: Streams, replica_url: str) -> None:
        self._services = services
        self._streams = streams
        self._replica_url = replica_url

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        principal = _principal(req, self._services.access_tokens.verify)
        if principal is None:
            resp.set_header("WWW-Authenticate", 'Bearer error="invalid_token"')
            _error(
                resp,
                401,
                "error.platform.unauthorized",
                "You have to authenticate in order to open a stream.",
            )
            return
        stream = self._streams.open(principal.address, principal.device_id)
        if stream is None:
            resp.set_header("Retry-After", "5")
            _error(
                resp,
                503,
                "error.platform.serviceUnavailable",
                "This SSE server holds all the streams it can.",
            )
            return
        try:
            await asyncio.to_thread(self._services.push.register_sse_stream, principal, self._replica_url)
        except BaseException:
            await stream.close()
            raise
        req.scope[_STREAM_KEY] = stream
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        # Proxies that buffer (nginx) pass each event on at once.
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = _Body(stream, lambda: self._ended(principal))

    async def _ended(self, principal: Principal) -> None:
        if self._streams.closing:
            # Shutting down: `serve` deletes this replica's registrations in one statement.
            return
        # Another stream of the device on this replica (a reconnect that overtook the old
        # stream's end) keeps the registration.
        if self._streams.has_device(principal.address, principal.device_id):
            return
        try:
            await asyncio.to_thread(self._services.push.end_sse_stream, principal, self._replica_url)
        except Exception:
            log.warning(
                "could not delete the sse registration of device %s", principal.device_id, exc_info=True
            )


class _Body:
    """The response body Falcon reads: the stream's blocks; on close, the registration goes."""

    def __init__(self, stream: Stream, on_end: Callable[[], Awaitable[None]]) -> None:
        self._stream = stream
        self._on_end = on_end

    async def read(self, size: int | None = -1, /) -> bytes:
        return await self._stream.read()

    def __aiter__(self) -> AsyncIterator[bytes]:
        # Falcon reads through `read()`; the protocol asks for iteration too.
        return self._blocks()

    async def _blocks(self) -> AsyncIterator[bytes]:
        while block := await self._stream.read():
            yield block

    async def close(self) -> None:
        await self._stream.close()
        await self._on_end()


class EventsResource:
    """`POST /{address}/events` `{"eventName": ...}`: the SSE connector wakes an address's streams."""

    def __init__(self, streams: Streams) -> None:
        self._streams = streams

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, address: str) -> None:
        try:
            body = orjson.loads(await req.stream.read())
        except orjson.JSONDecodeError:
            body = None
        event_name = body.get("eventName") if isinstance(body, dict) else None
        if not isinstance(event_name, str) or not event_name or "\n" in event_name or "\r" in event_name:
            _error(
                resp,
                400,
                "error.platform.validation.invalidPropertyValue",
                "'eventName' must be one line of text.",
            )
            return
        if not self._streams.publish(address, event_name):
            _error(resp, 400, NOT_REGISTERED, f"No stream of '{address}' is open on this server.")
            return
        resp.status = 202


class HealthResource:
    """`GET /health`: the database the registrations live in."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        status = await asyncio.to_thread(self._services.health.status)
        resp.content_type = falcon.MEDIA_TEXT
        resp.set_header("Cache-Control", "no-store")
        resp.status = 503 if status == "Unhealthy" else 200
        resp.text = status


class MetricsResource:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.set_header("Cache-Control", "no-store")
        resp.data = generate_latest(self._registry)


async def _handle_unexpected(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: Exception, _: Any
) -> None:
    if isinstance(error, falcon.HTTPError):
        code = {404: "error.platform.routeNotFound", 405: "error.platform.methodNotAllowed"}.get(
            error.status_code, "error.platform.invalidRequest"
        )
        _error(resp, error.status_code, code, error.description or "The request is invalid.")
        return
    log.error("unexpected error on %s %s", req.method, req.path, exc_info=error)
    _error(resp, 500, "error.platform.unexpected", "An unexpected error occurred.")


class SseApplication:
    """The ASGI application: Falcon's app, and around it what ASGI alone can do for a stream:
    notice the client's disconnect at once, and drop a client that stops reading."""

    def __init__(self, app: falcon.asgi.App[Any, Any], streams: Streams, write_timeout_s: float) -> None:
        self.falcon = app
        self.streams = streams
        self._write_timeout_s = write_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.falcon(scope, receive, send)
            return
        watcher: asyncio.Task[None] | None = None

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal watcher
            stream: Stream | None = scope.get(_STREAM_KEY)
            if stream is None:
                await send(message)
                return
            if watcher is None and message["type"] == "http.response.start":
                # The request had no body, so receive() has nothing left to give but the disconnect.
                watcher = asyncio.create_task(_end_on_disconnect(receive, stream))
            try:
                await asyncio.wait_for(send(message), self._write_timeout_s)
            except TimeoutError:
                self.streams.metrics.streams_dropped.labels("write_stalled").inc()
                raise _SlowConsumer from None

        try:
            await self.falcon(scope, receive, watched_send)
        except _SlowConsumer:
            # Returning without finishing the response makes uvicorn close the connection.
            log.info("dropped a stream whose client stopped reading")
        finally:
            if watcher is not None:
                watcher.cancel()


class _SlowConsumer(Exception):
    """A write to a stream did not finish within the write timeout."""


async def _end_on_disconnect(receive: Receive, stream: Stream) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.end()


def create_sse_app(services: Services, *, replica_url: str) -> SseApplication:
    """Assemble the SSE server on the given services; `replica_url` is where connectors reach it."""
    settings = services.settings
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    streams = Streams(
        SseMetrics(registry),
        max_connections=settings.sse_max_connections,
        queue_size=settings.sse_queue_size,
        keepalive_s=settings.sse_keepalive_s,
    )
    app = falcon.asgi.App()
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, _handle_unexpected)
    stream_resource = StreamResource(services, streams, replica_url)
    for path in STREAM_PATHS:
        app.add_route(path, stream_resource)
    app.add_route("/{address}/events", EventsResource(streams))
    app.add_route("/health", HealthResource(services))
    app.add_route("/metrics", MetricsResource(registry))
    # A write that waits longer than a keep-alive interval: the client has stopped reading.
    return SseApplication(app, streams, write_timeout_s=max(settings.sse_keepalive_s, 1.0))


def raise_open_file_limit() -> int:
    """Lift the soft limit of open files to the hard one (each stream is a socket); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class _Server(uvicorn.Server):
    """uvicorn, which on SIGTERM first ends every stream so their responses finish."""

    def __init__(self, config: uvicorn.Config, streams: Streams) -> None:
        super().__init__(config)
        self._streams = streams

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own re-raises the signal once it has stopped, which would kill the process
        # before `serve-sse` closes its services and exits 0.
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self.handle_exit)
        yield

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._streams.close_all()
        super().handle_exit(sig, frame)


def serve(services: Services, settings: Settings, *, host: str, port: int) -> None:
    """Run the SSE server until SIGTERM or SIGINT; streams close within the shutdown timeout."""
    limit = raise_open_file_limit()
    replica_url = settings.sse_advertised_url or f"http://{host}:{port}"
    application = create_sse_app(services, replica_url=replica_url)
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=int(max(1, settings.sse_shutdown_timeout_s)),
        # Streams idle between events: no keep-alive timeout applies to an open response.
        timeout_keep_alive=5,
    )
    log.info(
        "SSE server on http://%s:%d (replica %s, at most %d streams, open files %d)",
        host,
        port,
        replica_url,
        settings.sse_max_connections,
        limit,
    )
    _Server(config, application.streams).run()
    deleted = services.push.end_sse_replica(replica_url)
    log.info("SSE server stopped; deleted the %d registration(s) of its streams", deleted)
