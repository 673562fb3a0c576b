"""Operator commands: `backbone client|tier|announcement|token|database ...`, in-process through the
services.

They call the same services as the Admin API (no HTTP, no table access), on the database the
settings name; secrets are printed once, on creation, and never logged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backbone import migrations
from backbone.database_export import default_export_path, export_database
from backbone.modules.announcements.model import (
    AnnouncementAction,
    AnnouncementSeverity,
    AnnouncementText,
    NewAnnouncement,
)
from backbone.platform.db import Database
from backbone.platform.encoding import format_datetime, parse_datetime
from backbone.platform.errors import DomainError, InvalidId, InvalidPropertyValue
from backbone.platform.ids import is_valid_id
from backbone.settings import Settings
from backbone.wiring import Services, build_services, seed

OperatorCommand = Callable[[Services, argparse.Namespace], None]


def add_operator_commands(commands: Any) -> None:
    """Add the `client`, `tier`, `announcement`, `token` and `database` command groups to the
    `backbone` parser."""
    client = commands.add_parser("client", help="manage OAuth clients").add_subparsers(
        required=True, metavar="ACTION"
    )
    create = client.add_parser("create", help="register a client (prints the secret once)")
    create.add_argument("--client-id", "--clientId", dest="client_id", help="default: generated (CLT...)")
    create.add_argument("--client-secret", "--clientSecret", dest="client_secret", help="default: generated")
    create.add_argument(
        "--default-tier", "--defaultTier", dest="default_tier", default="Basic", help="tier name or id"
    )
    create.add_argument("--display-name", "--displayName", dest="display_name", help="default: the client id")
    create.add_argument("--max-identities", "--maxIdentities", dest="max_identities", type=int)
    create.set_defaults(command=_command(_create_client))
    client.add_parser("list", help="list the clients").set_defaults(command=_command(_list_clients))
    delete = client.add_parser("delete", help="delete clients")
    delete.add_argument("client_ids", nargs="+", metavar="CLIENT_ID")
    delete.set_defaults(command=_command(_delete_clients))

    tier = commands.add_parser("tier", help="manage tiers").add_subparsers(required=True, metavar="ACTION")
    create_tier = tier.add_parser("create", help="add a tier")
    create_tier.add_argument("--name", required=True)
    create_tier.set_defaults(command=_command(_create_tier))
    tier.add_parser("list", help="list the tiers").set_defaults(command=_command(_list_tiers))

    announcement = commands.add_parser("announcement", help="manage announcements").add_subparsers(
        required=True, metavar="ACTION"
    )
    send = announcement.add_parser("send", help="publish an announcement")
    send.add_argument("--severity", choices=[s.name for s in AnnouncementSeverity], default="Medium")
    send.add_argument(
        "--text",
        nargs=3,
        action="append",
        required=True,
        metavar=("LANGUAGE", "TITLE", "BODY"),
        help="a text in one language (repeat per language; one must be 'en')",
    )
    send.add_argument("--expires-at", "--expiresAt", dest="expires_at", help="ISO date and time")
    send.add_argument(
        "--recipient", action="append", default=[], help="an identity address (default: everyone)"
    )
    send.add_argument(
        "--action",
        nargs=2,
        action="append",
        default=[],
        metavar=("LINK", "DISPLAY_NAME"),
        help="an English action",
    )
    send.add_argument("--silent", action="store_true", help="no push notification")
    send.add_argument("--iql-query", "--iqlQuery", dest="iql_query", help="only for silent announcements")
    send.set_defaults(command=_command(_send_announcement))
    withdraw = announcement.add_parser("delete", help="delete an announcement")
    _add_id(withdraw, "announcement")
    withdraw.set_defaults(command=_command(_delete_announcement))

    token = commands.add_parser("token", help="manage tokens").add_subparsers(required=True, metavar="ACTION")
    reset = token.add_parser(
        "reset-access-failed-count", help="unlock a token that too many wrong passwords locked"
    )
    _add_id(reset, "token")
    reset.set_defaults(command=_command(_reset_access_failed_count))

    database = commands.add_parser("database", help="look at the database").add_subparsers(
        required=True, metavar="ACTION"
    )
    export = database.add_parser(
        "export", help="identities, devices, relationships and messages as CSV files in a zip (no contents)"
    )
    export.add_argument(
        "--output", type=Path, help="the zip to write (default: <var dir>/export/export-<time>.zip)"
    )
    export.add_argument(
        "--sensitive", action="store_true", help="include ids and identity addresses (left empty otherwise)"
    )
    export.set_defaults(command=_command(_export_database))


def _add_id(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("id", nargs="?", metavar="ID", help=f"the {what}'s id")
    parser.add_argument(
        "--id", dest="id_option", metavar="ID", help="the same, as the original's CLI takes it"
    )


def _id_of(args: argparse.Namespace, prefix: str) -> str:
    given: list[str] = [value for value in (args.id, args.id_option) if value is not None]
    if len(given) != 1:
        raise InvalidPropertyValue("give the id once: as ID or as --id ID")
    if not is_valid_id(given[0], prefix):
        raise InvalidId("id")
    return given[0]


def _command(run: OperatorCommand) -> Callable[[Settings, argparse.Namespace], int]:
    """Wrap an operator command: services on a ready database, domain errors as messages."""

    def command(settings: Settings, args: argparse.Namespace) -> int:
        try:
            with _services(settings) as services:
                run(services, args)
        except DomainError as error:
            print(f"backbone: {error.code}: {error.message}", file=sys.stderr)
            return 1
        except CommandFailed as failed:
            print(f"backbone: {failed}", file=sys.stderr)
            return 1
        except SchemaOutdated as outdated:
            print(f"backbone: {outdated}", file=sys.stderr)
            return 2
        return 0

    return command


class SchemaOutdated(Exception):
    """The database has not been migrated to this version's schema."""


