"""The OData subset parser: values, never SQL; anything else refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backbone.platform.errors import DomainError
from backbone.platform.odata import Comparison, FieldType, parse_odata

FIELDS = {"address": FieldType.TEXT, "tier/id": FieldType.TEXT, "createdAt": FieldType.DATETIME}


def test_a_full_query() -> None:
    query = parse_odata(
        {
            "$filter": "Address eq 'it''s' and createdAt gt 2025-01-02T03:04:05Z and tier/id lt 'T'",
            "$orderby": "createdAt desc",
            "$top": "10",
            "$skip": "20",
            "$count": "true",
        },
        FIELDS,
    )
    assert query.filters == (
        Comparison("address", "eq", "it's"),
        Comparison("createdAt", "gt", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        Comparison("tier/id", "lt", "T"),
    )
    assert (query.order_by, query.descending, query.top, query.skip, query.count) == (
        "createdAt",
        True,
        10,
        20,
        True,
    )


def test_defaults() -> None:
    query = parse_odata({"other": "x"}, FIELDS)
    assert (query.filters, query.order_by, query.top, query.skip, query.count) == ((), None, 100, 0, False)


@pytest.mark.parametrize(
    "options",
    [
        {"$top": "101"},
        {"$top": "²"},
        {"$skip": "-1"},
        {"$select": "address"},
        {"$filter": "address eq 'a' or address eq 'b'"},
        {"$filter": "address ge 'a'"},
        {"$filter": "createdAt eq 'yesterday'"},
        {"$filter": "address eq 5"},
        {"$filter": "address eq 'open"},
        {"$filter": "address"},
        {"$orderby": "address, createdAt"},
        {"$orderby": "address up"},
    ],
)
def test_unsupported_options_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(DomainError) as refused:
        parse_odata(options, FIELDS)
    assert refused.value.code == "error.platform.validation.invalidODataQuery"
