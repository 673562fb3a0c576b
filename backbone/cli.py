"""The `backbone` command: serve the APIs, migrate the database, run jobs and operator tasks."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from backbone import migrations, operator_commands
from backbone.platform import dialects
from backbone.platform.db import Database, DatabaseUnreachable
from backbone.platform.rabbitmq import RabbitMqEventBus
from backbone.platform.servicebus import AzureServiceBusEventBus
from backbone.platform.serving import GunicornServer, gunicorn_options, telemetry_hooks
from backbone.settings import Settings, SettingsError
from backbone.wiring import build_services, seed

log = logging.getLogger("backbone")
Command = Callable[[Settings, argparse.Namespace], int]


@dataclass(frozen=True)
class ServedApi:
    """An API that `serve` or `serve-admin` runs under gunicorn."""

    title: str
    # Whose `application()` gunicorn's workers call after fork (imported once the database is ready).
    module: str
    # The telemetry resource's service name.
    service_name: str
    needs_api_key: bool


CONSUMER_API = ServedApi("Consumer API", "backbone.consumer_api", "backbone-consumer-api", False)
ADMIN_API = ServedApi("Admin API", "backbone.admin_api", "backbone-admin-api", True)


def command_names() -> list[str]:
    """The commands of `backbone` (what tools that drive it may check for)."""
    _, commands = _parser()
    return sorted(commands.choices)


def main(argv: Sequence[str] | None = None) -> int:
    parser, _ = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_process_env()
    except SettingsError as error:
        print(f"backbone: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pika narrates every connection step, and logs a broker that is away as errors with
    # tracebacks; the bus adapter logs each such failure itself, once, in one line.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    # The Service Bus SDK logs each retry of an absent namespace with its stack; the same holds.
    logging.getLogger("azure").setLevel(logging.CRITICAL)
    command: Command = args.command
    return command(settings, args)


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="backbone", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    for name, api, port, workers in (("serve", CONSUMER_API, 8080, 2), ("serve-admin", ADMIN_API, 8081, 1)):
        serve = commands.add_parser(name, help=f"run the {api.title} under gunicorn")
        serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        serve.add_argument("--port", type=int, default=port, help=f"port to bind (default {port})")
        serve.add_argument(
            "--workers", type=int, default=workers, help=f"gunicorn worker processes (default {workers})"
        )
        serve.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
        serve.set_defaults(command=_serve, api=api)

    sse = commands.add_parser(
        "serve-sse", help="run the SSE server (event streams of connected apps) on uvicorn"
    )
    sse.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sse.add_argument("--port", type=_port, default=8082, help="port to bind (default 8082)")
    sse.set_defaults(command=_serve_sse)

    worker = commands.add_parser(
        "worker", help="run the event handlers of a broker and relay outbox rows left unpublished"
    )
    worker.add_argument(
        "--host", default="127.0.0.1", help="address of /metrics and /health (default 127.0.0.1)"
    )
    worker.add_argument(
        "--metrics-port", type=_port, default=9444, help="port of /metrics and /health (default 9444)"
    )
    worker.add_argument(
        "--relay-interval-s",
        type=_positive_seconds,
        default=1.0,
        help="seconds between outbox relay passes (default 1)",
    )
    worker.set_defaults(command=_worker)

    job = commands.add_parser("job", help="run a one-shot background job (for cron)")
    jobs = job.add_subparsers(required=True, metavar="JOB")
    housekeeping = jobs.add_parser("housekeeping", help="remove what the retention rules let go")
    housekeeping.add_argument(
        "--audit-log-retention-days",
        type=_positive_int,
        default=731,
        help="keep identity-deletion audit entries this many days (default 731)",
    )
    housekeeping.add_argument(
        "--orphan-settle-s",
        type=_non_negative_seconds,
        default=10.0,
        help="seconds between listing stored contents and reading file ids (default 10)",
    )
    housekeeping.set_defaults(command=_housekeeping)
    deletion = jobs.add_parser("identity-deletion", help="grace-period reminders or the actual deletion")
    deletion.add_argument("--step", required=True, choices=("reminders", "actual"), help="which step to run")
    deletion.set_defaults(command=_identity_deletion)

    migrate = commands.add_parser("migrate", help="apply the database migrations and seed the default tiers")
    migrate.add_argument(
        "--sql",
        action="store_true",
        help="print every module's migrations as SQL instead of applying them (connects to nothing)",
    )
    migrate.add_argument(
        "--database-url",
        help="with --sql: the dialect to write, e.g. mssql+pyodbc://... (default BACKBONE_DATABASE_URL)",
    )
    migrate.set_defaults(command=_migrate)
    operator_commands.add_operator_commands(commands)
    return parser, commands


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, not {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    return value


def _prepare_database(settings: Settings, *, migrate: bool) -> None:
    """Migrate (when asked) and seed, before any worker forks; refuse an outdated schema."""
    if settings.database_kind == "sqlite":
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    try:
        db = Database(
            settings.database_url,
            prepared_statements=settings.db_prepared_statements,
            sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )
    except ImportError as error:
        # pyodbc loads unixODBC's driver manager when it is imported.
        raise SystemExit(
            f"backbone: the {settings.database_kind} driver cannot be loaded ({error}); SQL Server needs "
            "unixODBC and an ODBC driver (Debian: unixodbc, tdsodbc)"
        ) from None
    try:
        db.ping()
        if migrate:
            migrations.upgrade(db.engine)
        elif missing := migrations.pending(db.engine):
            raise SystemExit(
                f"backbone: the database schema is not up to date (missing {', '.join(sorted(missing))}); "
                "run `backbone migrate` first"
            )
        services = build_services(settings, db=db)
        try:
            seed(services)
        finally:
            services.bus.close()
    except DatabaseUnreachable as error:
        raise SystemExit(f"backbone: {error}") from None
    finally:
        db.dispose()


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.database_url and not args.sql:
        print(
            "backbone: --database-url goes with --sql (migrations apply to BACKBONE_DATABASE_URL)",
            file=sys.stderr,
        )
        return 2
    if args.sql:
        return _print_migration_sql(args.database_url or settings.database_url)
    _prepare_database(settings, migrate=True)
    log.info("database migrated: %s", settings.describe()["database"])
    return 0


def _print_migration_sql(database_url: str) -> int:
    try:
        kind = dialects.kind_of(database_url)
    except (ArgumentError, NoSuchModuleError) as error:
        print(f"backbone: --database-url: not a database URL SQLAlchemy knows: {error}", file=sys.stderr)
        return 2
    if kind == dialects.SQLITE:
        # Alembic alters SQLite tables by copying them, which needs the live table to copy.
        print(
            "backbone: migrate --sql writes PostgreSQL or SQL Server; SQLite migrates only live",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(migrations.render_sql(database_url))
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    api: ServedApi = args.api
    if api.needs_api_key and not settings.admin_api_key and not settings.development:
        print("backbone: BACKBONE_ADMIN_API_KEY must be set outside development mode", file=sys.stderr)
        return 2
    _prepare_database(settings, migrate=settings.development)
    application = importlib.import_module(api.module).application

    log.info("%s on http://%s:%d (%s mode)", api.title, args.host, args.port, settings.environment)
    options = gunicorn_options(
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads,
        extra=telemetry_hooks(settings, api.service_name),
    )
    GunicornServer(application, options).run()
    return 0


def _serve_sse(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_database(settings, migrate=settings.development)
    from backbone import sse_server

    services = build_services(settings)
    try:
        sse_server.serve(services, settings, host=args.host, port=args.port)
    finally:
        services.close()
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_database(settings, migrate=settings.development)
    from backbone.worker import Worker, serve_metrics

    services = build_services(settings)
    worker = Worker(services, relay_interval_s=args.relay_interval_s)
    if isinstance(services.bus, (RabbitMqEventBus, AzureServiceBusEventBus)):
        worker.add_consumer(services.bus.consume, health_check=services.bus.ping)
        worker.health.add("consumers", services.bus.consumers_ping)
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    try:
        server = serve_metrics(worker.health, args.host, args.metrics_port, services.metrics_registry)
    except OSError as error:
        services.close()
        print(
            f"backbone: cannot serve metrics on {args.host}:{args.metrics_port}: {error.strerror}",
            file=sys.stderr,
        )
        return 2
    log.info(
        "worker: bus %s, /metrics and /health on http://%s:%d",
        settings.describe()["bus"],
        args.host,
        server.server_port,
    )
    try:
        worker.run(stop)
    finally:
        server.shutdown()
        server.server_close()
        services.close()
    log.info("worker stopped")
    return 0


def _housekeeping(settings: Settings, args: argparse.Namespace) -> int:
    from backbone import jobs

    _prepare_database(settings, migrate=settings.development)
    services = build_services(settings)
    try:
        jobs.housekeeping(
            services,
            audit_log_retention=timedelta(days=args.audit_log_retention_days),
            orphan_settle_s=args.orphan_settle_s,
        )
    finally:
        services.close()
    return 0


def _identity_deletion(settings: Settings, args: argparse.Namespace) -> int:
    from backbone import jobs

    _prepare_database(settings, migrate=settings.development)
    services = build_services(settings)
    try:
        if args.step == "reminders":
            jobs.send_grace_period_reminders(services)
        else:
            jobs.delete_identities(services)
    finally:
        services.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
