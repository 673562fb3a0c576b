"""`make bench`: requests/s of backbone routes as ratios to a bare Falcon app, measured side by side.

Both servers run under gunicorn with identical settings on this machine. `wrk` drives them
alternately (bare, route, bare, route, ...) after a warm-up; each pair gives a ratio, and the
median ratio with its min/max is what we quote (see ../shared/design/benchmarks.md).

`--only Login` times logins with an unknown username against known ones, one request at a
time on one connection (`testbed/bench/login_timing.py`): whether the answer's time tells which
usernames exist.

The telemetry case compares one authenticated read on four backbones that differ only in their
telemetry: none, metrics only (the default), and metrics with traces exported over OTLP/HTTP to a
loopback sink at sampling 1.0 and 0.1. It alternates them in rounds and quotes each as a ratio
to the one without telemetry.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

import psycopg
import sqlalchemy as sa

from backbone.platform.encoding import b64url
from backbone.settings import Settings
from loadtests.client import DATAWALLET_HEADER, ConsumerApiClient
from loadtests.client.session import modification
from testbed.bench import login_timing, writing_routes
from testbed.bench.otlp_sink import running_sink
from testbed.bench.telemetry_cpu import measure as measure_telemetry_cpu
from testbed.bench.telemetry_cpu import print_figures as print_telemetry_cpu
from testbed.processes import free_port, start_python, stop, wait_for_http


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # A binary body (uploads) is read from this file by the wrk script instead of `body`.
    body_file: Path | None = None
    # Routes whose every request must differ: writes the whole wrk script anew before each run.
    script: Callable[[], str] | None = None


@dataclass(frozen=True)
class Case:
    """A backbone route and the bare-app request it is compared with."""

    name: str
    route: Request
    baseline: Request


@dataclass
class Figure:
    name: str
    route_rps: list[float]
    baseline_rps: list[float]
    route_errors: int

    @property
    def ratios(self) -> list[float]:
        return [route / base for route, base in zip(self.route_rps, self.baseline_rps, strict=True)]


@dataclass
class VariantFigures:
    """Requests/s of one request on differently configured backbones, measured in rounds."""

    name: str
    rps: dict[str, list[float]]
    errors: dict[str, int]
    baseline: str
    # Per traced variant: OTLP export requests and bytes its sink received.
    exports: dict[str, tuple[int, int]] = field(default_factory=dict)

    def ratios(self, variant: str) -> list[float]:
        return [value / base for value, base in zip(self.rps[variant], self.rps[self.baseline], strict=True)]


ADMIN_URL = os.environ.get("BACKBONE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TELEMETRY_CASE = "Telemetry: GET /api/v2/Messages"
LOGIN_CASE = "Login timing: unknown and known usernames"
CPU_REQUESTS = 1000


SAMPLING_RATIOS = ("1.0", "0.1")


def telemetry_variants(sink_urls: dict[str, str]) -> dict[str, dict[str, str]]:
    """The backbones the telemetry case compares, by name, with the environment that makes each.

    `sink_urls` maps each sampling ratio to the OTLP traces endpoint its backbone exports to.
    """
    untraced = {"OTEL_TRACES_EXPORTER": "none"}
    variants = {
        "off (no metrics, no traces)": {"BACKBONE_METRICS": "false", **untraced},
        "metrics only (default)": untraced,
    }
    for ratio in SAMPLING_RATIOS:
        variants[f"metrics + traces, sampling {ratio}"] = {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink_urls[ratio],
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": ratio,
        }
    return variants


@dataclass(frozen=True)
class WrkSettings:
    threads: int = 2
    connections: int = 16
    duration_s: int = 10
    warmup_s: int = 3
    pairs: int = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench.throughput", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of both servers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker of both servers")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs per route (at least 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--database-url",
        default=ADMIN_URL,
        help="PostgreSQL server on which the bench creates (and drops) a database of its own, or "
        f"'sqlite' for SQLite in development mode (default: {ADMIN_URL})",
    )
    parser.add_argument("--only", action="append", default=[], help="run only cases whose name contains this")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian package 'wrk')", file=sys.stderr)
        return 2
    if args.pairs < 3:
        print("bench: at least 3 pairs are needed for a median with a spread", file=sys.stderr)
        return 2
    wrk = WrkSettings(connections=args.connections, duration_s=args.duration, pairs=args.pairs)

    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        server_args = ["--workers", str(args.workers), "--threads", str(args.threads)]
        # Tokens of the prepared identity must outlive the whole run; the login timing's wrong
        # passwords must not lock its device out.
        env = {
            "BACKBONE_VAR_DIR": str(scratch / "var"),
            "BACKBONE_JWT_LIFETIME_S": "3600",
            "BACKBONE_MAX_FAILED_LOGINS": "1000",
            "BACKBONE_MAX_UNRECEIVED_MESSAGES_FROM_ONE_SENDER": str(writing_routes.MAX_UNRECEIVED),
        }
        if args.database_url == "sqlite":
            database_url = f"sqlite:///{scratch / 'var' / 'backbone.sqlite3'}"
        else:
            database_url = stack.enter_context(own_database(args.database_url))
            env.update(BACKBONE_DATABASE_URL=database_url, BACKBONE_ENVIRONMENT="development")
        backbone = stack.enter_context(
            _server(["-m", "backbone", "serve", *server_args], env, "/health", scratch / "backbone.log")
        )
        bare = stack.enter_context(
            _server(["-m", "testbed.bench.bare_app", *server_args], {}, "/constant", scratch / "bare.log")
        )
        cases = prepare_cases(
            backbone,
            scratch,
            database_url,
            wrk,
            lambda name: not args.only or any(o in name for o in args.only),
        )
        _print_header(args, wrk)
        figures = [_measure(case, backbone, bare, wrk, scratch) for case in cases]
        logins = None
        if not args.only or any(o in LOGIN_CASE for o in args.only):
            logins = login_timing.measure(backbone, rounds=wrk.pairs)
        telemetry = telemetry_cpu = None
        if not args.only or any(o in TELEMETRY_CASE for o in args.only):
            telemetry = _measure_telemetry(backbone, server_args, env, wrk, scratch)
            # Printed now, so the throughput figures survive whatever happens to the CPU part.
            _print_variants(telemetry)
            telemetry_cpu = measure_telemetry_cpu(scratch, requests=CPU_REQUESTS, rounds=wrk.pairs)
    if figures:
        _print_figures(figures)
    if logins is not None:
        login_timing.print_figures(logins, Settings().password_hash_iterations)
    if telemetry_cpu is not None:
        print_telemetry_cpu(telemetry_cpu, CPU_REQUESTS)
    if args.json:
        results: list[dict[str, object]] = [{**asdict(f), "ratios": f.ratios} for f in figures]
        if telemetry is not None:
            ratios = {name: telemetry.ratios(name) for name in telemetry.rps}
            results.append({**asdict(telemetry), "ratios": ratios})
        if logins is not None:
            ratios = {f"{a} / {b}": logins.ratios(a, b) for a, b in login_timing.RATIOS}
            results.append({"name": LOGIN_CASE, **asdict(logins), "ratios": ratios})
        args.json.write_text(json.dumps(results, indent=2))
    failed = any(figure.route_errors for figure in figures) or bool(logins and logins.unexpected)
    if telemetry is not None:
        # A traced variant whose sink got nothing measured no export at all: not a valid figure.
        failed = failed or any(telemetry.errors.values()) or not all(n for n, _ in telemetry.exports.values())
    return 1 if failed else 0


def _measure_telemetry(
    backbone_url: str, server_args: list[str], env: dict[str, str], wrk: WrkSettings, scratch: Path
) -> VariantFigures:
    """Start one backbone per telemetry variant on the same data and alternate wrk over them."""
    client = ConsumerApiClient(backbone_url)
    session = client.onboard("a-bench-password!")
    headers = {**session.auth_header, **DATAWALLET_HEADER}
    read = Request("GET", "/api/v2/Messages", headers=headers)
    # Fails here, with the answer, if the read is refused: wrk would only count non-2xx answers.
    client.request(read.method, read.path, headers=headers)
    with ExitStack() as stack:
        sinks = {ratio: stack.enter_context(running_sink()) for ratio in SAMPLING_RATIOS}
        urls = {}
        variants = telemetry_variants({ratio: url for ratio, (url, _) in sinks.items()})
        for number, (name, variant_env) in enumerate(variants.items()):
            # The same var directory: the same SQLite database and signing key, so one token reads all.
            urls[name] = stack.enter_context(
                _server(
                    ["-m", "backbone", "serve", *server_args],
                    {**env, **variant_env},
                    "/health",
                    scratch / f"telemetry-{number}.log",
                )
            )
        figures = _measure_variants(TELEMETRY_CASE, read, urls, wrk, scratch)
        # Let the exporters' batches (sent every 5 s by default) reach the sinks before reading them.
        time.sleep(6)
        for ratio, (_, counts) in sinks.items():
            figures.exports[f"metrics + traces, sampling {ratio}"] = (counts.exports, counts.bytes)
        return figures


def _measure_variants(
    name: str, request: Request, urls: dict[str, str], settings: WrkSettings, scratch: Path
) -> VariantFigures:
    script = write_script(request, scratch / "variant.lua")
    for url in urls.values():
        _wrk(url + request.path, script, settings, settings.warmup_s)
    baseline = next(iter(urls))
    figures = VariantFigures(name, {variant: [] for variant in urls}, dict.fromkeys(urls, 0), baseline)
    names = list(urls)
    for round_number in range(settings.pairs):
        # Each round starts with another variant, so none is always measured first or last.
        shift = round_number % len(names)
        for variant in names[shift:] + names[:shift]:
            url = urls[variant]
            rps, errors = _wrk(url + request.path, script, settings, settings.duration_s)
            figures.rps[variant].append(rps)
            figures.errors[variant] += errors
        measured = ", ".join(f"{variant} {values[-1]:,.0f}/s" for variant, values in figures.rps.items())
        print(f"  {name}: round {round_number + 1}: {measured}", flush=True)
    return figures


def prepare_cases(
    backbone_url: str, scratch: Path, database_url: str, wrk: WrkSettings, wanted: Callable[[str], bool]
) -> list[Case]:
    """Prepare the data each wanted route needs (outside the timed part) and describe the requests.

    The routes that write the most come last, so what they leave behind weighs on no other case.
    """
    client = ConsumerApiClient(backbone_url)
    session = client.onboard("a-bench-password!")
    form = "&".join(
        f"{key}={value}" for key, value in client.token_form(session.username, session.password).items()
    )
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    json_headers = {"Content-Type": "application/json"}
    authenticated = {**json_headers, **session.auth_header, **DATAWALLET_HEADER}
    sync_body = json.dumps({"type": "ExternalEventSync"})
    cases = [
        Case(
            "POST /connect/token",
            Request("POST", "/connect/token", form, form_headers),
            Request("POST", "/constant", form, form_headers),
        ),
        Case(
            "POST /api/v2/Challenges",
            Request("POST", "/api/v2/Challenges", "{}", json_headers),
            Request("POST", "/constant", "{}", json_headers),
        ),
        Case(
            "POST /api/v2/SyncRuns (NoNewEvents)",
            Request("POST", "/api/v2/SyncRuns", sync_body, authenticated),
            Request("POST", "/constant", sync_body, authenticated),
        ),
    ]
    read_message = "GET /api/v2/Messages/{id}"
    if wanted(read_message):
        # A message to a peer in an active relationship, read by its sender. Two identities of
        # their own: the relationship's events would leave the polling identity something to sync.
        sender, peer = client.onboard("a-bench-password!"), client.onboard("a-bench-password!")
        relationship = sender.create_relationship(peer.create_template()["id"])
        peer.accept_relationship(relationship["id"])
        message_id = sender.send_message([peer.address])["id"]
        reader = {**json_headers, **sender.auth_header, **DATAWALLET_HEADER}
        cases.append(
            Case(
                read_message,
                Request("GET", f"/api/v2/Messages/{message_id}", headers=reader),
                Request("GET", "/constant", headers=reader),
            )
        )
    read_modifications = "GET /api/v2/Datawallet/Modifications"
    if wanted(read_modifications):
        for index in range(MODIFICATIONS_READ):
            session.push_modifications(index - 1 if index else None, [modification(f"bench-{index}")])
        cases.append(
            Case(
                read_modifications,
                Request("GET", "/api/v2/Datawallet/Modifications", headers=authenticated),
                Request("GET", "/constant", headers=authenticated),
            )
        )
    if any(wanted(name) for name in ("POST /api/v2/Files (1 MiB)", "GET /api/v2/Files/{id} (1 MiB)")):
        upload_body, upload_type = _upload_body(FILE_BYTES)
        upload_file = scratch / "upload.body"
        upload_file.write_bytes(upload_body)
        upload_headers = {**session.auth_header, "Content-Type": upload_type}
        file_id = _upload(backbone_url, upload_body, upload_headers)
        cases += [
            Case(
                "POST /api/v2/Files (1 MiB)",
                Request("POST", "/api/v2/Files", headers=upload_headers, body_file=upload_file),
                Request("POST", "/sink", headers=upload_headers, body_file=upload_file),
            ),
            Case(
                "GET /api/v2/Files/{id} (1 MiB)",
                Request("GET", f"/api/v2/Files/{file_id}", headers=session.auth_header),
                Request("GET", f"/bytes/{FILE_BYTES}", headers=session.auth_header),
            ),
        ]
    writing = ["POST /api/v2/Messages", "POST /api/v2/Datawallet/Modifications", "POST /api/v2/Relationships"]
    if any(wanted(name) for name in writing):
        pool = writing_routes.onboard_pool(client, POOL_SIZE)
        modifications_body = json.dumps({"localIndex": 0, "modifications": [modification("bench")]})
        relationship_body = json.dumps(
            {"relationshipTemplateId": pool.templates[0], "creationContent": "cmVxdWVzdA"}
        )
        pool_headers = {**json_headers, "Authorization": f"Bearer {pool.tokens[0]}", **DATAWALLET_HEADER}
        message_body = json.dumps(
            {
                "recipients": [{"address": pool.sessions[1].address, "encryptedKey": b64url(b"k" * 40)}],
                "body": b64url(b"message"),
                "attachments": [],
            }
        )
        cases += [
            Case(
                writing[0],
                Request(
                    "POST",
                    "/api/v2/Messages",
                    script=writing_routes.messages_script(pool, database_url, wrk.threads),
                ),
                Request("POST", "/constant", message_body, pool_headers),
            ),
            Case(
                writing[1],
                Request(
                    "POST",
                    "/api/v2/Datawallet/Modifications",
                    script=writing_routes.modifications_script(pool, wrk.threads),
                ),
                Request("POST", "/constant", modifications_body, pool_headers),
            ),
            Case(
                writing[2],
                Request(
                    "POST",
                    "/api/v2/Relationships",
                    script=writing_routes.relationships_script(pool, database_url, wrk.threads),
                ),
                Request("POST", "/constant", relationship_body, pool_headers),
            ),
        ]
    return [case for case in cases if wanted(case.name)]


# Modifications the read of the datawallet's modifications returns (one page).
MODIFICATIONS_READ = 5
# Identities of the writing routes: 80 make 3,080 pairs for relationships, more than one run creates here.
POOL_SIZE = 80


@contextmanager
def own_database(server_url: str) -> Iterator[str]:
    """A new PostgreSQL database on the server of `server_url` for this run, dropped afterwards.

    The server's other databases are never touched; `server_url` names the one to connect to.
    """
    name = f"bench_throughput_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        raise SystemExit(
            f"bench: cannot create a database on {_without_password(server_url)}: {error}"
        ) from None
    base, _, _ = server_url.partition("?")[0].rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _without_password(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


FILE_BYTES = 1024 * 1024


def _upload_body(size: int) -> tuple[bytes, str]:
    """A file upload as the official client sends it: content first, then the metadata parts."""
    boundary = "----bench-" + uuid.uuid4().hex
    content = os.urandom(size)
    expires_at = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    fields = {
        "cipherHash": b64url(hashlib.sha512(content).digest()),
        "owner": "ignored",
        "ownerSignature": b64url(b'{"sig":"bench","alg":2}'),
        "expiresAt": expires_at,
        "encryptedProperties": b64url(b'{"cph":"bench","alg":3}'),
    }
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="cipher.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + content
    for name, value in fields.items():
        body += f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}'.encode()
    body += f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _upload(base_url: str, body: bytes, headers: dict[str, str]) -> str:
    """Upload the file the download case reads, before anything is timed."""
    request = urllib.request.Request(base_url + "/api/v2/Files", data=body, method="POST", headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own loopback server
        file_id: str = json.loads(response.read())["result"]["id"]
        return file_id


def _measure(case: Case, backbone_url: str, bare_url: str, settings: WrkSettings, scratch: Path) -> Figure:
    route_script = write_script(case.route, scratch / "route.lua")
    baseline_script = write_script(case.baseline, scratch / "baseline.lua")
    _wrk(backbone_url + case.route.path, route_script, settings, settings.warmup_s)
    _wrk(bare_url + case.baseline.path, baseline_script, settings, settings.warmup_s)
    figure = Figure(case.name, [], [], 0)
    for pair in range(settings.pairs):
        base_rps, _ = _wrk(bare_url + case.baseline.path, baseline_script, settings, settings.duration_s)
        if case.route.script is not None:
            route_script = write_script(case.route, scratch / "route.lua")
        route_rps, errors = _wrk(backbone_url + case.route.path, route_script, settings, settings.duration_s)
        figure.baseline_rps.append(base_rps)
        figure.route_rps.append(route_rps)
        figure.route_errors += errors
        # The machine may be shared: its load beside each pair tells how noisy the pair was.
        load = os.getloadavg()[0]
        print(
            f"  {case.name}: pair {pair + 1}: bare {base_rps:,.0f}/s, route {route_rps:,.0f}/s "
            f"(load {load:.1f})",
            flush=True,
        )
    return figure


def write_script(request: Request, path: Path) -> Path:
    if request.script is not None:
        path.write_text(request.script())
        return path
    lines = [f'wrk.method = "{request.method}"', f"wrk.body = [==[{request.body}]==]"]
    if request.body_file is not None:
        # Binary bodies cannot sit in a Lua long string (it rewrites line ends); read them as bytes.
        lines[1] = (
            f'local f = assert(io.open("{request.body_file}", "rb")); wrk.body = f:read("*a"); f:close()'
        )

    lines += [f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in request.headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _wrk(url: str, script: Path, settings: WrkSettings, duration_s: int) -> tuple[float, int]:
    """Run wrk once; return requests/s and the number of non-2xx answers or socket errors."""
    run = run_wrk(url, script, settings, duration_s)
    return run.rps, run.errors


@dataclass(frozen=True)
class WrkRun:
    rps: float
    # Non-2xx answers and socket errors.
    errors: int
    requests: int


def run_wrk(url: str, script: Path, settings: WrkSettings, duration_s: float) -> WrkRun:
    """Run wrk once with the bench's settings and the request of `script`."""
    command = [
        "wrk",
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{duration_s:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(count) for count in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(count) for count in socket_errors.groups())
    return WrkRun(rps, errors, requests)


@contextmanager
def _server(args: list[str], env: dict[str, str], ready_path: str, log: Path) -> Iterator[str]:
    port = free_port()
    with open(log, "wb") as log_file:
        process = start_python([*args, "--port", str(port)], env, log_file)
        url = f"http://localhost:{port}"
        try:
            wait_for_http(url + ready_path, process)
            yield url
        finally:
            stop(process)


def _versions() -> dict[str, str]:
    names = [
        "falcon",
        "gunicorn",
        "sqlalchemy",
        "psycopg",
        "orjson",
        "pyjwt",
        "cryptography",
        "prometheus-client",
        "opentelemetry-sdk",
    ]
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    found["wrk"] = (wrk_version.stdout + wrk_version.stderr).split("\n")[0].strip()
    return found


def _print_header(args: argparse.Namespace, wrk: WrkSettings) -> None:
    print("backbone throughput as ratios to a bare Falcon app (same gunicorn settings, one run)")
    print(f"  machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"  python {platform.python_version()}; " + ", ".join(f"{k} {v}" for k, v in _versions().items()))
    database = (
        "SQLite (development mode)"
        if args.database_url == "sqlite"
        else f"PostgreSQL, a database of its own on {_without_password(args.database_url)}"
    )
    iterations = Settings().password_hash_iterations
    print(
        f"  gunicorn: gthread, {args.workers} workers x {args.threads} threads, keep-alive 5 s; "
        f"database: {database}; password hashes: PBKDF2-HMAC-SHA512, {iterations:,} iterations"
    )
    print(
        f"  wrk: {wrk.threads} threads, {wrk.connections} connections, {wrk.duration_s} s per measurement, "
        f"{wrk.warmup_s} s warm-up, {wrk.pairs} bare/route pairs, alternating"
    )


def _print_variants(figures: VariantFigures) -> None:
    print()
    print(
        f"{figures.name} (authenticated read), ratios to '{figures.baseline}', rounds alternate the variants"
    )
    columns = ("req/s (median)", "ratio (median)", "min", "max", "errors")
    widths = (15, 15, 7, 7, 7)
    print(f"{'variant':34} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for variant, values in figures.rps.items():
        ratios = figures.ratios(variant)
        print(
            f"{variant:34} {statistics.median(values):15,.0f} {statistics.median(ratios):>15.3f} "
            f"{min(ratios):>7.3f} {max(ratios):>7.3f} {figures.errors[variant]:>7}"
        )
    for variant, (exports, size) in figures.exports.items():
        print(f"  {variant}: its OTLP sink received {exports:,} exports, {size:,} bytes")


def _print_figures(figures: list[Figure]) -> None:
    print()
    columns = ("route req/s", "bare req/s", "ratio (median)", "min", "max", "errors")
    widths = (12, 12, 15, 7, 7, 7)
    print(
        f"{'route':42} " + " ".join(f"{name:>{width}}" for name, width in zip(columns, widths, strict=True))
    )
    for figure in figures:
        ratios = figure.ratios
        print(
            f"{figure.name:42} {statistics.median(figure.route_rps):12,.0f} "
            f"{statistics.median(figure.baseline_rps):12,.0f} {statistics.median(ratios):>15.3f} "
            f"{min(ratios):>7.3f} {max(ratios):>7.3f} {figure.route_errors:>7}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
