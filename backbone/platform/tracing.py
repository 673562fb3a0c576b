"""OpenTelemetry traces: a server span per request, a span per SQL statement, trace context on events.

The exporter and sampler come from the standard variables (`OTEL_TRACES_EXPORTER`,
`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, `OTEL_EXPORTER_OTLP_*`), read through
`Settings`. With no exporter (the default) nothing is recorded, but every request still gets a
trace id (the client's, from `traceparent`, or a new one) and events still carry it.
The SDK provider is created in each process after fork (`install_tracer_provider`), because its
export thread and HTTP session must not be shared across a fork.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import event
from sqlalchemy.engine import Engine

from backbone.settings import Settings

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16
_propagator = TraceContextTextMapPropagator()
# The trace context of the running request or handler when no SDK span carries it.
_current_traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)


def sampler_for(settings: Settings) -> Sampler:
    """The sampler the OTEL_TRACES_SAMPLER(_ARG) settings name."""
    ratio = TraceIdRatioBased(settings.traces_sampler_arg)
    return {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": ratio,
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(ratio),
    }[settings.traces_sampler]


def install_tracer_provider(
    settings: Settings, service_name: str, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Create this process's provider (after fork) and make it the global one; None without an exporter."""
    if exporter is None:
        if settings.traces_exporter == "none":
            return None
        if settings.traces_exporter == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, override the process's own name.
    resource = Resource.create({"service.name": service_name, "process.pid": os.getpid()}).merge(
        OTELResourceDetector().detect()
    )
    provider = TracerProvider(sampler=sampler_for(settings), resource=resource)
    # The console exporter writes synchronously, so a test reads a request's spans as soon as it ends.
    processor = (
        SimpleSpanProcessor(exporter)
        if settings.traces_exporter == "console"
        else BatchSpanProcessor(exporter)
    )
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider


@dataclass
class RequestTrace:
    """The trace of one request: its ids for the response headers, and what to close at its end."""

    trace_id: str
    method: str = ""
    span: Any = None
    token: Any = None
    traceparent_token: Any = None


class Tracing:
    """Start and end the spans of requests, SQL statements and event handlers."""

    def __init__(self, *, enabled: bool, provider: trace.TracerProvider | None = None) -> None:
        self.enabled = enabled
        # Without an explicit provider the global one is used: the proxy until the worker installs it.
        source = provider or trace.get_tracer_provider()
        self._tracer = source.get_tracer("backbone") if provider else trace.get_tracer("backbone")

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        return cls(enabled=settings.traces_exporter != "none")

    # --- requests ------------------------------------------------------------------------

    def start_request(self, method: str, traceparent: str | None, tracestate: str | None) -> RequestTrace:
        """Open the server span, continuing the client's `traceparent` when it sent a valid one."""
        if self.enabled:
            carrier = {"traceparent": traceparent or "", "tracestate": tracestate or ""}
            parent = _propagator.extract(carrier) if traceparent else None
            span = self._tracer.start_span(
                method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method},
            )
            context = span.get_span_context()
            if context.is_valid:
                attached = otel_context.attach(trace.set_span_in_context(span, parent))
                return RequestTrace(f"{context.trace_id:032x}", method, span, attached)
            span.end()
        # Nothing is recorded: keep (or make) the ids so headers and events still name the trace.
        parsed = _TRACEPARENT.match(traceparent.strip().lower()) if traceparent else None
        if parsed and parsed.group(1) != _INVALID_TRACE_ID and parsed.group(2) != _INVALID_SPAN_ID:
            trace_id, flags = parsed.group(1), parsed.group(3)
        else:
            trace_id, flags = os.urandom(16).hex(), "00"
        ours = _current_traceparent.set(f"00-{trace_id}-{os.urandom(8).hex()}-{flags}")
        return RequestTrace(trace_id, traceparent_token=ours)

    def end_request(self, request: RequestTrace, route: str | None, status: int) -> None:
        span = request.span
        if span is not None:
            # A sampled-out span records nothing; it only carried the ids.
            if span.is_recording():
                if route:
                    span.update_name(f"{request.method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
            otel_context.detach(request.token)
        elif request.traceparent_token is not None:
            _current_traceparent.reset(request.traceparent_token)

    # --- events --------------------------------------------------------------------------

    def current_traceparent(self) -> str | None:
        """The W3C `traceparent` of the running span, stored with each outbox event."""
        if self.enabled:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
        return _current_traceparent.get()

    @contextmanager
    def handling(self, queue: str, traceparent: str | None) -> Iterator[None]:
        """Run an event handler inside the trace the event was published in."""
        if not self.enabled:
            token = _current_traceparent.set(traceparent) if traceparent else None
            try:
                yield
            finally:
                if token is not None:
                    _current_traceparent.reset(token)
            return
        parent = _propagator.extract({"traceparent": traceparent}) if traceparent else None
        with self._tracer.start_as_current_span(
            f"{queue} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={"messaging.destination.name": queue, "messaging.operation.type": "process"},
        ):
            yield

    # --- SQL -----------------------------------------------------------------------------

    def observe_engine(self, engine: Engine) -> None:
        """Open a client span per SQL statement run inside a recorded trace."""
        if not self.enabled:
            return
        system = engine.dialect.name
        tracer = self._tracer

        def before(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
            if not trace.get_current_span().is_recording():
                return
            operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
            context._backbone_span = tracer.start_span(
                operation,
                kind=SpanKind.CLIENT,
                # The statement text holds placeholders only; values never reach the trace.
                attributes={"db.system.name": system, "db.query.text": statement},
            )

        def after(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
            span = getattr(context, "_backbone_span", None)
            if span is not None:
                span.end()
                context._backbone_span = None

        def failed(exception_context: Any) -> None:
            context = exception_context.execution_context
            span = getattr(context, "_backbone_span", None)
            if span is not None:
                span.set_status(Status(StatusCode.ERROR, type(exception_context.original_exception).__name__))
                span.end()
                context._backbone_span = None

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        event.listen(engine, "handle_error", failed)
