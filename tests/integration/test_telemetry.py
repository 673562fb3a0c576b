"""Telemetry of the API processes in-process: headers, /metrics, traces and the trace on events."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import falcon
import pytest
import sqlalchemy as sa
from falcon import testing
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from backbone.admin_api import create_admin_app
from backbone.consumer_api import create_consumer_app
from backbone.platform.clock import ManualClock
from backbone.platform.errors import QuotaExhausted
from backbone.platform.events import outbox_events
from backbone.platform.health import HealthChecks, HealthResource
from backbone.platform.http import BodyLimit, RequestTelemetry, create_app
from backbone.platform.metrics import Metrics, MetricsResource
from backbone.platform.tracing import Tracing
from backbone.wiring import Services, build_services, seed
from tests.helpers.api import Account, assert_error, onboard
from tests.helpers.files import upload_file
from tests.helpers.peers import BODY, ENCRYPTED_KEY, relate, send_message
from tests.helpers.services import ADMIN_API_KEY, fresh_sqlite, settings_for_tests

TRACE_HEADERS = (
    "X-Trace-Id",
    "X-Correlation-Id",
    "X-Request-Time",
    "X-Response-Time",
    "X-Response-Duration-ms",
)
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE_ID}-00f067aa0ba902b7-01"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def samples(api: testing.TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The values of one metric from `GET /metrics`, keyed by their sorted labels."""
    exposition = api.simulate_get("/metrics")
    assert exposition.status_code == 200
    assert exposition.headers["content-type"].startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(exposition.text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def request_counts(api: testing.TestClient) -> dict[tuple[str, str, str], float]:
    counts = samples(api, "http_server_request_duration_seconds_count")
    return {
        (labels["http_route"], labels["http_request_method"], labels["http_response_status_code"]): value
        for labels, value in ((dict(key), value) for key, value in counts.items())
    }


@pytest.fixture
def sqlite_services(tmp_path: Path, sqlite_template: Path, clock: ManualClock) -> Iterator[Services]:
    built = build_services(settings_for_tests(fresh_sqlite(sqlite_template, tmp_path), tmp_path), clock=clock)
    seed(built)
    yield built
    built.close()


@pytest.fixture
def sqlite_api(sqlite_services: Services) -> testing.TestClient:
    return testing.TestClient(create_consumer_app(sqlite_services))


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v2/Version", 200),
        ("GET", "/api/v2/NoSuchThing", 404),
        ("DELETE", "/api/v2/Version", 405),
        ("GET", "/api/v2/Relationships", 401),
        ("POST", "/api/v2/Challenges", 201),
    ],
)
def test_every_response_carries_the_trace_and_timing_headers(
    sqlite_api: testing.TestClient, method: str, path: str, status: int
) -> None:
    result = sqlite_api.simulate_request(method, path, json={} if method == "POST" else None)
    assert result.status_code == status
    for header in TRACE_HEADERS:
        assert result.headers.get(header), f"{header} missing on {status}"
    assert re.fullmatch(r"[0-9a-f]{32}", result.headers["X-Trace-Id"])
    assert result.headers["X-Trace-Id"] != "0" * 32
    assert TIMESTAMP.match(result.headers["X-Request-Time"])
    assert TIMESTAMP.match(result.headers["X-Response-Time"])
    assert int(result.headers["X-Response-Duration-ms"]) >= 0


def test_a_body_refused_by_later_middleware_still_gets_the_headers(sqlite_api: testing.TestClient) -> None:
    result = sqlite_api.simulate_post(
        "/api/v2/Challenges", body=b"x", headers={"Content-Length": str(10**9), "Content-Type": "text/plain"}
    )
    assert_error(result, 400, "error.platform.requestBodyTooLarge")
    assert all(result.headers.get(header) for header in TRACE_HEADERS)


def test_each_request_gets_its_own_trace_unless_the_client_sends_one(sqlite_api: testing.TestClient) -> None:
    first = sqlite_api.simulate_get("/api/v2/Version").headers["X-Trace-Id"]
    second = sqlite_api.simulate_get("/api/v2/Version").headers["X-Trace-Id"]
    assert first != second
    continued = sqlite_api.simulate_get("/api/v2/Version", headers={"traceparent": CLIENT_TRACEPARENT})
    assert continued.headers["X-Trace-Id"] == CLIENT_TRACE_ID
    malformed = sqlite_api.simulate_get("/api/v2/Version", headers={"traceparent": "00-nonsense-01"})
    assert malformed.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", malformed.headers["X-Trace-Id"])


