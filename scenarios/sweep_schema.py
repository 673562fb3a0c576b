"""Parse a sweep file (TOML): the landscapes a sweep measures and the load an operator must hold.

A sweep names a base landscape profile, the workload (scenario and pool; the SLOs are the
scenario's), the dimensions to vary with their values (`nodes.count = [1, 2, 3, 4]`, any option
of a profile table), as a grid or one dimension at a time, options fixed for every cell, the cost
of a core per tier, and the target (`multiplier = 10` or `requests_per_s = 500`) with its
headroom. Every cell's profile is read with the profile schema (`scenarios.landscape`), so a value
the profile refuses is a problem of the sweep file; whether the cells' budgets fit the machine's
cores is the command's check (the CPU plan, `testbed.landscape.cpu`). Problems come one per line,
all of them at once: ``scenarios/sweeps/x.toml: dimensions.nodes.size: not an option of a profile``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from scenarios import landscape
from scenarios.landscape import LandscapeProfile, ProfileError, load_profile
from scenarios.reader import ConfigError, ConfigReader, is_number, parse_toml, show

SWEEPS_DIR = Path(__file__).resolve().parent / "sweeps"
GRID = "grid"
ONE_AT_A_TIME = "one-at-a-time"
MODES = (GRID, ONE_AT_A_TIME)
TARGET_UNITS = ("multiplier", "requests_per_s")
# A core's cost per tier (the tiers of `LandscapeProcess.tier`); a tier not named costs 1.
COST_TIERS = ("gateway", "node", "database", "pooler", "replica", "events", "admin", "blob-store")
MAX_CELLS = 64
# The profile tables whose options a sweep may vary or fix.
_OPTION_TABLES: dict[str, type[Any]] = {
    "gateway": landscape.GatewayProfile,
    "nodes": landscape.NodesProfile,
    "database": landscape.DatabaseProfile,
    "worker": landscape.WorkerProfile,
    "admin_api": landscape.AdminApiProfile,
    "blob_store": landscape.BlobStoreProfile,
}
# Options that name a server or a secret's place: a sweep varies how much, not where.
_NOT_SWEPT = ("database.url", "database.kind", "database.server")
_TOP_KEYS = (
    "name",
    "description",
    "profile",
    "mode",
    "workload",
    "dimensions",
    "options",
    "cost",
    "target",
    "headroom",
    "search",
)
_WORKLOAD_KEYS = ("scenario", "pool", "seed", "start_multiplier")
_SEARCH_KEYS = ("step_s", "warm_up_s", "resolution", "max_steps", "growth")


class SweepError(ConfigError):
    """A sweep file is unreadable or invalid; `problems` holds one line per problem."""


@dataclass(frozen=True)
class SweepCell:
    """One landscape of the sweep: its number (from 1), the varied options' values and its profile."""

    number: int
    values: Mapping[str, Any]
    profile: LandscapeProfile
    overrides: Mapping[str, str]  # the profile changes, as `--option` gives them

    @property
    def name(self) -> str:
        return f"cell-{self.number:02d}"

    def label(self) -> str:
        return ", ".join(f"{key} = {value}" for key, value in self.values.items())


@dataclass(frozen=True)
class Sweep:
    """A whole sweep file, its cells built and every cell's profile validated."""

    name: str
    description: str
    source: Path
    profile: str
    mode: str
    scenario: str
    pool: str
    seed: int
    start_multiplier: float | None
    dimensions: Mapping[str, tuple[Any, ...]]
    options: Mapping[str, Any]
    cost: Mapping[str, float]
    target_unit: str
    target: float
    headroom: float
    search: Mapping[str, float]
    cells: tuple[SweepCell, ...]

    def cost_of(self, cores: Mapping[str, float]) -> float:
        """The cost of a cell's cores by tier (a tier the file does not price costs 1 per core)."""
        return sum(self.cost.get(tier, 1.0) * amount for tier, amount in cores.items())


