"""Personas: the seeded identities the scenarios act as, and the new identities they create.

The cast comes from the credentials file that `testbed seed` exports (format in
`loadtests/seeding/export.py`). Pool aliases follow the original: `a1`/`a2`/`a3` light, medium
and heavy app identities, `c1`/`c2`/`c3` connectors, `e` never used by a scenario. A scenario
asks for a group: `a` (every app), `c` (every connector), or a single alias.

What one identity does must not collide with what another iteration does with it at the same
moment, or the backbone rightly refuses it: a second sync run while one is open, a datawallet
push with a stale index, a second relationship between the same pair. So each persona carries
two locks: `sync` around sync runs and datawallet pushes (which also keeps the persona's
datawallet index exact), `lifecycle` around a relationship life cycle it takes part in as the
app side. Reads and sends need no lock.

In distributed mode each load process takes a disjoint share of the identities (`load_cast`
with the engine's share, split as `loadtests.identities` deals them), so the locks and the
datawallet indexes stay local to one process.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loadtests.identities import IdentitiesFileError, SeededIdentity, load_identities
from loadtests.keys import IdentityKey

if TYPE_CHECKING:
    from loadtests.client import ConsumerApiClient, IdentitySession

APP_ALIASES = ("a1", "a2", "a3")
CONNECTOR_ALIASES = ("c1", "c2", "c3")
GROUPS = {"a": APP_ALIASES, "c": CONNECTOR_ALIASES}
# How long an iteration waits for a busy identity before it gives up (a failure, not a hang).
LOCK_TIMEOUT_S = 30.0
# Token ids a persona remembers for device onboarding (scenario 10 pages through them).
REMEMBERED_TOKENS = 200


class CastError(Exception):
    """The credentials file is missing, unreadable, or lacks the identities a scenario needs."""


class IdentityBusy(Exception):
    """No identity of a group became free within the lock timeout."""


@dataclass(frozen=True)
class Device:
    """One seeded device: what it logs in with."""

    id: str
    username: str
    password: str


@dataclass(frozen=True)
class Relationship:
    """A seeded relationship from one side: its id, the peer and the template it was created on."""

    id: str
    peer: str
    template: str


@dataclass(eq=False)
class Persona:
    """One seeded identity and what a load process knows about it while the run goes on."""

    address: str
    alias: str
    type: str
    devices: tuple[Device, ...]
    templates: tuple[str, ...] = ()
    relationships: tuple[Relationship, ...] = ()
    key_seed: bytes = b""
    # The index of the identity's newest datawallet modification (None: none yet); exact as long
    # as every push goes through `sync`.
    datawallet_index: int | None = None
    # Whether this process has fetched what was pushed after the seeded modifications.
    datawallet_current: bool = False
    tokens: list[str] = field(default_factory=list)
    # Connectors whose relationship life cycle with this app broke off half-way: a new one with
    # them would be refused (relationshipToTargetAlreadyExists), so scenario 06 avoids them.
    stuck_peers: set[str] = field(default_factory=set)
    sync: threading.Lock = field(default_factory=threading.Lock, repr=False)
    lifecycle: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _sessions: dict[int, IdentitySession] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> IdentityKey:
        return IdentityKey.from_seed(self.key_seed)

    @property
    def is_app(self) -> bool:
        return self.alias in APP_ALIASES

    @property
    def is_connector(self) -> bool:
        return self.alias in CONNECTOR_ALIASES

    def session(self, api: ConsumerApiClient, device: int = 0) -> IdentitySession:
        """The session of one of its devices (created once; it logs in on first use)."""
        index = device % len(self.devices)
        if (session := self._sessions.get(index)) is None:
            chosen = self.devices[index]
            session = self._sessions[index] = api.session(
                address=self.address,
                device_id=chosen.id,
                username=chosen.username,
                password=chosen.password,
                key=self.key if self.key_seed else None,
            )
        return session

    def remember_token(self, token_id: str) -> None:
        self.tokens.append(token_id)
        del self.tokens[:-REMEMBERED_TOKENS]

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(relationship.peer for relationship in self.relationships)


@contextmanager
def holding(lock: threading.Lock, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold `lock`, waiting at most `timeout_s` (then IdentityBusy)."""
    if not lock.acquire(timeout=timeout_s):
        raise IdentityBusy(f"an identity stayed busy for {timeout_s:g} s")
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class NewIdentity:
    """An identity a scenario creates: a fresh key and the password of its first device."""

    key: IdentityKey
    password: str


