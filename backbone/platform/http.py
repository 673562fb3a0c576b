"""The HTTP conventions of the backbone, in one place.

Envelopes and the status mapping of domain errors, case-insensitive literal path segments,
case-insensitive JSON property and query names, lenient base64 input, paging, and the
middleware every API process shares (timing headers, bearer authentication, body limits).
Every text a request brings (path fields, query, JSON, forms) passes `refuse_unstorable` here,
so no route can hand the database a string it cannot store.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import parse_qs

import falcon
import orjson
from falcon.routing import CompiledRouter
from gunicorn.http.errors import NoMoreData, ParseException

from backbone.platform.auth import Principal
from backbone.platform.crypto import is_valid_address
from backbone.platform.db import DATABASE_UNAVAILABLE, Page, Paged
from backbone.platform.encoding import b64decode_lenient, b64url, format_datetime, parse_datetime
from backbone.platform.errors import (
    DomainError,
    InvalidId,
    InvalidInput,
    InvalidPropertyValue,
    Unauthenticated,
)
from backbone.platform.ids import is_valid_id, new_error_id
from backbone.platform.metrics import UNMATCHED_ROUTE, Metrics
from backbone.platform.tracing import Tracing

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Enum)
App = falcon.App[falcon.Request, falcon.Response]

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
JSON = "application/json; charset=utf-8"


# --- rendering ------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b64url(bytes(value))
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """Serialise with the backbone's formats: ms-precision UTC datetimes, base64url bytes."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def send(resp: falcon.Response, result: Any, status: int = 200) -> None:
    """Answer with `{"result": ...}`."""
    resp.status = status
    resp.content_type = JSON
    resp.data = dumps({"result": result})


def send_page(resp: falcon.Response, paged: Paged, render: Callable[[Any], Any]) -> None:
    """Answer with a page; `pagination` is left out when everything fits on one page."""
    body: dict[str, Any] = {"result": [render(item) for item in paged.items]}
    if paged.total_pages > 1:
        body["pagination"] = {
            "pageNumber": paged.page.number,
            "pageSize": paged.page.size,
            "totalPages": paged.total_pages,
            "totalRecords": paged.total_records,
        }
    resp.status = 200
    resp.content_type = JSON
    resp.data = dumps(body)


def no_content(resp: falcon.Response) -> None:
    resp.status = 204
    resp.data = b""


def error_body(code: str, message: str, data: Any = None) -> bytes:
    now = datetime.now(UTC)
    return dumps(
        {
            "error": {
                "id": new_error_id(),
                "code": code,
                "message": message,
                "docs": "",
                # The original writes this one with .NET's default 7 fractional digits.
                "time": now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z",
                "data": data,
            }
        }
    )


def _send_error(resp: falcon.Response, status: int, code: str, message: str, data: Any = None) -> None:
    resp.status = status
    resp.content_type = JSON
    resp.data = error_body(code, message, data)


# --- errors ---------------------------------------------------------------------------------

_HTTP_ERROR_CODES = {
    404: ("error.platform.routeNotFound", "No route matches this path."),
    405: ("error.platform.methodNotAllowed", "This route does not accept the method."),
    413: ("error.platform.requestBodyTooLarge", "The request body is too large."),
    415: ("error.platform.unsupportedMediaType", "The request's content type is not supported."),
}


def _handle_domain_error(req: falcon.Request, resp: falcon.Response, error: DomainError, _: Any) -> None:
    # The telemetry middleware counts refusals by code (quota rejections) without parsing bodies.
    req.context.error_code = error.code
    _send_error(resp, error.status, error.code, error.message, error.data)


def _handle_unauthenticated(req: falcon.Request, resp: falcon.Response, _e: Exception, _: Any) -> None:
    resp.set_header("WWW-Authenticate", 'Bearer error="invalid_token"')
    _send_error(
        resp,
        401,
        "error.platform.unauthorized",
        "You have to authenticate in order to execute this action. Further make sure that the auth "
        "token has not expired.",
    )