def test_a_correlation_id_from_the_client_comes_back(sqlite_api: testing.TestClient) -> None:
    result = sqlite_api.simulate_get("/api/v2/Version", headers={"X-Correlation-ID": "my-correlation"})
    assert result.headers["X-Correlation-Id"] == "my-correlation"


# --- metrics ------------------------------------------------------------------------------------


def test_requests_are_counted_per_route_template_never_per_raw_path(
    sqlite_services: Services, sqlite_api: testing.TestClient
) -> None:
    owner, requester = onboard(sqlite_api), onboard(sqlite_api)
    relationship_id = relate(owner, requester)
    before = request_counts(sqlite_api)
    for _ in range(3):
        assert owner.get(f"/api/v2/Relationships/{relationship_id}").status_code == 200
    # Literal segments match case-insensitively; the label is the template as written.
    assert owner.get(f"/api/v2/relationships/{relationship_id}").status_code == 200
    assert sqlite_api.simulate_get(f"/api/v2/Nothing/{relationship_id}").status_code == 404
    after = request_counts(sqlite_api)
    key = ("/api/v2/Relationships/{id}", "GET", "200")
    assert after[key] - before.get(key, 0) == 4
    assert after[("(unmatched)", "GET", "404")] - before.get(("(unmatched)", "GET", "404"), 0) == 1
    assert not [route for route, _, _ in after if relationship_id in route]


def test_unknown_methods_share_one_label_value() -> None:
    metrics = Metrics()
    for method in ("BREW", "WHEN"):
        metrics.request_started()
        metrics.request_finished("/x", method, 405, 0.01)
    families = {
        family.name: family for family in text_string_to_metric_families(metrics.exposition().decode())
    }
    counts = [
        (sample.labels["http_request_method"], sample.value)
        for sample in families["http_server_request_duration_seconds"].samples
        if sample.name.endswith("_count")
    ]
    assert counts == [("_OTHER", 2.0)]


def test_business_counters_follow_committed_events(
    sqlite_api: testing.TestClient, clock: ManualClock
) -> None:
    owner, requester = onboard(sqlite_api), onboard(sqlite_api)
    relate(owner, requester)
    for _ in range(2):
        assert send_message(owner, requester).status_code == 201
    content = b"c" * 1234
    upload_file(owner, content, clock.now())
    assert samples(sqlite_api, "backbone_identities_created_total") == {(): 2.0}
    assert samples(sqlite_api, "backbone_messages_sent_total") == {(): 2.0}
    assert samples(sqlite_api, "backbone_files_uploaded_bytes_total") == {(): float(len(content))}
    handled = samples(sqlite_api, "enmeshed_events_handled_total")
    assert handled[(("queue_name", "Synchronization.MessageCreated"),)] == 2.0
    published = samples(sqlite_api, "enmeshed_events_published_total")
    assert published[(("event_name", "MessageCreated"),)] == 2.0
    assert samples(sqlite_api, "backbone_outbox_pending_events") == {(): 0.0}


def test_a_failing_handler_is_counted_and_its_event_stays_pending(
    sqlite_services: Services, sqlite_api: testing.TestClient
) -> None:
    from backbone.platform.events import Handler

    def broken(_event: object) -> None:
        raise RuntimeError("handler broke")

    sqlite_services.bus.subscribe(Handler("Tests", "IdentityCreated", broken))
    onboard(sqlite_api)
    errors = samples(sqlite_api, "enmeshed_events_processing_errors_total")
    assert errors[(("queue_name", "Tests.IdentityCreated"),)] == 1.0
    assert (
        samples(sqlite_api, "enmeshed_events_publishing_errors_total")[(("event_name", "IdentityCreated"),)]
        == 1
    )
    assert samples(sqlite_api, "backbone_outbox_pending_events") == {(): 1.0}


