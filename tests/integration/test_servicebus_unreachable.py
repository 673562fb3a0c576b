"""Azure Service Bus away (a closed loopback port, reached the way the Service Bus emulator is): the
APIs stay up with `/health` Degraded within the health timeout, publishing fails fast, the events
wait in the outbox, and the connection string's key appears in no log line."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from falcon import testing
from prometheus_client import CollectorRegistry

from backbone.consumer_api import create_consumer_app
from backbone.platform.clock import ManualClock
from backbone.platform.events import BusUnavailable, DomainEvent, PublishedEvent
from backbone.platform.servicebus import AzureServiceBusEventBus
from backbone.wiring import build_services, seed
from testbed.processes import free_port
from tests.helpers.services import settings_for_tests

KEY = "a-shared-access-key-that-must-never-be-logged="


@dataclass(frozen=True)
class ThingHappened(DomainEvent):
    thing_id: str


def _sent(registry: CollectorRegistry, error_type: str) -> float:
    value = registry.get_sample_value(
        "messaging_client_sent_messages_total",
        {"messaging_system": "servicebus", "messaging_destination_name": "default", "error_type": error_type},
    )
    return float(value or 0.0)


def test_while_service_bus_is_away_health_is_degraded_and_the_outbox_keeps_the_events(
    database_url: str, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    connection_string = (
        f"Endpoint=sb://127.0.0.1:{free_port()};SharedAccessKeyName=RootManageSharedAccessKey;"
        f"SharedAccessKey={KEY};UseDevelopmentEmulator=true"
    )
    settings = settings_for_tests(
        database_url,
        tmp_path,
        bus="azureservicebus",
        servicebus_connection_string=connection_string,
        health_timeout_s=2.0,
    )
    services = build_services(settings, clock=clock)
    assert isinstance(services.bus, AzureServiceBusEventBus)
    client = testing.TestClient(create_consumer_app(services))
    try:
        seed(services)
        with caplog.at_level(logging.DEBUG):
            pending_before = services.outbox.pending_count()
            for number in range(3):
                with services.db.transaction():
                    services.outbox.add(ThingHappened(thing_id=f"T{number}"))
            started = time.perf_counter()
            answer = client.simulate_get("/health")
            answered_s = time.perf_counter() - started
            with pytest.raises(BusUnavailable, match="next attempt in"):
                services.bus.publish([PublishedEvent("EVTX", "ThingHappened", {}, clock.now())])
            relayed = services.outbox.relay_pending()
            pending_after = services.outbox.pending_count()
    finally:
        services.close()

    print(f"\n/health answered {answer.text} in {answered_s:.3f} s (timeout {settings.health_timeout_s} s)")
    assert answer.status_code == 200
    assert answer.text == "Degraded", "the APIs work on without Service Bus"
    failures = [record.getMessage() for record in caplog.records if "health check bus" in record.getMessage()]
    # The probe failed by itself (one try, no SDK retries), within the timeout (not cut off by it).
    assert len(failures) == 1
    assert failures[0].startswith("health check bus failed: Service Bus sb://127.0.0.1:")
    assert "Connection refused" in failures[0]
    assert relayed == 0, "the relay stops while the bus is unavailable"
    assert pending_after == pending_before + 3
    assert _sent(services.metrics_registry, "unavailable") >= 3
    assert _sent(services.metrics_registry, "") == 0
    assert KEY not in caplog.text