def _handle_http_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError, _: Any) -> None:
    status = error.status_code
    known = _HTTP_ERROR_CODES.get(status)
    code, message = known or ("error.platform.invalidRequest", error.description or "The request is invalid.")
    for name, value in dict(error.headers or {}).items():
        resp.set_header(name, value)
    _send_error(resp, status, code, message)


def _handle_unexpected(req: falcon.Request, resp: falcon.Response, error: Exception, _: Any) -> None:
    log.error("unexpected error on %s %s", req.method, req.path, exc_info=error)
    _send_error(resp, 500, "error.platform.unexpected", "An unexpected error occurred.")


def _handle_unreadable_body(req: falcon.Request, resp: falcon.Response, error: Exception, _: Any) -> None:
    # gunicorn raises these while the app reads a chunked body that is malformed or broken off.
    message = f"'$': The request body cannot be read ({type(error).__name__})."
    _send_error(resp, 400, "error.platform.inputCannotBeParsed", message)


def _handle_database_unavailable(
    req: falcon.Request, resp: falcon.Response, error: Exception, _: Any
) -> None:
    # No stack trace: the cause is outside this process, and an outage would flood the log.
    log.warning("database unavailable on %s %s: %s", req.method, req.path, type(error).__name__)
    resp.set_header("Retry-After", "5")
    _send_error(
        resp, 503, "error.platform.serviceUnavailable", "The service is unavailable; try again later."
    )


# --- routing --------------------------------------------------------------------------------


class CaseInsensitiveRouter(CompiledRouter):
    """Match literal path segments regardless of case; field values keep their case.

    The official client calls `/Files/{id}/metadata` where the route says `Metadata`, and the
    original (ASP.NET) matches routes case-insensitively. IDs are case-sensitive, so field
    values are taken from the original path, by position.
    """

    def __init__(self) -> None:
        super().__init__()
        self._original_templates: dict[str, str] = {}
        self._resources: dict[str, object] = {}

    def add_route(self, uri_template: str, resource: object, **kwargs: Any) -> None:
        segments = uri_template.split("/")
        for segment in segments:
            if "{" in segment and not (segment.startswith("{") and segment.endswith("}")):
                raise ValueError(f"{uri_template}: a field must fill its whole path segment")
        lowered = "/".join(s if s.startswith("{") else s.lower() for s in segments)
        self._original_templates[lowered] = uri_template
        self._resources[uri_template] = resource
        super().add_route(lowered, resource, **kwargs)

    def find(self, uri: str, req: falcon.Request | None = None) -> Any:
        found = super().find(uri.lower(), req)
        if found is None:
            return None
        resource, method_map, params, lowered_template = found
        template = self._original_templates.get(lowered_template or "", lowered_template)
        if params and template:
            values = uri.split("/")
            params = {
                segment[1:-1]: values[position]
                for position, segment in enumerate(template.split("/"))
                if segment.startswith("{") and position < len(values)
            }
        return resource, method_map, params, template

    @property
    def templates(self) -> list[str]:
        """Every registered route template, as written (used by route-enumerating tests)."""
        return sorted(self._original_templates.values())

    @property
    def routes(self) -> list[tuple[str, object]]:
        """Every (template as written, resource), sorted by template (OpenAPI, route tests)."""
        return sorted(self._resources.items(), key=lambda item: item[0])


# --- middleware -----------------------------------------------------------------------------


QUOTA_EXHAUSTED = "error.platform.quotaExhausted"


