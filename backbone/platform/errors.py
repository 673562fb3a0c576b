"""Errors the domain raises; `platform.http` turns them into the backbone's error envelope."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class DomainError(Exception):
    """A business rule refused the request (HTTP 400 unless a subclass says otherwise)."""

    status = 400

    def __init__(self, code: str, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class NotFound(DomainError):
    """The record does not exist or the caller may not see it (HTTP 404)."""

    status = 404

    def __init__(self, record: str) -> None:
        super().__init__(
            "error.platform.recordNotFound",
            f"{record} not found. Make sure the ID exists and the record is not expired. If a password "
            "is required to fetch the record, make sure you passed the correct one.",
        )
        self.record = record


class Forbidden(DomainError):
    """The caller is known but lacks the privilege (HTTP 403)."""

    status = 403

    def __init__(self) -> None:
        super().__init__(
            "error.platform.forbidden",
            "You are not allowed to perform this action due to insufficient privileges.",
        )


class QuotaExhausted(DomainError):
    """A quota of the caller is exhausted (HTTP 429); `data` lists the metrics."""

    status = 429

    def __init__(self, exhausted: list[dict[str, Any]]) -> None:
        super().__init__(
            "error.platform.quotaExhausted",
            "You cannot to perform this action because one or more quotas are exhausted.",
            exhausted,
        )


# Raise QuotaExhausted if any of the metrics (keys) of the identity (address) is exhausted.
CheckQuota = Callable[[str, Sequence[str]], None]


def no_quota_check(address: str, metric_keys: Sequence[str]) -> None:
    """Let everything through (services built without the quotas module)."""


class InvalidInput(DomainError):
    """The request could not be bound to the expected shape (HTTP 400)."""

    def __init__(self, message: str, code: str = "error.platform.inputCannotBeParsed") -> None:
        super().__init__(code, message)


class InvalidPropertyValue(DomainError):
    """A well-formed property breaks a validation rule (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__("error.platform.validation.invalidPropertyValue", message)


class InvalidId(DomainError):
    """A path or body id does not have the shape of its kind (HTTP 400)."""

    def __init__(self, name: str) -> None:
        super().__init__("error.platform.validation.invalidId", f"'{name}' is not a valid id.")


class Unauthenticated(Exception):
    """No valid bearer token came with a request that needs one (HTTP 401)."""