def sweep_path(name_or_path: str) -> Path:
    """A name (`nodes`) means `scenarios/sweeps/nodes.toml`; anything else is a path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
        return candidate
    return SWEEPS_DIR / f"{name_or_path}.toml"


def load_sweep(
    name_or_path: str, *, target: tuple[str, float] | None = None, headroom: float | None = None
) -> Sweep:
    """Read and validate a sweep file (the command line's target and headroom replace the file's)."""
    path = sweep_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SweepError([f"{path}: cannot read the sweep ({error.strerror})"]) from None
    return parse_sweep(text, source=path, target=target, headroom=headroom)


def parse_sweep(
    text: str, *, source: Path, target: tuple[str, float] | None = None, headroom: float | None = None
) -> Sweep:
    data = parse_toml(text, source, SweepError)
    read = ConfigReader(source)
    read.only(data, "", _TOP_KEYS)
    profile = read.text(data, "", "profile")
    mode = read.choice(data, "", "mode", GRID, MODES)
    workload = read.table(data.get("workload", {}), "workload")
    read.only(workload, "workload", _WORKLOAD_KEYS)
    start = workload.get("start_multiplier")
    dimensions = _dimensions(read, read.table(data.get("dimensions", {}), "dimensions"))
    options = _flatten(read, read.table(data.get("options", {}), "options"), "options")
    for name in set(dimensions) & set(options):
        read.problem(f"options.{name}", "is also a dimension; a cell's value is the dimension's")
    search = read.table(data.get("search", {}), "search")
    read.only(search, "search", _SEARCH_KEYS)
    unit, value = target or _target(read, data.get("target"))
    if unit not in TARGET_UNITS:
        read.problem("target", f"unknown unit {unit!r} (allowed: {', '.join(TARGET_UNITS)})")
    if not (is_number(value) and value > 0):
        read.problem(f"target.{unit}", f"must be a number > 0, got {show(value)}")
    sweep = Sweep(
        name=read.text(data, "", "name", source.stem),
        description=read.text(data, "", "description", "", non_empty=False),
        source=source,
        profile=profile,
        mode=mode,
        scenario=read.text(workload, "workload", "scenario", "production-mix"),
        pool=read.text(workload, "workload", "pool", "test"),
        seed=read.integer(workload, "workload", "seed", 1, minimum=0),
        start_multiplier=None if start is None else read.number(workload, "workload", "start_multiplier"),
        dimensions=MappingProxyType(dimensions),
        options=MappingProxyType(options),
        cost=MappingProxyType(_cost(read, read.table(data.get("cost", {}), "cost"))),
        target_unit=unit,
        target=float(value) if is_number(value) else 0.0,
        headroom=_headroom(read, data, headroom),
        search=MappingProxyType(
            {key: float(search[key]) for key in _SEARCH_KEYS if key in search and is_number(search[key])}
        ),
        cells=(),
    )
    for key in _SEARCH_KEYS:
        if key in search and not is_number(search[key]):
            read.problem(f"search.{key}", f"must be a number, got {show(search[key])}")
    if profile and not landscape.profile_path(profile).is_file():
        read.problem("profile", f"no profile {profile!r} (a name in scenarios/landscapes/ or a path)")
    if not read.problems:
        sweep = dataclasses.replace(sweep, cells=_cells(read, sweep))
    read.raise_problems(SweepError)
    return sweep


def _dimensions(read: ConfigReader, table: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    if not table:
        read.problem("dimensions", "is required: at least one option to vary, e.g. nodes.count = [1, 2]")
    dimensions = {}
    for name, values in _flatten(read, table, "dimensions").items():
        if not isinstance(values, list) or not values:
            read.problem(f"dimensions.{name}", f"must be a non-empty list of values, got {show(values)}")
            continue
        if len(set(map(json.dumps, values))) != len(values):
            read.problem(f"dimensions.{name}", f"lists a value twice: {show(values)}")
        dimensions[name] = tuple(values)
    return dimensions


def _flatten(read: ConfigReader, table: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`{"nodes": {"count": v}}` (TOML's dotted keys) -> `{"nodes.count": v}`, each a known option."""
    flat = {}
    for table_name, inner in table.items():
        if table_name not in _OPTION_TABLES or not isinstance(inner, dict):
            read.problem(
                f"{prefix}.{table_name}",
                f"not a table of a profile (known: {', '.join(_OPTION_TABLES)}); write e.g. nodes.count",
            )
            continue
        known = [field.name for field in dataclasses.fields(_OPTION_TABLES[table_name])]
        for key, value in inner.items():
            name = f"{table_name}.{key}"
            if key not in known:
                read.problem(f"{prefix}.{name}", f"not an option of a profile (known: {', '.join(known)})")
            elif name in _NOT_SWEPT:
                read.problem(
                    f"{prefix}.{name}",
                    "is where the landscape runs, not how much of it; set it in the profile",
                )
            else:
                flat[name] = value
    return flat