class RequestTelemetry:
    """Trace, timing, correlation and security headers on every response; request metrics and span.

    First in the middleware list, so it sees every request, including those refused by later
    middleware or answered by an error handler.
    """

    def __init__(self, metrics: Metrics | None, tracing: Tracing) -> None:
        self._metrics = metrics
        self._tracing = tracing

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        context = req.context
        context.started = time.perf_counter()
        context.request_time = datetime.now(UTC)
        context.correlation_id = req.get_header("X-Correlation-ID") or uuid.uuid4().hex
        context.trace = self._tracing.start_request(
            req.method, req.get_header("traceparent"), req.get_header("tracestate")
        )
        if self._metrics is not None:
            self._metrics.request_started()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        context = req.context
        started = getattr(context, "started", None)
        if started is None:
            return
        duration_s = time.perf_counter() - started
        status = resp.status_code
        route = req.uri_template
        metrics = self._metrics
        if metrics is not None:
            metrics.request_finished(route, req.method, status, duration_s)
            if status == 429 and getattr(context, "error_code", None) == QUOTA_EXHAUSTED:
                metrics.quota_rejections.labels(route or UNMATCHED_ROUTE).inc()
        self._tracing.end_request(context.trace, route, status)
        resp.set_header("X-Trace-Id", context.trace.trace_id)
        resp.set_header("X-Correlation-Id", context.correlation_id)
        resp.set_header("X-Request-Time", format_datetime(context.request_time))
        resp.set_header("X-Response-Time", format_datetime(datetime.now(UTC)))
        resp.set_header("X-Response-Duration-ms", str(int(duration_s * 1000)))
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("X-Frame-Options", "Deny")
        resp.set_header("Strict-Transport-Security", "max-age=5184000; includeSubDomains")


class BodyLimit:
    """Refuse bodies that announce more than the limit before reading them.

    A chunked body announces nothing; `read_body` counts it against the same limit.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.content_length is not None and req.content_length > self.max_bytes:
            raise body_too_large(self.max_bytes)
        req.context.max_body_bytes = self.max_bytes


def body_too_large(max_bytes: int) -> DomainError:
    # 400 as in the original (Kestrel's BadHttpRequestException), which the official client reads.
    return DomainError(
        "error.platform.requestBodyTooLarge",
        f"The request body is larger than the maximum of {max_bytes} bytes.",
    )


class StorableText:
    """Refuse path fields and query parameters holding text the database cannot store.

    Last in every app's middleware, so an unauthenticated request is still told 401 first.
    """

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        if resource is None:
            return  # no route: 404, and nothing reads the request
        for name, value in params.items():
            if isinstance(value, str):
                refuse_unstorable(value, name)
        for name, values in req.params.items():
            refuse_unstorable(name, name)
            for value in values if isinstance(values, list) else [values]:
                refuse_unstorable(value, name)


class BearerAuthentication:
    """Attach the caller's principal; refuse with 401 where the responder needs one.

    Resources name the methods that work without a token in `anonymous_methods`. A bad token on
    such a method is ignored, as ASP.NET does for anonymous actions.
    """

    def __init__(self, verify: Callable[[str], Principal | None]) -> None:
        self._verify = verify

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        principal = None
        header = req.get_header("Authorization")
        if header and header[:7].lower() == "bearer ":
            principal = self._verify(header[7:].strip())
        req.context.principal = principal
        if principal is None and resource is not None:
            anonymous: frozenset[str] = getattr(resource, "anonymous_methods", frozenset())
            # Methods the resource lacks fall through to Falcon's 405, which needs no token.
            responds = hasattr(resource, f"on_{req.method.lower()}")
            if responds and req.method not in anonymous:
                raise Unauthenticated()


def principal_of(req: falcon.Request) -> Principal:
    """The authenticated caller (the middleware guarantees one on non-anonymous methods)."""
    principal: Principal | None = getattr(req.context, "principal", None)
    if principal is None:
        raise Unauthenticated()
    return principal


def optional_principal(req: falcon.Request) -> Principal | None:
    return getattr(req.context, "principal", None)


def create_app(*, middleware: Iterable[Any], router: CaseInsensitiveRouter | None = None) -> App:
    """Create a Falcon app with the backbone's router, error mapping and JSON handling."""
    app: App = falcon.App(middleware=[*middleware, StorableText()], router=router or CaseInsensitiveRouter())
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.secure_cookies_by_default = False
    json_handler = falcon.media.JSONHandler(
        dumps=lambda value: dumps(value).decode("utf-8"), loads=orjson.loads
    )
    app.req_options.media_handlers.update({falcon.MEDIA_JSON: json_handler})
    app.resp_options.media_handlers.update({falcon.MEDIA_JSON: json_handler})
    app.add_error_handler(Exception, _handle_unexpected)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_error_handler(unavailable, _handle_database_unavailable)
    app.add_error_handler(falcon.HTTPError, _handle_http_error)
    app.add_error_handler(ParseException, _handle_unreadable_body)
    app.add_error_handler(NoMoreData, _handle_unreadable_body)
    app.add_error_handler(Unauthenticated, _handle_unauthenticated)
    app.add_error_handler(DomainError, _handle_domain_error)
    return app


