"""Drive the load client through Locust's FastHttpSession and print what Locust recorded.

`python -m tests.helpers.locust_client_probe BASE_URL DID_DOMAIN` prints a JSON list of
`[request name, failure text or null]`. Runs in its own process: Locust patches the standard
library with gevent when imported.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import locust  # noqa: F401 - before the client's modules, so gevent patches sockets first
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from loadtests.client import ApiError, ConsumerApiClient, LocustTransport


def main(base_url: str, did_domain: str) -> None:
    reported: list[tuple[str, str | None]] = []

    def record(name: str, exception: Any, **kwargs: Any) -> None:
        reported.append((name, None if exception is None else str(exception)))

    request_event = EventHook()
    request_event.add_listener(record)
    session = FastHttpSession(base_url, request_event=request_event, user=None)
    api = ConsumerApiClient.over_locust(session, did_domain=did_domain)
    assert isinstance(api.transport, LocustTransport)
    app = api.onboard("app-password!")
    connector = api.onboard("connector-password!")
    template = connector.create_template()
    relationship = app.create_relationship(template["id"])
    connector.accept_relationship(relationship["id"])
    message = connector.send_message([app.address], b"hello")
    app.get_message(message["id"])
    code = "error.platform.validation.relationship.relationshipIsNotInCorrectStatus"
    with contextlib.suppress(ApiError):
        connector.accept_relationship(relationship["id"], expected_errors=(code,))
    with contextlib.suppress(ApiError):
        app.get_message("MSGdoesNotExist12345")
    print(json.dumps(reported))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
