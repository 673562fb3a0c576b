"""Metrics of the event bus, named after the OpenTelemetry messaging conventions as Prometheus shows them.

Label `messaging_system` is `rabbitmq` or `servicebus`; `messaging_destination_name` is the
exchange or topic (publishing) or the queue or subscription (consuming).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Publish latency includes the broker's confirm, so it is what a request pays after commit.
DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.16, 0.19, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.16, 0.19, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class BusMetrics:
    """The bus's metrics, registered in the registry the process's /metrics serves."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.connection_up = Gauge(
            "messaging_client_connection_up",
            "1 while this process holds an open connection to the broker in the given role, else 0",
            ["messaging_system", "connection_role"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.sent_messages = Counter(
            "messaging_client_sent_messages",
            "Messages handed to the broker; error_type empty = confirmed (ack), else why not",
            ["messaging_system", "messaging_destination_name", "error_type"],
            registry=registry,
        )
        self.operation_duration = Histogram(
            "messaging_client_operation_duration_seconds",
            "Duration of a bus operation: publish (until the broker's confirm) or process (one handler run)",
            ["messaging_system", "messaging_operation_name"],
            buckets=DURATION_BUCKETS_S,
            registry=registry,
        )
        self.consumed_messages = Counter(
            "messaging_client_consumed_messages",
            "Deliveries to a handler by outcome: handled, duplicate, retried, dead_lettered, requeued",
            ["messaging_system", "messaging_destination_name", "outcome"],
            registry=registry,
        )
        self.consumer_lag = Histogram(
            "messaging_consumer_lag_seconds",
            "Time from the event's creation (the committing transaction) to the start of its handling",
            ["messaging_system", "messaging_destination_name"],
            buckets=LAG_BUCKETS_S,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "messaging_queue_depth_messages",
            "Messages ready in a queue, as the broker last reported them (the worker polls)",
            ["messaging_system", "messaging_destination_name"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