# --- input ----------------------------------------------------------------------------------

# NUL: PostgreSQL's text types cannot hold it. Unpaired surrogates: UTF-8 cannot encode them, so
# neither the database driver nor orjson (answers) accepts them. Other control characters are
# stored and answered (escaped) on both databases, as the original does (docs/decisions.md, Edges).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def refuse_unstorable(value: str, name: str) -> None:
    """Refuse text the database cannot store (400 `invalidPropertyValue`, the same on every database)."""
    # `in` and `isascii` run at memory speed; the pattern only scans text that needs it.
    if "\x00" in value or (not value.isascii() and _UNSTORABLE.search(value)):
        shown = name.replace("\x00", "\\u0000")
        raise InvalidPropertyValue(f"'{shown}' must not contain NUL characters or unpaired surrogates.")


def _refuse_unstorable_json(document: Any) -> None:
    # A loop, not recursion: a body may nest as deep as orjson allows.
    pending: list[tuple[Any, str]] = [(document, "")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            refuse_unstorable(value, path or "$")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{path}.{key}" if path else str(key)
                refuse_unstorable(str(key), name)
                pending.append((item, name))
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{position}]") for position, item in enumerate(value))


def read_body(req: falcon.Request) -> bytes:
    """The whole body, also a chunked one (no Content-Length), within the request body limit."""
    limit: int | None = getattr(req.context, "max_body_bytes", None)
    if req.content_length is None and "chunked" in (req.get_header("Transfer-Encoding") or "").lower():
        # Only a chunked body may be read without a length: the server ends it at its last chunk.
        stream: Any = req.stream
    else:
        stream = req.bounded_stream
    raw: bytes = stream.read(limit + 1 if limit else -1)
    if limit and len(raw) > limit:
        raise body_too_large(limit)
    return raw


def read_form(req: falcon.Request) -> dict[str, str]:
    """Read an `application/x-www-form-urlencoded` body (the last value of a repeated name wins)."""
    return {name: values[-1] for name, values in read_form_fields(req).items()}


def read_form_fields(req: falcon.Request) -> dict[str, list[str]]:
    """Read an `application/x-www-form-urlencoded` body with every value of each name, in order
    (chunked bodies too, within the body limit)."""
    text = read_body(req).decode("utf-8", errors="replace")
    fields = parse_qs(text, keep_blank_values=True)
    for name, values in fields.items():
        refuse_unstorable(name, name)
        for value in values:
            refuse_unstorable(value, name)
    return fields


def read_json(req: falcon.Request, *, required: bool = False) -> JsonObject:
    """Read the body as a JSON object whose property names match case-insensitively."""
    return JsonObject(_read_json_object(req, required=required))


def read_json_members(req: falcon.Request) -> dict[str, Any]:
    """Read a required body that is a JSON object whose property names are data (a map, such as
    feature flags): the names are kept as sent, case included."""
    members = _read_json_object(req, required=True)
    _refuse_unstorable_json(members)
    return members


def _read_json_object(req: falcon.Request, *, required: bool) -> dict[str, Any]:
    raw = read_body(req)
    if not raw.strip():
        if required:
            raise InvalidInput("'$': A non-empty request body is required.")
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"'$': The request body is not valid JSON ({error.msg}).") from None
    if not isinstance(value, dict):
        raise InvalidInput("'$': The request body must be a JSON object.")
    return value


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object", list: "an array"}


def read_json_value(req: falcon.Request) -> Any:
    """Read a required body that may be any JSON value but null."""
    try:
        value = orjson.loads(read_body(req))
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"'$': The request body is not valid JSON ({error.msg}).") from None
    if value is None:
        raise InvalidInput("'$': The request body must be a JSON value other than null.")
    _refuse_unstorable_json(value)
    return value


