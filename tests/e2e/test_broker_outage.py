"""1,000 messages while the broker "restarts" twice: each has its effect exactly once.

`backbone serve` (2 gunicorn workers) and two `backbone worker` replicas reach the shared RabbitMQ
only through a loopback TCP proxy this test cuts twice for a few seconds (open connections dropped,
new ones refused), as a broker restart looks to its clients; the broker itself is never touched.
Afterwards every committed message produced exactly one MessageReceived external event per
recipient, and no request waited 5 s or more during the outages.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pika
import psycopg
import pytest

from loadtests.client import ApiError, ConsumerApiClient, Session
from testbed.landscape.proxy import CuttableTcpProxy
from tests.helpers.drain import subscribed_handlers, wait_until_drained
from tests.helpers.peers import BODY, CONTENT, ENCRYPTED_KEY
from tests.helpers.rabbitmq import RABBITMQ_URL, BrokerNames, delete_topology, rabbitmq_reachable
from tests.helpers.server import running_backbone, running_worker
from tests.helpers.services import postgres_reachable, throwaway_postgres_database, unavailable

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

MESSAGES = 1_000
SENDERS = 10
RECIPIENTS = 4
# Each message goes to two recipients; the pairs rotate so that each (sender, recipient) pair
# stays under the 100 unreceived messages allowed, and handlers of different pairs can overlap.
RECIPIENT_PAIRS = ((0, 1), (2, 3), (0, 2), (1, 3), (0, 3), (1, 2))
SEND_RATE_PER_S = 60.0
OUTAGE_S = 3.0
CUT_AFTER = (200, 600)  # messages answered before each cut
LATENCY_LIMIT_S = 5.0
WORKERS = 2
# About 40 s on an idle 2-core machine; the bound only keeps a stuck run from hanging.
DRAIN_TIMEOUT_S = 150
MESSAGE_RECEIVED = 0  # ExternalEventType.MessageReceived as stored


@dataclass
class Outages:
    """Cut the proxy when sending reaches each mark; remember when the broker was away."""

    proxy: CuttableTcpProxy
    windows: list[tuple[float, float]] = field(default_factory=list)
    _answered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self) -> None:
        with self._lock:
            self._answered += 1
            if self._answered in CUT_AFTER:
                threading.Thread(target=self._outage, daemon=True).start()

    def _outage(self) -> None:
        started = time.monotonic()
        self.proxy.cut()
        time.sleep(OUTAGE_S)
        self.proxy.restore()
        self.windows.append((started, time.monotonic()))

    def during(self, at: float) -> bool:
        return any(start <= at <= end for start, end in self.windows)


@dataclass(frozen=True)
class Sent:
    status: int
    message_id: str | None
    started: float
    latency_s: float


@pytest.fixture
def landscape(tmp_path: Path) -> Iterator[tuple[str, list[str], str, CuttableTcpProxy]]:
    """serve and worker on PostgreSQL, reaching the broker through the proxy.

    Yields (API URL, worker URLs, database URL, proxy).
    """
    if not postgres_reachable():
        unavailable("no PostgreSQL server answers on BACKBONE_TEST_POSTGRES_URL")
    if not rabbitmq_reachable():
        unavailable(f"no RabbitMQ broker answers on {RABBITMQ_URL}")
    broker = pika.URLParameters(RABBITMQ_URL)
    proxy = CuttableTcpProxy(broker.host, broker.port).start()
    names = BrokerNames.unique()
    handlers = subscribed_handlers(tmp_path)
    with contextlib.ExitStack() as stack:
        stack.callback(proxy.stop)
        stack.callback(
            delete_topology, names, [names.queue_prefix + queue for queue, _ in handlers], RABBITMQ_URL
        )
        database_url = stack.enter_context(throwaway_postgres_database())
        environment = {
            **names.environment(f"amqp://127.0.0.1:{proxy.port}/%2F"),
            "BACKBONE_DATABASE_URL": database_url,
            "BACKBONE_ENVIRONMENT": "development",
            "BACKBONE_VAR_DIR": str(tmp_path),
            "BACKBONE_PASSWORD_HASH_ITERATIONS": "1000",
            "BACKBONE_MAX_UNRECEIVED_MESSAGES_FROM_ONE_SENDER": "100",
            "BACKBONE_RABBITMQ_RECONNECT_MAX_S": "1",
            "BACKBONE_RABBITMQ_CONSUMER_THREADS": "3",
        }
        url = stack.enter_context(
            running_backbone(
                environment,
                args=("serve", "--workers", "2", "--threads", "4"),
                log_path=tmp_path / "serve.log",
            )
        )
        # Two worker replicas: competing consumers on every queue, competing relays on the outbox.
        worker_urls = [
            stack.enter_context(running_worker(environment, log_path=tmp_path / f"worker-{number}.log"))
            for number in range(WORKERS)
        ]
        yield url, worker_urls, database_url, proxy


def relate(client: ConsumerApiClient, owner: Session, requester: Session) -> None:
    template = client.request(
        "POST", "/api/v2/RelationshipTemplates", {"content": CONTENT}, owner.auth_header
    )
    template_id = template["result"]["id"]
    client.request("GET", f"/api/v2/RelationshipTemplates/{template_id}", None, requester.auth_header)
    created = client.request(
        "POST",
        "/api/v2/Relationships",
        {"relationshipTemplateId": template_id, "creationContent": CONTENT},
        requester.auth_header,
    )
    relationship_id = created["result"]["id"]
    client.request("PUT", f"/api/v2/Relationships/{relationship_id}/Accept", {}, owner.auth_header)


def test_every_message_reaches_each_recipient_exactly_once_across_two_broker_restarts(
    landscape: tuple[str, list[str], str, CuttableTcpProxy], tmp_path: Path
) -> None:
    url, worker_urls, database_url, proxy = landscape
    client = ConsumerApiClient(url)
    with ThreadPoolExecutor(max_workers=8) as pool:
        accounts = list(pool.map(lambda _: client.onboard("a-device-password!"), range(SENDERS + RECIPIENTS)))
        senders, recipients = accounts[:SENDERS], accounts[SENDERS:]
        list(pool.map(lambda pair: relate(client, *pair), [(s, r) for s in senders for r in recipients]))
    bodies = [
        {
            "recipients": [
                {"address": recipients[index].address, "encryptedKey": ENCRYPTED_KEY} for index in pair
            ],
            "body": BODY,
            "attachments": [],
        }
        for pair in RECIPIENT_PAIRS
    ]
    outages = Outages(proxy)
    begin = time.monotonic()

    def send(number: int) -> Sent:
        # An open arrival model: request n leaves at n / rate, however slow the earlier ones were.
        time.sleep(max(0.0, begin + number / SEND_RATE_PER_S - time.monotonic()))
        sender = senders[number % SENDERS]
        body = bodies[(number // SENDERS) % len(bodies)]
        started = time.monotonic()
        try:
            answer = client.request("POST", "/api/v2/Messages", body, sender.auth_header)
            sent = Sent(201, answer["result"]["id"], started, time.monotonic() - started)
        except ApiError as error:
            sent = Sent(error.status, None, started, time.monotonic() - started)
        outages.answered()
        return sent

    # As many senders as the server has request threads (2 workers x 4), so requests do not queue.
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, range(MESSAGES)))
    sending_s = time.monotonic() - begin
    # Let the last outage end before waiting for the handlers.
    while len(outages.windows) < len(CUT_AFTER):
        time.sleep(0.1)
    handlers = subscribed_handlers(tmp_path)
    drain_started = time.monotonic()
    wait_until_drained(database_url, handlers, timeout_s=DRAIN_TIMEOUT_S)
    drain_s = time.monotonic() - drain_started

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://", 1)) as connection:
        committed = {row[0] for row in connection.execute("SELECT id FROM messages")}
        expected = {
            (row[0], row[1])
            for row in connection.execute("SELECT address, message_id FROM message_recipients")
        }
        received = Counter(
            (row[0], json.loads(row[1])["id"])
            for row in connection.execute(
                "SELECT owner, payload FROM external_events WHERE type = %s", (MESSAGE_RECEIVED,)
            )
        )
    assert len(expected) == 2 * len(committed)
    missing = expected - set(received)
    doubled = {key: count for key, count in received.items() if count > 1}
    unexpected = set(received) - expected
    during = [result for result in results if outages.during(result.started)]
    max_latency_s = max(result.latency_s for result in results)
    max_outage_latency_s = max((result.latency_s for result in during), default=0.0)
    duplicates = sum(
        _metric(worker_url, "messaging_client_consumed_messages_total", 'outcome="duplicate"')
        for worker_url in worker_urls
    )
    print(
        f"\nbroker outages: {MESSAGES} messages sent in {sending_s:.1f} s, {len(during)} during the"
        f" {len(outages.windows)} outages of {OUTAGE_S:.0f} s; {len(committed)} committed,"
        f" {sum(received.values())} MessageReceived events for {len(expected)} expected,"
        f" {len(missing)} missing, {len(doubled)} doubled; max latency {max_latency_s:.3f} s overall,"
        f" {max_outage_latency_s:.3f} s during outages; drained {drain_s:.1f} s after the last message;"
        f" {duplicates:.0f} redeliveries absorbed by the inbox;"
        f" {proxy.connections_accepted} broker connections"
    )
    assert Counter(result.status for result in results) == Counter({201: MESSAGES}), (
        "the API sends while the broker is away"
    )
    assert committed == {result.message_id for result in results}
    assert len(outages.windows) == 2
    assert len(during) >= 50, "messages were sent during the outages"
    assert not missing, f"{len(missing)} MessageReceived events missing"
    assert not doubled, f"{len(doubled)} MessageReceived events doubled"
    assert not unexpected
    assert max_outage_latency_s < LATENCY_LIMIT_S
    assert max_latency_s < LATENCY_LIMIT_S


def _metric(base_url: str, name: str, label: str) -> float:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as response:
        text = response.read().decode("utf-8")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and label in line
    )
