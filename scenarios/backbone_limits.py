"""The backbone limits the upstream scenarios depend on, from the landscape or the scenario file.

Scenario 08 sends to as many recipients as the landscape allows, and scenario 07 must stay under
the unreceived-message limit: both are settings of the backbone under test, so the figures the
flows use must be the server's. A landscape profile's `[backbone]` table describes the server and
wins; a scenario file's `[backbone]` table is the fallback; the backbone's own defaults come last.
The launcher passes the landscape's table; until then a run uses the scenario's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backbone.settings import PREFIX, Settings

_DEFAULTS = Settings()


@dataclass(frozen=True)
class BackboneLimits:
    """The limits of the backbone under test that shape what the scenarios send."""

    max_message_recipients: int = _DEFAULTS.max_message_recipients
    max_unreceived_messages_from_one_sender: int = _DEFAULTS.max_unreceived_messages_from_one_sender

    def environment(self) -> dict[str, str]:
        """The `BACKBONE_*` variables that give a server these limits."""
        return {
            f"{PREFIX}MAX_MESSAGE_RECIPIENTS": str(self.max_message_recipients),
            f"{PREFIX}MAX_UNRECEIVED_MESSAGES_FROM_ONE_SENDER": str(
                self.max_unreceived_messages_from_one_sender
            ),
        }


def backbone_limits(
    scenario_settings: Mapping[str, Any] | None = None, landscape_settings: Mapping[str, Any] | None = None
) -> BackboneLimits:
    """Merge the limits: landscape `[backbone]` over scenario `[backbone]` over the backbone's defaults.

    Keys are setting names without the prefix (`MAX_MESSAGE_RECIPIENTS`); other keys are ignored,
    since a landscape's table carries every kind of setting.
    """
    values: dict[str, int] = {}
    for source in (scenario_settings or {}, landscape_settings or {}):
        for key, value in source.items():
            name = key.removeprefix(PREFIX).lower()
            if name in ("max_message_recipients", "max_unreceived_messages_from_one_sender"):
                values[name] = int(value)
    return BackboneLimits(**values)
