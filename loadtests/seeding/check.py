"""Use seeded identities the way a load user does, and compare what they see with the plan.

For each chosen identity (its first device): get a token, page every datawallet modification
from index 0, list its relationships, messages and templates, and start an external-event sync
run that must answer NoNewEvents. Any difference or error is a problem line.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loadtests.client import NO_NEW_EVENTS, ApiError, ConsumerApiClient


def check_identity(api: ConsumerApiClient, entry: dict[str, Any]) -> list[str]:
    """What differs for one identity between the API's answers and the promised counts."""
    device = entry["devices"][0]
    session = api.session(
        address=entry["address"],
        device_id=device["id"],
        username=device["username"],
        password=device["password"],
    )
    expected = entry["expected"]
    where = f"{entry['address']} ({entry['pool']})"
    problems = []
    try:
        session.access_token  # noqa: B018 - logging in is the first thing checked
        modifications = session.datawallet_modifications(local_index=None)
        indexes = [item["index"] for item in modifications]
        if len(modifications) != expected["datawallet_modifications"]:
            problems.append(
                f"{where}: {len(modifications)} datawallet modifications from index 0, "
                f"expected {expected['datawallet_modifications']}"
            )
        elif indexes != list(range(len(indexes))):
            problems.append(f"{where}: datawallet indexes are not 0..{len(indexes) - 1}")
        relationship_ids = [relationship["id"] for relationship in entry["relationships"]]
        relationships = session.list_relationships(relationship_ids) if relationship_ids else []
        active = [item for item in relationships if item["status"] == "Active"]
        if len(active) != expected["relationships"]:
            problems.append(
                f"{where}: {len(active)} active relationships, expected {expected['relationships']}"
            )
        messages = session.list_messages()
        if len(messages) != expected["messages"]:
            problems.append(f"{where}: {len(messages)} messages, expected {expected['messages']}")
        templates = session.list_templates(entry["templates"]) if entry["templates"] else []
        if len(templates) != expected["templates"]:
            problems.append(f"{where}: {len(templates)} templates, expected {expected['templates']}")
        started = session.start_sync_run()
        if started["status"] != NO_NEW_EVENTS:
            problems.append(
                f"{where}: the sync run found new events ({started['status']}), expected NoNewEvents"
            )
    except ApiError as error:
        problems.append(f"{where}: {error}")
    return problems


def check_identities(
    api: ConsumerApiClient,
    entries: Sequence[dict[str, Any]],
    count: int,
    *,
    seed: int = 1,
    threads: int = 8,
    per_pool: bool = False,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Check `count` random identities (of each pool with `per_pool`); returns them and the problems."""
    rng = random.Random(seed)
    if per_pool:
        pools: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            pools.setdefault(entry["pool"], []).append(entry)
        chosen = [
            item for members in pools.values() for item in rng.sample(members, min(count, len(members)))
        ]
    else:
        chosen = rng.sample(list(entries), min(count, len(entries)))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(lambda entry: check_identity(api, entry), chosen))
    return chosen, [problem for problems in results for problem in problems]