class JsonObject:
    """Typed, case-insensitive access to a JSON object, with the backbone's error messages.

    A root object (no `path`) is client input: every key and string in it is checked once, here,
    whether or not a responder reads it.
    """

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        if not path:
            _refuse_unstorable_json(data)
        self._data = {str(key).lower(): value for key, value in data.items()}
        self._path = path

    def name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def has(self, key: str) -> bool:
        return self._data.get(key.lower()) is not None

    def raw(self, key: str) -> Any:
        return self._data.get(key.lower())

    def _typed(self, key: str, kind: type, required: bool) -> Any:
        value = self._data.get(key.lower())
        if value is None:
            if required:
                raise InvalidPropertyValue(f"'{self.name(key)}' must not be empty.")
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidInput(f"'{self.name(key)}': The JSON value must be {_TYPE_NAMES[kind]}.")
        return value

    def text(
        self, key: str, *, required: bool = True, min_length: int = 0, max_length: int | None = None
    ) -> str | None:
        value: str | None = self._typed(key, str, required)
        if value is None:
            return None
        if required and value == "" and min_length > 0:
            raise InvalidPropertyValue(f"'{self.name(key)}' must not be empty.")
        if len(value) < min_length or (max_length is not None and len(value) > max_length):
            bounds = (
                f"between {min_length} and {max_length}"
                if max_length is not None
                else f"at least {min_length}"
            )
            raise InvalidPropertyValue(f"'{self.name(key)}' must be {bounds} characters long.")
        return value

    def required_text(self, key: str, *, min_length: int = 1, max_length: int | None = None) -> str:
        value = self.text(key, required=True, min_length=min_length, max_length=max_length)
        assert value is not None
        return value

    def binary(
        self, key: str, *, required: bool = True, min_bytes: int = 0, max_bytes: int | None = None
    ) -> bytes | None:
        text: str | None = self._typed(key, str, required)
        if text is None:
            return None
        try:
            value = b64decode_lenient(text)
        except ValueError:
            raise InvalidInput(f"'{self.name(key)}': The value is not valid base64.") from None
        if len(value) < min_bytes or (max_bytes is not None and len(value) > max_bytes):
            if not value:
                raise InvalidPropertyValue(f"'{self.name(key)}' must not be empty.")
            upper = f" and {max_bytes}" if max_bytes is not None else ""
            raise InvalidPropertyValue(f"'{self.name(key)}' must be between {min_bytes}{upper} bytes long.")
        return value

    def required_binary(self, key: str, *, min_bytes: int = 1, max_bytes: int | None = None) -> bytes:
        value = self.binary(key, required=True, min_bytes=min_bytes, max_bytes=max_bytes)
        assert value is not None
        return value

    def integer(
        self, key: str, *, required: bool = True, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value: int | None = self._typed(key, int, required)
        if value is None:
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise InvalidPropertyValue(f"'{self.name(key)}' must be between {minimum} and {maximum}.")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value: bool | None = self._typed(key, bool, False)
        return default if value is None else value

    def timestamp(self, key: str, *, required: bool = True) -> datetime | None:
        text: str | None = self._typed(key, str, required)
        if text is None:
            return None
        try:
            return parse_datetime(text)
        except ValueError:
            raise InvalidInput(f"'{self.name(key)}': The value is not a valid date and time.") from None

    def choice(self, key: str, enum: type[E], default: E | None = None) -> E:
        """Read an enum by name (case-insensitive), as the original's string enum converter does."""
        value = self._data.get(key.lower())
        if value is None:
            if default is None:
                raise InvalidPropertyValue(f"'{self.name(key)}' must not be empty.")
            return default
        if isinstance(value, str):
            for member in enum:
                if member.name.lower() == value.lower():
                    return member
        names = ", ".join(member.name for member in enum)
        raise InvalidInput(f"'{self.name(key)}': '{value}' is not one of {names}.")

    def obj(self, key: str, *, required: bool = True) -> JsonObject | None:
        value: dict[str, Any] | None = self._typed(key, dict, required)
        return None if value is None else JsonObject(value, self.name(key))

    def objects(self, key: str, *, required: bool = True) -> list[JsonObject]:
        values: list[Any] | None = self._typed(key, list, required)
        result = []
        for position, value in enumerate(values or []):
            if not isinstance(value, dict):
                raise InvalidInput(f"'{self.name(key)}[{position}]': The JSON value must be an object.")
            result.append(JsonObject(value, f"{self.name(key)}[{position}]"))
        return result


class Query:
    """Query-string access with case-insensitive names and the original's list conventions."""

    def __init__(self, req: falcon.Request) -> None:
        self._params: dict[str, list[str]] = {}
        for key, value in req.params.items():
            values = value if isinstance(value, list) else [value]
            self._params.setdefault(key.lower(), []).extend(values)

    def get(self, name: str) -> str | None:
        values = self._params.get(name.lower())
        return values[-1] if values else None

    def integer(
        self, name: str, default: int | None = None, *, minimum: int = -(2**63), maximum: int = 2**63 - 1
    ) -> int | None:
        """Read an integer; values beyond the bounds (64-bit by default) are refused, not overflowed."""
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidInput(f"'{name}': The value '{raw}' is not valid.") from None
        if not minimum <= value <= maximum:
            raise InvalidInput(f"'{name}': The value '{raw}' is not valid.")
        return value

    def texts(self, name: str) -> list[str]:
        """`name=a&name=b`, or the indexed form `name[0]=a&name[1]=b`."""
        lowered = name.lower()
        values = list(self._params.get(lowered, []))
        position = 0
        while f"{lowered}[{position}]" in self._params:
            values.extend(self._params[f"{lowered}[{position}]"])
            position += 1
        return [value for value in values if value != ""]

    def objects(self, name: str, properties: Iterable[str]) -> list[dict[str, str | None]]:
        """`name.0.id=..&name.0.password=..` (the original's array-of-objects binder)."""
        lowered = name.lower()
        wanted = [prop.lower() for prop in properties]
        result = []
        position = 0
        while any(f"{lowered}.{position}.{prop}" in self._params for prop in wanted):
            result.append({prop: self.get(f"{lowered}.{position}.{prop}") for prop in wanted})
            position += 1
        return result

    def required_address(self, name: str) -> str:
        """An identity address the request is about (admin overviews: `participant`, `createdBy`)."""
        value = self.get(name)
        if not value:
            raise InvalidPropertyValue(f"'{name}' must not be empty.")
        if not is_valid_address(value):
            raise InvalidPropertyValue(f"'{name}' is not a valid identity address.")
        return value

    def page(self) -> Page:
        # The original binds pageNumber to a 32-bit integer; larger values are unparseable there too.
        number = self.integer("pageNumber", 1, maximum=2**31 - 1) or 1
        size = self.integer("pageSize", DEFAULT_PAGE_SIZE) or DEFAULT_PAGE_SIZE
        if size > MAX_PAGE_SIZE:
            raise DomainError(
                "error.platform.validation.pagination.invalidPageSize",
                f"The given page size is too high. The maximum page size is {MAX_PAGE_SIZE}.",
            )
        return Page(number=max(1, number), size=max(1, size))


def checked_id(value: str, prefix: str, name: str = "id") -> str:
    """Refuse ids that cannot be of the given kind before touching the database."""
    if not is_valid_id(value, prefix):
        raise InvalidId(name)
    return value


def query_password(raw: str | None, name: str = "password") -> bytes | None:
    """Decode a `?password=` value (standard base64; a '+' may arrive decoded as a space)."""
    if raw is None or raw == "":
        return None
    try:
        return b64decode_lenient(raw.replace(" ", "+"))
    except ValueError:
        raise InvalidInput(f"'{name}': The value is not valid base64.") from None


def optional_address(body: JsonObject, key: str) -> str | None:
    """Read an identity address property that may be missing."""
    value = body.text(key, required=False)
    if value is None:
        return None
    if not is_valid_address(value):
        raise InvalidPropertyValue(f"'{body.name(key)}' is not a valid identity address.")
    return value
