"""File uploads over a real socket to `backbone serve` (gunicorn): chunked bodies and broken-off ones.

A body that announces more bytes than it sends, then closes, gets the error envelope, and the
server keeps neither metadata nor content of the file. A chunked body (no Content-Length) is
read like any other.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from loadtests.client import ConsumerApiClient, Session
from tests.helpers.files import file_parts, multipart
from tests.helpers.server import running_backbone


@dataclass
class Server:
    url: str
    var_dir: Path
    client: ConsumerApiClient
    session: Session

    def file_rows(self) -> int:
        engine = sa.create_engine(f"sqlite:///{self.var_dir / 'backbone.sqlite3'}")
        try:
            with engine.connect() as connection:
                return int(connection.exec_driver_sql("SELECT count(*) FROM file_metadata").scalar_one())
        finally:
            engine.dispose()

    def blob_files(self) -> list[str]:
        blobs = self.var_dir / "blobs"
        return sorted(str(path.relative_to(blobs)) for path in blobs.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("uploads")
    var_dir = directory / "var"
    with running_backbone({"BACKBONE_VAR_DIR": str(var_dir)}, log_path=directory / "server.log") as url:
        client = ConsumerApiClient(url)
        yield Server(url, var_dir, client, client.onboard("a-password-for-this-test!"))


def _exchange(server: Server, head: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """Send one POST /api/v2/Files as given, close the sending side, read the whole answer."""
    parts = urlsplit(server.url)
    headers = {
        "Host": parts.netloc,
        "Authorization": f"Bearer {server.session.access_token}",
        "Connection": "close",
        **head,
    }
    request = (
        "POST /api/v2/Files HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    )
    with socket.create_connection(
        (parts.hostname or "localhost", parts.port or 80), timeout=30
    ) as connection:
        connection.sendall(request.encode() + body)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)


def _chunked(body: bytes, size: int = 100_000) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%X\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def test_an_upload_broken_off_mid_body_leaves_nothing_behind(server: Server) -> None:
    rows_before, blobs_before = server.file_rows(), server.blob_files()
    content = b"\x01" * (3 * 1024 * 1024)
    body, content_type = multipart(file_parts(content, datetime.now(UTC) + timedelta(days=1)))
    status, answer = _exchange(
        server, {"Content-Type": content_type, "Content-Length": str(len(body))}, body[: len(body) // 2]
    )

    assert status == 400, answer
    assert answer["error"]["code"] == "error.platform.inputCannotBeParsed"
    assert server.file_rows() == rows_before
    assert server.blob_files() == blobs_before


def test_a_chunked_upload_is_stored(server: Server) -> None:
    content = bytes(range(256)) * 4096
    body, content_type = multipart(file_parts(content, datetime.now(UTC) + timedelta(days=1)))
    status, answer = _exchange(
        server, {"Content-Type": content_type, "Transfer-Encoding": "chunked"}, _chunked(body)
    )

    assert status == 201, answer
    file_id = answer["result"]["id"]
    assert answer["result"]["cipherSize"] == len(content)
    assert file_id in server.blob_files()
    assert (server.var_dir / "blobs" / file_id).read_bytes() == content
