"""Read typed values out of TOML configuration files, collecting every problem at once.

Scenarios (`schema.py`), landscape profiles (`landscape.py`) and pool configs (`pool_schema.py`)
are all read with `ConfigReader`: each problem is one line naming the file, the key and what is
wrong, ``scenarios/x.toml: flows[0].rate_per_s: must be a number > 0, got -3``, and a file with
problems raises its schema's `ConfigError` with all of them.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

# How an unknown key is reported; `{known}` lists the keys allowed there.
UNKNOWN_KEY = "unknown key (allowed: {known})"


class ConfigError(Exception):
    """A configuration file is unreadable or invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_toml(text: str, source: Path, error: type[ConfigError]) -> dict[str, Any]:
    """Parse TOML text, or raise `error` with the one line that says where the syntax breaks."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as decode_error:
        raise error([f"{source}: (syntax): not valid TOML: {decode_error}"]) from None


class ConfigReader:
    """Read typed values from TOML tables, collecting every problem with its key path.

    Each getter takes the table, the key path of the table (`prefix`, "" at the top level) and
    the key; on a problem it records it and returns a stand-in (the default, or NaN), so reading
    goes on and every problem of the file is found.
    """

    def __init__(self, source: Path, *, unknown_key: str = UNKNOWN_KEY) -> None:
        self.source = source
        self.problems: list[str] = []
        self._unknown_key = unknown_key

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.source}: {key or '(top level)'}: {text}")

    def raise_problems(self, error: type[ConfigError]) -> None:
        if self.problems:
            raise error(self.problems)

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        self.problem(key, f"must be a table, got {show(value)}")
        return {}

    def only(self, table: Mapping[str, Any], prefix: str, allowed: Collection[str]) -> None:
        for name in table:
            if name not in allowed:
                self.problem(join(prefix, name), self._unknown_key.format(known=", ".join(allowed)))

    def text(
        self,
        table: Mapping[str, Any],
        prefix: str,
        name: str,
        default: str | None = None,
        *,
        non_empty: bool = True,
    ) -> str:
        """A string; `default` None: the key is required."""
        value = table.get(name, default)
        if value is None:
            self.problem(join(prefix, name), "is required")
            return ""
        if isinstance(value, str) and (value.strip() or not non_empty):
            return value
        kind = "a non-empty string" if non_empty else "a string"
        self.problem(join(prefix, name), f"must be {kind}, got {show(value)}")
        return default or ""

    def number(
        self,
        table: Mapping[str, Any],
        prefix: str,
        name: str,
        default: float | None = None,
        *,
        minimum: float = 0.0,
        inclusive: bool = False,
    ) -> float:
        """A finite number above `minimum` (or at it, `inclusive`); `default` None: required."""
        value = table.get(name, default)
        key = join(prefix, name)
        if value is None:
            self.problem(key, "is required")
            return math.nan
        if not is_number(value):
            self.problem(key, f"must be a number, got {show(value)}")
            return math.nan
        if value < minimum or (value == minimum and not inclusive):
            bound = f"{'>=' if inclusive else '>'} {minimum:g}"
            self.problem(key, f"must be a number {bound}, got {show(value)}")
            return math.nan
        return float(value)

    def ratio(self, table: Mapping[str, Any], prefix: str, name: str, default: float | None) -> float | None:
        """A number from 0 to 1 (a share or a failure ratio), or None when absent without default."""
        value = table.get(name, default)
        if value is None:
            return None
        if not is_number(value) or not 0 <= value <= 1:
            self.problem(join(prefix, name), f"must be a number from 0 to 1, got {show(value)}")
            return default
        return float(value)

    def integer(
        self,
        table: Mapping[str, Any],
        prefix: str,
        name: str,
        default: int,
        *,
        minimum: int,
        maximum: int | None = None,
    ) -> int:
        value = table.get(name, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
            self.problem(join(prefix, name), f"must be an integer {bound}, got {show(value)}")
            return default
        return value

    def boolean(self, table: Mapping[str, Any], prefix: str, name: str, default: bool) -> bool:
        value = table.get(name, default)
        if isinstance(value, bool):
            return value
        self.problem(join(prefix, name), f"must be true or false, got {show(value)}")
        return default

    def choice(
        self,
        table: Mapping[str, Any],
        prefix: str,
        name: str,
        default: str | None,
        choices: Collection[str],
    ) -> str:
        """One of `choices`; `default` None: the key is required."""
        value = table.get(name, default)
        if value is None:
            self.problem(join(prefix, name), f"is required (one of {', '.join(choices)})")
            return ""
        if value in choices:
            return str(value)
        self.problem(join(prefix, name), f"must be one of {', '.join(choices)}, got {show(value)}")
        return default or ""


def is_number(value: Any) -> bool:
    """A TOML integer or float that is finite (TOML booleans are not numbers here)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def show(value: Any) -> str:
    """A value as the problem line quotes it (repr, shortened)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
