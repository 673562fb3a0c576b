"""The Consumer API as an identity sees it: anonymous calls here, authenticated ones in `session`."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from loadtests.client.transport import HttpClientTransport, Response, Transport, error_code, new_traceparent
from loadtests.keys import IdentityKey, challenge_text

if TYPE_CHECKING:
    from loadtests.client.session import IdentitySession

DATAWALLET_HEADER = {"X-Supported-Datawallet-Version": "1"}
DEFAULT_PAGE_SIZE = 200  # the backbone's maximum: fewest round trips when paging everything
_OK = (200, 201, 204)


class ApiError(Exception):
    """The backbone answered with a status the caller did not expect."""

    def __init__(self, status: int, body: str, *, route: str = "") -> None:
        code = error_code(body.encode("utf-8")) if body else None
        where = f"{route}: " if route else ""
        super().__init__(f"{where}HTTP {status} {code or body[:300]}")
        self.status = status
        self.body = body
        self.code = code
        self.route = route


class AddressMismatch(Exception):
    """The backbone derived another address than the client: the DID domains differ."""


def route_path(route: str, params: Mapping[str, str]) -> str:
    """Fill a route template (`/api/v2/Messages/{id}`) with URL-quoted values."""
    return route.format(**{key: urllib.parse.quote(str(value), safe="") for key, value in params.items()})


def query_string(query: Mapping[str, Any] | None) -> str:
    """Encode a query; list values repeat the key (`ids=A&ids=B`), None values are left out."""
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            pairs.extend((key, str(item)) for item in value)
        elif isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        else:
            pairs.append((key, str(value)))
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


class ConsumerApiClient:
    """One backbone landscape: its base URL, OAuth client and DID domain, and a transport.

    `did_domain` is the landscape's `BACKBONE_DID_DOMAIN`, not the URL's host: behind a gateway
    or with an IP address in the URL the two differ, and addresses are derived from the domain.
    Pass `transport=LocustTransport(...)` inside Locust; the default is stdlib HTTP.
    """

    def __init__(
        self,
        base_url: str = "http://localhost:8080",
        *,
        client_id: str = "test",
        client_secret: str = "test",  # noqa: S107 - the development client
        did_domain: str = "localhost",
        transport: Transport | None = None,
        token_refresh_margin_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.did_domain = did_domain
        self.transport: Transport = transport or HttpClientTransport(self.base_url)
        self.token_refresh_margin_s = token_refresh_margin_s

    @classmethod
    def over_locust(cls, session: Any, **settings: Any) -> ConsumerApiClient:
        """A client whose requests go through a Locust `FastHttpSession` (a flow's `context.client`)."""
        from loadtests.client.transport import LocustTransport

        return cls(str(session.base_url), transport=LocustTransport(session), **settings)

    # The one place requests leave

    def call(
        self,
        method: str,
        route: str,
        *,
        params: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        expected: Collection[int] = _OK,
        expected_errors: Collection[str] = (),
    ) -> Response:
        """Send a request named by its route template; raise ApiError unless the status is expected.

        `expected_errors` lists backbone error codes that are a normal outcome for this call
        (Locust counts them as success); the ApiError is raised all the same for the caller.
        """
        all_headers = {"traceparent": new_traceparent(), **(headers or {})}
        body = raw_body
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urllib.parse.urlencode(form).encode("ascii")
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif content_type is not None:
            all_headers["Content-Type"] = content_type
        path = route_path(route, params or {}) + query_string(query)
        response = self.transport.send(
            method,
            path,
            name=route,
            body=body,
            headers=all_headers,
            expected=expected,
            expected_errors=expected_errors,
        )
        if response.status not in expected:
            raise ApiError(response.status, response.body.decode("utf-8", "replace"), route=route)
        return response

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        form: bool = False,
    ) -> Any:
        """Send to a literal path and return the parsed JSON (the request is named by the path)."""
        response = self.call(
            method,
            path,
            json_body=None if form else body,
            form=body if form else None,
            headers=headers,
            expected=range(200, 300),
        )
        return response.json()

    # Anonymous calls

    def new_challenge(self, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "POST", "/api/v2/Challenges", json_body={}, headers=headers, expected=(201,)
        ).json()["result"]
        return result

    def token_form(self, username: str, password: str) -> dict[str, str]:
        return {
            "grant_type": "password",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "username": username,
            "password": password,
        }

    def log_in(self, username: str, password: str) -> tuple[str, float]:
        """Get an access token and the time (epoch seconds) it expires."""
        started = time.time()
        answer = self.call(
            "POST", "/connect/token", form=self.token_form(username, password), expected=(200,)
        ).json()
        return str(answer["access_token"]), started + float(answer.get("expires_in", 300))

    def token(self, username: str, password: str) -> str:
        return self.log_in(username, password)[0]

    def create_identity(self, key: IdentityKey, password: str) -> dict[str, Any]:
        """`POST /Identities` with a freshly signed challenge; checks the derived address."""
        challenge = challenge_text(self.new_challenge())
        result: dict[str, Any] = self.call(
            "POST",
            "/api/v2/Identities",
            json_body={
                "clientId": self.client_id,
                "clientSecret": self.client_secret,
                "identityPublicKey": key.identity_public_key(),
                "devicePassword": password,
                "identityVersion": 1,
                "signedChallenge": {"challenge": challenge, "signature": key.sign(challenge)},
            },
            expected=(201,),
        ).json()["result"]
        expected_address = key.address(self.did_domain)
        if result["address"] != expected_address:
            raise AddressMismatch(
                f"the backbone made {result['address']}, the client expects {expected_address}: "
                f"is the landscape's DID domain {self.did_domain!r}?"
            )
        return result

    def onboard(
        self, password: str, *, key: IdentityKey | None = None, with_datawallet: bool = True
    ) -> IdentitySession:
        """Create an identity with its first device, log in and (like the app) create its datawallet."""
        from loadtests.client.session import IdentitySession

        key = key or IdentityKey.generate()
        created = self.create_identity(key, password)
        session = IdentitySession(
            self,
            address=created["address"],
            device_id=created["device"]["id"],
            username=created["device"]["username"],
            password=password,
            key=key,
        )
        if with_datawallet:
            session.create_datawallet()
        return session

    def session(
        self, *, address: str, device_id: str, username: str, password: str, key: IdentityKey | None = None
    ) -> IdentitySession:
        """A session for an existing device (seeded credentials); it logs in on first use."""
        from loadtests.client.session import IdentitySession

        return IdentitySession(
            self, address=address, device_id=device_id, username=username, password=password, key=key
        )

    def add_device(
        self, session: IdentitySession, password: str, *, is_backup_device: bool = False
    ) -> IdentitySession:
        """Register another device of the session's identity (kept for older callers)."""
        return session.add_device(password, is_backup_device=is_backup_device)

    def is_deleted(self, username: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "GET", "/api/v2/Identities/IsDeleted", query={"username": username}, expected=(200,)
        ).json()["result"]
        return result

    def version(self) -> str:
        return str(self.call("GET", "/api/v2/Version", expected=(200,)).json()["result"]["majorVersion"])


def pages(fetch: Any, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[dict[str, Any]]:
    """Yield every item of a paged list; `fetch(page_number, page_size)` returns the parsed body.

    Like the official client, this trusts `pagination.totalPages` (absent means one page).
    """
    number = 1
    while True:
        document = fetch(number, page_size)
        yield from document.get("result") or []
        total_pages = int((document.get("pagination") or {}).get("totalPages", 1))
        if number >= total_pages:
            return
        number += 1
