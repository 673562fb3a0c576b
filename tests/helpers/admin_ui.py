"""Drive the Admin UI in-process the way a browser does: cookies kept, forms sent with their token."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

from falcon import testing

from tests.helpers.services import ADMIN_API_KEY

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_TOKEN = re.compile(r'name="xsrf_token" value="([^"]*)"')
_ALERT = re.compile(r'role="alert">\s*<p>(.*?)</p>\s*<p class="code">(.*?)</p>', re.S)
_NOTICE = re.compile(r'role="status">(.*?)</p>', re.S)


class Browser:
    """Keeps the cookies the UI sets and the anti-forgery token of the last page it showed."""

    def __init__(self, client: testing.TestClient) -> None:
        self.client = client
        self.cookies: dict[str, str] = {}
        self.token = ""

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return headers

    def _keep(self, result: testing.Result) -> testing.Result:
        for name, cookie in result.cookies.items():
            if cookie.value:
                self.cookies[name] = cookie.value
            else:
                self.cookies.pop(name, None)
        if found := _TOKEN.search(result.text or ""):
            self.token = html.unescape(found.group(1))
        return result

    def get(self, path: str) -> testing.Result:
        return self._keep(self.client.simulate_get(path, headers=self._headers()))

    def post(
        self, path: str, fields: dict[str, str] | list[tuple[str, str]] | None = None, *, token: bool = True
    ) -> testing.Result:
        items = list(fields.items()) if isinstance(fields, dict) else list(fields or [])
        if token:
            items.insert(0, ("xsrf_token", self.token))
        return self._keep(self.client.simulate_post(path, body=urlencode(items), headers=self._headers(FORM)))

    def sign_in(self, key: str = ADMIN_API_KEY) -> testing.Result:
        """Sign in and open the page the UI leads to (whose forms carry the session's token)."""
        self.get("/ui/sign-in")
        result = self.post("/ui/sign-in", {"api_key": key})
        if result.status_code == 303:
            self.get(result.headers["location"])
        return result


def alert(result: testing.Result) -> tuple[str, str] | None:
    """(message, code) of the error a page shows, if it shows one."""
    found = _ALERT.search(result.text or "")
    return None if found is None else (html.unescape(found.group(1)), found.group(2))


def notice(result: testing.Result) -> str | None:
    found = _NOTICE.search(result.text or "")
    return None if found is None else html.unescape(found.group(1))
