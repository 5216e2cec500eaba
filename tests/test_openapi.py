"""The API description: a valid OpenAPI 3.1 document (openapi-spec-validator) that covers every route the
application registers, every auth scheme and the error shape, with examples that match their schemas; and the
offline docs page."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_typed_data
from openapi_spec_validator import validate

from chains.zcash_address import decode_address
from gateway.ethereum import TYPED_DATA_EXAMPLE
from gateway.openapi import Auth, Operation, UndescribedRoute, describe, described_routes, openapi_document
from kernel.assets import ETH, USD, ZEC
from kernel.money import parse_amount
from tests.conftest import Gateway


async def document_of(gw: Gateway) -> dict[str, Any]:
    response = await gw.client.get("/api/v1/openapi.json")
    assert response.status == 200
    return await response.json()


def registered_routes(app: web.Application) -> set[tuple[str, str]]:
    """Every route but HEAD twins, static files and pages for people (which are not API)."""
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None or isinstance(route.resource, web.StaticResource):
            continue
        if not route.resource.canonical.startswith("/api/") and route.resource.canonical != "/metrics":
            continue
        found.add((route.method.lower(), route.resource.canonical))
    return found


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


async def test_the_docs_page_is_swagger_ui_served_by_the_gateway(gw: Gateway) -> None:
    response = await gw.client.get("/api/v1/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert 'src="/static/vendor/swagger-ui/swagger-ui-bundle.js"' in page
    assert 'data-openapi-url="/api/v1/openapi.json"' in page
    assert "http://" not in page and "https://" not in page  # nothing from a CDN: it works offline
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    for asset in ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/vendor/swagger-ui/swagger-ui.css",
                  "/static/docs.js"):
        served = await gw.client.get(asset)
        assert served.status == 200, asset


async def test_request_examples_are_valid_requests(gw: Gateway) -> None:
    """Beyond matching their schemas: amounts the asset can hold, a duration in range, real addresses, and an
    Ethereum signature that recovers the example's wallet from the example's typed data."""
    paths = (await document_of(gw))["paths"]

    def example(path: str) -> dict[str, Any]:
        return paths[path]["post"]["requestBody"]["content"]["application/json"]["example"]

    for path, asset in (("/api/v1/zcash/permissions", ZEC), ("/api/v1/card/permissions", USD),
                        ("/api/v1/ethereum/permissions", ETH)):
        body = example(path)
        assert parse_amount(body["requested_amount"], asset, "requested_amount") > 0
        assert parse_amount(body["rate_per_hour"], asset, "rate_per_hour") > 0
        assert 1 <= body["duration_days"] <= gw.settings.max_permission_duration_days
    decode_address(example("/api/v1/zcash/permissions")["user_wallet_address"])
    assert example("/api/v1/sessions")["user_wallet_address"] == example("/api/v1/zcash/permissions")[
        "user_wallet_address"]
    signed = example("/api/v1/ethereum/permissions")
    typed = TYPED_DATA_EXAMPLE
    assert (signed["nonce"], signed["expiry"], signed["chain_id"]) == (typed["message"]["nonce"],
                                                                       typed["message"]["expiry"],
                                                                       typed["domain"]["chainId"])
    signer = Account.recover_message(encode_typed_data(full_message=typed), signature=signed["signature"])
    assert signer == signed["user_wallet_address"] == typed["message"]["wallet"]


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
