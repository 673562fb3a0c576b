"""A Consumer API client for plain Python and for Locust; see docs/seeding.md ("The load client").

Layers, bottom up:

* `transport`: moves bytes. `HttpClientTransport` (the standard library's http.client, one
  kept-alive connection per thread) or `LocustTransport` (a Locust `FastHttpSession`; request
  names are route templates).
* `api.ConsumerApiClient`: one landscape (base URL, OAuth client, DID domain); anonymous calls,
  identity creation (Ed25519-signed challenge, address checked against the DID domain), and
  `call()`, the single place every request leaves, with a fresh `traceparent` each time.
* `session.IdentitySession`: one device of one identity; caches its token and logs in again
  before expiry; every flow the scenarios need (devices, templates, relationships and their
  whole life cycle, tokens, messages, files, datawallet, sync runs, challenges, push).

Usage::

    api = ConsumerApiClient("http://localhost:8080", did_domain="localhost")
    alice = api.onboard("a-password!")                # identity + device + datawallet
    bob = api.session(address=..., device_id=..., username=..., password=...)   # seeded
    template = bob.create_template(b"hello")
    relationship = alice.create_relationship(template["id"])

Inside Locust (a flow's `context.client` is a `FastHttpSession`)::

    api = ConsumerApiClient.over_locust(context.client, did_domain="localhost")

Seeded identities come from `loadtests.identities` (`SeededIdentity.session(api)`).
"""

from loadtests.client.api import (
    DATAWALLET_HEADER,
    DEFAULT_PAGE_SIZE,
    AddressMismatch,
    ApiError,
    ConsumerApiClient,
    pages,
    query_string,
    route_path,
)
from loadtests.client.session import NO_NEW_EVENTS, IdentitySession, SyncOutcome, modification
from loadtests.client.transport import (
    HttpClientTransport,
    LocustTransport,
    Response,
    Transport,
    new_traceparent,
)

# The name older callers use for an onboarded device.
Session = IdentitySession

__all__ = [
    "DATAWALLET_HEADER",
    "DEFAULT_PAGE_SIZE",
    "NO_NEW_EVENTS",
    "AddressMismatch",
    "ApiError",
    "ConsumerApiClient",
    "HttpClientTransport",
    "IdentitySession",
    "LocustTransport",
    "Response",
    "Session",
    "SyncOutcome",
    "Transport",
    "modification",
    "new_traceparent",
    "pages",
    "query_string",
    "route_path",
]
