"""Metrics of push deliveries; the two counters keep the original's names and labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# One delivery: a request or two to a push service, retries and their waits included.
SEND_DURATION_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.16, 0.19, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class PushMetrics:
    """Registered in the registry the process's /metrics serves (the worker's, or the node's
    multiprocess directory under gunicorn)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "enmeshed_push_notifications_sent",
            "Push notifications the push service accepted (dummy: logged).",
            ["event_name", "platform"],
            registry=registry,
        )
        self.send_errors = Counter(
            "enmeshed_push_notifications_send_errors",
            "Push notifications not delivered, by the push service's reason (retries exhausted included).",
            ["event_name", "platform", "reason"],
            registry=registry,
        )
        self.send_duration = Histogram(
            "backbone_push_send_duration_seconds",
            "Time to deliver one push notification, retries and their waits included.",
            ["platform"],
            buckets=SEND_DURATION_BUCKETS_S,
            registry=registry,
        )
        self.retries = Counter(
            "backbone_push_retries",
            "Requests to a push service repeated after a 429, a 5xx or a network error.",
            ["platform", "reason"],
            registry=registry,
        )