class CommandFailed(Exception):
    """The command could not do its work for a reason outside the domain (a file it cannot write)."""


@contextmanager
def _services(settings: Settings) -> Iterator[Services]:
    if settings.database_kind == "sqlite":
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    db = Database(
        settings.database_url,
        prepared_statements=settings.db_prepared_statements,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )
    try:
        if settings.development:
            migrations.upgrade(db.engine)
        elif missing := migrations.pending(db.engine):
            raise SchemaOutdated(
                f"the database schema is not up to date (missing {', '.join(sorted(missing))}); "
                "run `backbone migrate` first"
            )
        services = build_services(settings, db=db)
        seed(services)
        yield services
    finally:
        db.dispose()


def _create_client(services: Services, args: argparse.Namespace) -> None:
    created = services.clients.create(
        client_id=args.client_id,
        client_secret=args.client_secret,
        default_tier=args.default_tier,
        display_name=args.display_name,
        max_identities=args.max_identities,
    )
    client = created.client
    print(f"clientId: {client.client_id}")
    print(f"displayName: {client.display_name}")
    print(f"clientSecret: {created.client_secret}")
    print(f"defaultTier: {client.default_tier_id}")
    print(f"maxIdentities: {'' if client.max_identities is None else client.max_identities}")
    print("The secret is shown only now; store it safely.", file=sys.stderr)


def _list_clients(services: Services, args: argparse.Namespace) -> None:
    rows = [
        (
            overview.client.client_id,
            overview.client.display_name,
            overview.default_tier.name,
            "" if overview.client.max_identities is None else str(overview.client.max_identities),
            str(overview.number_of_identities),
            format_datetime(overview.client.created_at),
        )
        for overview in services.clients.overviews()
    ]
    _table(("CLIENT ID", "DISPLAY NAME", "DEFAULT TIER", "MAX IDENTITIES", "IDENTITIES", "CREATED AT"), rows)


def _delete_clients(services: Services, args: argparse.Namespace) -> None:
    for client_id in args.client_ids:
        services.clients.delete(client_id)
        print(f"deleted client {client_id}")


def _create_tier(services: Services, args: argparse.Namespace) -> None:
    tier = services.tiers.create(args.name)
    print(f"id: {tier.id}")
    print(f"name: {tier.name}")


def _list_tiers(services: Services, args: argparse.Namespace) -> None:
    rows = [
        (overview.tier.id, overview.tier.name, str(overview.number_of_identities))
        for overview in services.tiers.overviews()
    ]
    _table(("ID", "NAME", "IDENTITIES"), rows)


def _send_announcement(services: Services, args: argparse.Namespace) -> None:
    try:
        expires_at = parse_datetime(args.expires_at) if args.expires_at else None
    except ValueError:
        raise DomainError(
            "error.platform.validation.invalidPropertyValue",
            f"'--expires-at': '{args.expires_at}' is not a date.",
        ) from None
    announcement = services.announcements.announce(
        NewAnnouncement(
            severity=AnnouncementSeverity[args.severity],
            is_silent=args.silent,
            texts=[AnnouncementText(language, title, body) for language, title, body in args.text],
            expires_at=expires_at,
            actions=[AnnouncementAction({"en": name}, link) for link, name in args.action],
            recipients=args.recipient,
            iql_query=args.iql_query,
        )
    )
    print(f"id: {announcement.id}")
    print(f"recipients: {', '.join(announcement.recipients) or 'everyone'}")


def _delete_announcement(services: Services, args: argparse.Namespace) -> None:
    announcement_id = _id_of(args, "ANC")
    services.announcements.withdraw(announcement_id)
    print(f"deleted announcement {announcement_id}")


def _reset_access_failed_count(services: Services, args: argparse.Namespace) -> None:
    token_id = _id_of(args, "TOK")
    services.tokens.reset_access_failed_count(token_id)
    print(f"reset the failed access count of token {token_id}")


def _export_database(services: Services, args: argparse.Namespace) -> None:
    path = args.output or default_export_path(services.settings.var_dir, services.clock.now())
    try:
        counts = export_database(services, path, include_sensitive=args.sensitive)
    except OSError as error:
        raise CommandFailed(f"cannot write the export to {path}: {error.strerror}") from None
    for table, count in counts.items():
        print(f"{table}: {count}")
    print(f"export: {path}")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
