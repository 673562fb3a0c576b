"""Seeded identities for load users: read the credentials file, split it between workers.

`testbed seed` exports the identities it made (see `loadtests.seeding.export`). Under Locust's
distributed mode every worker takes a disjoint part: within each pool the identities are dealt
out like cards (worker `i` of `n` gets the `i`th, `i+n`th, ...), so each worker has its share of
every kind of identity and no two workers act as the same identity. The arrival engine's
`Share(index, count)` is such a split, so personas can use the engine's share directly.

    seeded = load_identities("var/seed/light-seed1.json")
    mine = seeded.partition(share.index, share.count)
    heavy_apps = mine.of_pool("a3")
    session = heavy_apps[0].session(api)          # its first device, logs in on first use
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.client import ConsumerApiClient, IdentitySession
from loadtests.keys import IdentityKey


class IdentitiesFileError(Exception):
    """The credentials file is missing or not one `testbed seed` wrote."""


@dataclass(frozen=True)
class SeededDevice:
    id: str
    username: str
    password: str


@dataclass(frozen=True)
class SeededRelationship:
    id: str
    peer: str
    template: str


@dataclass(frozen=True)
class SeededIdentity:
    """One seeded identity: its devices, templates, relationships and what it holds."""

    address: str
    pool: str
    type: str
    key_seed: bytes
    devices: tuple[SeededDevice, ...]
    templates: tuple[str, ...]
    relationships: tuple[SeededRelationship, ...]
    expected: dict[str, int]

    @property
    def key(self) -> IdentityKey:
        """The identity's Ed25519 key (to register further devices)."""
        return IdentityKey.from_seed(self.key_seed)

    def session(self, api: ConsumerApiClient, device: int = 0) -> IdentitySession:
        """A session of one of its devices; it logs in on first use and renews its token."""
        chosen = self.devices[device]
        return api.session(
            address=self.address,
            device_id=chosen.id,
            username=chosen.username,
            password=chosen.password,
            key=self.key,
        )


@dataclass(frozen=True)
class SeededIdentities:
    """The identities of one data set (or a worker's part of them), in file order."""

    pool_config: str
    seed: int
    did_domain: str
    client_id: str
    identities: tuple[SeededIdentity, ...]

    def __len__(self) -> int:
        return len(self.identities)

    def __iter__(self) -> Iterator[SeededIdentity]:
        return iter(self.identities)

    def of_pool(self, *aliases: str) -> list[SeededIdentity]:
        return [identity for identity in self.identities if identity.pool in aliases]

    def of_type(self, kind: str) -> list[SeededIdentity]:
        """`app`, `connector` or `never`."""
        return [identity for identity in self.identities if identity.type == kind]

    def partition(self, index: int, count: int) -> SeededIdentities:
        """Worker `index` of `count`: a disjoint part holding a share of every pool."""
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"worker index {index} is outside 0..{count - 1}")
        position: dict[str, int] = {}
        mine = []
        for identity in self.identities:
            number = position.get(identity.pool, 0)
            position[identity.pool] = number + 1
            if number % count == index:
                mine.append(identity)
        return SeededIdentities(self.pool_config, self.seed, self.did_domain, self.client_id, tuple(mine))


def load_identities(path: str | Path) -> SeededIdentities:
    """Read a credentials file written by `testbed seed`."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise IdentitiesFileError(
            f"{path}: cannot be read ({error.strerror or error}); "
            "run `testbed seed --pool NAME --mode bulk` first"
        ) from error
    except ValueError as error:
        raise IdentitiesFileError(f"{path}: not JSON ({error})") from error
    if not isinstance(document, dict) or document.get("format") != 1:
        raise IdentitiesFileError(f"{path}: not a credentials file of `testbed seed` (format 1)")
    return SeededIdentities(
        pool_config=str(document["pool_config"]),
        seed=int(document["seed"]),
        did_domain=str(document["did_domain"]),
        client_id=str(document["client_id"]),
        identities=tuple(_identity(entry) for entry in document["identities"]),
    )


def _identity(entry: dict[str, Any]) -> SeededIdentity:
    return SeededIdentity(
        address=entry["address"],
        pool=entry["pool"],
        type=entry["type"],
        key_seed=bytes.fromhex(entry["key_seed"]),
        devices=tuple(SeededDevice(**device) for device in entry["devices"]),
        templates=tuple(entry["templates"]),
        relationships=tuple(SeededRelationship(**item) for item in entry["relationships"]),
        expected=dict(entry["expected"]),
    )


def worker_share(environment: Any) -> tuple[int, int]:
    """(index, count) of this Locust process: its worker index and the expected worker count.

    A local (non-distributed) run is worker 0 of 1. Workers learn their index when they connect
    and `--expect-workers` with the first spawn message.
    """
    runner = getattr(environment, "runner", None)
    index = int(getattr(runner, "worker_index", 0) or 0)
    if type(runner).__name__ != "WorkerRunner":
        return 0, 1
    options = getattr(environment, "parsed_options", None)
    count = int(getattr(options, "expect_workers", 1) or 1)
    return index, max(count, index + 1)


def disjoint(parts: Sequence[SeededIdentities]) -> bool:
    """Whether no identity appears in two parts (used by the tests and by operators' checks)."""
    seen: set[str] = set()
    for part in parts:
        for identity in part:
            if identity.address in seen:
                return False
            seen.add(identity.address)
    return True
