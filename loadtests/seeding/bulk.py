"""Write a planned data set straight into the database: COPY on PostgreSQL, executemany on SQLite.

The rows are what the Consumer API would have written for the same plan, so the API accepts
them afterwards: real Ed25519 public keys and the addresses derived from them, PBKDF2 password
hashes in the backbone's format, active relationships with their audit log and template
allocations, messages already received, 0-based contiguous datawallet indexes, and sync
counters that continue where the data ends.

Every row is a function of the plan, the seed and one timestamp (`seeded_at`), so the data set
is deterministic. Hashing a password costs about 0.1 s by design; all devices of a pool share
the pool's password, so the seeder hashes once per pool, not once per device.

The work is cut into steps (a table group for a range of identities); each step commits with
its marker in `testbed_seed_progress`, so an interrupted run resumes after the last finished
step with the same rows.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backbone.platform.auth import PasswordHasher
from backbone.platform.db import metadata
from backbone.platform.encoding import b64decode_lenient
from loadtests.seeding.planner import Plan, PlannedIdentity, PlannedRelationship, seed_bytes

PROGRESS_TABLE = "testbed_seed_progress"
TEMPLATE_CONTENT_BYTES = 256
MESSAGE_BODY_BYTES = 256
DATAWALLET_PAYLOAD_BYTES = 300  # scenario 03's modification size
_COLLECTIONS = ("Relationships", "Files", "Messages", "Attributes", "Requests", "Devices")
_PENDING, _ACTIVE = 10, 20
_CREATION, _ACCEPTANCE = 0, 1
_DATAWALLET_VERSION_UPGRADE = 1
_MAX_MESSAGES_PER_RELATIONSHIP = 1_000

Row = tuple[Any, ...]

# The tables a data set fills and their columns in COPY order (autoincrement ids left out).
COLUMNS: dict[str, tuple[str, ...]] = {
    "identities": (
        "address", "client_id", "public_key", "created_at", "identity_version", "tier_id",
        "tier_id_before_deletion", "status", "deletion_grace_period_ends_at",
    ),
    "devices": (
        "id", "identity_address", "username", "normalized_username", "password_hash", "created_at",
        "created_by_device", "communication_language", "is_backup_device", "last_login_at",
        "access_failed_count", "lockout_end", "deleted_at", "deleted_by_device",
    ),
    "datawallets": ("id", "owner", "version"),
    "sync_runs": (
        "id", "type", "expires_at", "index", "created_at", "created_by", "created_by_device",
        "finalized_at", "event_count",
    ),
    "sync_counters": ("owner", "next_external_event_index", "next_sync_run_index", "next_modification_index"),
    "relationship_templates": (
        "id", "created_at", "created_by", "created_by_device", "max_number_of_allocations", "expires_at",
        "for_identity", "password", "content",
    ),
    "relationships": (
        "id", "relationship_template_id", "from_address", "to_address", "pair_low", "pair_high",
        "created_at", "status", "from_has_decomposed", "to_has_decomposed", "creation_content",
        "creation_response_content",
    ),
    "relationship_audit_log": (
        "id", "relationship_id", "position", "reason", "old_status", "new_status", "created_by",
        "created_by_device", "created_at",
    ),
    "relationship_template_allocations": (
        "relationship_template_id", "allocated_by", "allocated_by_device", "allocated_at",
    ),
    "messages": ("id", "created_at", "created_by", "created_by_device", "body"),
    "message_recipients": (
        "message_id", "address", "relationship_id", "encrypted_key", "received_at", "received_by_device",
        "decomposed_by_recipient", "decomposed_by_sender",
    ),
    "challenges": ("id", "expires_at", "created_by", "created_by_device"),
    "datawallet_modifications": (
        "id", "owner", "index", "created_at", "created_by_device", "datawallet_version",
        "object_identifier", "payload_category", "collection", "type", "encrypted_payload",
    ),
}  # fmt: skip


class SeedingError(Exception):
    """The database cannot take this data set (message for the operator)."""


@dataclass
class TableFigures:
    rows: int = 0
    seconds: float = 0.0


@dataclass
class BulkReport:
    """What a bulk run wrote: rows and seconds per table, steps done now and skipped (resumed)."""

    tables: dict[str, TableFigures] = field(default_factory=lambda: defaultdict(TableFigures))
    steps_done: int = 0
    steps_skipped: int = 0
    seconds: float = 0.0


# --- deterministic values -------------------------------------------------------------------


def seeded_id(prefix: str, seed: int, kind: str, number: int) -> str:
    """The id of the `number`th row of `kind`: the same for the same seed in every run."""
    digest = hashlib.sha256(f"{seed}:{kind}:{number}".encode()).digest()
    value = int.from_bytes(digest, "big")
    characters = []
    for _ in range(20 - len(prefix)):
        value, rest = divmod(value, 62)
        characters.append(_ALPHABET[rest])
    return prefix + "".join(characters)


def device_id(plan: Plan, identity: PlannedIdentity, device: int) -> str:
    return seeded_id("DVC", plan.seed, f"device-{device}", identity.number)


def device_username(plan: Plan, identity: PlannedIdentity, device: int) -> str:
    return seeded_id("USR", plan.seed, f"username-{device}", identity.number)


def template_id(plan: Plan, identity: PlannedIdentity, ordinal: int) -> str:
    return seeded_id("RLT", plan.seed, f"template-{identity.number}", ordinal)


def relationship_id(plan: Plan, relationship: PlannedRelationship) -> str:
    return seeded_id("REL", plan.seed, "relationship", relationship.number)


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_BYTE_TO_CHARACTER = bytes(ord(_ALPHABET[value % len(_ALPHABET)]) for value in range(256))


def _id_block(prefix: str, seed: int, kind: str, count: int) -> list[str]:
    """`count` deterministic ids at once (millions of modifications need them cheap)."""
    width = 20 - len(prefix)
    rng = random.Random(int.from_bytes(seed_bytes(seed, kind), "big"))
    text = rng.randbytes(width * count).translate(_BYTE_TO_CHARACTER).decode("ascii")
    return [prefix + text[start : start + width] for start in range(0, width * count, width)]


class _Payloads:
    """Incompressible bytes cut from one seeded block: cheap and deterministic."""

    def __init__(self, seed: int) -> None:
        self._block = random.Random(int.from_bytes(seed_bytes(seed, "payloads"), "big")).randbytes(1 << 16)

    def get(self, number: int, size: int) -> bytes:
        start = (number * 7919) % (len(self._block) - size)
        return self._block[start : start + size]


# --- the steps --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A unit of work that commits on its own: rows for several tables."""

    name: str
    rows: Callable[[], Iterable[tuple[str, Iterable[Row]]]]


