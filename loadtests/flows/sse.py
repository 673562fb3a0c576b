"""The SSE persona: an app in the foreground holds its event stream, a peer sends it a message,
and the app syncs when the stream announces the event (docs/sse.md).

One iteration: the app's device opens `GET /api/v2/sse` through the gateway, waits for
`ConnectionOpened`, one of its peers sends it a message, the stream must carry
`ExternalEventCreated` within `params.event_timeout_s` (default 5), then the app syncs and reads
the message, and keeps the stream open `params.hold_s` more (default 0) before it closes. An
event that does not come is the failure `sse.eventMissing`. The stream request itself is not a
route of Locust's statistics (it lasts as long as the iteration); the report's SSE chart shows
the streams held, the events delivered and their latency from the replicas' metrics.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from loadtests.client import ConsumerApiClient
from loadtests.flows import FlowContext
from loadtests.flows.upstream import ScenarioRuntime, payload, read_as_recipient, scenario_flow
from loadtests.outcomes import OK, UnexpectedOutcome
from loadtests.personas import CastError

STREAM_PATH = "/api/v2/sse"
EVENT_MISSING = "sse.eventMissing"


class _Stream:
    """A device's event stream, read in a thread; `wait_for` an event by name."""

    def __init__(self, url: str, token: str, connect_timeout_s: float) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(connect_timeout_s, read=None))
        self._seen: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._response: Any = None
        self._thread = threading.Thread(target=self._read, args=(url, token), daemon=True)
        self._thread.start()

    def _read(self, url: str, token: str) -> None:
        try:
            with self._client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
                self._response = response
                if response.status_code == 200:
                    for line in response.iter_lines():
                        if line.startswith("event: "):
                            with self._changed:
                                self._seen.append(line[len("event: ") :])
                                self._changed.notify_all()
        except httpx.HTTPError:
            pass
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def wait_for(self, event: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while event not in self._seen and not self._ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            if event in self._seen:
                self._seen.remove(event)
                return True
            return False

    def close(self) -> None:
        response = self._response
        if response is not None:
            response.close()
        self._client.close()
        self._thread.join(5)


@scenario_flow("sse.live-event", acts_as=("a", "s"))
def live_event(context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient) -> str:
    """An app holds its stream while a peer sends it a message; it syncs on the event."""
    group = str(context.params.get("group", "a"))
    timeout_s = float(context.params.get("event_timeout_s", 5.0))
    app = runtime.cast.pick(group, rng=runtime.rng, with_relationships=True)
    peer = runtime.cast.everyone.get(runtime.rng.choice(app.peers))
    if peer is None:
        raise CastError(f"the peers of {app.address} are not in the credentials file")
    stream = _Stream(runtime.base_url + STREAM_PATH, app.session(api).access_token, timeout_s)
    try:
        if not stream.wait_for("ConnectionOpened", timeout_s):
            raise UnexpectedOutcome("sse.notConnected", f"no stream opened within {timeout_s:g} s")
        sent = peer.session(api).send_message([app.address], payload(context, 256))
        if not stream.wait_for("ExternalEventCreated", timeout_s):
            raise UnexpectedOutcome(EVENT_MISSING, f"no ExternalEventCreated within {timeout_s:g} s")
        read_as_recipient(runtime, api, app.address, str(sent["id"]))
        time.sleep(float(context.params.get("hold_s", 0.0)))
    finally:
        stream.close()
    return OK
