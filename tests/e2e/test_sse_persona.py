"""The SSE persona through the generated gateway: an app's stream reaches an SSE replica, a peer's
message wakes it, the app syncs; the replica's internal route is not public."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from falcon import testing

import loadtests.flows.sse  # noqa: F401  (registers the flow)
from backbone.consumer_api import create_consumer_app
from backbone.wiring import build_services, seed
from loadtests.client import HttpClientTransport
from loadtests.flows import FlowContext, get_flow
from loadtests.flows.upstream import ScenarioRuntime, configure
from loadtests.outcomes import OK
from loadtests.personas import Cast, Device, Persona, Relationship
from scenarios.landscape import GatewayProfile
from testbed.landscape.gateway import GatewayPorts, haproxy_config, haproxy_executable
from testbed.processes import free_port, listens, wait_until_answers
from tests.helpers.api import Account, onboard
from tests.helpers.peers import relate
from tests.helpers.server import running_backbone
from tests.helpers.services import fresh_sqlite, settings_for_tests, unavailable
from tests.helpers.sse import running_sse_replica

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway_landscape(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[str, str, list[Account]]]:
    """A Consumer API node and an SSE replica as processes behind HAProxy; two related accounts."""
    executable = haproxy_executable()
    if executable is None:
        unavailable("haproxy is not installed (apt-get install haproxy)")
    database_url = fresh_sqlite(sqlite_template, tmp_path)
    environment = {
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_DATABASE_URL": database_url,
        "BACKBONE_VAR_DIR": str(tmp_path),
        "BACKBONE_JWT_SIGNING_KEY": "t" * 32,
        "BACKBONE_SSE_KEEPALIVE_S": "1",
    }
    services = build_services(settings_for_tests(database_url, tmp_path))
    seed(services)
    api = testing.TestClient(create_consumer_app(services))
    app, peer = onboard(api), onboard(api)
    relate(app, peer)
    services.close()
    with (
        running_backbone(
            environment, args=("serve", "--workers", "1"), log_path=tmp_path / "node.log"
        ) as node,
        running_sse_replica(environment, tmp_path / "sse.log") as replica,
    ):
        ports = GatewayPorts(free_port(), free_port())
        config = tmp_path / "haproxy.cfg"
        node_port = int(node.rsplit(":", 1)[1])
        config.write_text(
            haproxy_config(GatewayProfile(), ports, [node_port], "sse", sse_ports=[replica.port])
        )
        process = subprocess.Popen([executable, "-db", "-f", str(config)], stdout=subprocess.DEVNULL)
        try:
            wait_until_answers(listens(ports.public), process, what="haproxy", timeout_s=10)
            yield f"http://localhost:{ports.public}", replica.url, [app, peer]
        finally:
            process.terminate()
            process.wait(timeout=10)


def persona(account: Account, alias: str, peer: Account) -> Persona:
    return Persona(
        address=account.address,
        alias=alias,
        type="app" if alias.startswith("a") else "connector",
        devices=(Device(account.device_id, account.username, account.password),),
        relationships=(Relationship("", peer.address, ""),),
    )


def test_the_sse_persona_gets_its_event_through_the_gateway_and_syncs(
    gateway_landscape: tuple[str, str, list[Account]],
) -> None:
    gateway, replica, (app, peer) = gateway_landscape
    cast = Cast(
        [persona(app, "a1", peer), persona(peer, "c1", app)],
        did_domain="localhost",
        client_id="test",
        pool_config="test",
    )
    runtime = ScenarioRuntime(cast=cast, base_url=gateway, client_secret="test")
    configure(runtime)
    try:
        flow = get_flow("sse.live-event")
        for iteration in range(2):
            flow(
                FlowContext(
                    client=HttpClientTransport(gateway),
                    flow="sse-live-event",
                    iteration=iteration,
                    params={"group": "a1", "event_timeout_s": 5},
                )
            )
    finally:
        configure(None)
    assert runtime.outcomes.to_data() == {"sse-live-event": {OK: 2}}
    with urllib.request.urlopen(f"{replica}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    delivered = [
        line for line in metrics.splitlines() if line.startswith("backbone_sse_events_delivered_total")
    ]
    # At least one per iteration: an earlier iteration's stream may still be closing when the next
    # message comes, and a push reaches every stream of the address.
    assert len(delivered) == 1
    assert delivered[0].startswith('backbone_sse_events_delivered_total{event_name="ExternalEventCreated"}')
    assert float(delivered[0].rsplit(" ", 1)[1]) >= 2
    # The replica's internal route is not public.
    request = urllib.request.Request(
        f"{gateway}/{app.address}/events", data=b'{"eventName":"X"}', method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 404
