"""Drive the Admin API in-process the way an operator's tool does: API key plus anti-forgery pair."""

from __future__ import annotations

from typing import Any

from falcon import testing

from backbone.platform.admin_auth import XSRF_COOKIE
from tests.helpers.services import ADMIN_API_KEY


class AdminClient:
    """Send requests with `X-API-KEY`, and with the anti-forgery cookie and header on unsafe methods."""

    def __init__(self, api: testing.TestClient, key: str = ADMIN_API_KEY) -> None:
        self.api = api
        self.key = key
        issued = api.simulate_get("/api/v1/xsrf", headers={"X-API-KEY": key})
        assert issued.status_code == 200, issued.text
        self.xsrf_token: str = issued.json
        self.xsrf_cookie: str = issued.cookies[XSRF_COOKIE].value

    @property
    def headers(self) -> dict[str, str]:
        return {
            "X-API-KEY": self.key,
            "X-XSRF-TOKEN": self.xsrf_token,
            "Cookie": f"{XSRF_COOKIE}={self.xsrf_cookie}",
        }

    def request(self, method: str, path: str, **kwargs: Any) -> testing.Result:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.api.simulate_request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> testing.Result:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> testing.Result:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> testing.Result:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> testing.Result:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> testing.Result:
        return self.request("DELETE", path, **kwargs)
