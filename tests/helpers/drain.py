"""Wait until every event is handled: for tests whose handlers run in another process (the worker)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backbone.platform.events import Handler, PublishedEvent
from backbone.wiring import build_services
from tests.helpers.rabbitmq import drained
from tests.helpers.services import settings_for_tests
from tests.helpers.waiting import wait_until


class _RecordingBus:
    """Remembers subscriptions; publishes nowhere."""

    def __init__(self) -> None:
        self.handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        pass

    def ping(self) -> None:
        pass

    def close(self) -> None:
        pass


def subscribed_handlers(tmp_path: Path) -> list[tuple[str, str]]:
    """(inbox name, event name) of every handler the composition root subscribes."""
    bus = _RecordingBus()
    services = build_services(settings_for_tests(f"sqlite:///{tmp_path}/unused.sqlite3", tmp_path), bus=bus)
    services.close()
    return [(handler.queue, handler.event_name) for handler in bus.handlers]


def wait_until_drained(database_url: str, handlers: list[tuple[str, str]], timeout_s: float = 30.0) -> None:
    wait_until(
        lambda: drained(database_url, handlers),
        "every event to be published and handled",
        timeout_s,
        every_s=0.2,
    )


@contextmanager
def drain_endpoint(database_url: str, handlers: list[tuple[str, str]]) -> Iterator[str]:
    """An HTTP endpoint answering 200 once drained (504 after 30 s), for checks written in JavaScript."""

    class Drain(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                wait_until_drained(database_url, handlers)
            except AssertionError as error:
                self._answer(504, str(error))
            else:
                self._answer(200, "drained")

        def _answer(self, status: int, text: str) -> None:
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drain)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/drain"
    finally:
        server.shutdown()
        server.server_close()
