"""The edges of HTTP itself, over real sockets to `backbone serve` and `serve-admin` (gunicorn).

Chunked bodies (no Content-Length) are read on every route with a JSON body of both documents,
and counted against `BACKBONE_MAX_REQUEST_BODY_BYTES`; a malformed or broken-off chunked body
gets 400. A 6 KiB request line is served; longer lines, oversized headers and requests that are
not HTTP get the error envelope from gunicorn's worker; through the HAProxy gateway a request
head over its buffer gets HAProxy's own answer (docs/decisions.md, Edges).
"""

from __future__ import annotations

import http.cookies
import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from loadtests.client import DATAWALLET_HEADER, ConsumerApiClient
from scenarios.landscape import GatewayProfile
from testbed.landscape.gateway import GatewayPorts, haproxy_config, haproxy_executable
from testbed.processes import free_port, listens, wait_until_answers
from tests.helpers.openapi_requests import Known, Operation, build_request, operations
from tests.helpers.server import running_backbone
from tests.helpers.services import unavailable

BODY_LIMIT = 64 * 1024
ADMIN_KEY = "an-admin-key-for-the-edges"


@dataclass
class Api:
    url: str
    headers: dict[str, str]
    document: dict[str, Any]
    known: Known


@dataclass
class Servers:
    consumer: Api
    admin: Api
    var_dir: Path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    var_dir = tmp_path_factory.mktemp("edges")
    environment = {
        "BACKBONE_VAR_DIR": str(var_dir),
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_ADMIN_API_KEY": ADMIN_KEY,
        "BACKBONE_PASSWORD_HASH_ITERATIONS": "1000",
        "BACKBONE_MAX_REQUEST_BODY_BYTES": str(BODY_LIMIT),
    }
    with (
        running_backbone(
            environment, args=("serve", "--workers", "1"), log_path=var_dir / "consumer.log"
        ) as consumer,
        running_backbone(
            environment, args=("serve-admin", "--workers", "1"), log_path=var_dir / "admin.log"
        ) as admin,
    ):
        session = ConsumerApiClient(consumer).onboard("a-device-password!")
        known = Known(address=session.address, ids={"DVC": session.device_id})
        consumer_headers = {**session.auth_header, **DATAWALLET_HEADER}
        yield Servers(
            Api(consumer, consumer_headers, _document(consumer, "/docs/v2/openapi.json"), known),
            Api(admin, _admin_headers(admin), _document(admin, "/docs/v1/openapi.json"), known),
            var_dir,
        )


def _document(url: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + path, timeout=10) as response:
        document: dict[str, Any] = json.loads(response.read())
        return document