class BulkWriter:
    """Turn a plan into rows and write them in resumable steps."""

    def __init__(
        self,
        plan: Plan,
        engine: Engine,
        *,
        client_id: str,
        tier_id: str,
        seeded_at: datetime,
        password_hasher: PasswordHasher,
        identities_per_step: int = 2_000,
        rows_per_step: int = 250_000,
    ) -> None:
        self.plan = plan
        self.engine = engine
        self.client_id = client_id
        self.tier_id = tier_id
        self.seeded_at = seeded_at
        self.identities_per_step = identities_per_step
        self.rows_per_step = rows_per_step
        self._payloads = _Payloads(plan.seed)
        self._hashes: dict[str, str] = {}  # one hash per pool password, made on first use
        self._hasher = password_hasher
        self._started = seeded_at - timedelta(days=2)
        self._first_template: dict[int, int] = {}
        running = 0
        for identity in plan.identities:
            self._first_template[identity.number] = running
            running += identity.templates
        if any(r.messages >= _MAX_MESSAGES_PER_RELATIONSHIP for r in plan.relationships):
            raise SeedingError(f"a relationship with {_MAX_MESSAGES_PER_RELATIONSHIP} messages or more")

    # Time line: identities, then templates, relationships, messages, challenges, datawallet
    # modifications, each a millisecond apart, all before `seeded_at`.
    def _at(self, phase: int, number: int, unit_us: int = 1_000) -> datetime:
        return self._started + timedelta(hours=4 * phase, microseconds=number * unit_us)

    def _password_hash(self, identity: PlannedIdentity) -> str:
        cached = self._hashes.get(identity.pool)
        if cached is None:
            cached = self._hasher.hash(identity.password)
            self._hashes[identity.pool] = cached
        return cached

    def steps(self) -> list[Step]:
        plan = self.plan
        steps: list[Step] = []
        for start in range(0, len(plan.identities), self.identities_per_step):
            identities = plan.identities[start : start + self.identities_per_step]
            steps.append(Step(f"identities:{start}", partial(self._identity_rows, identities)))
        steps.extend(
            Step(f"templates:{group[0].number}", partial(self._template_rows, group))
            for group in self._groups([i for i in plan.identities if i.templates], lambda i: i.templates)
        )
        for start in range(0, len(plan.relationships), 10_000):
            relationships = plan.relationships[start : start + 10_000]
            steps.append(Step(f"relationships:{start}", partial(self._relationship_rows, relationships)))
        steps.extend(
            Step(f"messages:{group[0].number}", partial(self._message_rows, group))
            for group in self._groups(list(plan.relationships), lambda r: r.messages)
        )
        steps.extend(
            Step(f"challenges:{group[0].number}", partial(self._challenge_rows, group))
            for group in self._groups(
                [i for i in plan.identities if i.challenges + i.devices > 1],
                lambda i: i.challenges + i.devices,
            )
        )
        steps.extend(
            Step(f"datawallet:{group[0].number}", partial(self._modification_rows, group))
            for group in self._groups(
                [i for i in plan.identities if i.datawallet_modifications],
                lambda i: i.datawallet_modifications,
            )
        )
        return steps

    def _groups(self, items: Sequence[Any], weight: Callable[[Any], int]) -> Iterator[Sequence[Any]]:
        """Consecutive items whose weights add up to about `rows_per_step`."""
        group: list[Any] = []
        total = 0
        for item in items:
            group.append(item)
            total += weight(item)
            if total >= self.rows_per_step:
                yield group
                group, total = [], 0
        if group:
            yield group

    def _identity_rows(self, chunk: Sequence[PlannedIdentity]) -> Iterable[tuple[str, Iterable[Row]]]:
        plan = self.plan
        created = {identity.number: self._at(0, identity.number * 10) for identity in chunk}

        def identities() -> Iterator[Row]:
            for identity in chunk:
                document = b64decode_lenient(identity.key.identity_public_key())
                yield (
                    identity.address, self.client_id, document, created[identity.number], 1,
                    self.tier_id, None, 0, None,
                )  # fmt: skip

        def devices() -> Iterator[Row]:
            for identity in chunk:
                first = device_id(plan, identity, 0)
                for device in range(identity.devices):
                    username = device_username(plan, identity, device)
                    yield (
                        device_id(plan, identity, device), identity.address, username, username.upper(),
                        self._password_hash(identity),
                        created[identity.number] + timedelta(milliseconds=device),
                        first, "en", False, None, 0, None, None, None,
                    )  # fmt: skip

        def datawallets() -> Iterator[Row]:
            for identity in chunk:
                yield (seeded_id("DWL", plan.seed, "datawallet", identity.number), identity.address, 1)

        def sync_runs() -> Iterator[Row]:
            # The app's first call after onboarding: a finalized DatawalletVersionUpgrade run.
            for identity in chunk:
                at = created[identity.number] + timedelta(milliseconds=5)
                yield (
                    seeded_id("SYR", plan.seed, "upgrade-run", identity.number), _DATAWALLET_VERSION_UPGRADE,
                    at + timedelta(seconds=10), 0, at, identity.address, device_id(plan, identity, 0), at, 0,
                )  # fmt: skip

        def counters() -> Iterator[Row]:
            for identity in chunk:
                yield (identity.address, 0, 1, identity.datawallet_modifications)

        return [
            ("identities", identities()),
            ("devices", devices()),
            ("datawallets", datawallets()),
            ("sync_runs", sync_runs()),
            ("sync_counters", counters()),
        ]

    def _template_rows(self, group: Sequence[PlannedIdentity]) -> Iterable[tuple[str, Iterable[Row]]]:
        def rows() -> Iterator[Row]:
            for identity in group:
                device = device_id(self.plan, identity, 0)
                for ordinal in range(identity.templates):
                    number = self._first_template[identity.number] + ordinal
                    yield (
                        template_id(self.plan, identity, ordinal), self._at(1, number, 10), identity.address,
                        device, None, None, None, None, self._payloads.get(number, TEMPLATE_CONTENT_BYTES),
                    )  # fmt: skip

        return [("relationship_templates", rows())]

    def _relationship_rows(self, chunk: Sequence[PlannedRelationship]) -> Iterable[tuple[str, Iterable[Row]]]:
        plan = self.plan
        people = plan.identities

        def relationships() -> Iterator[Row]:
            for relationship in chunk:
                app, connector = people[relationship.app], people[relationship.connector]
                low, high = sorted((app.address, connector.address))
                yield (
                    relationship_id(plan, relationship), template_id(plan, connector, relationship.template),
                    app.address, connector.address, low, high, self._at(2, relationship.number * 10), _ACTIVE,
                    False, False, self._payloads.get(relationship.number, 64),
                    self._payloads.get(relationship.number + 1, 64),
                )  # fmt: skip

        def audit_log() -> Iterator[Row]:
            for relationship in chunk:
                app, connector = people[relationship.app], people[relationship.connector]
                rid = relationship_id(plan, relationship)
                at = self._at(2, relationship.number * 10)
                yield (
                    seeded_id("RAL", plan.seed, "audit-0", relationship.number), rid, 0, _CREATION, None,
                    _PENDING, app.address, device_id(plan, app, 0), at,
                )  # fmt: skip
                yield (
                    seeded_id("RAL", plan.seed, "audit-1", relationship.number), rid, 1, _ACCEPTANCE,
                    _PENDING, _ACTIVE, connector.address, device_id(plan, connector, 0),
                    at + timedelta(milliseconds=5),
                )  # fmt: skip

        def allocations() -> Iterator[Row]:
            for relationship in chunk:
                app, connector = people[relationship.app], people[relationship.connector]
                yield (
                    template_id(plan, connector, relationship.template), app.address, device_id(plan, app, 0),
                    self._at(2, relationship.number * 10),
                )  # fmt: skip

        return [
            ("relationships", relationships()),
            ("relationship_audit_log", audit_log()),
            ("relationship_template_allocations", allocations()),
        ]

    def _message_rows(self, group: Sequence[PlannedRelationship]) -> Iterable[tuple[str, Iterable[Row]]]:
        plan = self.plan
        people = plan.identities
        # Messages on a relationship alternate direction as far as the split allows.
        planned: list[tuple[str, int, PlannedIdentity, PlannedIdentity, str]] = []
        for relationship in group:
            app, connector = people[relationship.app], people[relationship.connector]
            rid = relationship_id(plan, relationship)
            directions = [(connector, app)] * relationship.messages_from_connector + [
                (app, connector)
            ] * relationship.messages_from_app
            random.Random(relationship.number).shuffle(directions)
            for ordinal, (sender, recipient) in enumerate(directions):
                number = relationship.number * _MAX_MESSAGES_PER_RELATIONSHIP + ordinal
                planned.append(
                    (seeded_id("MSG", plan.seed, "message", number), number, sender, recipient, rid)
                )

        def messages() -> Iterator[Row]:
            for message, number, sender, _, _ in planned:
                yield (
                    message, self._at(3, number, 10), sender.address, device_id(plan, sender, 0),
                    self._payloads.get(number, MESSAGE_BODY_BYTES),
                )  # fmt: skip

        def recipients() -> Iterator[Row]:
            for message, number, _, recipient, rid in planned:
                yield (
                    message, recipient.address, rid, self._payloads.get(number + 3, 32),
                    self._at(3, number, 10) + timedelta(seconds=1), device_id(plan, recipient, 0),
                    False, False,
                )  # fmt: skip

        return [("messages", messages()), ("message_recipients", recipients())]

    def _challenge_rows(self, group: Sequence[PlannedIdentity]) -> Iterable[tuple[str, Iterable[Row]]]:
        def rows() -> Iterator[Row]:
            for identity in group:
                device = device_id(self.plan, identity, 0)
                # The pool's challenges, and the one each further device registration signed.
                for ordinal in range(identity.challenges + identity.devices - 1):
                    number = identity.number * 1_000 + ordinal
                    yield (
                        seeded_id("CHL", self.plan.seed, "challenge", number),
                        self._at(4, number, 100) + timedelta(minutes=10),
                        identity.address,
                        device,
                    )

        return [("challenges", rows())]

    def _modification_rows(self, group: Sequence[PlannedIdentity]) -> Iterable[tuple[str, Iterable[Row]]]:
        def rows() -> Iterator[Row]:
            for identity in group:
                ids = _id_block(
                    "DWM",
                    self.plan.seed,
                    f"modifications-{identity.number}",
                    identity.datawallet_modifications,
                )
                device = device_id(self.plan, identity, 0)
                base = self._at(5, identity.number * 10)
                for index in range(identity.datawallet_modifications):
                    # Distinct object identifiers: the list endpoint deduplicates per
                    # (objectIdentifier, type, payloadCategory), and the pool counts every one.
                    yield (
                        ids[index], identity.address, index, base + timedelta(microseconds=index),
                        device, 1, f"OBJ{identity.number}x{index}", "TechnicalData",
                        _COLLECTIONS[index % len(_COLLECTIONS)], 0,
                        self._payloads.get(identity.number + index, DATAWALLET_PAYLOAD_BYTES),
                    )  # fmt: skip

        return [("datawallet_modifications", rows())]


