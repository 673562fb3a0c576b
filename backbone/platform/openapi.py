"""OpenAPI documents generated from the code: responders describe themselves, the router lists them.

Each responder carries an `Operation` (attached with `@describe`), next to the code it describes,
so the document cannot drift from the routes: `build_document` walks every route template of an
app and refuses to build while any responder lacks a description.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import falcon

from backbone.platform.http import JSON, App, CaseInsensitiveRouter, dumps

Schema = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])
METHODS = ("get", "post", "put", "patch", "delete")
_FIELD = re.compile(r"\{(\w+)\}")

# --- schema vocabulary ----------------------------------------------------------------------


def string(*, min_length: int | None = None, max_length: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if min_length is not None:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Schema:
    schema: Schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def boolean() -> Schema:
    return {"type": "boolean"}


def timestamp() -> Schema:
    return {"type": "string", "format": "date-time"}


def binary(*, min_length: int | None = None) -> Schema:
    """Bytes as base64 text (base64url without padding on output; either alphabet on input)."""
    return string(pattern=r"^[A-Za-z0-9+/_-]*={0,2}$", min_length=min_length)


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema, *, min_items: int | None = None, max_items: int | None = None) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if min_items is not None:
        schema["minItems"] = min_items
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


def obj(properties: Mapping[str, Schema], *, optional: Iterable[str] = (), open: bool = True) -> Schema:
    """An object whose properties are all required except the `optional` ones."""
    skipped = set(optional)
    schema: Schema = {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in skipped],
    }
    if not open:
        schema["additionalProperties"] = False
    return schema


def identifier(prefix: str) -> Schema:
    return string(pattern=f"^{prefix}[A-Za-z0-9]{{17}}$")


def address() -> Schema:
    return string(pattern=r"^did:e:((?:[a-z0-9-]+\.)*[a-z]{2,}):dids:[0-9a-f]{22}$", max_length=80)


def envelope(result: Schema) -> Schema:
    """`{"result": ...}`, the success envelope."""
    return obj({"result": result})


def paged(item: Schema) -> Schema:
    """A page: `{"result": [...]}` plus `pagination` when the list spans several pages."""
    pagination = obj(
        {
            "pageNumber": integer(minimum=1),
            "pageSize": integer(minimum=1),
            "totalPages": integer(minimum=1),
            "totalRecords": integer(minimum=0),
        }
    )
    return obj({"result": array(item), "pagination": pagination}, optional=["pagination"])


ERROR = obj(
    {
        "error": obj(
            {
                "id": string(pattern="^ERR[A-Z1-9]{17}$"),
                "code": string(),
                "message": string(),
                "docs": string(),
                "time": string(),
                "data": {},
            }
        )
    }
)
PAGE_QUERY = {
    "pageNumber": integer(minimum=1, maximum=2**31 - 1),
    "pageSize": integer(minimum=1, maximum=200),
}


# --- operations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """What one responder does, takes and answers; `responses` maps status to body (None: empty)."""

    summary: str
    responses: Mapping[int, Schema | None]
    body: Schema | None = None
    body_required: bool = True
    body_type: str = "application/json"
    query: Mapping[str, Schema] = field(default_factory=dict)
    required_query: tuple[str, ...] = ()
    headers: Mapping[str, Schema] = field(default_factory=dict)
    required_headers: tuple[str, ...] = ()
    path: Mapping[str, Schema] = field(default_factory=dict)
    response_type: str = JSON
    tags: tuple[str, ...] = ()


def describe(summary: str, responses: Mapping[int, Schema | None], **details: Any) -> Callable[[F], F]:
    """Attach the OpenAPI description of a responder to it."""
    described = Operation(summary=summary, responses=responses, **details)

    def attach(responder: F) -> F:
        responder.__openapi__ = described  # type: ignore[attr-defined]
        return responder

    return attach


def operation_of(resource: object, method: str) -> Operation | None:
    responder = getattr(resource, f"on_{method}", None)
    found: Operation | None = getattr(responder, "__openapi__", None)
    return found


def responders(router: CaseInsensitiveRouter) -> list[tuple[str, str, object]]:
    """Every (template, method, resource) the router dispatches to, methods in lower case."""
    return [
        (template, method, resource)
        for template, resource in router.routes
        for method in METHODS
        if hasattr(resource, f"on_{method}")
    ]


class UndescribedRoutes(Exception):
    """Some responders have no `@describe`; the document would lie by omission."""


@dataclass(frozen=True)
class Security:
    """How an app authenticates: its schemes, and which requirement applies to a responder."""

    schemes: Mapping[str, Schema]
    requirement: Callable[[object, str], list[dict[str, list[str]]]]


def build_document(
    app: App,
    *,
    title: str,
    version: str,
    description: str,
    security: Security,
    hidden: Iterable[str] = (),
) -> Schema:
    """Build the OpenAPI 3.1 document of every route of `app`, except the `hidden` templates.

    Hidden are only routes that are not part of the API (infrastructure: health, metrics; pages)
    and those the original hides from its document.
    """
    router = app._router
    if not isinstance(router, CaseInsensitiveRouter):
        raise TypeError("build_document needs an app on the backbone's CaseInsensitiveRouter")
    paths: dict[str, dict[str, Any]] = {}
    missing = []
    skipped = set(hidden)
    for template, method, resource in responders(router):
        if template in skipped:
            continue
        found = operation_of(resource, method)
        if found is None:
            missing.append(f"{method.upper()} {template}")
            continue
        requirement = security.requirement(resource, method.upper())
        paths.setdefault(template, {})[method] = _operation(template, method, found, requirement)
    if missing:
        raise UndescribedRoutes("responders without @describe: " + ", ".join(sorted(missing)))
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": dict(sorted(paths.items())),
        "components": {"securitySchemes": dict(security.schemes)},
    }


def _operation(
    template: str, method: str, found: Operation, requirement: list[dict[str, list[str]]]
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for name in _FIELD.findall(template):
        schema = found.path.get(name, string(min_length=1))
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, schema in found.query.items():
        parameters.append(
            {"name": name, "in": "query", "required": name in found.required_query, "schema": schema}
        )
    for name, schema in found.headers.items():
        parameters.append(
            {"name": name, "in": "header", "required": name in found.required_headers, "schema": schema}
        )
    responses: dict[str, Any] = {}
    for status, body in sorted(found.responses.items()):
        responses[str(status)] = _response(status, body, found.response_type)
    # Every route can refuse input; routes with fields can miss their record; guarded ones need auth.
    defaults = [400] + ([404] if "{" in template else []) + ([401] if requirement else [])
    for status in defaults:
        responses.setdefault(str(status), _response(status, ERROR, JSON))
    described: dict[str, Any] = {
        "summary": found.summary,
        "operationId": _operation_id(method, template),
        "parameters": parameters,
        "responses": responses,
        "security": requirement,
    }
    if found.tags:
        described["tags"] = list(found.tags)
    if found.body is not None:
        described["requestBody"] = {
            "required": found.body_required,
            "content": {found.body_type: {"schema": found.body}},
        }
    return described


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request"}
_REASONS.update({401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 503: "Service Unavailable"})


def _response(status: int, schema: Schema | None, content_type: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _REASONS.get(status, str(status))}
    if schema is not None:
        media = content_type if status < 400 else JSON
        response["content"] = {media.split(";")[0]: {"schema": schema}}
    return response


def _operation_id(method: str, template: str) -> str:
    words = [segment.strip("{}") for segment in template.split("/") if segment]
    return method + "".join(word[:1].upper() + word[1:] for word in words)


class OpenApiResource:
    """Serve an app's OpenAPI document (built once, on first request, when all routes exist)."""

    anonymous_methods = frozenset({"GET"})

    def __init__(self, build: Callable[[], Schema]) -> None:
        self._build = build
        self._body: bytes | None = None

    @describe("This OpenAPI document", {200: {"type": "object"}})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._body is None:
            self._body = dumps(self._build())
        resp.content_type = JSON
        resp.data = self._body
