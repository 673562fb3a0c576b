"""Scenario files (TOML) and the schema that turns them into frozen dataclasses."""