def _cost(read: ConfigReader, table: dict[str, Any]) -> dict[str, float]:
    read.only(table, "cost", COST_TIERS)
    return {
        tier: read.number(table, "cost", tier, minimum=0.0, inclusive=True)
        for tier in COST_TIERS
        if tier in table
    }


def _target(read: ConfigReader, value: Any) -> tuple[str, Any]:
    if value is None:
        read.problem("target", "is required: { multiplier = 10 } or { requests_per_s = 500 }")
        return TARGET_UNITS[0], 1.0
    if not isinstance(value, dict) or len(value) != 1:
        read.problem(
            "target",
            f"must name one unit: {{ multiplier = 10 }} or {{ requests_per_s = 500 }}, got {show(value)}",
        )
        return TARGET_UNITS[0], 1.0
    [(unit, amount)] = value.items()
    return str(unit), amount


def _headroom(read: ConfigReader, data: Mapping[str, Any], override: float | None) -> float:
    value = data.get("headroom", 0.3) if override is None else override
    if not is_number(value) or not 0 <= value <= 10:
        read.problem("headroom", f"must be a number from 0 to 10 (0.3 is 30 %), got {show(value)}")
        return 0.0
    return float(value)


def _cells(read: ConfigReader, sweep: Sweep) -> tuple[SweepCell, ...]:
    """The cells in order, each profile read with the base and the cell's values; duplicates once."""
    names = list(sweep.dimensions)
    if sweep.mode == GRID:
        combos = [
            dict(zip(names, values, strict=True)) for values in itertools.product(*sweep.dimensions.values())
        ]
    else:
        combos = [{name: value} for name in names for value in sweep.dimensions[name]]
    cells: list[SweepCell] = []
    seen: set[str] = set()
    for values in combos:
        overrides = {name: _toml(value) for name, value in {**sweep.options, **values}.items()}
        label = ", ".join(f"{name} = {value}" for name, value in values.items())
        try:
            profile = load_profile(sweep.profile, overrides)
        except ProfileError as error:
            read.problems += [f"{sweep.source}: cell {label}: {problem}" for problem in error.problems]
            continue
        # Every cell names every dimension's value: one at a time, the others keep the profile's.
        full = {name: _value_of(profile, name) for name in names}
        key = json.dumps(full, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        cells.append(SweepCell(len(cells) + 1, MappingProxyType(full), profile, MappingProxyType(overrides)))
    if len(combos) > MAX_CELLS:
        read.problem(
            "dimensions", f"{len(combos)} cells, more than {MAX_CELLS}; sweep fewer values or one at a time"
        )
    return tuple(cells)


def _value_of(profile: LandscapeProfile, option: str) -> Any:
    table, key = option.split(".")
    return getattr(getattr(profile, table), key)


def _toml(value: Any) -> str:
    """A value as `--option` writes it (TOML: numbers and booleans bare, strings quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)
