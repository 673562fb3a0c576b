"""The load client without a server: route names, traceparent, token refresh, errors, paging."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from loadtests.client import (
    AddressMismatch,
    ApiError,
    ConsumerApiClient,
    LocustTransport,
    Response,
    query_string,
    route_path,
)
from loadtests.keys import IdentityKey

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")


@dataclass
class Sent:
    method: str
    path: str
    name: str
    body: bytes | None
    headers: dict[str, str]


@dataclass
class ScriptedTransport:
    """Answer each request with the next scripted response; remember what was sent."""

    answers: list[Response]
    sent: list[Sent] = field(default_factory=list)

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
        self.sent.append(Sent(method, path, name, body, dict(headers)))
        return self.answers.pop(0)


def ok(result: Any, status: int = 200) -> Response:
    return Response(status, json.dumps({"result": result}).encode())


def token(expires_in_s: int) -> Response:
    return Response(200, json.dumps({"access_token": "jwt", "expires_in": expires_in_s}).encode())


def test_requests_are_named_by_route_template_and_carry_a_fresh_traceparent() -> None:
    transport = ScriptedTransport([token(300), ok({"id": "MSGa"}), ok({"id": "MSGb"})])
    api = ConsumerApiClient("http://localhost:1", transport=transport)
    device = api.session(address="did:e:localhost:dids:x", device_id="DVC1", username="USR1", password="p")
    device.get_message("MSGa")
    device.get_message("MSG/b")
    login, first, second = transport.sent
    assert login.name == "/connect/token"
    assert (first.name, first.path) == ("/api/v2/Messages/{id}", "/api/v2/Messages/MSGa")
    assert second.path == "/api/v2/Messages/MSG%2Fb"
    assert first.headers["Authorization"] == "Bearer jwt"
    parents = [sent.headers["traceparent"] for sent in transport.sent]
    assert all(TRACEPARENT.match(value) for value in parents)
    assert len(set(parents)) == 3


def test_token_is_cached_and_renewed_before_it_expires() -> None:
    transport = ScriptedTransport([token(300), ok({}), ok({}), token(20), ok({}), token(300), ok({})])
    api = ConsumerApiClient("http://localhost:1", transport=transport, token_refresh_margin_s=30)
    device = api.session(address="a", device_id="DVC1", username="USR1", password="p")
    device.identity()
    device.identity()
    assert device.logins == 1
    # A token valid for less than the margin is renewed before the next call.
    device._expires_at = 0
    device.identity()
    assert device.logins == 2
    device.identity()
    assert device.logins == 3
    form = transport.sent[0].body or b""
    assert b"grant_type=password" in form
    assert b"username=USR1" in form


def test_error_answers_raise_with_status_code_and_route() -> None:
    body = json.dumps({"error": {"code": "error.platform.recordNotFound", "message": "no"}}).encode()
    transport = ScriptedTransport([token(300), Response(404, body)])
    api = ConsumerApiClient("http://localhost:1", transport=transport)
    device = api.session(address="a", device_id="DVC1", username="USR1", password="p")
    with pytest.raises(ApiError) as raised:
        device.get_relationship("REL1")
    assert raised.value.status == 404
    assert raised.value.code == "error.platform.recordNotFound"
    assert raised.value.route == "/api/v2/Relationships/{id}"


def test_paging_follows_total_pages() -> None:
    pages = [
        Response(200, json.dumps({"result": [{"i": 1}], "pagination": {"totalPages": 2}}).encode()),
        Response(200, json.dumps({"result": [{"i": 2}], "pagination": {"totalPages": 2}}).encode()),
    ]
    transport = ScriptedTransport([token(300), *pages])
    api = ConsumerApiClient("http://localhost:1", transport=transport)
    device = api.session(address="a", device_id="DVC1", username="USR1", password="p")
    assert device.datawallet_modifications() == [{"i": 1}, {"i": 2}]
    assert transport.sent[1].path.endswith("pageNumber=1&pageSize=200")
    assert transport.sent[2].path.endswith("pageNumber=2&pageSize=200")
    assert transport.sent[1].headers["X-Supported-Datawallet-Version"] == "1"


def test_created_identity_must_have_the_address_of_the_landscape_domain() -> None:
    key = IdentityKey.from_seed(bytes(range(32)))
    challenge = ok({"id": "CHLAAAAAAAAAAAAAAAAA", "expiresAt": "2030-01-01T00:00:00.000Z"}, 201)
    created = {
        "address": key.address("localhost"),
        "device": {"id": "DVC1", "username": "USR1"},
    }
    api = ConsumerApiClient(
        "http://127.0.0.1:1",
        did_domain="enmeshed.example.org",
        transport=ScriptedTransport([challenge, ok(created, 201)]),
    )
    with pytest.raises(AddressMismatch, match=r"enmeshed\.example\.org"):
        api.create_identity(key, "p")
    right = ConsumerApiClient(
        "http://127.0.0.1:1",
        did_domain="localhost",
        transport=ScriptedTransport([challenge, ok(created, 201)]),
    )
    assert right.create_identity(key, "p")["address"] == "did:e:localhost:dids:76a33ea3665eef489c70bb"


def test_query_and_path_encoding() -> None:
    assert (
        query_string({"ids": ["A", "B"], "localIndex": None, "pageNumber": 2}) == "?ids=A&ids=B&pageNumber=2"
    )
    assert query_string({}) == ""
    assert route_path("/api/v2/Relationships/{id}/Reactivate/Accept", {"id": "REL1"}) == (
        "/api/v2/Relationships/REL1/Reactivate/Accept"
    )


class _FakeLocustAnswer:
    def __init__(self, status: int, content: bytes) -> None:
        self.status_code = status
        self.content = content
        self.headers = {"Content-Type": "application/json"}
        self.outcome: tuple[str, str] | None = None

    def __enter__(self) -> _FakeLocustAnswer:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def success(self) -> None:
        self.outcome = ("success", "")

    def failure(self, reason: str) -> None:
        self.outcome = ("failure", reason)


class _FakeLocustSession:
    def __init__(self, answer: _FakeLocustAnswer) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> _FakeLocustAnswer:
        self.calls.append({"method": method, "path": path, **kwargs})
        return self.answer


def test_locust_transport_reports_expected_business_errors_as_success() -> None:
    rejection = json.dumps({"error": {"code": "error.platform.validation.relationship.x"}}).encode()
    answer = _FakeLocustAnswer(400, rejection)
    session = _FakeLocustSession(answer)
    response = LocustTransport(session).send(
        "PUT",
        "/api/v2/Relationships/REL1/Reject",
        name="/api/v2/Relationships/{id}/Reject",
        body=b"{}",
        headers={},
        expected=(200,),
        expected_errors=("error.platform.validation.relationship.x",),
    )
    assert response.status == 400
    assert answer.outcome == ("success", "")
    assert session.calls[0]["name"] == "/api/v2/Relationships/{id}/Reject"
    assert session.calls[0]["catch_response"] is True

    other = _FakeLocustAnswer(400, rejection)
    LocustTransport(_FakeLocustSession(other)).send(
        "PUT", "/x", name="/x", body=None, headers={}, expected=(200,)
    )
    assert other.outcome == ("failure", "HTTP 400 error.platform.validation.relationship.x")
