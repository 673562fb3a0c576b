"""How a feature module plugs into the backbone (warehouse's `includeme`).

Each module has one function, `include_<module>(config, ...)` in its `module.py`: it builds the
module's services from the shared parts on the `ModuleConfig` and from what it needs of other
modules (keyword arguments), subscribes its event handlers and registers its routes of both
APIs, and returns its services. `wiring.build_services` calls the includes in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from backbone.platform.clock import Clock
from backbone.platform.db import Database
from backbone.platform.events import EventBus, Handler, Outbox
from backbone.platform.http import App
from backbone.platform.ids import Ids
from backbone.settings import Settings

# Adds a module's routes to an app; called when the app is created, after every include.
AddRoutes = Callable[[App], None]


@dataclass
class ModuleConfig:
    """What every module's include gets, and where it registers its handlers and routes."""

    settings: Settings
    db: Database
    outbox: Outbox
    clock: Clock
    ids: Ids
    bus: EventBus
    handlers: list[Handler] = field(default_factory=list)
    consumer_routes: list[AddRoutes] = field(default_factory=list)
    admin_routes: list[AddRoutes] = field(default_factory=list)

    def subscribe(self, handlers: Iterable[Handler]) -> None:
        """Subscribe the module's handlers; the in-process bus runs those of one event in this order."""
        for handler in handlers:
            self.bus.subscribe(handler)
            self.handlers.append(handler)

    def add_consumer_routes(self, add: AddRoutes) -> None:
        self.consumer_routes.append(add)

    def add_admin_routes(self, add: AddRoutes) -> None:
        self.admin_routes.append(add)
