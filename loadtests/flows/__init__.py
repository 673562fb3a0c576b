"""Flows: what one iteration of load does, as plain callables registered by name.

A flow takes a `FlowContext` and makes its requests through `context.client` (a Locust HTTP
client, so every request lands in Locust's statistics). Request names are the server's route
templates (``/api/v2/SyncRuns``), one route vocabulary for client and server figures.

Later modules register their flows with `@register_flow("name")`; a scenario file refers to them
by that name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class FlowContext:
    """What an iteration gets: the client, when it should have started, and its parameters."""

    client: Any
    intended_start_s: float = field(default_factory=time.time)
    flow: str = ""
    iteration: int = 0
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


Flow = Callable[[FlowContext], None]
_REGISTRY: dict[str, Flow] = {}


def register_flow(name: str) -> Callable[[Flow], Flow]:
    """Register the decorated callable as the flow `name`."""

    def register(flow: Flow) -> Flow:
        if _REGISTRY.get(name, flow) is not flow:
            raise ValueError(f"flow {name!r} is already registered")
        _REGISTRY[name] = flow
        return flow

    return register


def get_flow(name: str) -> Flow:
    """Return the flow registered as `name`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"unknown flow {name!r} (registered: {known})") from None


def registered_flows() -> Mapping[str, Flow]:
    """Return every registered flow by name."""
    return MappingProxyType(_REGISTRY)