def _admin_headers(url: str) -> dict[str, str]:
    request = urllib.request.Request(f"{url}/api/v1/xsrf", headers={"X-API-KEY": ADMIN_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.loads(response.read())
        cookie = http.cookies.SimpleCookie(response.headers["Set-Cookie"])["X-XSRF-COOKIE"].value
    return {"X-API-KEY": ADMIN_KEY, "X-XSRF-TOKEN": token, "Cookie": f"X-XSRF-COOKIE={cookie}"}


@dataclass
class Answer:
    status: int
    headers: str
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        try:
            return str(self.json["error"]["code"])
        except (ValueError, KeyError, TypeError):
            return None


def exchange(url: str, head: str, body: bytes = b"", *, hang_up: bool = False) -> Answer:
    """Send one request exactly as given (it must say `Connection: close`), read the whole answer.

    `hang_up` closes the sending side after the request, as a client that broke off does.
    """
    parts = urlsplit(url)
    with socket.create_connection(
        (parts.hostname or "localhost", parts.port or 80), timeout=30
    ) as connection:
        connection.sendall(head.encode("latin-1") + body)
        if hang_up:
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # a server may close before reading all of an oversized request
    head_part, _, payload = answer.partition(b"\r\n\r\n")
    status_line, _, headers = head_part.decode("latin-1").partition("\r\n")
    return Answer(int(status_line.split()[1]), headers, payload)


def request_head(method: str, target: str, headers: dict[str, str]) -> str:
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def chunked(body: bytes, size: int = 16 * 1024) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%X\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def _json_operations(api: Api) -> list[Operation]:
    return [operation for operation in operations(api.document) if operation.body_type == "application/json"]


def _send(api: Api, operation: Operation, body: bytes, *, chunks: bool) -> Answer:
    request = build_request(operation, api.known)
    target = request.path + (f"?{request.query_string}" if request.query_string else "")
    framing = {"Transfer-Encoding": "chunked"} if chunks else {"Content-Length": str(len(body))}
    headers = {**api.headers, "Content-Type": "application/json", **framing}
    return exchange(
        api.url, request_head(operation.method, target, headers), chunked(body) if chunks else body
    )


@pytest.mark.parametrize("which", ["consumer", "admin"])
def test_every_json_route_reads_a_chunked_body_within_the_limit(servers: Servers, which: str) -> None:
    """A chunked body is answered as the same body with a Content-Length.

    An array where an object belongs tells the routes that read their body (the answer says
    so) from those that ignore it (Challenges, the relationship changes without content); the
    readers must also refuse a chunked body over the limit.
    """
    api: Api = getattr(servers, which)
    over_the_limit = b'{"padding": "' + b"x" * BODY_LIMIT + b'"}'
    problems, readers = [], 0
    for operation in _json_operations(api):
        by_length = _send(api, operation, b"[]", chunks=False)
        by_chunks = _send(api, operation, b"[]", chunks=True)
        if (by_chunks.status, by_chunks.code) != (by_length.status, by_length.code):
            chunked_answer, counted_answer = (
                (by_chunks.status, by_chunks.code),
                (by_length.status, by_length.code),
            )
            problems.append(f"{operation}: chunked {chunked_answer}, with a Content-Length {counted_answer}")
        if by_length.code != "error.platform.inputCannotBeParsed" or b"JSON object" not in by_length.body:
            continue
        readers += 1
        refused = _send(api, operation, over_the_limit, chunks=True)
        if (refused.status, refused.code) != (400, "error.platform.requestBodyTooLarge"):
            problems.append(
                f"{operation} with a chunked body over the limit: {refused.status} {refused.body[:200]!r}"
            )
    print(f"\n{which}: {readers} of {len(_json_operations(api))} routes with a JSON body read it")
    assert readers >= (20 if which == "consumer" else 8)
    assert not problems, "\n".join(problems)


def test_a_chunked_token_request_logs_in(servers: Servers) -> None:
    client = ConsumerApiClient(servers.consumer.url)
    session = client.onboard("another-device-password!", with_datawallet=False)
    form = "&".join(
        f"{name}={value}" for name, value in client.token_form(session.username, session.password).items()
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"}
    answer = exchange(
        servers.consumer.url, request_head("POST", "/connect/token", headers), chunked(form.encode(), 7)
    )
    assert answer.status == 200, answer.body
    assert answer.json["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("a chunk size that is no number", b"zz\r\n[]\r\n0\r\n\r\n"),
        ("a body broken off mid-chunk", b"10\r\n[]"),
    ],
)
def test_a_malformed_chunked_body_gets_400(servers: Servers, name: str, body: bytes) -> None:
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    answer = exchange(
        servers.consumer.url, request_head("POST", "/api/v2/Tokens", headers), body, hang_up=True
    )
    assert (answer.status, answer.code) == (400, "error.platform.inputCannotBeParsed"), answer.body
    assert "unexpected error" not in (servers.var_dir / "consumer.log").read_text()


def _ids_query(length: int) -> str:
    """`ids=MSG...&ids=...` of about `length` characters (unknown ids: the list comes back empty)."""
    ids, query = 0, []
    while sum(len(part) + 1 for part in query) < length:
        query.append(f"ids=MSG{ids:017d}")
        ids += 1
    return "&".join(query)


def test_a_6_kib_request_line_is_served(servers: Servers) -> None:
    target = "/api/v2/Messages?" + _ids_query(6 * 1024)
    answer = exchange(servers.consumer.url, request_head("GET", target, servers.consumer.headers))
    assert answer.status == 200, answer.body
    assert answer.json["result"] == []


def _assert_envelope(answer: Answer, status: int, code: str) -> None:
    assert (answer.status, answer.code) == (status, code), answer.body
    assert "application/json" in answer.headers.lower()


def test_what_gunicorn_refuses_itself_gets_the_envelope(servers: Servers) -> None:
    url = servers.consumer.url
    long_line = exchange(url, request_head("GET", "/api/v2/Version?x=" + "a" * 9000, {}))
    _assert_envelope(long_line, 414, "error.platform.requestLineTooLong")
    big_header = exchange(url, request_head("GET", "/api/v2/Version", {"X-Big": "a" * 9000}))
    _assert_envelope(big_header, 431, "error.platform.requestHeadersTooLarge")
    not_http = exchange(url, "NOT HTTP AT ALL\r\n\r\n")
    _assert_envelope(not_http, 400, "error.platform.invalidRequest")


def test_nul_in_a_path_over_the_wire_is_refused(servers: Servers) -> None:
    target = "/api/v1/Clients/test%00"
    answer = exchange(servers.admin.url, request_head("GET", target, servers.admin.headers))
    _assert_envelope(answer, 400, "error.platform.validation.invalidPropertyValue")


@pytest.fixture(scope="module")
def gateway(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HAProxy gateway of the generated configuration in front of the consumer node."""
    executable = haproxy_executable()
    if executable is None:
        unavailable("haproxy is not installed (apt-get install haproxy)")
    ports = GatewayPorts(free_port(), free_port())
    node_port = urlsplit(servers.consumer.url).port or 80
    config = tmp_path_factory.mktemp("gateway") / "haproxy.cfg"
    config.write_text(haproxy_config(GatewayProfile(), ports, [node_port], "edges"))
    process = subprocess.Popen([str(executable), "-db", "-f", str(config)], stdout=subprocess.DEVNULL)
    try:
        wait_until_answers(listens(ports.public), process, what="haproxy", timeout_s=10)
        yield f"http://localhost:{ports.public}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_through_the_gateway_long_lines_reach_the_node_up_to_its_buffer(
    servers: Servers, gateway: str
) -> None:
    headers = servers.consumer.headers
    served = exchange(gateway, request_head("GET", "/api/v2/Messages?" + _ids_query(6 * 1024), headers))
    assert served.status == 200, served.body
    # Longer than the node's limit, within HAProxy's buffer: the node's envelope comes through.
    too_long = exchange(gateway, request_head("GET", "/api/v2/Messages?" + _ids_query(12 * 1024), headers))
    _assert_envelope(too_long, 414, "error.platform.requestLineTooLong")
    # Over HAProxy's buffer (15,360 bytes of request head): its own HTML 400, before any node.
    over_buffer = exchange(gateway, request_head("GET", "/api/v2/Messages?" + _ids_query(16 * 1024), headers))
    assert over_buffer.status == 400
    assert "text/html" in over_buffer.headers.lower()
