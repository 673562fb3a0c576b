"""How the client's requests travel: plain Python (http.client) or Locust (FastHttpSession).

The transports move bytes and nothing else; the API layer builds bodies, the session adds
authentication. Each request carries a `name`, the server's route template
(``/api/v2/Messages/{id}``), so Locust's statistics and the server's `http_route` label join.
"""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


def new_traceparent() -> str:
    """A W3C `traceparent` for one request: a fresh trace id and span id, sampled."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


@dataclass(frozen=True)
class Response:
    """What came back: status, headers (lower-case names) and the raw body."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Transport(Protocol):
    """Send one request.

    `expected` lists the statuses the caller treats as success and `expected_errors` the
    backbone error codes that are a normal business outcome (a transport that keeps
    statistics counts both as success).
    """

    def send(
        self,
        method: str,
        path: str,
        *,
        name: str,
        body: bytes | None,
        headers: Mapping[str, str],
        expected: Collection[int],
        expected_errors: Collection[str] = (),
    ) -> Response: ...


class HttpClientTransport:
    """HTTP/1.1 over http.client, one kept-alive connection per thread (seeding runs many threads)."""

    def __init__(self, base_url: str, *, timeout_s: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(base_url.rstrip("/"))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"base URL {base_url!r} must be http(s)://host[:port]")
        self.base_url = base_url.rstrip("/")
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._prefix = parsed.path
        self._timeout_s = timeout_s
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            factory = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            connection = factory(self._host, self._port, timeout=self._timeout_s)
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def send(
        self,
        method: str,
        path: str,
        *,
        name: str,
        body: bytes | None,
        headers: Mapping[str, str],
        expected: Collection[int],
        expected_errors: Collection[str] = (),
    ) -> Response:
        # A kept-alive connection the server closed fails on first use; one retry on a fresh
        # connection is safe only when nothing can have been processed, i.e. the send failed.
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, self._prefix + path, body=body, headers=dict(headers))
            except (ConnectionError, http.client.HTTPException, OSError):
                self._drop_connection()
                if attempt == 2:
                    raise
                continue
            try:
                answer = connection.getresponse()
                data = answer.read()
            except (http.client.RemoteDisconnected, ConnectionResetError):
                self._drop_connection()
                if attempt == 2 or method not in ("GET", "HEAD"):
                    raise
                continue
            except BaseException:
                self._drop_connection()
                raise
            if answer.will_close:
                self._drop_connection()
            return Response(answer.status, data, {k.lower(): v for k, v in answer.getheaders()})
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._drop_connection()


class LocustTransport:
    """Send through a Locust `FastHttpSession`, reporting each request under its route template.

    A status outside `expected` is reported to Locust as a failure (with the backbone's error
    code when there is one); expected statuses, including expected business errors, count as
    success.
    """

    def __init__(self, session: Any) -> None:
        self.session = session

    def send(
        self,
        method: str,
        path: str,
        *,
        name: str,
        body: bytes | None,
        headers: Mapping[str, str],
        expected: Collection[int],
        expected_errors: Collection[str] = (),
    ) -> Response:
        with self.session.request(
            method, path, name=name, data=body, headers=dict(headers), catch_response=True
        ) as answer:
            status = int(answer.status_code or 0)
            content = answer.content or b""
            if status in expected or (expected_errors and error_code(content) in expected_errors):
                answer.success()
            else:
                answer.failure(f"HTTP {status} {error_code(content) or ''}".rstrip())
            response_headers = {str(k).lower(): str(v) for k, v in (answer.headers or {}).items()}
        return Response(status, content, response_headers)


def error_code(body: bytes) -> str | None:
    """The backbone error envelope's `code`, or None for any other body."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return str(error["code"])
        if isinstance(document.get("error"), str):  # OAuth errors: {"error": "invalid_grant"}
            return str(document["error"])
    return None
