"""The API description: a valid OpenAPI 3.1 document (openapi-spec-validator) that covers every route the
application registers, every auth scheme and the error shape, with examples that match their schemas; and the
offline docs page."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp import web
from openapi_spec_validator import validate

from gateway.openapi import Auth, Operation, UndescribedRoute, describe, described_routes, openapi_document
from tests.conftest import Gateway


async def document_of(gw: Gateway) -> dict[str, Any]:
    response = await gw.client.get("/api/v1/openapi.json")
    assert response.status == 200
    return await response.json()


def registered_routes(app: web.Application) -> set[tuple[str, str]]:
    return {(route.method.lower(), route.resource.canonical) for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None}


async def test_the_document_is_valid_openapi_31_and_covers_every_route(gw: Gateway) -> None:
    document = await document_of(gw)
    validate(document)
    assert document["openapi"] == "3.1.0"
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == registered_routes(gw.client.app)


async def test_auth_schemes_and_the_error_shape_are_described(gw: Gateway) -> None:
    document = await document_of(gw)
    schemes = document["components"]["securitySchemes"]
    assert schemes[Auth.PERMISSION_TOKEN] == {**schemes[Auth.PERMISSION_TOKEN], "type": "http", "scheme": "bearer"}
    assert {schemes[name]["name"] for name in (Auth.VENDOR_KEY, Auth.OPERATOR_KEY)} == {"X-API-Key"}
    paths = document["paths"]
    assert paths["/api/v1/vendor/sessions"]["get"]["security"] == [{"vendorKey": []}]
    assert paths["/api/v1/admin/vendors"]["post"]["security"] == [{"operatorKey": []}]
    assert paths["/api/v1/sessions"]["post"]["security"] == [{"permissionToken": []}]
    assert set(paths["/api/v1/sessions"]["post"]["responses"]) >= {"201", "401", "402", "404", "409", "422", "503"}
    error = paths["/api/v1/admin/vendors"]["post"]["responses"]["403"]["content"]["application/json"]
    assert error["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert set(document["components"]["schemas"]["ErrorBody"]["required"]) == {"code", "message"}
    amount = document["components"]["schemas"]["PermissionView"]["properties"]["remaining_amount"]
    assert amount["type"] == "string"


async def test_every_example_matches_its_schema(gw: Gateway) -> None:
    document = await document_of(gw)
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            bodies = [operation.get("requestBody", {}).get("content", {}).get("application/json")]
            bodies += [response.get("content", {}).get("application/json") for response in
                       operation["responses"].values()]
            for body in filter(None, bodies):
                schema = {**body["schema"], "components": document["components"]}
                jsonschema.validate(body["example"], schema, cls=jsonschema.Draft202012Validator)
                checked += 1
            assert operation["summary"], (method, path)
    assert checked > 100


async def test_the_docs_page_is_self_contained(gw: Gateway) -> None:
    response = await gw.client.get("/api/v1/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert 'fetch("openapi.json")' in page
    assert "http://" not in page and "https://" not in page  # nothing from a CDN: it works offline


def test_a_route_without_a_description_is_an_error() -> None:
    async def undescribed(_: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.add_routes([web.get("/described", _described), web.post("/undescribed/{id}", undescribed)])
    try:
        described_routes(app)
    except UndescribedRoute as exc:
        assert "POST /undescribed/{id}" in str(exc)
    else:
        raise AssertionError("an undescribed route was accepted")
    assert openapi_document(_app_with(_described))["paths"]["/described"]["get"]["summary"] == "described"


@describe(Operation(summary="described", uses_database=False))
async def _described(_: web.Request) -> web.Response:
    return web.Response()


def _app_with(handler: Any) -> web.Application:
    app = web.Application()
    app.add_routes([web.get("/described", handler)])
    return app
