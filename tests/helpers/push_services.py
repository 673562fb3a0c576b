"""Fake FCM and APNs servers on loopback: HTTP/2 over TLS (hypercorn, a trustme test CA), checking
the protocol as the real services would refuse it, recording what they received, and answering
each device's pushes as a test scripts.

FCM: the OAuth token endpoint (the JWT bearer grant: the assertion's RS256 signature against the
service account's public key, its claims) and `messages:send` (the bearer must be a token it issued).
APNs: `/3/device/<token>` over HTTP/2 only, the provider token's ES256 signature against the key,
its `kid`, `iss` (team id) and `iat`, and the topic.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import trustme
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from hypercorn.asyncio import serve
from hypercorn.config import Config

from backbone.platform.push.fcm import JWT_BEARER_GRANT, SCOPE

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Received:
    """One request the fake accepted as well-formed (whatever it answered)."""

    port: int
    path: str
    http_version: str
    headers: dict[str, str]
    body: Any
    # The JWT that authenticated it, decoded and verified (APNs' provider token).
    token_header: dict[str, Any] = field(default_factory=dict)
    token_claims: dict[str, Any] = field(default_factory=dict)


class FakePushService:
    """What both fakes share: scripted answers per device, what was received, protocol problems."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        # Protocol violations: a real service would have refused these requests.
        self.problems: list[str] = []
        self._answers: dict[str, deque[Answer]] = defaultdict(deque)
        self._lock = threading.Lock()

    def answer(self, device: str, answer: Answer, *, times: int = 1) -> None:
        """Answer the next `times` pushes to this device so; later ones succeed."""
        with self._lock:
            self._answers[device].extend([answer] * times)

    def _scripted(self, device: str) -> Answer | None:
        with self._lock:
            queue = self._answers.get(device)
            return queue.popleft() if queue else None

    def _problem(self, problem: str) -> None:
        with self._lock:
            self.problems.append(problem)

    def to(self, device: str) -> list[Received]:
        return [item for item in self.received if self._device_of(item) == device]

    def _device_of(self, item: Received) -> str:
        raise NotImplementedError


class FakeApns(FakePushService):
    """APNs for one key and one app (bundle id)."""

    def __init__(self, *, team_id: str, key_id: str, public_key: EllipticCurvePublicKey, topic: str) -> None:
        super().__init__()
        self.team_id, self.key_id, self.public_key, self.topic = team_id, key_id, public_key, topic
        self.provider_tokens: set[str] = set()

    def _device_of(self, item: Received) -> str:
        return item.path.removeprefix("/3/device/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await _lifespan(receive, send)
            return
        headers, body = _headers(scope), await _body(receive)
        problem = self._check(scope, headers)
        if problem:
            self._problem(problem)
            await _respond(send, Answer(403, {"reason": "InvalidProviderToken"}))
            return
        token = headers["authorization"].removeprefix("bearer ")
        self.provider_tokens.add(token)
        self.received.append(
            Received(
                port=scope["server"][1],
                path=scope["path"],
                http_version=scope["http_version"],
                headers=headers,
                body=json.loads(body),
                token_header=jwt.get_unverified_header(token),
                token_claims=jwt.decode(token, self.public_key, algorithms=["ES256"]),
            )
        )
        device = scope["path"].removeprefix("/3/device/")
        answer = self._scripted(device) or Answer(200, headers=(("apns-id", secrets.token_hex(16)),))
        await _respond(send, answer)

    def _check(self, scope: Scope, headers: dict[str, str]) -> str:
        if scope["http_version"] != "2":
            return f"APNs speaks HTTP/2 only, got HTTP/{scope['http_version']}"
        if scope["method"] != "POST" or not scope["path"].startswith("/3/device/"):
            return f"no such APNs route: {scope['method']} {scope['path']}"
        if headers.get("apns-topic") != self.topic:
            return f"apns-topic {headers.get('apns-topic')!r} is not {self.topic!r}"
        authorization = headers.get("authorization", "")
        if not authorization.startswith("bearer "):
            return "no provider token"
        token = authorization.removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token, self.public_key, algorithms=["ES256"], options={"require": ["iss", "iat"]}
            )
        except jwt.PyJWTError as error:
            return f"provider token refused: {error}"
        if header.get("alg") != "ES256" or header.get("kid") != self.key_id:
            return f"provider token header {header} is not ES256 with kid {self.key_id}"
        if claims["iss"] != self.team_id:
            return f"provider token iss {claims['iss']!r} is not the team id"
        if not time.time() - 3600 < claims["iat"] <= time.time() + 60:
            return f"provider token iat {claims['iat']} is not within the last hour"
        return ""


