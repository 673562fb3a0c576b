"""The message limits are settings with the development defaults and the original's bounds."""

from __future__ import annotations

import pytest

from backbone.settings import Settings, SettingsError


def test_message_limits_default_to_the_development_values() -> None:
    settings = Settings.from_env({})
    assert settings.max_message_recipients == 20
    assert settings.max_unreceived_messages_from_one_sender == 20


def test_message_limits_are_read_and_bounded() -> None:
    settings = Settings.from_env(
        {"BACKBONE_MAX_MESSAGE_RECIPIENTS": "5", "BACKBONE_MAX_UNRECEIVED_MESSAGES_FROM_ONE_SENDER": "100"}
    )
    assert (settings.max_message_recipients, settings.max_unreceived_messages_from_one_sender) == (5, 100)
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "BACKBONE_MAX_MESSAGE_RECIPIENTS": "0",
                "BACKBONE_MAX_UNRECEIVED_MESSAGES_FROM_ONE_SENDER": "101",
            }
        )
    assert raised.value.problems == [
        "BACKBONE_MAX_MESSAGE_RECIPIENTS: 0 is outside 1..1000",
        "BACKBONE_MAX_UNRECEIVED_MESSAGES_FROM_ONE_SENDER: 101 is outside 1..100",
    ]
