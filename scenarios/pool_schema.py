"""Parse an identity pool configuration (TOML) into frozen dataclasses, reporting every problem.

A pool configuration says which identities a data set holds: per pool its kind (`never`, `app`,
`connector`), how many identities, and per identity how many devices, relationship templates,
relationships, messages (sent plus received), datawallet modifications and challenges. The
fields and values are those of the original's `pool-config.<name>.json`. Problems come one per
line: ``scenarios/pools/x.toml: pools[2].amount: must be an integer >= 0, got -1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios.reader import ConfigError, ConfigReader, parse_toml

POOL_TYPES = ("never", "app", "connector")
POOLS_DIR = Path(__file__).parent / "pools"
_ALIAS = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_COUNTS = (
    "amount",
    "number_of_relationship_templates",
    "number_of_relationships",
    "total_number_of_messages",
    "number_of_datawallet_modifications",
    "number_of_devices",
    "number_of_challenges",
)
_POOL_KEYS = ("type", "name", "alias", *_COUNTS)
_TOP_KEYS = ("name", "description", "messages_sent_by_connector_ratio", "pools")


class PoolConfigError(ConfigError):
    """A pool configuration is unreadable or invalid; `problems` holds one line per problem."""


@dataclass(frozen=True)
class Pool:
    """Identities of one kind that all look alike (per identity counts)."""

    type: str
    name: str
    alias: str
    amount: int
    number_of_relationship_templates: int
    number_of_relationships: int
    total_number_of_messages: int
    number_of_datawallet_modifications: int
    number_of_devices: int
    number_of_challenges: int


@dataclass(frozen=True)
class PoolConfig:
    """A whole data set: its pools and how messages on a relationship are split."""

    name: str
    description: str
    messages_sent_by_connector_ratio: float
    pools: tuple[Pool, ...]

    def pool(self, alias: str) -> Pool:
        for pool in self.pools:
            if pool.alias == alias:
                return pool
        raise KeyError(alias)

    @property
    def identities(self) -> int:
        return sum(pool.amount for pool in self.pools)

    def total(self, field: str) -> int:
        """Sum of a per-identity count over every identity (`amount` times the count)."""
        return sum(pool.amount * int(getattr(pool, field)) for pool in self.pools)


def pool_config_path(name_or_path: str) -> Path:
    """`light` means scenarios/pools/light.toml; anything with a slash or suffix is a path."""
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        return Path(name_or_path)
    return POOLS_DIR / f"{name_or_path}.toml"


def available_pool_configs() -> list[str]:
    return sorted(path.stem for path in POOLS_DIR.glob("*.toml"))


def load_pool_config(name_or_path: str | Path) -> PoolConfig:
    """Read and validate a pool configuration by name (`light`) or path."""
    path = pool_config_path(str(name_or_path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        known = ", ".join(available_pool_configs())
        raise PoolConfigError(
            [f"{path}: (file): cannot be read: {error.strerror or error} (known pool configs: {known})"]
        ) from error
    return parse_pool_config(text, source=path)


def parse_pool_config(text: str, *, source: Path) -> PoolConfig:
    """Validate the TOML text of a pool configuration, reporting every problem at once."""
    document = parse_toml(text, source, PoolConfigError)
    read = ConfigReader(source)
    read.only(document, "", _TOP_KEYS)
    name = read.text(document, "", "name", source.stem) or source.stem
    description = read.text(document, "", "description", "", non_empty=False)
    ratio = read.ratio(document, "", "messages_sent_by_connector_ratio", 0.75)
    raw_pools = document.get("pools")
    if not isinstance(raw_pools, list) or not raw_pools:
        read.problem("pools", "must be a non-empty array of tables ([[pools]])")
        raw_pools = []
    pools = [pool for index, raw in enumerate(raw_pools) if (pool := _pool(raw, index, read)) is not None]
    _check_together(pools, read)
    read.raise_problems(PoolConfigError)
    return PoolConfig(name, description, float(ratio or 0.0), tuple(pools))


def _pool(raw: Any, index: int, read: ConfigReader) -> Pool | None:
    where = f"pools[{index}]"
    if not isinstance(raw, dict):
        read.table(raw, where)
        return None
    table: dict[str, Any] = raw
    before = len(read.problems)
    read.only(table, where, _POOL_KEYS)
    kind = read.choice(table, where, "type", None, POOL_TYPES)
    name = read.text(table, where, "name")
    alias = table.get("alias")
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        read.problem(f"{where}.alias", f"must be a short lower-case name like 'a1' (a-z, 0-9), got {alias!r}")
    counts = {}
    for key in _COUNTS:
        # Every identity has its first device; every other count may be 0.
        minimum = 1 if key == "number_of_devices" else 0
        counts[key] = read.integer(table, where, key, minimum, minimum=minimum)
    if len(read.problems) > before:
        return None
    pool = Pool(type=kind, name=name, alias=str(alias), **counts)
    if kind == "never" and (pool.number_of_relationships or pool.total_number_of_messages):
        read.problem(where, f"pool '{alias}' is never used: it cannot have relationships or messages")
    if kind != "connector" and pool.number_of_relationship_templates:
        read.problem(
            f"{where}.number_of_relationship_templates",
            f"only connector pools create templates (pool '{alias}' is {kind})",
        )
    if kind == "connector" and pool.number_of_relationships and not pool.number_of_relationship_templates:
        read.problem(where, f"connector pool '{alias}' has relationships but no template to accept them on")
    if pool.total_number_of_messages and not pool.number_of_relationships:
        read.problem(where, f"pool '{alias}' sends or receives messages but has no relationships")
    return pool


def _check_together(pools: list[Pool], read: ConfigReader) -> None:
    seen_alias: set[str] = set()
    seen_name: set[str] = set()
    for index, pool in enumerate(pools):
        if pool.alias in seen_alias:
            read.problem(f"pools[{index}].alias", f"'{pool.alias}' is used by an earlier pool")
        if pool.name in seen_name:
            read.problem(f"pools[{index}].name", f"'{pool.name}' is used by an earlier pool")
        seen_alias.add(pool.alias)
        seen_name.add(pool.name)
    connectors = sum(pool.amount for pool in pools if pool.type == "connector")
    apps = sum(pool.amount for pool in pools if pool.type == "app")
    for index, pool in enumerate(pools):
        if pool.number_of_relationships == 0 or pool.amount == 0:
            continue
        # Relationships pair an app with a connector, at most one per pair.
        peers = connectors if pool.type == "app" else apps
        if pool.number_of_relationships > peers:
            kind = "connector" if pool.type == "app" else "app"
            read.problem(
                f"pools[{index}].number_of_relationships",
                f"{pool.number_of_relationships} relationships per identity need as many {kind} "
                f"identities, the config has {peers}",
            )
