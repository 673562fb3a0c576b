"""`testbed seed --mode api`: carry out the plan through the Consumer API with the load client.

Threads work through one phase at a time: identities with their devices and datawallets,
templates, relationships (the app requests on a connector's template, the connector accepts),
messages, challenges, datawallet modifications, and finally every identity syncs its external
events away, as a client that has been in use would have. Each finished unit (an identity, a
relationship's messages, ...) is appended to a journal next to the export, so a run cut short
resumes with the units still missing. A unit interrupted half-way is not repeated blindly: its
identity already exists, and the run stops with a message saying so.

Messages on one relationship go in rounds of at most the backbone's unreceived-message limit
(20 by default); after each round the recipients fetch what they got, which marks it received.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.client import ApiError, ConsumerApiClient, IdentitySession, modification
from loadtests.keys import IdentityKey
from loadtests.seeding.bulk import (
    DATAWALLET_PAYLOAD_BYTES,
    MESSAGE_BODY_BYTES,
    TEMPLATE_CONTENT_BYTES,
    SeedingError,
)
from loadtests.seeding.database import plan_key
from loadtests.seeding.export import identity_entry, write_export
from loadtests.seeding.planner import Plan, PlannedIdentity, PlannedRelationship

UNRECEIVED_LIMIT = 20
PUSH_BATCH = 200


@dataclass
class ApiReport:
    """Seconds and units per phase."""

    phases: dict[str, tuple[int, float]] = field(default_factory=dict)
    seconds: float = 0.0


class _Journal:
    """Append-only record of finished units; read back on resume."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        if path.exists():
            lines = [
                json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
            if lines and lines[0].get("plan") != key:
                raise SeedingError(f"{path} belongs to another data set ({lines[0].get('plan')}); remove it")
            self.records = lines[1:]
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"plan": key})

    def _append(self, record: dict[str, Any]) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
            handle.flush()

    def add(self, record: dict[str, Any]) -> None:
        self._append(record)
        self.records.append(record)

    def done(self, kind: str, key: str = "n") -> dict[int, dict[str, Any]]:
        return {record[key]: record for record in self.records if record["kind"] == kind}


