"""A real Prometheus scrapes a multi-worker `backbone serve` on PostgreSQL and counts what happened.

Two identities onboard, relate and exchange messages over HTTP; the test tallies every request
it makes by route template. Once Prometheus has scraped after the last request, PromQL must
return exactly those counts per route (whichever of the two workers served them), the number of
messages sent and of identities created, and both workers as live.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backbone.platform.encoding import b64url
from loadtests.client import DATAWALLET_HEADER, ConsumerApiClient, Session
from testbed.landscape.prometheus import Prometheus, prometheus_executable, running_prometheus
from tests.helpers.server import running_backbone
from tests.helpers.services import (
    FAST_HASH_ITERATIONS,
    postgres_reachable,
    throwaway_postgres_database,
    unavailable,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

JOB = "backbone"
CONTENT = b64url(b'{"cph":"template content","alg":3,"@type":"CryptoCipher"}')
MESSAGE = {"body": b64url(b'{"cph":"message body","alg":3}'), "attachments": []}
ENCRYPTED_KEY = b64url(b"k" * 64)
MESSAGES_EACH_WAY = 3
# Routes of this test, as registered; a path is tallied under the template it matches.
TEMPLATES = [
    "/api/v2/Challenges",
    "/api/v2/Identities",
    "/connect/token",
    "/api/v2/SyncRuns",
    "/api/v2/SyncRuns/{id}/FinalizeDatawalletVersionUpgrade",
    "/api/v2/RelationshipTemplates",
    "/api/v2/RelationshipTemplates/{id}",
    "/api/v2/Relationships",
    "/api/v2/Relationships/{id}/Accept",
    "/api/v2/Messages",
    "/api/v2/Messages/{id}",
]
_PATTERNS = [
    (template, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")) for template in TEMPLATES
]


class TallyingClient(ConsumerApiClient):
    """The load-test client, counting each request by (route template, method)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.tally: Counter[tuple[str, str]] = Counter()

    def call(self, method: str, route: str, **kwargs: Any) -> Any:
        # Every request of the client leaves through `call`, named by a template or a literal path.
        path = route.split("?", 1)[0]
        matching = [template for template, pattern in _PATTERNS if pattern.match(path)]
        assert len(matching) == 1, f"{route} matches {matching}"
        self.tally[(matching[0], method)] += 1
        return super().call(method, route, **kwargs)


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    if not postgres_reachable():
        unavailable("no PostgreSQL server answers on BACKBONE_TEST_POSTGRES_URL")
    with throwaway_postgres_database() as url:
        yield url


def test_prometheus_counts_each_route_and_the_messages_sent(postgres_database: str, tmp_path: Path) -> None:
    if prometheus_executable() is None:
        unavailable("prometheus is not installed (Debian package 'prometheus')")
    environment = {
        "BACKBONE_DATABASE_URL": postgres_database,
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_VAR_DIR": str(tmp_path / "var"),
        "BACKBONE_PASSWORD_HASH_ITERATIONS": str(FAST_HASH_ITERATIONS),
        "BACKBONE_JWT_SIGNING_KEY": "k" * 32,
    }
    with running_backbone(
        environment, args=("serve", "--workers", "2", "--threads", "4"), log_path=tmp_path / "backbone.log"
    ) as url:
        client = TallyingClient(url)
        sent = exchange_messages(client)
        finished_at = time.time()
        target = url.removeprefix("http://")
        with running_prometheus(
            tmp_path / "prometheus", {JOB: [target]}, scrape_interval_s=0.5
        ) as prometheus:
            wait_for_scrape_after(prometheus, finished_at)
            requests = f'http_server_request_duration_seconds_count{{job="{JOB}"}}'
            by_route = {
                (sample["metric"]["http_route"], sample["metric"]["http_request_method"]): float(
                    sample["value"][1]
                )
                for sample in prometheus.query(f"sum by (http_route, http_request_method) ({requests})")
            }
            messages = prometheus.query(f'sum(backbone_messages_sent_total{{job="{JOB}"}})')
            identities = prometheus.query(f'sum(backbone_identities_created_total{{job="{JOB}"}})')
            workers = prometheus.query(f'backbone_gunicorn_workers{{job="{JOB}"}}')
    infrastructure = {"/health", "/metrics"}
    counted = {key: value for key, value in by_route.items() if key[0] not in infrastructure}
    assert counted == {key: float(count) for key, count in client.tally.items()}
    assert float(messages[0]["value"][1]) == sent == 2 * MESSAGES_EACH_WAY
    assert float(identities[0]["value"][1]) == 2
    assert float(workers[0]["value"][1]) == 2


def exchange_messages(client: TallyingClient) -> int:
    """Onboard two identities, relate them and send messages both ways; return how many were sent."""
    password = "a-device-password!"
    owner, requester = client.onboard(password), client.onboard(password)
    template = post(client, owner, "/api/v2/RelationshipTemplates", {"content": CONTENT})
    get(client, requester, f"/api/v2/RelationshipTemplates/{template['id']}")
    relationship = post(
        client,
        requester,
        "/api/v2/Relationships",
        {"relationshipTemplateId": template["id"], "creationContent": CONTENT},
    )
    client.request(
        "PUT",
        f"/api/v2/Relationships/{relationship['id']}/Accept",
        {"creationResponseContent": CONTENT},
        owner.auth_header,
    )
    sent = 0
    for sender, recipient in [(requester, owner), (owner, requester)]:
        for _ in range(MESSAGES_EACH_WAY):
            recipients = [{"address": recipient.address, "encryptedKey": ENCRYPTED_KEY}]
            message = post(client, sender, "/api/v2/Messages", {"recipients": recipients, **MESSAGE})
            sent += 1
        listed = get(client, recipient, "/api/v2/Messages")
        # A participant lists the messages it sent and those it received.
        assert len(listed) == sent
        get(client, recipient, f"/api/v2/Messages/{message['id']}")
    return sent


def post(client: ConsumerApiClient, session: Session, path: str, body: dict[str, Any]) -> Any:
    return client.request("POST", path, body, {**session.auth_header, **DATAWALLET_HEADER})["result"]


def get(client: ConsumerApiClient, session: Session, path: str) -> Any:
    return client.request("GET", path, headers={**session.auth_header, **DATAWALLET_HEADER})["result"]


def wait_for_scrape_after(prometheus: Prometheus, moment: float, timeout_s: float = 30.0) -> None:
    """Wait until Prometheus has a scrape that started after `moment` (so it saw every request)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if prometheus.last_scrape(JOB) > moment:
            return
        time.sleep(0.25)
    raise TimeoutError(f"no scrape after the last request within {timeout_s} s: {prometheus.targets_up()}")
