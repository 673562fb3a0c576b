"""Parse a scenario file (TOML) into frozen dataclasses, rejecting it with file, key and problem.

A scenario says which flows run, at what rate, under which time profile (shape) and with which
service level objectives per route. Every problem in a file is reported at once, one per line:
``scenarios/x.toml: flows[0].rate_per_s: must be a number > 0, got -3``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

from reports.manifest import SloSpec
from scenarios.reader import ConfigError, ConfigReader, is_number, join, parse_toml, show

ARRIVALS = ("uniform", "poisson")
VIEWS = ("corrected", "service")
SHAPE_KINDS = ("constant", "ramp", "step", "spike", "soak")
# What a fault does, and the tier of the landscape it acts on ("" : the tier the fault names).
FAULT_TIERS = {
    "kill-node": "node",
    "kill-worker": "events",
    "stop-database": "database",
    "slow-database": "database",
    "cut-broker": "broker",
    "throttle-tier": "",
}
_PERCENTILE_KEY = re.compile(r"^p(\d{1,2}(?:\.\d+)?)_ms$")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class ScenarioError(ConfigError):
    """A scenario file is unreadable or invalid; `problems` holds one line per problem."""


@dataclass(frozen=True)
class ConstantShape:
    """The base rate for the whole run."""

    duration_s: float


@dataclass(frozen=True)
class RampShape:
    """A linear change of the rate factor from `from_factor` to `to_factor`."""

    duration_s: float
    from_factor: float = 0.0
    to_factor: float = 1.0


@dataclass(frozen=True)
class StepShape:
    """One rate factor after another, each held for `step_s`."""

    factors: tuple[float, ...]
    step_s: float

    @property
    def duration_s(self) -> float:
        return self.step_s * len(self.factors)


@dataclass(frozen=True)
class SpikeShape:
    """The base rate with one burst at `spike_factor` from `spike_at_s` for `spike_s`."""

    duration_s: float
    spike_at_s: float
    spike_s: float
    spike_factor: float
    base_factor: float = 1.0


@dataclass(frozen=True)
class SoakShape:
    """A ramp from zero to the base rate over `ramp_s`, then the base rate until `duration_s`.

    The drift verdict (`reports/drift.py`) judges the window after the ramp: each process's RSS
    may grow at most `max_rss_growth_pct_per_h` and each route's p90 at most
    `max_p90_growth_pct_per_h` (percent of the fitted start value per hour).
    """

    duration_s: float
    ramp_s: float
    max_rss_growth_pct_per_h: float = 10.0
    max_p90_growth_pct_per_h: float = 50.0


Shape: TypeAlias = ConstantShape | RampShape | StepShape | SpikeShape | SoakShape


@dataclass(frozen=True)
class FlowSpec:
    """One flow of a scenario: which registered flow, how often, and how many at once."""

    name: str
    flow: str
    rate_per_s: float
    max_in_flight: int
    max_queued: int
    params: Mapping[str, Any]


@dataclass(frozen=True)
class FaultSpec:
    """One fault of a scenario: from `at_s` (after the load starts) for `duration_s`, on a tier.

    `target`: the process it acts on (node1, worker2; "" the tier's first); `restart`: a killed
    process is started again when the fault ends; `latency_ms`: the delay slow-database adds to
    every packet towards the database; `cores`: the budget throttle-tier gives each process of
    the tier meanwhile.
    """

    kind: str
    at_s: float
    duration_s: float
    tier: str
    target: str = ""
    restart: bool = True
    latency_ms: float = 0.0
    cores: float = 0.0

    @property
    def ends_at_s(self) -> float:
        return self.at_s + self.duration_s

    @property
    def label(self) -> str:
        """How the report names it: `kill-node node1 at 20 s for 10 s`."""
        on = self.target or self.tier
        return f"{self.kind} {on} at {self.at_s:g} s for {self.duration_s:g} s"


@dataclass(frozen=True)
class ClosedModel:
    """How the closed model (users with think time) drives the same flows, for comparison."""

    users: int = 10
    think_time_s: float = 1.0


@dataclass(frozen=True)
class Scenario:
    """A whole scenario file."""

    name: str
    source: Path
    description: str
    multiplier: float
    arrivals: str
    seed: int
    drain_timeout_s: float
    shape: Shape
    flows: tuple[FlowSpec, ...]
    slos: tuple[SloSpec, ...]
    closed: ClosedModel
    backbone: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    faults: tuple[FaultSpec, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.shape.duration_s

    def rate_per_s(self, flow: FlowSpec) -> float:
        """Return the flow's base rate with the scenario's multiplier applied."""
        return flow.rate_per_s * self.multiplier


@dataclass(frozen=True)
class ScenarioOverrides:
    """What a command line changes in a scenario file (None: the file's value).

    Applied to the file's data before validation, so the result is held to the file's rules; a
    shortened run keeps a spike or a ramp inside it (moved to the middle when it would start
    after the end).
    """

    multiplier: float | None = None
    duration_s: float | None = None
    seed: int | None = None

    def given(self) -> dict[str, float | int]:
        """The overrides that are set, by name (as the manifest records them)."""
        values = {"multiplier": self.multiplier, "duration_s": self.duration_s, "seed": self.seed}
        return {name: value for name, value in values.items() if value is not None}

    def apply(self, document: dict[str, Any], read: ConfigReader) -> None:
        if self.multiplier is not None:
            document["multiplier"] = self.multiplier
        if self.seed is not None:
            document["seed"] = self.seed
        if self.duration_s is None:
            return
        shape = document.get("shape")
        if not isinstance(shape, dict) or "duration_s" not in shape:
            kind = shape.get("kind", "?") if isinstance(shape, dict) else "?"
            read.problem("shape.duration_s", f"the duration cannot be overridden: the {kind} shape has none")
            return
        shape["duration_s"] = self.duration_s
        for key in ("spike_at_s", "ramp_s"):
            if is_number(shape.get(key)) and shape[key] >= self.duration_s:
                shape[key] = self.duration_s / 2


def load_scenario(
    path: str | Path,
    *,
    known_flows: Collection[str] | None = None,
    overrides: ScenarioOverrides | None = None,
) -> Scenario:
    """Read and validate a scenario file; `known_flows` lets unknown flow names be rejected too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError([f"{path}: (file): cannot be read: {error.strerror or error}"]) from error
    return parse_scenario(text, source=path, known_flows=known_flows, overrides=overrides)


def parse_scenario(
    text: str,
    *,
    source: Path,
    known_flows: Collection[str] | None = None,
    overrides: ScenarioOverrides | None = None,
) -> Scenario:
    """Validate the TOML text of a scenario file, reporting every problem at once."""
    document = parse_toml(text, source, ScenarioError)
    reader = ConfigReader(source, unknown_key="unknown key (expected one of: {known})")
    if overrides is not None:
        overrides.apply(document, reader)
    scenario = _scenario(reader.table(document, ""), source, reader, known_flows)
    reader.raise_problems(ScenarioError)
    assert scenario is not None, "a scenario without problems is complete"
    return scenario


_TOP_KEYS = (
    "name",
    "description",
    "multiplier",
    "arrivals",
    "seed",
    "drain_timeout_s",
    "shape",
    "flows",
    "slo",
    "closed",
    "backbone",
    "faults",
    "flows_from",
)
# Backbone settings a scenario depends on (names as in a landscape's [backbone] table, without
# the BACKBONE_ prefix); the landscape's values take precedence (scenarios/backbone_limits.py).
BACKBONE_KEYS = ("MAX_MESSAGE_RECIPIENTS", "MAX_UNRECEIVED_MESSAGES_FROM_ONE_SENDER")
_FLOW_KEYS = ("name", "flow", "rate_per_s", "max_in_flight", "max_queued", "params")
_SHAPE_KEYS: dict[str, tuple[str, ...]] = {
    "constant": ("kind", "duration_s"),
    "ramp": ("kind", "duration_s", "from_factor", "to_factor"),
    "step": ("kind", "factors", "step_s"),
    "spike": ("kind", "duration_s", "spike_at_s", "spike_s", "spike_factor", "base_factor"),
    "soak": ("kind", "duration_s", "ramp_s", "max_rss_growth_pct_per_h", "max_p90_growth_pct_per_h"),
}
_FAULT_KEYS = ("kind", "at_s", "duration_s", "tier", "target", "restart", "latency_ms", "cores")


def _scenario(
    top: dict[str, Any], source: Path, read: ConfigReader, known_flows: Collection[str] | None
) -> Scenario | None:
    read.only(top, "", _TOP_KEYS)
    if "flows_from" in top:
        _take_flows_from(top, source, read)
    name = read.text(top, "", "name", source.stem)
    description = read.text(top, "", "description", "", non_empty=False)
    multiplier = read.number(top, "", "multiplier", 1.0)
    arrivals = read.choice(top, "", "arrivals", "uniform", ARRIVALS)
    seed = read.integer(top, "", "seed", 1, minimum=0)
    drain_timeout_s = read.number(top, "", "drain_timeout_s", 10.0, inclusive=True)
    if "shape" not in top:
        read.problem("shape", "is required (a table with kind = one of " + ", ".join(SHAPE_KINDS) + ")")
        shape: Shape | None = None
    else:
        shape = _shape(read.table(top["shape"], "shape"), read)
    flows = _flows(top.get("flows"), read, known_flows)
    slos = _slos(read.table(top.get("slo", {}), "slo"), read)
    closed_table = read.table(top.get("closed", {}), "closed")
    read.only(closed_table, "closed", ("users", "think_time_s"))
    closed = ClosedModel(
        users=read.integer(closed_table, "closed", "users", ClosedModel.users, minimum=1),
        think_time_s=read.number(
            closed_table, "closed", "think_time_s", ClosedModel.think_time_s, inclusive=True
        ),
    )
    backbone_table = read.table(top.get("backbone", {}), "backbone")
    read.only(backbone_table, "backbone", BACKBONE_KEYS)
    backbone = {name: read.integer(backbone_table, "backbone", name, 1, minimum=1) for name in backbone_table}
    faults = _faults(top.get("faults", []), shape, read)
    if shape is None or read.problems:
        return None
    return Scenario(
        name=name,
        source=source,
        description=description,
        multiplier=multiplier,
        arrivals=arrivals,
        seed=seed,
        drain_timeout_s=drain_timeout_s,
        shape=shape,
        flows=flows,
        slos=slos,
        closed=closed,
        backbone=MappingProxyType(backbone),
        faults=faults,
    )


def _take_flows_from(top: dict[str, Any], source: Path, read: ConfigReader) -> None:
    """Fill [[flows]], [slo] and [backbone] from another scenario file (a fault on a shared mix).

    The file is named relative to this one. This file may not have [[flows]] or [backbone] itself
    (what runs is never a merge of two); its own [slo], when it has one, replaces the other's whole.
    """
    name = top.pop("flows_from")
    if not isinstance(name, str) or not name:
        read.problem("flows_from", f"must be a scenario file's path, got {show(name)}")
        return
    for key in ("flows", "backbone"):
        if key in top:
            read.problem(key, f"comes from flows_from ({name}); remove it here")
    path = (source.parent / name).resolve()
    try:
        other = parse_toml(path.read_text(encoding="utf-8"), path, ScenarioError)
    except OSError as error:
        read.problem("flows_from", f"{name}: cannot be read: {error.strerror or error}")
        return
    except ScenarioError as error:
        read.problem("flows_from", f"{name}: " + "; ".join(error.problems))
        return
    if "flows_from" in other:
        read.problem("flows_from", f"{name} takes its flows from another file itself (one level only)")
    for key in ("flows", "slo", "backbone"):
        if key in other and key not in top:
            top[key] = other[key]


def _faults(value: Any, shape: Shape | None, read: ConfigReader) -> tuple[FaultSpec, ...]:
    """Every [[faults]] entry; windows inside the run and apart from each other (one recovery each)."""
    if not isinstance(value, list):
        read.problem("faults", f"must be an array of tables ([[faults]]), got {show(value)}")
        return ()
    faults: list[FaultSpec] = []
    for index, item in enumerate(value):
        prefix = f"faults[{index}]"
        table = read.table(item, prefix)
        read.only(table, prefix, _FAULT_KEYS)
        kind = read.choice(table, prefix, "kind", None, tuple(FAULT_TIERS))
        if kind not in FAULT_TIERS:
            continue
        tier = FAULT_TIERS[kind]
        if tier and "tier" in table and table["tier"] != tier:
            read.problem(f"{prefix}.tier", f"{kind} acts on the {tier} tier, got {show(table['tier'])}")
        if not tier:
            tier = read.text(table, prefix, "tier")
        for key, kinds in (
            ("latency_ms", ("slow-database",)),
            ("cores", ("throttle-tier",)),
            ("restart", ("kill-node", "kill-worker")),
            ("target", ("kill-node", "kill-worker", "throttle-tier")),
        ):
            if key in table and kind not in kinds:
                read.problem(join(prefix, key), f"applies to {' and '.join(kinds)} only, not {kind}")
        fault = FaultSpec(
            kind=kind,
            at_s=read.number(table, prefix, "at_s", inclusive=True),
            duration_s=read.number(table, prefix, "duration_s"),
            tier=tier,
            target=read.text(table, prefix, "target", "", non_empty=False),
            restart=read.boolean(table, prefix, "restart", True),
            latency_ms=read.number(table, prefix, "latency_ms") if kind == "slow-database" else 0.0,
            cores=read.number(table, prefix, "cores") if kind == "throttle-tier" else 0.0,
        )
        if shape is not None and fault.ends_at_s > shape.duration_s:
            read.problem(
                f"{prefix}.duration_s",
                f"the fault ends at {fault.ends_at_s:g} s, after the run's {shape.duration_s:g} s",
            )
        faults.append(fault)
    ordered = sorted(faults, key=lambda fault: fault.at_s)
    for earlier, later in itertools.pairwise(ordered):
        if later.at_s < earlier.ends_at_s:
            read.problem(
                "faults",
                f"{later.label} starts before {earlier.label} ends; faults take turns, so each "
                "recovery is its own",
            )
    return tuple(ordered)


def _shape(table: dict[str, Any], read: ConfigReader) -> Shape | None:
    kind = read.choice(table, "shape", "kind", None, SHAPE_KINDS)
    if kind not in _SHAPE_KEYS:
        return None
    read.only(table, "shape", _SHAPE_KEYS[kind])
    before = len(read.problems)
    shape: Shape
    match kind:
        case "constant":
            shape = ConstantShape(duration_s=read.number(table, "shape", "duration_s"))
        case "ramp":
            shape = RampShape(
                duration_s=read.number(table, "shape", "duration_s"),
                from_factor=read.number(table, "shape", "from_factor", 0.0, inclusive=True),
                to_factor=read.number(table, "shape", "to_factor", 1.0, inclusive=True),
            )
            if shape.from_factor == 0 and shape.to_factor == 0:
                read.problem("shape.to_factor", "a ramp from 0 to 0 starts nothing")
        case "step":
            shape = StepShape(factors=_factors(table, read), step_s=read.number(table, "shape", "step_s"))
        case "spike":
            shape = SpikeShape(
                duration_s=read.number(table, "shape", "duration_s"),
                spike_at_s=read.number(table, "shape", "spike_at_s", inclusive=True),
                spike_s=read.number(table, "shape", "spike_s"),
                spike_factor=read.number(table, "shape", "spike_factor"),
                base_factor=read.number(table, "shape", "base_factor", 1.0, inclusive=True),
            )
            if shape.spike_at_s + shape.spike_s > shape.duration_s:
                read.problem(
                    "shape.spike_s",
                    f"the spike ends at {shape.spike_at_s + shape.spike_s:g} s, after duration_s "
                    f"({shape.duration_s:g} s)",
                )
        case "soak":
            shape = SoakShape(
                duration_s=read.number(table, "shape", "duration_s"),
                ramp_s=read.number(table, "shape", "ramp_s", inclusive=True),
                max_rss_growth_pct_per_h=read.number(
                    table, "shape", "max_rss_growth_pct_per_h", SoakShape.max_rss_growth_pct_per_h
                ),
                max_p90_growth_pct_per_h=read.number(
                    table, "shape", "max_p90_growth_pct_per_h", SoakShape.max_p90_growth_pct_per_h
                ),
            )
            if shape.ramp_s >= shape.duration_s:
                limit = f"must be shorter than duration_s ({shape.duration_s:g} s)"
                read.problem("shape.ramp_s", f"{limit}, got {shape.ramp_s:g}")
    return shape if len(read.problems) == before else None


def _factors(table: Mapping[str, Any], read: ConfigReader) -> tuple[float, ...]:
    value = table.get("factors")
    if value is None:
        read.problem("shape.factors", "is required (a list of rate factors, e.g. [0.5, 1.0, 2.0])")
        return ()
    if not isinstance(value, list) or not value:
        read.problem("shape.factors", f"must be a non-empty list of numbers, got {show(value)}")
        return ()
    factors = []
    for index, item in enumerate(value):
        if not is_number(item) or item < 0:
            read.problem(f"shape.factors[{index}]", f"must be a number >= 0, got {show(item)}")
        else:
            factors.append(float(item))
    if factors and not any(factors):
        read.problem("shape.factors", "all factors are 0, so nothing would start")
    return tuple(factors)


def _flows(value: Any, read: ConfigReader, known_flows: Collection[str] | None) -> tuple[FlowSpec, ...]:
    if value is None:
        read.problem("flows", "is required (an array of tables: [[flows]])")
        return ()
    if not isinstance(value, list) or not value:
        read.problem("flows", f"must be a non-empty array of tables ([[flows]]), got {show(value)}")
        return ()
    flows: list[FlowSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        prefix = f"flows[{index}]"
        table = read.table(item, prefix)
        read.only(table, prefix, _FLOW_KEYS)
        flow = read.text(table, prefix, "flow")
        if flow and known_flows is not None and flow not in known_flows:
            known = ", ".join(sorted(known_flows)) or "none"
            read.problem(f"{prefix}.flow", f"unknown flow {flow!r} (registered: {known})")
        name = read.text(table, prefix, "name", flow or None)
        if name in seen:
            read.problem(f"{prefix}.name", f"duplicate flow name {name!r}")
        seen.add(name)
        max_in_flight = read.integer(table, prefix, "max_in_flight", 1000, minimum=1)
        params = read.table(table.get("params", {}), f"{prefix}.params")
        flows.append(
            FlowSpec(
                name=name,
                flow=flow,
                rate_per_s=read.number(table, prefix, "rate_per_s"),
                max_in_flight=max_in_flight,
                max_queued=read.integer(table, prefix, "max_queued", 0, minimum=0),
                params=MappingProxyType(dict(params)),
            )
        )
    return tuple(flows)


def _slos(table: dict[str, Any], read: ConfigReader) -> tuple[SloSpec, ...]:
    slos = []
    for key, value in table.items():
        prefix = f"slo.{_quote(key)}"
        method, route = _route_key(key)
        if not route.startswith("/"):
            read.problem(prefix, "the key must be a route template, optionally after a method: 'GET /path'")
            continue
        thresholds = read.table(value, prefix)
        percentiles: list[tuple[float, float]] = []
        for name in thresholds:
            match = _PERCENTILE_KEY.match(name)
            if match is None:
                if name not in ("view", "max_failure_ratio"):
                    expected = "expected pNN_ms such as p90_ms, view or max_failure_ratio"
                    read.problem(join(prefix, name), f"unknown key ({expected})")
                continue
            percentile = float(match.group(1))
            if not 0 < percentile < 100:
                read.problem(join(prefix, name), "the percentile must be between 0 and 100")
                continue
            percentiles.append((percentile, read.number(thresholds, prefix, name)))
        ratio = read.ratio(thresholds, prefix, "max_failure_ratio", None)
        if not percentiles and ratio is None:
            read.problem(prefix, "names no threshold (add e.g. p90_ms = 50)")
        slos.append(
            SloSpec(
                route=route,
                method=method,
                percentiles_ms=tuple(sorted(percentiles)),
                view=read.choice(thresholds, prefix, "view", "corrected", VIEWS),
                max_failure_ratio=ratio,
            )
        )
    return tuple(slos)


def _route_key(key: str) -> tuple[str | None, str]:
    method, _, route = key.strip().partition(" ")
    if method.upper() in _METHODS and route:
        return method.upper(), route.strip()
    return None, key.strip()


def _quote(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'