class ApiSeeder:
    def __init__(
        self,
        plan: Plan,
        api: ConsumerApiClient,
        journal: _Journal,
        *,
        threads: int,
        progress: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.api = api
        self.journal = journal
        self.threads = threads
        self.progress = progress
        self.sessions: dict[int, IdentitySession] = {}
        self.devices: dict[int, list[dict[str, str]]] = {}
        self.templates: dict[int, list[str]] = {}
        self.relationship_ids: dict[int, str] = {}
        for number, record in journal.done("identity").items():
            self._remember(number, record["devices"])
        for number, record in journal.done("templates").items():
            self.templates[number] = record["ids"]
        for number, record in journal.done("relationship", "r").items():
            self.relationship_ids[number] = record["id"]

    def _remember(self, number: int, devices: list[dict[str, str]]) -> None:
        identity = self.plan.identities[number]
        self.devices[number] = devices
        first = devices[0]
        self.sessions[number] = self.api.session(
            address=identity.address,
            device_id=first["id"],
            username=first["username"],
            password=first["password"],
            key=identity.key,
        )

    def _run(self, name: str, units: Iterable[Any], work: Callable[[Any], None], report: ApiReport) -> None:
        todo = list(units)
        started = time.perf_counter()
        finished = 0
        lock = threading.Lock()
        last_note = [time.monotonic()]

        def one(unit: Any) -> None:
            nonlocal finished
            work(unit)
            with lock:
                finished += 1
                if time.monotonic() - last_note[0] > 10:
                    last_note[0] = time.monotonic()
                    self.progress(f"api: {name}: {finished}/{len(todo)}")

        pool = ThreadPoolExecutor(max_workers=self.threads)
        try:
            for _ in pool.map(one, todo):
                pass
        finally:
            # The first failure (or an interrupt) ends the phase without working through the rest.
            pool.shutdown(wait=True, cancel_futures=True)
        report.phases[name] = (len(todo), time.perf_counter() - started)
        self.progress(f"api: {name}: {len(todo)} done in {time.perf_counter() - started:.1f} s")

    # Phases

    def onboard(self, identity: PlannedIdentity) -> None:
        key = IdentityKey.from_seed(identity.key_seed)
        try:
            session = self.api.onboard(identity.password, key=key)
        except ApiError as error:
            if error.code == "error.platform.validation.device.addressAlreadyExists":
                raise SeedingError(
                    f"{identity.address} exists but the journal does not know its devices "
                    "(a run was cut while onboarding it); seed into a fresh database"
                ) from error
            raise
        devices = [{"id": session.device_id, "username": session.username, "password": identity.password}]
        for _ in range(identity.devices - 1):
            device = session.add_device(identity.password)
            devices.append(
                {"id": device.device_id, "username": device.username, "password": identity.password}
            )
        self.journal.add({"kind": "identity", "n": identity.number, "devices": devices})
        self._remember(identity.number, devices)

    def create_templates(self, identity: PlannedIdentity) -> None:
        session = self.sessions[identity.number]
        ids = [
            session.create_template(
                random.Random(identity.number * 100_000 + ordinal).randbytes(TEMPLATE_CONTENT_BYTES)
            )["id"]
            for ordinal in range(identity.templates)
        ]
        self.journal.add({"kind": "templates", "n": identity.number, "ids": ids})
        self.templates[identity.number] = ids

    def relate(self, relationship: PlannedRelationship) -> None:
        app, connector = self.sessions[relationship.app], self.sessions[relationship.connector]
        template = self.templates[relationship.connector][relationship.template]
        created = app.create_relationship(template, b"request")
        connector.accept_relationship(created["id"], b"accepted")
        self.journal.add({"kind": "relationship", "r": relationship.number, "id": created["id"]})
        self.relationship_ids[relationship.number] = created["id"]

    def send_messages(self, relationship: PlannedRelationship) -> None:
        app, connector = self.sessions[relationship.app], self.sessions[relationship.connector]
        directions = [(connector, app)] * relationship.messages_from_connector + [
            (app, connector)
        ] * relationship.messages_from_app
        rng = random.Random(relationship.number)
        rng.shuffle(directions)
        for start in range(0, len(directions), UNRECEIVED_LIMIT):
            received: dict[str, list[str]] = {app.address: [], connector.address: []}
            for sender, recipient in directions[start : start + UNRECEIVED_LIMIT]:
                message = sender.send_message([recipient.address], rng.randbytes(MESSAGE_BODY_BYTES))
                received[recipient.address].append(message["id"])
            for session in (app, connector):
                if received[session.address]:
                    session.list_messages(received[session.address])
        self.journal.add({"kind": "messages", "r": relationship.number})

    def create_challenges(self, identity: PlannedIdentity) -> None:
        session = self.sessions[identity.number]
        for _ in range(identity.challenges):
            session.new_challenge()
        self.journal.add({"kind": "challenges", "n": identity.number})

    def push_modifications(self, identity: PlannedIdentity) -> None:
        session = self.sessions[identity.number]
        local_index: int | None = None
        rng = random.Random(identity.number)
        for start in range(0, identity.datawallet_modifications, PUSH_BATCH):
            end = min(start + PUSH_BATCH, identity.datawallet_modifications)
            items = [
                modification(
                    f"OBJ{identity.number}x{index}",
                    collection=("Relationships", "Files", "Messages")[index % 3],
                    payload=rng.randbytes(DATAWALLET_PAYLOAD_BYTES),
                )
                for index in range(start, end)
            ]
            local_index = int(session.push_modifications(local_index, items)["newIndex"])
        self.journal.add({"kind": "datawallet", "n": identity.number})

    def sync(self, identity: PlannedIdentity) -> None:
        self.sessions[identity.number].sync_until_no_new_events()
        self.journal.add({"kind": "synced", "n": identity.number})

    def run(self, report: ApiReport) -> None:
        plan = self.plan
        people = plan.identities
        self._run("identities", [i for i in people if i.number not in self.sessions], self.onboard, report)
        self._run(
            "templates",
            [i for i in people if i.templates and i.number not in self.templates],
            self.create_templates,
            report,
        )
        self._run(
            "relationships",
            [r for r in plan.relationships if r.number not in self.relationship_ids],
            self.relate,
            report,
        )
        done = self.journal.done("messages", "r")
        self._run(
            "messages",
            [r for r in plan.relationships if r.messages and r.number not in done],
            self.send_messages,
            report,
        )
        done = self.journal.done("challenges")
        self._run(
            "challenges",
            [i for i in people if i.challenges and i.number not in done],
            self.create_challenges,
            report,
        )
        done = self.journal.done("datawallet")
        self._run(
            "datawallet_modifications",
            [i for i in people if i.datawallet_modifications and i.number not in done],
            self.push_modifications,
            report,
        )
        done = self.journal.done("synced")
        self._run("sync", [i for i in people if i.number not in done], self.sync, report)

    def entries(self) -> list[dict[str, Any]]:
        relationships: dict[int, list[dict[str, str]]] = {
            identity.number: [] for identity in self.plan.identities
        }
        for relationship in self.plan.relationships:
            app, connector = (
                self.plan.identities[relationship.app],
                self.plan.identities[relationship.connector],
            )
            rid = self.relationship_ids[relationship.number]
            template = self.templates[relationship.connector][relationship.template]
            relationships[app.number].append({"id": rid, "peer": connector.address, "template": template})
            relationships[connector.number].append({"id": rid, "peer": app.address, "template": template})
        return [
            identity_entry(
                self.plan,
                identity.number,
                self.devices[identity.number],
                self.templates.get(identity.number, []),
                relationships[identity.number],
            )
            for identity in self.plan.identities
        ]


@dataclass(frozen=True)
class ApiOutcome:
    report: ApiReport
    export_path: Path
    resumed: bool


def seed_api(
    plan: Plan,
    api: ConsumerApiClient,
    *,
    export_path: Path,
    threads: int = 16,
    progress: Callable[[str], None] = print,
) -> ApiOutcome:
    """Create the plan's data through the API of a running backbone; resume from the journal."""
    started = time.perf_counter()
    journal = _Journal(export_path.with_suffix(".journal"), plan_key(plan))
    resumed = bool(journal.records)
    if resumed:
        progress(f"api: resuming from {journal.path} ({len(journal.records)} finished units)")
    seeder = ApiSeeder(plan, api, journal, threads=threads, progress=progress)
    report = ApiReport()
    seeder.run(report)
    path = write_export(export_path, plan, "api", api.client_id, seeder.entries())
    report.seconds = time.perf_counter() - started
    return ApiOutcome(report, path, resumed)
