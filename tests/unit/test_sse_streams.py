"""The streams of one SSE process: the opening event, events by address, keep-alives, the
connection bound, slow consumers ended without holding up the others, and shutdown."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from backbone.platform.sse import CONNECTION_OPENED, KEEP_ALIVE, SseMetrics, Streams


def streams(**overrides: float) -> tuple[Streams, CollectorRegistry]:
    registry = CollectorRegistry()
    options = {"max_connections": 3, "queue_size": 2, "keepalive_s": 0.05, **overrides}
    return (
        Streams(
            SseMetrics(registry),
            max_connections=int(options["max_connections"]),
            queue_size=int(options["queue_size"]),
            keepalive_s=options["keepalive_s"],
        ),
        registry,
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_stream_opens_carries_the_events_of_its_address_and_keeps_alive() -> None:
    async def scenario() -> list[bytes]:
        hub, registry = streams()
        mine, other = hub.open("did:e:a", "DVC1"), hub.open("did:e:b", "DVC2")
        assert mine is not None
        assert other is not None
        blocks = [await mine.read()]
        assert hub.publish("did:e:a", "ExternalEventCreated") == 1
        blocks.append(await mine.read())
        blocks.append(await mine.read())  # nothing for a keep-alive interval
        assert await other.read() == CONNECTION_OPENED
        assert value(registry, "backbone_sse_events_delivered_total", event_name="ExternalEventCreated") == 1
        assert value(registry, "backbone_sse_delivery_latency_seconds_count") == 1
        return blocks

    assert asyncio.run(scenario()) == [
        CONNECTION_OPENED,
        b"event: ExternalEventCreated\ndata: _\n\n",
        KEEP_ALIVE,
    ]


def test_an_address_without_a_stream_is_not_registered() -> None:
    hub, registry = streams()
    assert hub.publish("did:e:nobody", "Test") == 0
    assert value(registry, "backbone_sse_events_not_registered_total") == 1


def test_the_connection_bound_refuses_more_streams_until_one_closes() -> None:
    async def scenario() -> None:
        hub, registry = streams(max_connections=2)
        first = hub.open("did:e:a", "DVC1")
        assert first is not None
        assert hub.open("did:e:b", "DVC2") is not None
        assert hub.open("did:e:c", "DVC3") is None
        assert value(registry, "backbone_sse_connections_refused_total") == 1
        await first.close()
        assert hub.count == 1
        assert not hub.has_device("did:e:a", "DVC1")
        assert hub.open("did:e:c", "DVC3") is not None
        assert value(registry, "backbone_sse_connections") == 2

    asyncio.run(scenario())


def test_a_slow_consumer_is_ended_and_the_others_still_get_every_event() -> None:
    async def scenario() -> None:
        hub, registry = streams(queue_size=2)
        slow, quick = hub.open("did:e:a", "DVC1"), hub.open("did:e:a", "DVC2")
        assert slow is not None
        assert quick is not None
        await slow.read()
        await quick.read()
        for _ in range(3):
            hub.publish("did:e:a", "ExternalEventCreated")
            assert (await quick.read()).startswith(b"event: ExternalEventCreated")
        assert slow.ended
        assert await slow.read() == b""
        assert value(registry, "backbone_sse_streams_dropped_total", reason="queue_full") == 1

    asyncio.run(scenario())


def test_closing_all_ends_every_stream_and_refuses_new_ones() -> None:
    async def scenario() -> None:
        hub, _ = streams(keepalive_s=60)
        opened = [hub.open("did:e:a", f"DVC{n}") for n in range(2)]
        readers = []
        for stream in opened:
            assert stream is not None
            await stream.read()
            readers.append(asyncio.create_task(stream.read()))
        await asyncio.sleep(0)
        hub.close_all()
        assert await asyncio.wait_for(asyncio.gather(*readers), 1) == [b"", b""]
        assert hub.closing
        assert hub.open("did:e:b", "DVC9") is None

    asyncio.run(scenario())
