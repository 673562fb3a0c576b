"""CPU time per request of one authenticated read, in-process, with and without telemetry.

The wrk figures of the telemetry case measure throughput, which a shared machine disturbs a
lot. This measures what telemetry costs the process itself: the same Falcon app built four
times on one database (no telemetry, metrics in multiprocess mode, metrics with OTLP traces at
sampling 1.0 and 0.1), each driven in turn by the same requests, timing `time.process_time()`
(all threads, so the span export thread counts; the OTLP sink runs in another process). Each
traced variant is flushed inside its timed part, so its export is charged to it.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from falcon import testing
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from backbone import migrations
from backbone.consumer_api import create_consumer_app
from backbone.platform.db import Database
from backbone.platform.metrics import enable_multiprocess
from backbone.platform.tracing import Tracing
from backbone.settings import Settings
from backbone.wiring import Services, build_services, seed
from loadtests.client import DATAWALLET_HEADER
from loadtests.keys import IdentityKey, challenge_text
from testbed.processes import free_port, listens, start_python, stop, wait_until_answers

PASSWORD = "a-bench-password!"  # noqa: S105 - a throwaway identity of the benchmark


@dataclass
class Variant:
    name: str
    services: Services
    client: testing.TestClient
    provider: TracerProvider | None = None


@contextmanager
def _sink(scratch: Path) -> Iterator[str]:
    port = free_port()
    with open(scratch / "otlp-sink.log", "wb") as log:
        process = start_python(["-m", "testbed.bench.otlp_sink", "--port", str(port)], {}, log)
        try:
            wait_until_answers(listens(port), process, what="the OTLP sink", timeout_s=10, interval_s=0.05)
            yield f"http://127.0.0.1:{port}/v1/traces"
        finally:
            stop(process)


def measure(scratch: Path, *, requests: int = 1000, rounds: int = 5) -> dict[str, list[float]]:
    """Microseconds of CPU per request, per variant and round (variants rotate within rounds)."""
    directory = scratch / "telemetry-cpu"
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'backbone.sqlite3'}"
    database = Database(url)
    migrations.upgrade(database.engine)
    database.dispose()
    settings = Settings(
        database_url=url,
        var_dir=directory,
        jwt_signing_key=b"b" * 32,
        password_hash_iterations=1000,
        # The token must outlive the whole measurement, however slow the machine is today.
        jwt_lifetime_s=3600,
    )
    # Metrics write to memory-mapped files as under gunicorn.
    enable_multiprocess(directory / "metrics")
    with _sink(scratch) as sink_url:
        variants = [
            _variant("off (no metrics, no traces)", dataclasses.replace(settings, metrics_enabled=False)),
            _variant("metrics only (default)", settings),
            _variant("metrics + traces, sampling 1.0", settings, sink_url, 1.0),
            _variant("metrics + traces, sampling 0.1", settings, sink_url, 0.1),
        ]
        seed(variants[0].services)
        headers = {**_log_in(variants[0].client), **DATAWALLET_HEADER}
        cpu: dict[str, list[float]] = {variant.name: [] for variant in variants}
        for variant in variants:
            _drive(variant, headers, requests // 5)
        for round_number in range(rounds):
            shift = round_number % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                cpu[variant.name].append(_timed(variant, headers, requests))
        for variant in variants:
            if variant.provider is not None:
                variant.provider.shutdown()
            variant.services.close()
    return cpu


def _variant(name: str, settings: Settings, sink_url: str = "", ratio: float | None = None) -> Variant:
    provider = None
    tracing = Tracing(enabled=False)
    if ratio is not None:
        provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sink_url)))
        tracing = Tracing(enabled=True, provider=provider)
    services = build_services(settings, tracing=tracing)
    return Variant(name, services, testing.TestClient(create_consumer_app(services)), provider)


def _log_in(client: testing.TestClient) -> dict[str, str]:
    key = IdentityKey.generate()
    challenge = challenge_text(client.simulate_post("/api/v2/Challenges", json={}).json["result"])
    created = client.simulate_post(
        "/api/v2/Identities",
        json={
            "clientId": "test",
            "clientSecret": "test",
            "identityPublicKey": key.identity_public_key(),
            "devicePassword": PASSWORD,
            "identityVersion": 1,
            "signedChallenge": {"challenge": challenge, "signature": key.sign(challenge)},
        },
    ).json["result"]
    form = (
        "grant_type=password&client_id=test&client_secret=test"
        f"&username={created['device']['username']}&password={PASSWORD}"
    )
    token = client.simulate_post(
        "/connect/token", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    ).json["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _drive(variant: Variant, headers: dict[str, str], requests: int) -> None:
    for _ in range(requests):
        answer = variant.client.simulate_get("/api/v2/Messages", headers=headers)
        if answer.status_code != 200:
            raise RuntimeError(f"{variant.name}: GET /api/v2/Messages answered {answer.status_code}")


def _timed(variant: Variant, headers: dict[str, str], requests: int) -> float:
    started = time.process_time()
    _drive(variant, headers, requests)
    if variant.provider is not None:
        variant.provider.force_flush()
    return (time.process_time() - started) / requests * 1e6


def print_figures(cpu: dict[str, list[float]], requests: int) -> None:
    baseline = next(iter(cpu))
    print()
    print(
        f"Telemetry: GET /api/v2/Messages in-process, CPU per request ({requests} requests per variant "
        f"and round, {len(cpu[baseline])} rounds), ratios to '{baseline}'"
    )
    columns = ("CPU us/req (median)", "ratio (median)", "min", "max")
    widths = (20, 15, 7, 7)
    print(f"{'variant':34} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for name, values in cpu.items():
        ratios = [value / base for value, base in zip(values, cpu[baseline], strict=True)]
        print(
            f"{name:34} {statistics.median(values):20,.0f} {statistics.median(ratios):>15.3f} "
            f"{min(ratios):>7.3f} {max(ratios):>7.3f}"
        )