class Cast:
    """The personas of one load process, grouped by pool alias."""

    def __init__(
        self,
        personas: Iterable[Persona],
        *,
        did_domain: str,
        client_id: str,
        pool_config: str,
        everyone: Mapping[str, Persona] | None = None,
    ) -> None:
        self.personas = tuple(personas)
        self.did_domain = did_domain
        self.client_id = client_id
        self.pool_config = pool_config
        self.by_address = {persona.address: persona for persona in self.personas}
        # Every identity of the file, also those of other processes' shares (to read as them).
        self.everyone: Mapping[str, Persona] = everyone if everyone is not None else self.by_address
        self.by_alias: dict[str, tuple[Persona, ...]] = {}
        for persona in self.personas:
            self.by_alias[persona.alias] = (*self.by_alias.get(persona.alias, ()), persona)
        # Flows ask for their groups on every iteration; the personas never change.
        self._groups: dict[tuple[str, ...], tuple[Persona, ...]] = {}

    def group(self, *names: str) -> tuple[Persona, ...]:
        """Every persona of the given groups (`a`, `c`) or aliases (`a3`), in file order."""
        found = self._groups.get(names)
        if found is None:
            aliases = {alias for name in names for alias in GROUPS.get(name, (name,))}
            found = self._groups[names] = tuple(p for p in self.personas if p.alias in aliases)
        return found

    def pick(
        self, *names: str, rng: random.Random | None = None, with_relationships: bool = False
    ) -> Persona:
        """A random persona of the groups (optionally only one with at least one relationship)."""
        candidates = self.group(*names)
        if with_relationships:
            candidates = tuple(persona for persona in candidates if persona.relationships)
        if not candidates:
            wanted = "+".join(names) + (" with relationships" if with_relationships else "")
            raise CastError(
                f"the pool {self.pool_config!r} has no identity of {wanted} in this process's share"
            )
        return (rng or random).choice(candidates)

    def lease(
        self,
        candidates: Sequence[Persona],
        *,
        lock: str = "lifecycle",
        rng: random.Random | None = None,
        timeout_s: float = LOCK_TIMEOUT_S,
        poll_s: float = 0.01,
        eligible: Callable[[Persona], bool] | None = None,
    ) -> Persona:
        """Take the named lock of a random free persona among `candidates`; the caller releases it.

        Polls (every `poll_s`, cooperative under gevent) until one is free or `timeout_s` passed.
        `eligible` is asked only of free personas, in random order, until one qualifies: filtering
        the whole group first would cost every iteration a scan while the dispatcher waits.
        """
        order = list(candidates)
        deadline = time.monotonic() + timeout_s
        while True:
            (rng or random).shuffle(order)
            busy = False
            for persona in order:
                held = getattr(persona, lock)
                if not held.acquire(blocking=False):
                    busy = True
                elif eligible is None or eligible(persona):
                    return persona
                else:
                    held.release()
            if not busy:
                raise CastError(
                    f"the pool {self.pool_config!r} has no identity for this scenario in this share"
                )
            if time.monotonic() >= deadline:
                raise IdentityBusy(f"all {len(order)} candidate identities stayed busy for {timeout_s:g} s")
            time.sleep(poll_s)

    @staticmethod
    def new_identity() -> NewIdentity:
        """A fresh identity for scenario 02 (never reused: nobody else knows it)."""
        # Upper- and lower-case letters, a digit and a symbol: the production password policy.
        return NewIdentity(IdentityKey.generate(), "New-1a" + secrets.token_urlsafe(12))


def persona_of(identity: SeededIdentity) -> Persona:
    """One seeded identity as a persona."""
    modifications = int(identity.expected.get("datawallet_modifications", 0))
    return Persona(
        address=identity.address,
        alias=identity.pool,
        type=identity.type,
        devices=tuple(Device(d.id, d.username, d.password) for d in identity.devices),
        templates=tuple(identity.templates),
        relationships=tuple(Relationship(r.id, r.peer, r.template) for r in identity.relationships),
        key_seed=identity.key_seed,
        # Seeded modifications have the contiguous indexes 0 .. n-1.
        datawallet_index=modifications - 1 if modifications else None,
    )


def load_cast(path: str | Path, *, share: tuple[int, int] = (0, 1)) -> Cast:
    """The personas of load process `share` = (index, count) from a file `testbed seed` exported.

    The split is the seeding's (`SeededIdentities.partition`): disjoint across processes, each
    with its part of every pool. Identities of other shares stay known in `Cast.everyone`.
    """
    try:
        seeded = load_identities(path)
    except IdentitiesFileError as error:
        raise CastError(str(error)) from error
    everyone = {identity.address: persona_of(identity) for identity in seeded if identity.devices}
    mine = seeded.partition(*share)
    return Cast(
        (everyone[identity.address] for identity in mine if identity.address in everyone),
        did_domain=seeded.did_domain,
        client_id=seeded.client_id,
        pool_config=seeded.pool_config,
        everyone=everyone,
    )
