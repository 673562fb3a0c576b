"""The SSE connector: wake a device's open event stream through the SSE replica that holds it.

The device's `sse` registration records the replica (its handle is the replica's internal URL,
written when the stream opened). The connector posts the original's `POST /{address}/events`
`{"eventName": ...}` there; `400 error.platform.sseClientNotRegistered` means no stream of the
address is open on that replica, so the registration is gone (docs/sse.md, docs/decisions.md
"SSE replicas").
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from backbone.platform.push import PushNotification, PushOutcome
from backbone.platform.push.delivery import DELIVERED, Delivery, DeliveryOptions, Verdict, http_reason
from backbone.platform.push.metrics import PushMetrics

NOT_REGISTERED = "error.platform.sseClientNotRegistered"


class SseConnector:
    """Post each notification's name to the replica recorded in the device's registration."""

    def __init__(self, options: DeliveryOptions, metrics: PushMetrics | None) -> None:
        # Plain HTTP/1.1 on the internal network; one pooled client per process.
        self._client: httpx.Client | None = None
        self._timeout_s = options.timeout_s
        self._delivery = Delivery("sse", options, metrics)

    def send(self, notification: PushNotification) -> PushOutcome:
        return self._delivery.run(notification, lambda: self._attempt(notification))

    def _attempt(self, notification: PushNotification) -> Verdict:
        replica = notification.handle
        if not replica:
            # Registered through the Consumer API with platform `sse` but never streamed: offline.
            return Verdict(PushOutcome.handle_gone, "no_stream")
        url = f"{replica}/{quote(notification.identity_address, safe='')}/events"
        try:
            response = self._http().post(url, json={"eventName": notification.name})
        except httpx.ConnectError:
            # The replica is gone (killed, scaled in): no stream can be open there; the device
            # reconnects to another replica, which records itself anew.
            return Verdict(PushOutcome.handle_gone, "replica_unreachable")
        if response.status_code < 300:
            return DELIVERED
        if response.status_code == 400 and _error_code(response) == NOT_REGISTERED:
            return Verdict(PushOutcome.handle_gone, "not_registered")
        return Verdict(
            PushOutcome.failed, http_reason(response.status_code), retry=response.status_code >= 500
        )

    def supported_app_ids(self) -> frozenset[str] | None:
        return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        # Made on first use, so each gunicorn worker (forked after the services) has its own.
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout_s)
        return self._client


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code", "")) if isinstance(error, dict) else ""