# --- writing ----------------------------------------------------------------------------------


def ensure_progress_table(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} ("
            " plan_key VARCHAR(200) NOT NULL, step VARCHAR(100) NOT NULL, rows BIGINT NOT NULL,"
            " seconds DOUBLE PRECISION NOT NULL, seeded_at VARCHAR(40) NOT NULL,"
            f" CONSTRAINT pk_{PROGRESS_TABLE} PRIMARY KEY (plan_key, step))"
        )


def finished_steps(engine: Engine, plan_key: str) -> dict[str, str]:
    """Steps this plan already committed, with the `seeded_at` they used."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(f"SELECT step, seeded_at FROM {PROGRESS_TABLE} WHERE plan_key = :key"), {"key": plan_key}
        )
        return {row.step: row.seeded_at for row in rows}


def other_seeds(engine: Engine, plan_key: str) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(f"SELECT DISTINCT plan_key FROM {PROGRESS_TABLE} WHERE plan_key <> :key"),
            {"key": plan_key},
        )
        return [row.plan_key for row in rows]


def write_steps(
    writer: BulkWriter,
    plan_key: str,
    *,
    done: Iterable[str],
    report: BulkReport,
    progress: Callable[[str], None] = lambda line: None,
) -> BulkReport:
    """Write every step not yet done, each in its own transaction with its marker."""
    done = set(done)
    steps = writer.steps()
    postgres = writer.engine.dialect.name == "postgresql"
    last_note = time.monotonic()
    for number, step in enumerate(steps, 1):
        if step.name in done:
            report.steps_skipped += 1
            continue
        step_started = time.perf_counter()
        step_rows = 0
        with writer.engine.begin() as connection:
            for table, rows in step.rows():
                started = time.perf_counter()
                written = (
                    _copy(connection, table, rows) if postgres else _insert_many(connection, table, rows)
                )
                figures = report.tables[table]
                figures.rows += written
                figures.seconds += time.perf_counter() - started
                step_rows += written
            connection.execute(
                sa.text(
                    f"INSERT INTO {PROGRESS_TABLE} (plan_key, step, rows, seconds, seeded_at)"
                    " VALUES (:key, :step, :rows, :seconds, :seeded_at)"
                ),
                {
                    "key": plan_key,
                    "step": step.name,
                    "rows": step_rows,
                    "seconds": time.perf_counter() - step_started,
                    "seeded_at": writer.seeded_at.isoformat(),
                },
            )
        report.steps_done += 1
        if time.monotonic() - last_note > 10 or number == len(steps):
            progress(f"bulk: step {number}/{len(steps)} ({step.name}) done")
            last_note = time.monotonic()
    return report


def _copy(connection: Connection, table: str, rows: Iterable[Row]) -> int:
    # Binary COPY: about four times faster than text for rows with bytea columns.
    names = COLUMNS[table]
    columns = ", ".join(f'"{column}"' for column in names)
    raw = connection.connection.driver_connection
    assert raw is not None, "COPY needs the psycopg connection"
    type_ids = dict(
        raw.execute(
            "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
            (table,),
        ).fetchall()
    )
    written = 0
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([type_ids[name] for name in names])
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


def _insert_many(connection: Connection, table: str, rows: Iterable[Row], batch: int = 5_000) -> int:
    # Through the table's SQLAlchemy types, so datetimes are stored exactly as the backbone
    # stores them; one executemany per batch.
    names = COLUMNS[table]
    statement = metadata.tables[table].insert()
    written = 0
    buffer: list[dict[str, Any]] = []
    for row in rows:
        buffer.append(dict(zip(names, row, strict=True)))
        if len(buffer) >= batch:
            connection.execute(statement, buffer)
            written += len(buffer)
            buffer = []
    if buffer:
        connection.execute(statement, buffer)
        written += len(buffer)
    return written


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
