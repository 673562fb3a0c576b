"""`backbone worker` as a process: its /health follows the broker, its /metrics shows the bus, and
the broker password never reaches its log."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pika
import pytest

from testbed.processes import free_port, start_python, stop
from tests.helpers.drain import subscribed_handlers
from tests.helpers.rabbitmq import (
    RABBITMQ_URL,
    BrokerNames,
    channel_on,
    delete_topology,
    rabbitmq_reachable,
)
from tests.helpers.server import running_worker
from tests.helpers.services import unavailable
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.rabbitmq
BROKER_PASSWORD = "s3cret-broker-password"


@pytest.fixture(scope="module")
def broker() -> str:
    if not rabbitmq_reachable():
        unavailable(f"no RabbitMQ broker answers on {RABBITMQ_URL}")
    return RABBITMQ_URL


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")
    except OSError:
        return 0, ""


def worker_environment(tmp_path: Path, names: BrokerNames, url: str) -> dict[str, str]:
    return {
        **names.environment(url),
        "BACKBONE_VAR_DIR": str(tmp_path),
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_RABBITMQ_RECONNECT_MAX_S": "0.5",
    }


def test_the_worker_consumes_every_queue_and_shows_the_bus_in_its_metrics(
    broker: str, tmp_path: Path
) -> None:
    names = BrokerNames.unique()
    handlers = subscribed_handlers(tmp_path)
    try:
        with running_worker(
            worker_environment(tmp_path, names, broker), log_path=tmp_path / "worker.log"
        ) as url:
            assert get(f"{url}/health") == (200, "Healthy")

            def depth_reported() -> bool:
                exposed = get(f"{url}/metrics")[1]
                return all(
                    f'messaging_queue_depth_messages{{messaging_destination_name="{name}",' in exposed
                    for name in [
                        *(names.queue_prefix + queue for queue, _ in handlers),
                        names.dead_letter_queue,
                    ]
                )

            wait_until(depth_reported, "queue depths in /metrics", 15)
            metrics = get(f"{url}/metrics")[1]
            with channel_on(broker) as channel:
                consumers = {
                    queue: channel.queue_declare(
                        names.queue_prefix + queue, passive=True
                    ).method.consumer_count
                    for queue, _ in handlers
                }
    finally:
        delete_topology(names, [names.queue_prefix + queue for queue, _ in handlers], broker)
    assert set(consumers.values()) == {2}, f"two consumer threads on every queue: {consumers}"
    assert (
        'messaging_client_connection_up{connection_role="consumer",messaging_system="rabbitmq"} 1.0'
        in metrics
    )
    assert (
        f'messaging_queue_depth_messages{{messaging_destination_name="{names.dead_letter_queue}"' in metrics
    )


def test_a_worker_that_cannot_reach_the_broker_is_unhealthy_and_keeps_the_password_out_of_its_log(
    broker: str, tmp_path: Path
) -> None:
    names = BrokerNames.unique()
    server = pika.URLParameters(broker)
    # The broker refuses these credentials: the failure travels through pika's error messages.
    wrong_credentials = f"amqp://backbone:{BROKER_PASSWORD}@{server.host}:{server.port}/%2F"
    port = free_port()
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        process = start_python(
            ["-m", "backbone", "worker", "--metrics-port", str(port)],
            {**worker_environment(tmp_path, names, wrong_credentials), "BACKBONE_LOG_LEVEL": "DEBUG"},
            log,
        )
        try:
            wait_until(lambda: get(f"http://127.0.0.1:{port}/health")[0] == 503, "/health to answer 503", 30)
            wait_until(
                lambda: "consumer cannot connect" in log_path.read_text(), "a failed connection attempt"
            )
            assert get(f"http://127.0.0.1:{port}/health") == (503, "Unhealthy")
        finally:
            stop(process)
    text = log_path.read_text()
    assert f"backbone:***@{server.host}" in text, "the log names the broker"
    assert BROKER_PASSWORD not in text