class FakeFcm(FakePushService):
    """FCM and Google's token endpoint for one service account."""

    def __init__(self, *, client_email: str, key_id: str, public_key: RSAPublicKey, project_id: str) -> None:
        super().__init__()
        self.client_email, self.key_id, self.public_key = client_email, key_id, public_key
        self.project_id = project_id
        self.token_uri = ""  # set once the server's port is known
        self.access_tokens: list[str] = []
        self.assertions: list[dict[str, Any]] = []

    def _device_of(self, item: Received) -> str:
        return str(item.body["message"]["token"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await _lifespan(receive, send)
            return
        headers, body = _headers(scope), await _body(receive)
        if scope["path"] == "/token":
            await self._token(send, body)
            return
        problem = self._check(scope, headers)
        if problem:
            self._problem(problem)
            await _respond(send, Answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}}))
            return
        message = json.loads(body)
        self.received.append(
            Received(scope["server"][1], scope["path"], scope["http_version"], headers, message)
        )
        answer = self._scripted(message["message"]["token"]) or Answer(200, {"name": "projects/p/messages/1"})
        await _respond(send, answer)

    async def _token(self, send: Send, body: bytes) -> None:
        form = {name: values[0] for name, values in parse_qs(body.decode()).items()}
        if form.get("grant_type") != JWT_BEARER_GRANT:
            self._problem(f"grant_type {form.get('grant_type')!r}")
            await _respond(send, Answer(400, {"error": "unsupported_grant_type"}))
            return
        try:
            header = jwt.get_unverified_header(form["assertion"])
            claims = jwt.decode(
                form["assertion"],
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                issuer=self.client_email,
                options={"require": ["iss", "aud", "exp", "iat", "scope"]},
            )
        except (KeyError, jwt.PyJWTError) as error:
            self._problem(f"assertion refused: {error!r}")
            await _respond(send, Answer(400, {"error": "invalid_grant"}))
            return
        if header.get("kid") != self.key_id or claims["scope"] != SCOPE:
            self._problem(f"assertion header {header} or scope {claims['scope']!r} wrong")
            await _respond(send, Answer(400, {"error": "invalid_scope"}))
            return
        self.assertions.append(claims)
        token = "ya29." + secrets.token_urlsafe(32)
        self.access_tokens.append(token)
        await _respond(send, Answer(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))

    def _check(self, scope: Scope, headers: dict[str, str]) -> str:
        expected = f"/v1/projects/{self.project_id}/messages:send"
        if scope["method"] != "POST" or scope["path"] != expected:
            return f"no such FCM route: {scope['method']} {scope['path']}"
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.access_tokens:
            return "messages:send without an access token this server issued"
        return ""


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode().lower(): value.decode() for name, value in scope["headers"]}


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, answer: Answer) -> None:
    body = json.dumps(answer.body).encode() if answer.body else b""
    headers = [(b"content-type", b"application/json"), *((n.encode(), v.encode()) for n, v in answer.headers)]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(
    app: Callable[[Scope, Receive, Send], Awaitable[None]], ca: trustme.CA, directory: Path, *, ports: int = 1
) -> Iterator[list[int]]:
    """Serve `app` with TLS (HTTP/2 by ALPN) on `ports` free loopback ports; yield the ports."""
    certificate = ca.issue_cert("127.0.0.1")
    cert_file, key_file = directory / f"server-{id(app)}.pem", directory / f"server-{id(app)}.key"
    certificate.cert_chain_pems[0].write_to_path(str(cert_file))
    for extra in certificate.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_file), append=True)
    certificate.private_key_pem.write_to_path(str(key_file))
    config = Config()
    config.certfile, config.keyfile = str(cert_file), str(key_file)
    config.alpn_protocols = ["h2", "http/1.1"]
    # Clients that keep a connection open do not hold up the end of a test.
    config.graceful_timeout = 0.2
    numbers = []
    binds = []
    for _ in range(ports):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        numbers.append(listener.getsockname()[1])
        binds.append(f"fd://{listener.detach()}")
    config.bind = binds
    loop = asyncio.new_event_loop()
    stopped = asyncio.Event()

    async def run() -> None:
        await serve(app, config, shutdown_trigger=stopped.wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), name="fake-push", daemon=True)
    thread.start()
    try:
        # The sockets listen already: connections wait in the backlog until hypercorn accepts them.
        yield numbers
    finally:
        loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout=10)
        assert not thread.is_alive(), "the fake push service did not stop"
        loop.close()
