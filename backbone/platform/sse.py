"""The open Server-Sent Events streams of one SSE server process, by identity address.

Everything here runs on the process's one event loop: publishing an event appends it to each
stream of the address and wakes the stream's reader, and never waits for a client. A stream
whose client does not keep up is ended instead (docs/sse.md, "Slow consumers").
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Delivery inside the replica: from the connector's POST to the event handed to the connection.
DELIVERY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONNECTION_OPENED = b"event: ConnectionOpened\ndata: _\n\n"
KEEP_ALIVE = b": keep-alive\n\n"


class SseMetrics:
    """What `/metrics` of an SSE server shows besides the process's own CPU and memory."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Gauge(
            "backbone_sse_connections", "Event streams open in this process.", registry=registry
        )
        self.connections_refused = Counter(
            "backbone_sse_connections_refused",
            "Streams refused because the process holds its maximum (BACKBONE_SSE_MAX_CONNECTIONS).",
            registry=registry,
        )
        self.events_delivered = Counter(
            "backbone_sse_events_delivered",
            "Events written to an open stream.",
            ["event_name"],
            registry=registry,
        )
        self.events_unregistered = Counter(
            "backbone_sse_events_not_registered",
            "Events for an address without a stream here (answered sseClientNotRegistered).",
            registry=registry,
        )
        self.streams_dropped = Counter(
            "backbone_sse_streams_dropped",
            "Streams ended because their client did not keep up (events piled up or a write stalled).",
            ["reason"],
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "backbone_sse_delivery_latency_seconds",
            "From the connector's request to the event handed to the client's connection.",
            buckets=DELIVERY_BUCKETS_S,
            registry=registry,
        )


class Stream:
    """One client's event stream: what Falcon reads the response body from, block by block."""

    def __init__(self, streams: Streams, address: str, device_id: str) -> None:
        self.address = address
        self.device_id = device_id
        self._streams = streams
        self._pending: deque[tuple[str, float]] = deque()
        self._wake = asyncio.Event()
        self._opened = False
        self._ended = False
        self._closed = False

    @property
    def ended(self) -> bool:
        return self._ended

    def offer(self, event_name: str, received_at: float) -> bool:
        """Queue an event; False (and the stream ends) when the client is too far behind."""
        if self._ended:
            return False
        if len(self._pending) >= self._streams.queue_size:
            self._streams.metrics.streams_dropped.labels("queue_full").inc()
            self.end()
            return False
        self._pending.append((event_name, received_at))
        self._wake.set()
        return True

    def end(self) -> None:
        """Finish the response after what was already handed out (disconnect, drop, shutdown)."""
        self._ended = True
        self._wake.set()

    async def read(self) -> bytes:
        """The next block: the opening event, an event, a keep-alive comment, or b"" at the end."""
        if not self._opened:
            self._opened = True
            return CONNECTION_OPENED
        while not self._ended:
            if self._pending:
                event_name, received_at = self._pending.popleft()
                metrics = self._streams.metrics
                metrics.events_delivered.labels(event_name).inc()
                metrics.delivery_latency.observe(time.monotonic() - received_at)
                return f"event: {event_name}\ndata: _\n\n".encode()
            self._wake.clear()
            # A timer rather than wait_for: no task per wait, thousands of streams wait at once.
            timer = asyncio.get_running_loop().call_later(self._streams.keepalive_s, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
            if not self._pending and not self._ended:
                return KEEP_ALIVE
        return b""

    async def close(self) -> None:
        """Called by Falcon once the response is over, however it ended."""
        if not self._closed:
            self._closed = True
            self._ended = True
            self._streams.remove(self)


class Streams:
    """The streams of this process by address, at most `max_connections` of them."""

    def __init__(
        self, metrics: SseMetrics, *, max_connections: int, queue_size: int, keepalive_s: float
    ) -> None:
        self.metrics = metrics
        self.max_connections = max_connections
        self.queue_size = queue_size
        self.keepalive_s = keepalive_s
        self._by_address: dict[str, set[Stream]] = {}
        self._count = 0
        self._closing = False

    @property
    def count(self) -> int:
        return self._count

    @property
    def closing(self) -> bool:
        return self._closing

    def open(self, address: str, device_id: str) -> Stream | None:
        """A new stream, or None when the process is full or shutting down."""
        if self._closing or self._count >= self.max_connections:
            self.metrics.connections_refused.inc()
            return None
        stream = Stream(self, address, device_id)
        self._by_address.setdefault(address, set()).add(stream)
        self._count += 1
        self.metrics.connections.set(self._count)
        return stream

    def remove(self, stream: Stream) -> None:
        streams = self._by_address.get(stream.address)
        if streams is None or stream not in streams:
            return
        streams.discard(stream)
        if not streams:
            del self._by_address[stream.address]
        self._count -= 1
        self.metrics.connections.set(self._count)

    def has_device(self, address: str, device_id: str) -> bool:
        return any(s.device_id == device_id for s in self._by_address.get(address, ()))

    def publish(self, address: str, event_name: str) -> int:
        """Hand the event to every stream of the address here; the number that took it."""
        received_at = time.monotonic()
        taken = sum(
            stream.offer(event_name, received_at) for stream in list(self._by_address.get(address, ()))
        )
        if not taken:
            self.metrics.events_unregistered.inc()
        return taken

    def close_all(self) -> None:
        """Refuse new streams and end every open one (SIGTERM)."""
        self._closing = True
        for streams in list(self._by_address.values()):
            for stream in list(streams):
                stream.end()
