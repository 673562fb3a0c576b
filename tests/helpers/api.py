"""Drive the Consumer API in-process the way an identity does (falcon's test client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from falcon import testing

from loadtests.keys import IdentityKey, challenge_text

DWV = {"X-Supported-Datawallet-Version": "1"}
PASSWORD = "a-device-password!"


@dataclass
class Account:
    """An onboarded identity with one logged-in device."""

    api: testing.TestClient
    address: str
    device_id: str
    username: str
    password: str
    key: IdentityKey
    token: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def log_in_again(self) -> None:
        """Get a fresh token (after moving the clock past the old one's lifetime)."""
        result = login(self.api, self.username, self.password)
        assert result.status_code == 200, result.text
        self.token = result.json["access_token"]
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kwargs: Any) -> testing.Result:
        return self.api.simulate_get(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path: str, **kwargs: Any) -> testing.Result:
        return self.api.simulate_post(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def put(self, path: str, **kwargs: Any) -> testing.Result:
        return self.api.simulate_put(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> testing.Result:
        return self.api.simulate_patch(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> testing.Result:
        return self.api.simulate_delete(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)


def new_challenge(api: testing.TestClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    result = api.simulate_post("/api/v2/Challenges", json={}, headers=headers or {})
    assert result.status_code == 201, result.text
    challenge: dict[str, Any] = result.json["result"]
    return challenge


def identity_body(api: testing.TestClient, key: IdentityKey, **overrides: Any) -> dict[str, Any]:
    challenge = challenge_text(new_challenge(api))
    body = {
        "clientId": "test",
        "clientSecret": "test",
        "identityPublicKey": key.identity_public_key(),
        "devicePassword": PASSWORD,
        "identityVersion": 1,
        "signedChallenge": {"challenge": challenge, "signature": key.sign(challenge)},
    }
    body.update(overrides)
    return body


def login(api: testing.TestClient, username: str, password: str = PASSWORD) -> testing.Result:
    return api.simulate_post(
        "/connect/token",
        body=f"grant_type=password&client_id=test&client_secret=test&username={username}&password={password}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def onboard(api: testing.TestClient, *, with_datawallet: bool = True) -> Account:
    """Create an identity, log its device in and (like the client) create its datawallet."""
    key = IdentityKey.generate()
    created = api.simulate_post("/api/v2/Identities", json=identity_body(api, key))
    assert created.status_code == 201, created.text
    result = created.json["result"]
    token = login(api, result["device"]["username"])
    assert token.status_code == 200, token.text
    account = Account(
        api=api,
        address=result["address"],
        device_id=result["device"]["id"],
        username=result["device"]["username"],
        password=PASSWORD,
        key=key,
        token=token.json["access_token"],
    )
    account.headers = {"Authorization": f"Bearer {account.token}"}
    if with_datawallet:
        run = account.post("/api/v2/SyncRuns", json={"type": "DatawalletVersionUpgrade"}, headers=DWV)
        assert run.status_code == 201, run.text
        run_id = run.json["result"]["syncRun"]["id"]
        finalized = account.put(
            f"/api/v2/SyncRuns/{run_id}/FinalizeDatawalletVersionUpgrade",
            json={"newDatawalletVersion": 1, "datawalletModifications": []},
            headers=DWV,
        )
        assert finalized.status_code == 200, finalized.text
    return account


def assert_error(result: testing.Result, status: int, code: str) -> dict[str, Any]:
    """Check an error answer: status, envelope shape and code."""
    assert result.status_code == status, f"{result.status_code}: {result.text}"
    error: dict[str, Any] = result.json["error"]
    assert error["code"] == code, error
    assert error["id"].startswith("ERR")
    assert len(error["id"]) == 20
    assert {"id", "code", "message", "docs", "time"} <= error.keys()
    return error


def device_body(account: Account, **overrides: Any) -> dict[str, Any]:
    """A `POST /Devices` body with a fresh authenticated challenge signed by the identity key."""
    challenge = challenge_text(new_challenge(account.api, account.headers))
    body = {
        "devicePassword": PASSWORD,
        "signedChallenge": {
            "challenge": challenge,
            "signature": account.key.sign(challenge),
            "@type": "ChallengeSigned",
        },
    }
    body.update(overrides)
    return body


def add_device(account: Account, *, log_in: bool = True, **overrides: Any) -> Account:
    """Register another device of the account's identity (and log it in unless told not to)."""
    created = account.post("/api/v2/Devices", json=device_body(account, **overrides))
    assert created.status_code == 201, created.text
    device = created.json["result"]
    other = Account(
        api=account.api,
        address=account.address,
        device_id=device["id"],
        username=device["username"],
        password=overrides.get("devicePassword", PASSWORD),
        key=account.key,
    )
    if log_in:
        other.log_in_again()
    return other
