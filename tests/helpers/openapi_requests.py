"""Requests built from an OpenAPI document: every operation, and every place a text goes into one.

A request is a plausible one (enum values, ids and addresses of the right shape, base64, dates in
the future), so that text put into one place meets the code behind the validation of the others
as often as the document allows.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

Schema = dict[str, Any]
JsonPath = tuple[str | int, ...]
_ID_PATTERN = re.compile(r"^\^([A-Z]{3})\[A-Za-z0-9\]\{17\}\$$")
_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    parameters: tuple[Schema, ...]
    body_type: str | None
    body_schema: Schema | None

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(frozen=True)
class Slot:
    """Where a text goes: a path field or query parameter by name, or a place in the body.

    A body place is a path of keys and positions; `KEY` as its last step names a new property
    whose name is the text.
    """

    location: str  # "path", "query" or "body"
    name: str = ""
    place: JsonPath = ()

    def __str__(self) -> str:
        return f"{self.location} {self.name or '/'.join(map(str, self.place)) or '$'}"


KEY = "<new property>"


@dataclass
class Known:
    """Values a request may carry where the document asks for them (the caller's own address)."""

    address: str = "did:e:localhost:dids:0123456789abcdef012345"
    ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query_string: str
    body: bytes
    content_type: str | None


def operations(document: Schema) -> list[Operation]:
    """Every operation of the document, in the document's order."""
    found = []
    for template, item in document["paths"].items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            content = operation.get("requestBody", {}).get("content", {})
            body_type, body_schema = next(iter(content.items()), (None, None))
            schema = body_schema["schema"] if body_schema else None
            found.append(
                Operation(method.upper(), template, tuple(operation.get("parameters", [])), body_type, schema)
            )
    return found


def text_slots(operation: Operation, known: Known) -> list[Slot]:
    """Every place of the operation where the document says a text goes."""
    slots = []
    for parameter in operation.parameters:
        schema = parameter.get("schema", {})
        if parameter["in"] in ("path", "query") and _is_text(schema):
            slots.append(Slot(parameter["in"], parameter["name"]))
    if operation.body_schema is not None:
        body = skeleton(operation.body_schema, known)
        slots += [Slot("body", place=place) for place in _text_places(operation.body_schema, body, ())]
        if isinstance(body, dict):
            slots.append(Slot("body", place=(KEY,)))
    return slots


def build_request(operation: Operation, known: Known, slot: Slot | None = None, text: str = "") -> Request:
    """The operation's plausible request, with `text` in `slot`."""
    path = operation.template
    query: list[tuple[str, str]] = []
    for parameter in operation.parameters:
        name, schema = parameter["name"], parameter.get("schema", {})
        value = text if slot == Slot(parameter["in"], name) else skeleton(schema, known)
        if parameter["in"] == "path":
            path = path.replace("{" + name + "}", _encode(str(value)))
        elif parameter["in"] == "query" and (parameter.get("required") or slot == Slot("query", name)):
            values = value if isinstance(value, list) else [value]
            query += [(name, str(item)) for item in values]
    body, content_type = b"", None
    if operation.body_schema is not None:
        value = skeleton(operation.body_schema, known)
        if slot is not None and slot.location == "body":
            # A new property gets a value the schema allows (a map's values), so that its name is tried.
            values = operation.body_schema.get("additionalProperties")
            extra = skeleton(values, known) if isinstance(values, dict) else "plausible"
            value = _placed(value, slot.place, text, extra)
        body, content_type = _encoded_body(operation.body_type or "application/json", value)
    query_string = "&".join(f"{_encode(name)}={_encode(value)}" for name, value in query)
    return Request(operation.method, path, query_string, body, content_type)


def skeleton(schema: Schema, known: Known) -> Any:
    """A plausible value of the schema."""
    if "anyOf" in schema:
        variants = [variant for variant in schema["anyOf"] if variant.get("type") != "null"]
        return skeleton(variants[0], known) if variants else None
    kind = schema.get("type")
    if kind == "object":
        return {name: skeleton(item, known) for name, item in schema.get("properties", {}).items()}
    if kind == "array":
        return [skeleton(schema.get("items", {}), known) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    if kind == "string":
        return _text_value(schema, known)
    return None


def _text_value(schema: Schema, known: Known) -> str:
    if schema.get("enum"):
        return str(schema["enum"][0])
    if schema.get("format") == "date-time":
        return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if schema.get("format") == "binary":
        return "content"
    pattern = schema.get("pattern", "")
    if pattern.startswith("^did:e:"):
        return known.address
    if match := _ID_PATTERN.match(pattern):
        prefix = match.group(1)
        return known.ids.get(prefix, prefix + uuid.uuid4().hex[:17])
    if pattern.startswith("^[A-Za-z0-9+/_-]"):
        return "QUFBQUFBQUFBQUFBQUFBQQ"  # base64 of 16 bytes, longer than any field's minimum
    length = max(schema.get("minLength", 0), 12)
    return ("plausible-" * 8)[: min(length, schema.get("maxLength", length))]


def _is_text(schema: Schema) -> bool:
    return schema.get("type") == "string" or (
        schema.get("type") == "array" and schema.get("items", {}).get("type") == "string"
    )


def _text_places(schema: Schema, value: Any, place: JsonPath) -> list[JsonPath]:
    if "anyOf" in schema:
        variants = [variant for variant in schema["anyOf"] if variant.get("type") != "null"]
        return _text_places(variants[0], value, place) if variants else []
    kind = schema.get("type")
    if kind == "string" and schema.get("format") != "binary":
        return [place]
    if kind == "object" and isinstance(value, dict):
        places = []
        for name, item in schema.get("properties", {}).items():
            places += _text_places(item, value[name], (*place, name))
        return places
    if kind == "array" and isinstance(value, list) and value:
        return _text_places(schema.get("items", {}), value[0], (*place, 0))
    return []


def _placed(value: Any, place: JsonPath, text: str, extra: Any) -> Any:
    """A copy of `value` with `text` at `place` (for `KEY`: the name of a new property valued `extra`)."""
    if not place:
        return text
    step, rest = place[0], place[1:]
    if step == KEY:
        return {**value, text: extra}
    if isinstance(value, list) and isinstance(step, int):
        return [
            _placed(item, rest, text, extra) if position == step else item
            for position, item in enumerate(value)
        ]
    return {**value, step: _placed(value[step], rest, text, extra)}


def _encoded_body(body_type: str, value: Any) -> tuple[bytes, str]:
    if body_type == "application/x-www-form-urlencoded":
        form = "&".join(f"{_encode(name)}={_encode(str(item))}" for name, item in value.items())
        return form.encode("ascii"), body_type
    if body_type == "multipart/form-data":
        boundary = "hostile-" + uuid.uuid4().hex
        parts = b""
        for name, item in value.items():
            disposition = f'form-data; name="{name}"' + (
                '; filename="content.bin"' if name == "content" else ""
            )
            parts += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
            parts += str(item).encode("utf-8", errors="surrogatepass") + b"\r\n"
        return parts + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
    # ensure_ascii writes an unpaired surrogate as its \u escape, as a JSON client would.
    return json.dumps(value).encode("ascii"), "application/json"


def _encode(text: str) -> str:
    """Percent-encode UTF-8; an unpaired surrogate goes as the bytes a careless encoder would send."""
    return quote(text, safe="", encoding="utf-8", errors="surrogatepass")
