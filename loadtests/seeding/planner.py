"""Turn a pool configuration into a concrete, deterministic data set plan for a seed.

The plan fixes every identity (its Ed25519 key and address), how many devices, templates,
challenges and datawallet modifications each gets, which app relates to which connector on
which template, and how many messages travel each way on every relationship. Both seeding
modes carry out the same plan, so they produce the same identities and the same counts.

Relationships always pair an app identity (the requester) with a connector (the template
owner), at most one per pair. Where the configuration's numbers cannot all be met (the two
sides want different totals, or a connector has more relationships than there are apps),
`Plan.gaps` says by how much, one `planner:` line each.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from loadtests.keys import IdentityKey
from scenarios.pool_schema import PoolConfig

_IPF_ROUNDS = 60


@dataclass(frozen=True)
class PlannedIdentity:
    """One identity of the data set; `number` is its position over all pools (0-based)."""

    number: int
    pool: str
    type: str
    ordinal: int
    key_seed: bytes
    address: str
    password: str
    devices: int
    templates: int
    challenges: int
    datawallet_modifications: int

    @property
    def key(self) -> IdentityKey:
        return IdentityKey.from_seed(self.key_seed)


@dataclass(frozen=True)
class PlannedRelationship:
    """An app's relationship on one of a connector's templates, with its messages each way."""

    number: int
    app: int
    connector: int
    template: int
    messages_from_connector: int
    messages_from_app: int

    @property
    def messages(self) -> int:
        return self.messages_from_connector + self.messages_from_app


@dataclass(frozen=True)
class Expected:
    """What one identity holds when the plan is carried out."""

    devices: int
    templates: int
    relationships: int
    messages: int
    datawallet_modifications: int
    challenges: int


@dataclass(frozen=True)
class Plan:
    config: PoolConfig
    seed: int
    did_domain: str
    identities: tuple[PlannedIdentity, ...]
    relationships: tuple[PlannedRelationship, ...]
    gaps: tuple[str, ...]

    @cached_property
    def relationships_of(self) -> dict[int, list[PlannedRelationship]]:
        mapping: dict[int, list[PlannedRelationship]] = defaultdict(list)
        for relationship in self.relationships:
            mapping[relationship.app].append(relationship)
            mapping[relationship.connector].append(relationship)
        return dict(mapping)

    def expected(self, number: int) -> Expected:
        identity = self.identities[number]
        related = self.relationships_of.get(number, [])
        return Expected(
            devices=identity.devices,
            templates=identity.templates,
            relationships=len(related),
            messages=sum(relationship.messages for relationship in related),
            datawallet_modifications=identity.datawallet_modifications,
            challenges=identity.challenges,
        )

    @property
    def totals(self) -> dict[str, int]:
        """Rows per kind the plan creates."""
        return {
            "identities": len(self.identities),
            "devices": sum(identity.devices for identity in self.identities),
            "relationship_templates": sum(identity.templates for identity in self.identities),
            "relationships": len(self.relationships),
            "messages": sum(relationship.messages for relationship in self.relationships),
            "challenges": sum(identity.challenges for identity in self.identities),
            "datawallet_modifications": sum(
                identity.datawallet_modifications for identity in self.identities
            ),
        }


def seed_bytes(seed: int, *parts: object) -> bytes:
    """32 bytes that depend only on the seed and the parts (keys, ids, payloads)."""
    return hashlib.sha256(":".join(str(part) for part in (seed, *parts)).encode("utf-8")).digest()


def pool_password(seed: int, alias: str) -> str:
    """The password every device of a pool logs in with (meets the production policy)."""
    return f"Seed-{alias}-{seed}-Pw!"


def plan(config: PoolConfig, *, seed: int = 1, did_domain: str = "localhost") -> Plan:
    """Plan the data set of `config` for `seed`; the same inputs give the same plan."""
    identities: list[PlannedIdentity] = []
    for pool in config.pools:
        for ordinal in range(pool.amount):
            key_seed = seed_bytes(seed, "identity", pool.alias, ordinal)
            identities.append(
                PlannedIdentity(
                    number=len(identities),
                    pool=pool.alias,
                    type=pool.type,
                    ordinal=ordinal,
                    key_seed=key_seed,
                    address=IdentityKey.from_seed(key_seed).address(did_domain),
                    password=pool_password(seed, pool.alias),
                    devices=pool.number_of_devices,
                    templates=pool.number_of_relationship_templates,
                    challenges=pool.number_of_challenges,
                    datawallet_modifications=pool.number_of_datawallet_modifications,
                )
            )
    rng = random.Random(int.from_bytes(seed_bytes(seed, "relationships"), "big"))
    pairs = _pair_apps_with_connectors(config, identities, rng)
    messages = _spread_messages(config, identities, pairs)
    relationships: list[PlannedRelationship] = []
    used_templates: dict[int, int] = defaultdict(int)
    # Carrying the rounding over from one relationship to the next keeps the overall share of
    # connector-sent messages at the ratio (rounding each alone would favour one side).
    carried = 0.0
    for (app, connector), count in zip(pairs, messages, strict=True):
        templates = identities[connector].templates
        share = count * config.messages_sent_by_connector_ratio + carried
        from_connector = min(count, max(0, round(share)))
        carried = share - from_connector
        relationships.append(
            PlannedRelationship(
                number=len(relationships),
                app=app,
                connector=connector,
                template=used_templates[connector] % templates,
                messages_from_connector=from_connector,
                messages_from_app=count - from_connector,
            )
        )
        used_templates[connector] += 1
    result = Plan(config, seed, did_domain, tuple(identities), tuple(relationships), ())
    return Plan(config, seed, did_domain, result.identities, result.relationships, tuple(_gaps(result)))


def _pair_apps_with_connectors(
    config: PoolConfig, identities: list[PlannedIdentity], rng: random.Random
) -> list[tuple[int, int]]:
    """Give every app its relationships with distinct connectors, fullest connectors first.

    Serving the apps with the most relationships first from the connectors with the most
    capacity left realises the wanted degrees whenever any simple pairing can (Gale-Ryser);
    seeded tie-breaking spreads the apps over equally free connectors.
    """
    wanted = {pool.alias: pool.number_of_relationships for pool in config.pools}
    apps = [identity for identity in identities if identity.type == "app" and wanted[identity.pool]]
    rng.shuffle(apps)
    apps.sort(key=lambda identity: -wanted[identity.pool])
    free = [
        (-wanted[identity.pool], rng.random(), identity.number)
        for identity in identities
        if identity.type == "connector" and wanted[identity.pool]
    ]
    heapq.heapify(free)
    pairs: list[tuple[int, int]] = []
    for app in apps:
        taken = []
        for _ in range(wanted[app.pool]):
            if not free:
                break
            capacity, _tie, connector = heapq.heappop(free)
            pairs.append((app.number, connector))
            taken.append((capacity + 1, rng.random(), connector))
        for entry in taken:
            if entry[0] < 0:
                heapq.heappush(free, entry)
    pairs.sort()
    return pairs


def _spread_messages(
    config: PoolConfig, identities: list[PlannedIdentity], pairs: list[tuple[int, int]]
) -> list[int]:
    """Messages per relationship so that each identity's total comes as close as it can.

    Iterative proportional fitting matches both sides' totals where they agree; where they
    differ, the smaller side is met exactly and the other side gets proportionally less.
    """
    if not pairs:
        return []
    wanted = {pool.alias: pool.total_number_of_messages for pool in config.pools}
    target = {identity.number: float(wanted[identity.pool]) for identity in identities}
    weights = [1.0] * len(pairs)
    app_edges: dict[int, list[int]] = defaultdict(list)
    connector_edges: dict[int, list[int]] = defaultdict(list)
    for edge, (app, connector) in enumerate(pairs):
        app_edges[app].append(edge)
        connector_edges[connector].append(edge)
    app_total = sum(target[app] for app in app_edges)
    connector_total = sum(target[connector] for connector in connector_edges)
    last, first = (
        (app_edges, connector_edges) if app_total <= connector_total else (connector_edges, app_edges)
    )
    # The larger side can only get what the smaller side has: scale its targets down to that
    # total, so the fitting converges instead of swinging between two unreachable totals.
    larger, smaller = max(app_total, connector_total), min(app_total, connector_total)
    if larger > 0 and larger != smaller:
        for node in first:
            target[node] *= smaller / larger
    for _ in range(_IPF_ROUNDS):
        largest_change = 0.0
        for side in (first, last):
            for node, edges in side.items():
                current = sum(weights[edge] for edge in edges)
                if current > 0:
                    factor = target[node] / current
                    largest_change = max(largest_change, abs(factor - 1))
                    for edge in edges:
                        weights[edge] *= factor
        if largest_change < 1e-9:
            break
    counts = [0] * len(pairs)
    # Round per node of the side that is met exactly, keeping its totals whole.
    for node, edges in last.items():
        whole = [int(weights[edge]) for edge in edges]
        rest = round(target[node]) - sum(whole)
        by_fraction = sorted(range(len(edges)), key=lambda i: weights[edges[i]] - whole[i], reverse=True)
        for i in by_fraction[: max(0, rest)]:
            whole[i] += 1
        for edge, count in zip(edges, whole, strict=True):
            counts[edge] = count
    _balance_other_side(counts, weights, last, first)
    return counts


def _balance_other_side(
    counts: list[int], weights: list[float], exact: dict[int, list[int]], other: dict[int, list[int]]
) -> None:
    """Move whole messages between one node's relationships until the other side's totals fit.

    Rounding each node of the exact side on its own shifts the other side by up to half a
    message per relationship; moving units between two relationships of the same node keeps
    that node's total and brings the peers' totals back to their (rounded) targets.
    """
    peer_of: dict[int, int] = {edge: node for node, edges in other.items() for edge in edges}
    surplus = {
        node: sum(counts[edge] for edge in edges) - round(sum(weights[edge] for edge in edges))
        for node, edges in other.items()
    }
    for _ in range(10):
        moved = False
        for edges in exact.values():
            for give in edges:
                for take in edges:
                    giver, taker = peer_of[give], peer_of[take]
                    units = min(surplus[giver], -surplus[taker], counts[give])
                    if give != take and units > 0:
                        counts[give] -= units
                        counts[take] += units
                        surplus[giver] -= units
                        surplus[taker] += units
                        moved = True
        if not moved:
            return


def _gaps(result: Plan) -> list[str]:
    """One `planner:` line for each pool whose wanted counts the plan does not reach."""
    lines = []
    per_pool: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for identity in result.identities:
        expected = result.expected(identity.number)
        per_pool[identity.pool]["relationships"] += expected.relationships
        per_pool[identity.pool]["messages"] += expected.messages
    for pool in result.config.pools:
        for kind, field in (
            ("relationships", "number_of_relationships"),
            ("messages", "total_number_of_messages"),
        ):
            want = pool.amount * int(getattr(pool, field))
            got = per_pool[pool.alias][kind]
            if want != got:
                lines.append(
                    f"planner: pool {pool.alias} ({pool.name}) wants {want:,} {kind} "
                    f"({pool.amount:,} x {getattr(pool, field):,}), the plan has {got:,} ({got - want:+,})"
                )
    app_side = sum(p.amount * p.number_of_relationships for p in result.config.pools if p.type == "app")
    connector_side = sum(
        p.amount * p.number_of_relationships for p in result.config.pools if p.type == "connector"
    )
    if app_side != connector_side:
        lines.append(
            f"planner: apps want {app_side:,} relationships, connectors {connector_side:,}; "
            f"every relationship joins one of each, so the plan has {len(result.relationships):,}"
        )
    app_messages = sum(p.amount * p.total_number_of_messages for p in result.config.pools if p.type == "app")
    connector_messages = sum(
        p.amount * p.total_number_of_messages for p in result.config.pools if p.type == "connector"
    )
    if app_messages != connector_messages:
        lines.append(
            f"planner: apps want {app_messages:,} messages, connectors {connector_messages:,}; "
            f"every message joins one of each, so the plan has {result.totals['messages']:,}"
        )
    return lines
