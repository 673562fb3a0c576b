"""Without rabbitmqctl (a broker elsewhere), a landscape uses an exchange and queues of its own on
the profile's vhost, and `down` deletes them."""

from __future__ import annotations

from pathlib import Path

import pika
import pytest

from scenarios.landscape import parse_profile
from testbed.landscape.cpu import plan_cpus
from testbed.landscape.launcher import Launcher
from testbed.landscape.teardown import tear_down
from tests.helpers.rabbitmq import RABBITMQ_URL, channel_on, rabbitmq_reachable
from tests.helpers.services import unavailable

pytestmark = pytest.mark.rabbitmq


def exists(kind: str, name: str) -> bool:
    with channel_on() as channel:
        try:
            if kind == "queue":
                channel.queue_declare(name, passive=True)
            else:
                channel.exchange_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return False
    return True


def test_without_rabbitmqctl_the_landscape_owns_an_exchange_and_down_deletes_it(tmp_path: Path) -> None:
    if not rabbitmq_reachable():
        unavailable(f"no RabbitMQ broker answers on {RABBITMQ_URL}")
    profile = parse_profile(
        f'name = "remote-broker"\n[bus]\nkind = "rabbitmq"\nurl = "{RABBITMQ_URL}"\n',
        source=tmp_path / "p.toml",
    )
    launcher = Launcher(
        profile, plan_cpus(profile), state_path=tmp_path / "state.json", runs_dir=tmp_path, rabbitmqctl=None
    )
    environment = launcher.prepare_broker()
    exchange = environment["BACKBONE_RABBITMQ_EXCHANGE"]
    prefix = environment["BACKBONE_RABBITMQ_QUEUE_PREFIX"]
    assert exchange == f"landscape-{launcher.state.id}"
    assert prefix == f"{exchange}."
    assert environment["BACKBONE_RABBITMQ_URL"] == RABBITMQ_URL
    assert f"{prefix}Synchronization.MessageCreated" in launcher.state.rabbitmq_queues
    assert launcher.state.rabbitmq_vhost == ""
    # What the nodes and the worker declare on start.
    with channel_on() as channel:
        channel.exchange_declare(exchange, "direct", durable=True)
        channel.exchange_declare(f"deadletterexchange.{exchange}", "direct", durable=True)
        channel.queue_declare(f"deadletterqueue.{exchange}", durable=True)
        for queue in launcher.state.rabbitmq_queues:
            channel.queue_declare(queue, durable=True)
    assert exists("exchange", exchange)

    assert tear_down(launcher.state, say=lambda text: None) == []
    assert not exists("exchange", exchange)
    assert not exists("exchange", f"deadletterexchange.{exchange}")
    assert not exists("queue", f"deadletterqueue.{exchange}")
    assert not any(exists("queue", queue) for queue in launcher.state.rabbitmq_queues)
