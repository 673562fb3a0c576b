"""A small, safe subset of OData query options, parsed into values (never into SQL text).

Supported: `$filter` with `eq`, `gt`, `lt` joined by `and` on declared fields, `$orderby` of one
declared field (`asc`/`desc`), `$top` (at most 100), `$skip` and `$count=true`. Anything else is
refused with a 400 that names what is not supported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from backbone.platform.encoding import parse_datetime
from backbone.platform.errors import DomainError

MAX_TOP = 100
_TOKEN = re.compile(r"\s*('(?:[^']|'')*'|[^\s']+)")
_OPERATORS = ("eq", "gt", "lt")
_SUPPORTED_OPTIONS = ("$filter", "$orderby", "$top", "$skip", "$count")


class FieldType(Enum):
    TEXT = "text"
    DATETIME = "datetime"


@dataclass(frozen=True)
class Comparison:
    field: str
    operator: str
    value: Any


@dataclass(frozen=True)
class ODataQuery:
    filters: tuple[Comparison, ...] = ()
    order_by: str | None = None
    descending: bool = False
    top: int = MAX_TOP
    skip: int = 0
    count: bool = False


def invalid_odata_query(message: str) -> DomainError:
    return DomainError("error.platform.validation.invalidODataQuery", message)


def parse_odata(options: Mapping[str, str], fields: Mapping[str, FieldType]) -> ODataQuery:
    """Parse the query options (names as sent, `$` included) against the declared fields."""
    unknown = sorted(
        name for name in options if name.startswith("$") and name.lower() not in _SUPPORTED_OPTIONS
    )
    if unknown:
        raise invalid_odata_query(
            f"The query options {', '.join(unknown)} are not supported; use {', '.join(_SUPPORTED_OPTIONS)}."
        )
    lowered = {name.lower(): value for name, value in options.items()}
    order_by, descending = _order_by(lowered.get("$orderby"), fields)
    return ODataQuery(
        filters=_filter(lowered.get("$filter"), fields),
        order_by=order_by,
        descending=descending,
        top=_number(lowered.get("$top"), "$top", MAX_TOP, maximum=MAX_TOP),
        skip=_number(lowered.get("$skip"), "$skip", 0, maximum=2**31 - 1),
        count=_count(lowered.get("$count")),
    )


def _filter(text: str | None, fields: Mapping[str, FieldType]) -> tuple[Comparison, ...]:
    if text is None or not text.strip():
        return ()
    tokens = _tokens(text)
    comparisons = []
    position = 0
    while True:
        if position + 3 > len(tokens):
            raise invalid_odata_query("$filter: expected '<field> eq|gt|lt <value>' joined by 'and'.")
        name, operator, literal = tokens[position : position + 3]
        field = _field(name, fields, "$filter")
        if operator.lower() not in _OPERATORS:
            raise invalid_odata_query(
                f"$filter: the operator '{operator}' is not supported; use eq, gt or lt."
            )
        comparisons.append(Comparison(field, operator.lower(), _literal(literal, fields[field], field)))
        position += 3
        if position == len(tokens):
            return tuple(comparisons)
        if tokens[position].lower() != "and":
            raise invalid_odata_query(
                f"$filter: expected 'and' but found '{tokens[position]}'; only 'and' is supported."
            )
        position += 1


def _tokens(text: str) -> list[str]:
    tokens = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise invalid_odata_query("$filter: a text value is missing its closing quote.")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _field(name: str, fields: Mapping[str, FieldType], option: str) -> str:
    for declared in fields:
        if declared.lower() == name.lower():
            return declared
    raise invalid_odata_query(f"{option}: '{name}' is not one of the fields {', '.join(fields)}.")


def _literal(literal: str, kind: FieldType, field: str) -> str | datetime:
    if kind is FieldType.TEXT:
        if len(literal) < 2 or not (literal.startswith("'") and literal.endswith("'")):
            raise invalid_odata_query(f"$filter: '{field}' takes a quoted text, like '{field} eq 'value''.")
        return literal[1:-1].replace("''", "'")
    try:
        return parse_datetime(literal)
    except ValueError:
        raise invalid_odata_query(
            f"$filter: '{literal}' is not a date and time (like 2025-01-31T12:00:00Z)."
        ) from None


def _order_by(text: str | None, fields: Mapping[str, FieldType]) -> tuple[str | None, bool]:
    if text is None or not text.strip():
        return None, False
    parts = text.split()
    if len(parts) > 2 or "," in text:
        raise invalid_odata_query(
            "$orderby: only one field, optionally followed by asc or desc, is supported."
        )
    field = _field(parts[0], fields, "$orderby")
    direction = parts[1].lower() if len(parts) == 2 else "asc"
    if direction not in ("asc", "desc"):
        raise invalid_odata_query(f"$orderby: '{parts[1]}' is neither asc nor desc.")
    return field, direction == "desc"


def _number(text: str | None, option: str, default: int, *, maximum: int) -> int:
    if text is None or text == "":
        return default
    if not re.fullmatch(r"[0-9]{1,12}", text):
        raise invalid_odata_query(f"{option}: '{text}' is not a non-negative integer.")
    value = int(text)
    if value > maximum:
        raise invalid_odata_query(f"{option}: at most {maximum} is allowed.")
    return value


def _count(text: str | None) -> bool:
    if text is None or text.lower() == "false":
        return False
    if text.lower() == "true":
        return True
    raise invalid_odata_query(f"$count: '{text}' is neither true nor false.")