def test_quota_rejections_are_counted_from_the_error_code() -> None:
    metrics = Metrics()

    class Refusing:
        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            raise QuotaExhausted([{"metricKey": "NumberOfSentMessages", "isExhaustedUntil": None}])

    class TooManyOtherwise:
        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            raise falcon.HTTPTooManyRequests()

    app = create_app(middleware=[RequestTelemetry(metrics, Tracing(enabled=False))])
    app.add_route("/api/v2/Messages", Refusing())
    app.add_route("/api/v2/Other", TooManyOtherwise())
    app.add_route("/metrics", MetricsResource(metrics))
    client = testing.TestClient(app)
    for _ in range(2):
        assert_error(client.simulate_post("/api/v2/Messages"), 429, "error.platform.quotaExhausted")
    assert client.simulate_post("/api/v2/Other").status_code == 429
    assert samples(client, "backbone_quota_rejections_total") == {(("http_route", "/api/v2/Messages"),): 2.0}


def test_pool_gauges_follow_checkouts(sqlite_services: Services, sqlite_api: testing.TestClient) -> None:
    with sqlite_services.db.read():
        used = samples(sqlite_api, "db_client_connection_count")[(("db_client_connection_state", "used"),)]
        assert used >= 1
    after = samples(sqlite_api, "db_client_connection_count")
    assert after[(("db_client_connection_state", "used"),)] == used - 1
    assert samples(sqlite_api, "db_client_connection_idle_max") == {(): 5.0}
    assert samples(sqlite_api, "db_client_connection_max") == {(): 15.0}
    assert samples(sqlite_api, "db_client_connection_wait_time_seconds_count")[()] >= 1


def test_in_flight_gauges_count_the_scrape_itself(sqlite_api: testing.TestClient) -> None:
    assert samples(sqlite_api, "http_server_active_requests") == {(): 1.0}
    assert samples(sqlite_api, "backbone_gunicorn_workers_busy") == {(): 1.0}
    assert samples(sqlite_api, "backbone_gunicorn_workers") == {(): 1.0}


def test_the_admin_api_serves_metrics_with_its_routes(sqlite_services: Services) -> None:
    admin = testing.TestClient(create_admin_app(sqlite_services))
    assert admin.simulate_get("/api/v1/Tiers", headers={"X-API-KEY": ADMIN_API_KEY}).status_code == 200
    assert request_counts(admin)[("/api/v1/Tiers", "GET", "200")] == 1


# --- traces -------------------------------------------------------------------------------------


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced_services(
    database_url: str, tmp_path: Path, clock: ManualClock, spans: InMemorySpanExporter
) -> Iterator[Services]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing = Tracing(enabled=True, provider=provider)
    built = build_services(settings_for_tests(database_url, tmp_path), clock=clock, tracing=tracing)
    seed(built)
    spans.clear()
    yield built
    built.close()


@pytest.fixture
def traced_api(traced_services: Services) -> testing.TestClient:
    return testing.TestClient(create_consumer_app(traced_services))


