"""Configuration documents in the original's layout (JSON sections whose property names match
case-insensitively, as its configuration binding does): read every problem at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")


@dataclass(frozen=True)
class Section:
    """An object of the file: its properties by their known names, and where it is."""

    values: dict[str, Any]
    path: str

    def at(self, name: str) -> str:
        return f"{self.path}.{name}"


class DocumentReader:
    """Walk the document, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def section(self, value: Any, path: str, known: tuple[str, ...]) -> Section:
        """An object whose keys match `known` case-insensitively; other keys are refused (typos)."""
        if not isinstance(value, dict):
            self.problems.append(f"{path} must be an object")
            return Section({}, path)
        names = {name.lower(): name for name in known}
        found: dict[str, Any] = {}
        for key, item in value.items():
            name = names.get(key.lower())
            if name is None:
                self.problems.append(f"{path}.{key} is not known (known: {', '.join(known)})")
            else:
                found[name] = item
        return Section(found, path)

    def optional(
        self, section: Section, name: str, read: Callable[[DocumentReader, Any, str], _T]
    ) -> _T | None:
        value = section.values.get(name)
        return None if value is None else read(self, value, section.at(name))

    def text(
        self,
        section: Section,
        name: str,
        *,
        default: str | None = None,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        value = section.values.get(name, default)
        if not isinstance(value, str) or not value.strip():
            self.problems.append(f"{section.at(name)} must be a non-empty string")
            return ""
        if pattern is not None and not pattern.match(value):
            self.problems.append(f"{section.at(name)}: '{value[:60]}' does not match {pattern.pattern}")
        return value

    def texts(self, section: Section, name: str) -> tuple[str, ...]:
        value = section.values.get(name)
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            self.problems.append(f"{section.at(name)} must be a list of non-empty strings")
            return ()
        return tuple(value)

    def items(self, section: Section, name: str) -> list[tuple[Any, str]]:
        value = section.values.get(name)
        if not isinstance(value, list):
            self.problems.append(f"{section.at(name)} must be a list")
            return []
        return [(item, f"{section.at(name)}[{position}]") for position, item in enumerate(value)]

    def named(self, section: Section, name: str) -> list[tuple[str, Any, str]]:
        """The entries of an object whose keys are names the operator chose (`"Keys": {"main": ...}`)."""
        value = section.values.get(name)
        if not isinstance(value, dict):
            self.problems.append(f"{section.at(name)} must be an object of named entries")
            return []
        return [(str(key), item, f"{section.at(name)}.{key}") for key, item in value.items()]

    def boolean(self, section: Section, name: str, *, default: bool) -> bool:
        value = section.values.get(name, default)
        if not isinstance(value, bool):
            self.problems.append(f"{section.at(name)} must be true or false")
            return default
        return value
