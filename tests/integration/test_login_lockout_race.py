"""Forty wrong passwords for one device at once, against a real multi-worker `backbone serve`.

Every attempt is counted before its password is checked, so exactly `BACKBONE_MAX_FAILED_LOGINS`
passwords are checked (answered `invalid_grant`) and every other attempt is refused unchecked
(`access_denied`), then the right password is refused too: the device is locked out. The hash
cost is high enough that many attempts are in flight together (before the fix, 40 such attempts
checked 10 passwords). On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.client import ConsumerApiClient
from tests.helpers.server import running_backbone
from tests.helpers.services import (
    POSTGRES_ADMIN_URL,
    postgres_reachable,
    throwaway_postgres_database,
    unavailable,
)

ATTEMPTS = 40
MAX_FAILED_LOGINS = 3
PASSWORD = "the-right-device-password!"
# About 15 ms a check on this machine: long enough for attempts to overlap on 2 workers x 8 threads.
HASH_ITERATIONS = 20_000

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backbone(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    environment = {
        "BACKBONE_VAR_DIR": str(tmp_path),
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_PASSWORD_HASH_ITERATIONS": str(HASH_ITERATIONS),
        "BACKBONE_MAX_FAILED_LOGINS": str(MAX_FAILED_LOGINS),
    }
    serve = ("serve", "--workers", "2", "--threads", "8")
    log = tmp_path / "server.log"
    if request.param == "sqlite":
        with running_backbone(environment, args=serve, log_path=log) as url:
            yield url
        return
    if not postgres_reachable():
        unavailable(f"no PostgreSQL server answers on {POSTGRES_ADMIN_URL}")
    with throwaway_postgres_database() as database_url:
        environment["BACKBONE_DATABASE_URL"] = database_url
        with running_backbone(environment, args=serve, log_path=log) as url:
            yield url


def _log_in(url: str, form: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{url}/connect/token",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, "token"
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read()).get("error", "")


def test_forty_wrong_passwords_at_once_check_exactly_the_configured_number(backbone: str) -> None:
    client = ConsumerApiClient(backbone)
    session = client.onboard(PASSWORD, with_datawallet=False)
    wrong = client.token_form(session.username, "a-wrong-password!")
    answers: Counter[tuple[int, str]] = Counter()
    lock = threading.Lock()
    start_together = threading.Barrier(ATTEMPTS)

    def attempt() -> None:
        start_together.wait()
        answer = _log_in(backbone, wrong)
        with lock:
            answers[answer] += 1

    threads = [threading.Thread(target=attempt) for _ in range(ATTEMPTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    print(f"\n{ATTEMPTS} wrong passwords at once: {dict(answers)}")
    assert answers == {
        (400, "invalid_grant"): MAX_FAILED_LOGINS,
        (400, "access_denied"): ATTEMPTS - MAX_FAILED_LOGINS,
    }
    assert _log_in(backbone, client.token_form(session.username, PASSWORD)) == (400, "access_denied")
