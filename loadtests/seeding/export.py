"""The credentials file load users log in with, and the operator's CSV next to it.

JSON (read by `loadtests.identities`)::

    {"format": 1, "pool_config": "light", "seed": 1, "mode": "bulk", "did_domain": "localhost",
     "client_id": "test",
     "identities": [{"address", "pool", "type", "key_seed" (hex; the Ed25519 seed, so flows can
                     add devices), "devices": [{"id", "username", "password"}],
                     "templates": [ids], "relationships": [{"id", "peer", "template"}],
                     "expected": {"devices", "templates", "relationships", "messages",
                                  "datawallet_modifications", "challenges"}}]}

CSV: one row per device with the original's columns Address, DeviceId, Username, Password, Alias.
The OAuth client secret is in neither file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loadtests.seeding.bulk import device_id, device_username, relationship_id, template_id
from loadtests.seeding.planner import Plan

FORMAT = 1


def default_export_path(pool_config: str, seed: int) -> Path:
    return Path("var") / "seed" / f"{pool_config}-seed{seed}.json"


def identity_entry(plan: Plan, number: int, devices: list[dict[str, str]], templates: list[str],
                   relationships: list[dict[str, str]]) -> dict[str, Any]:  # fmt: skip
    identity = plan.identities[number]
    return {
        "address": identity.address,
        "pool": identity.pool,
        "type": identity.type,
        "key_seed": identity.key_seed.hex(),
        "devices": devices,
        "templates": templates,
        "relationships": relationships,
        "expected": asdict(plan.expected(number)),
    }


def bulk_entries(plan: Plan) -> list[dict[str, Any]]:
    """The bulk writer's ids are functions of the plan, so the export needs no database reads."""
    relationships: dict[int, list[dict[str, str]]] = {identity.number: [] for identity in plan.identities}
    for relationship in plan.relationships:
        connector = plan.identities[relationship.connector]
        app = plan.identities[relationship.app]
        rid = relationship_id(plan, relationship)
        template = template_id(plan, connector, relationship.template)
        relationships[app.number].append({"id": rid, "peer": connector.address, "template": template})
        relationships[connector.number].append({"id": rid, "peer": app.address, "template": template})
    return [
        identity_entry(
            plan,
            identity.number,
            [
                {
                    "id": device_id(plan, identity, device),
                    "username": device_username(plan, identity, device),
                    "password": identity.password,
                }
                for device in range(identity.devices)
            ],
            [template_id(plan, identity, ordinal) for ordinal in range(identity.templates)],
            relationships[identity.number],
        )
        for identity in plan.identities
    ]


def write_export(path: Path, plan: Plan, mode: str, client_id: str, entries: list[dict[str, Any]]) -> Path:
    """Write the JSON file and the CSV beside it; returns the JSON path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "format": FORMAT,
        "pool_config": plan.config.name,
        "seed": plan.seed,
        "mode": mode,
        "did_domain": plan.did_domain,
        "client_id": client_id,
        "identities": entries,
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    temporary.replace(path)
    with path.with_suffix(".csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Address", "DeviceId", "Username", "Password", "Alias"])
        for entry in entries:
            for device in entry["devices"]:
                writer.writerow([entry["address"], device["id"], device["username"], device["password"],
                                 entry["pool"]])  # fmt: skip
    return path
