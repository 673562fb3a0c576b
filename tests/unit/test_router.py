"""Literal path segments match regardless of case; field values keep theirs."""

from __future__ import annotations

import pytest

from backbone.platform.http import CaseInsensitiveRouter


class Resource:
    def on_get(self, req: object, resp: object) -> None: ...


@pytest.fixture
def router() -> CaseInsensitiveRouter:
    router = CaseInsensitiveRouter()
    router.add_route("/api/v2/Files/{id}/Metadata", Resource())
    router.add_route("/api/v2/Devices/Self", Resource())
    router.add_route("/api/v2/Devices/{id}", Resource())
    return router


@pytest.mark.parametrize(
    "path",
    ["/api/v2/Files/FILaBcD/Metadata", "/api/v2/files/FILaBcD/metadata", "/API/V2/FILES/FILaBcD/METADATA"],
)
def test_literal_segments_ignore_case_and_fields_keep_theirs(
    router: CaseInsensitiveRouter, path: str
) -> None:
    found = router.find(path)
    assert found is not None
    _, _, params, template = found
    assert params == {"id": "FILaBcD"}
    assert template == "/api/v2/Files/{id}/Metadata"


def test_a_literal_wins_over_a_field_in_any_case(router: CaseInsensitiveRouter) -> None:
    assert router.find("/api/v2/devices/SELF")[3] == "/api/v2/Devices/Self"
    assert router.find("/api/v2/devices/DVCxYz")[2] == {"id": "DVCxYz"}


def test_unknown_paths_are_not_found(router: CaseInsensitiveRouter) -> None:
    assert router.find("/api/v2/Files") is None


def test_fields_must_fill_a_whole_segment() -> None:
    with pytest.raises(ValueError, match="whole path segment"):
        CaseInsensitiveRouter().add_route("/files/{id}.json", Resource())
