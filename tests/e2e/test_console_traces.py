"""`backbone serve` with OTEL_TRACES_EXPORTER=console: one request, one trace, its SQL inside it."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers.server import running_backbone
from tests.helpers.services import FAST_HASH_ITERATIONS


def exported_spans(log: str) -> list[dict[str, Any]]:
    """The spans the console exporter wrote (indented JSON objects between the server's log lines)."""
    decoder = json.JSONDecoder()
    spans = []
    position = log.find('{\n    "name"')
    while position != -1:
        span, end = decoder.raw_decode(log, position)
        spans.append(span)
        position = log.find('{\n    "name"', end)
    return spans


def test_one_request_is_one_trace_whose_server_span_contains_its_sql(tmp_path: Path) -> None:
    log_path = tmp_path / "backbone.log"
    environment = {
        "BACKBONE_VAR_DIR": str(tmp_path / "var"),
        "BACKBONE_PASSWORD_HASH_ITERATIONS": str(FAST_HASH_ITERATIONS),
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "backbone-under-test",
    }
    with running_backbone(environment, args=("serve", "--workers", "1"), log_path=log_path) as url:
        request = urllib.request.Request(
            f"{url}/api/v2/Challenges",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
            trace_id = response.headers["X-Trace-Id"]
        spans = wait_for_server_span(log_path, trace_id)
    ours = [span for span in spans if span["context"]["trace_id"] == f"0x{trace_id}"]
    (server,) = [span for span in ours if span["kind"] == "SpanKind.SERVER"]
    assert server["name"] == "POST /api/v2/Challenges"
    assert server["parent_id"] is None
    assert server["attributes"]["http.route"] == "/api/v2/Challenges"
    assert server["attributes"]["http.response.status_code"] == 201
    assert server["resource"]["attributes"]["service.name"] == "backbone-under-test"
    statements = [span for span in ours if span["kind"] == "SpanKind.CLIENT"]
    assert [span["name"] for span in statements].count("INSERT") == 1
    assert all(span["parent_id"] == server["context"]["span_id"] for span in statements)
    assert all(span["attributes"]["db.system.name"] == "sqlite" for span in statements)
    assert len(ours) == 1 + len(statements)
    # The request's route appears in no other trace.
    others = [span for span in spans if span["context"]["trace_id"] != f"0x{trace_id}"]
    assert not [span for span in others if span["name"].endswith("/api/v2/Challenges")]


def wait_for_server_span(log_path: Path, trace_id: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Read the spans once the request's server span (written when the request ends) is in the log."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans = exported_spans(log_path.read_text(errors="replace"))
        if any(
            span["context"]["trace_id"] == f"0x{trace_id}" and span["kind"] == "SpanKind.SERVER"
            for span in spans
        ):
            return spans
        if time.monotonic() > deadline:
            raise TimeoutError(f"no server span of trace {trace_id} in {log_path}")
        time.sleep(0.1)
