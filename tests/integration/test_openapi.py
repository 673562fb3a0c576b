"""The OpenAPI documents of both APIs are generated from the responders and cover every route."""

from __future__ import annotations

import falcon
import pytest
from falcon import testing

from backbone.admin_api import HIDDEN_ROUTES as ADMIN_HIDDEN
from backbone.admin_api import create_admin_app
from backbone.consumer_api import HIDDEN_ROUTES as CONSUMER_HIDDEN
from backbone.consumer_api import create_consumer_app
from backbone.platform.http import create_app
from backbone.platform.openapi import (
    Security,
    UndescribedRoutes,
    build_document,
    describe,
    responders,
)
from backbone.wiring import Services

NO_SECURITY = Security(schemes={}, requirement=lambda resource, method: [])


@pytest.mark.parametrize(
    ("create", "path", "hidden"),
    [
        (create_consumer_app, "/docs/v2/openapi.json", CONSUMER_HIDDEN),
        (create_admin_app, "/docs/v1/openapi.json", ADMIN_HIDDEN),
    ],
    ids=["consumer", "admin"],
)
def test_the_document_describes_every_route(
    services: Services, create: object, path: str, hidden: tuple[str, ...]
) -> None:
    app = create(services)  # type: ignore[operator]
    result = testing.TestClient(app).simulate_get(path)
    assert result.status_code == 200, result.text
    document = result.json
    assert document["openapi"].startswith("3.1")
    documented = {
        (method, template) for template, operations in document["paths"].items() for method in operations
    }
    served = {(method, template) for template, method, _ in responders(app._router) if template not in hidden}
    assert documented == served
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"].strip(), f"{method} {template}"
            statuses = set(operation["responses"])
            assert statuses & {"200", "201", "204", "304"}, f"{method} {template} documents no success"
            assert "400" in statuses, f"{method} {template} documents no error"
            if operation["security"]:
                assert "401" in statuses
            fields = {parameter["name"] for parameter in operation["parameters"] if parameter["in"] == "path"}
            assert fields == {segment[1:-1] for segment in template.split("/") if segment.startswith("{")}


def test_a_responder_without_a_description_fails_the_build() -> None:
    class Described:
        @describe("Fine", {200: None})
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None: ...

    class Undescribed:
        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None: ...

    app = create_app(middleware=[])
    app.add_route("/described", Described())
    app.add_route("/undescribed", Undescribed())
    with pytest.raises(UndescribedRoutes, match="POST /undescribed"):
        build_document(app, title="t", version="1", description="d", security=NO_SECURITY)
    build_document(
        app, title="t", version="1", description="d", security=NO_SECURITY, hidden=["/undescribed"]
    )