def spans_of(exported: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [span for span in exported.get_finished_spans() if f"{span.context.trace_id:032x}" == trace_id]


def test_a_request_is_one_server_span_containing_its_sql(
    traced_api: testing.TestClient, spans: InMemorySpanExporter
) -> None:
    result = traced_api.simulate_post("/api/v2/Challenges", json={})
    assert result.status_code == 201
    trace_spans = spans_of(spans, result.headers["X-Trace-Id"])
    servers = [span for span in trace_spans if span.kind is SpanKind.SERVER]
    assert [span.name for span in servers] == ["POST /api/v2/Challenges"]
    server = servers[0]
    assert server.parent is None
    assert server.attributes["http.route"] == "/api/v2/Challenges"
    assert server.attributes["http.response.status_code"] == 201
    statements = [span for span in trace_spans if span.kind is SpanKind.CLIENT]
    assert any(span.name == "INSERT" for span in statements)
    assert all(span.parent.span_id == server.context.span_id for span in statements)
    assert len(trace_spans) == 1 + len(statements)


def test_a_sampled_out_request_records_nothing_but_keeps_its_trace_id(
    sqlite_template: Path, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    settings = settings_for_tests(fresh_sqlite(sqlite_template, tmp_path), tmp_path)
    built = build_services(settings, tracing=Tracing(enabled=True, provider=provider))
    try:
        api = testing.TestClient(create_consumer_app(built))
        result = api.simulate_post("/api/v2/Challenges", json={}, headers={"traceparent": CLIENT_TRACEPARENT})
        assert result.status_code == 201
        assert result.headers["X-Trace-Id"] == CLIENT_TRACE_ID
        unsampled = api.simulate_get("/api/v2/Version")
        assert re.fullmatch(r"[0-9a-f]{32}", unsampled.headers["X-Trace-Id"])
        assert unsampled.headers["X-Trace-Id"] != "0" * 32
        assert spans.get_finished_spans() == ()
    finally:
        built.close()


def test_events_carry_the_clients_trace_to_their_handlers(
    traced_services: Services, traced_api: testing.TestClient, spans: InMemorySpanExporter
) -> None:
    owner, requester = onboard(traced_api), onboard(traced_api)
    relate(owner, requester)
    sent = send_traced_message(owner, requester)
    assert sent.status_code == 201
    assert sent.headers["X-Trace-Id"] == CLIENT_TRACE_ID
    trace_spans = spans_of(spans, CLIENT_TRACE_ID)
    server = next(span for span in trace_spans if span.kind is SpanKind.SERVER)
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == "00f067aa0ba902b7"
    handlers = [span for span in trace_spans if span.kind is SpanKind.CONSUMER]
    assert "Synchronization.MessageCreated process" in {span.name for span in handlers}
    (stored,) = stored_traceparents(traced_services, "MessageCreated")
    assert stored.split("-")[1] == CLIENT_TRACE_ID
    # The event names the span that wrote it: a span of this request's trace.
    assert int(stored.split("-")[2], 16) in {span.context.span_id for span in trace_spans}


def test_without_an_exporter_events_still_carry_the_trace_id(
    sqlite_services: Services, sqlite_api: testing.TestClient
) -> None:
    owner, requester = onboard(sqlite_api), onboard(sqlite_api)
    relate(owner, requester)
    sent = send_traced_message(owner, requester)
    assert sent.status_code == 201
    (stored,) = stored_traceparents(sqlite_services, "MessageCreated")
    assert re.fullmatch(f"00-{CLIENT_TRACE_ID}-[0-9a-f]{{16}}-01", stored)


def send_traced_message(sender: Account, recipient: Account) -> testing.Result:
    body = {
        "recipients": [{"address": recipient.address, "encryptedKey": ENCRYPTED_KEY}],
        "body": BODY,
        "attachments": [],
    }
    return sender.post("/api/v2/Messages", json=body, headers={"traceparent": CLIENT_TRACEPARENT})


def stored_traceparents(services: Services, name: str) -> list[str]:
    with services.db.read() as connection:
        return list(
            connection.execute(
                sa.select(outbox_events.c.traceparent).where(outbox_events.c.name == name)
            ).scalars()
        )


# --- health -------------------------------------------------------------------------------------


def test_health_is_503_when_a_check_hangs_and_a_hanging_check_is_not_piled_up() -> None:
    release = threading.Event()
    started: list[int] = []

    def hanging() -> None:
        started.append(1)
        release.wait(30)

    checks = HealthChecks(timeout_s=0.2)
    checks.add("fine", lambda: None)
    app = create_app(middleware=[BodyLimit(1024)])
    app.add_route("/health", HealthResource(checks))
    client = testing.TestClient(app)
    healthy = client.simulate_get("/health")
    assert (healthy.status_code, healthy.text) == (200, "Healthy")

    checks.add("hanging", hanging)
    try:
        for _ in range(3):
            answer = client.simulate_get("/health")
            assert (answer.status_code, answer.text) == (503, "Unhealthy")
        assert len(started) == 1
    finally:
        release.set()


def test_health_checks_the_database_the_bus_and_the_blob_store(
    sqlite_services: Services, sqlite_api: testing.TestClient
) -> None:
    assert sqlite_services.health.names == ["blobs", "bus", "database"]
    assert sqlite_api.simulate_get("/health").text == "Healthy"
    sqlite_services.health.add("bus", _raise)
    assert sqlite_api.simulate_get("/health").status_code == 503


def _raise() -> None:
    raise ConnectionError("bus down")


def test_with_metrics_switched_off_there_is_no_metrics_route_but_every_header(
    tmp_path: Path, sqlite_template: Path
) -> None:
    settings = settings_for_tests(fresh_sqlite(sqlite_template, tmp_path), tmp_path, metrics_enabled=False)
    built = build_services(settings)
    try:
        api = testing.TestClient(create_consumer_app(built))
        assert built.metrics is None
        assert_error(api.simulate_get("/metrics"), 404, "error.platform.routeNotFound")
        result = api.simulate_post("/api/v2/Challenges", json={})
        assert result.status_code == 201
        assert all(result.headers.get(header) for header in TRACE_HEADERS)
    finally:
        built.close()
