"""The API description: an OpenAPI 3.1 document built from the application's own routes and pydantic models, served
at `GET /api/v1/openapi.json`, and the docs page at `GET /api/v1/docs`: Swagger UI (with "Try it out") served from
the package itself (gateway/static/vendor/swagger-ui), so it works offline and nothing comes from a CDN.

Each handler carries its description (`@describe(Operation(...))`, next to the handler): summary, who may call it,
request and response bodies (pydantic models), query and header parameters and the error statuses it can answer.
The document walks `app.router`, so a path is written once (where the route is added) and a route without a
description is an error (`UndescribedRoute`), never a silent gap. HTML pages (marked with `@page`) and static files
are not API and are left out. Schemas come from pydantic
(`models_json_schema` with `#/components/schemas/{model}` references); examples are built from the `examples` the
models' fields carry, so they live in one place too.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from billing.idempotency import MIN_ANONYMOUS_KEY_LENGTH
from gateway.faces import page_headers
from gateway.models import ErrorResponse

OPENAPI_PATH = "/api/v1/openapi.json"
DOCS_PATH = "/api/v1/docs"
REF_TEMPLATE = "#/components/schemas/{model}"
OPERATION_ATTRIBUTE = "openapi_operation"
PAGE_ATTRIBUTE = "openapi_page"

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])
# A body is a pydantic model, several models all of which apply (allOf: a view plus a source's extra fields), or a
# plain JSON schema for what no model describes (a Stripe event, EIP-712 typed data).
Body = type[BaseModel] | tuple[type[BaseModel], ...] | Mapping[str, Any]


class Auth(enum.StrEnum):
    """The credentials an operation accepts; the values name the document's security schemes."""

    PERMISSION_TOKEN = "permissionToken"
    VENDOR_KEY = "vendorKey"
    OPERATOR_KEY = "operatorKey"
    METRICS_TOKEN = "metricsToken"


SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    Auth.PERMISSION_TOKEN: {
        "type": "http", "scheme": "bearer",
        "description": "The `permission_token` returned once when the permission is created: "
                       "`Authorization: Bearer <permission_token>`.",
    },
    Auth.VENDOR_KEY: {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": "A vendor API key (`paygo vendor create` or `POST /api/v1/admin/vendors`), shown once.",
    },
    Auth.OPERATOR_KEY: {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": "The operator key (the gateway's ADMIN_API_KEY setting).",
    },
    Auth.METRICS_TOKEN: {
        "type": "http", "scheme": "bearer",
        "description": "The gateway's METRICS_TOKEN setting, for scrapers: `Authorization: Bearer <token>`.",
    },
}

# What each error status means here, and a typical `code` for its example.
ERROR_STATUSES: dict[int, tuple[str, str]] = {
    400: ("The request is malformed (a webhook signature that does not sign the body)", "invalid_signature"),
    401: ("Credentials missing or not valid", "missing_token"),
    402: ("The permission cannot pay for this (not active, expired or exhausted)", "payment_required"),
    403: ("The credentials are valid but do not grant access to this resource", "forbidden"),
    404: ("No such resource (or not visible to these credentials)", "not_found"),
    408: ("The request body did not arrive within the gateway's body timeout", "body_timeout"),
    409: ("Conflicts with the current state (or an Idempotency-Key still in progress)", "conflict"),
    413: ("The body is larger than the gateway accepts", "body_too_large"),
    422: ("The request is not valid: the message names the field and the problem", "invalid_request"),
    429: ("Too many requests (a rate limit, or too many live streams); retry after Retry-After seconds",
          "rate_limited"),
    503: ("A dependency (database, node, card processor) is down or not configured; retry after Retry-After "
          "seconds", "service_unavailable"),
}


@dataclass(frozen=True)
class Parameter:
    """A query or header parameter (path parameters come from the route template)."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


REQUEST_ID = Parameter("X-Request-ID", "Names the request in the gateway's logs and is echoed back (1 to 128 "
                                       "printable characters; otherwise the gateway makes one)")


@dataclass(frozen=True)
class Operation:
    """How one handler is described. `errors` lists the error statuses beyond those every operation of its kind
    answers: 401/403 follow from `auth`, 409/413/422 from a body on a POST (Idempotency-Key, size, JSON), 503 from
    `uses_database` (the database is down)."""

    summary: str
    description: str = ""
    tag: str = ""
    auth: tuple[Auth, ...] = ()
    body: Body | None = None
    body_required: bool = True
    status: int = 200
    response: Body | None = None
    response_media_types: tuple[str, ...] = ("application/json",)
    errors: tuple[int, ...] = ()
    query: tuple[Parameter, ...] = ()
    headers: tuple[Parameter, ...] = ()
    path_parameters: Mapping[str, str] = field(default_factory=dict)
    uses_database: bool = True
    # A status whose body is not the error shape (`/health` answers its report with 503 too).
    other_responses: Mapping[int, tuple[str, Body]] = field(default_factory=dict)
    # Counted by the rate limits when anonymous or creating (gateway/rate_limits.py); False for what load balancers
    # and Stripe call.
    rate_limited: bool = True
    # The service applies the Idempotency-Key in the route's one database call (gateway/http.py `idempotent_call`),
    # so the gateway's middleware leaves it alone: no round trip is added.
    idempotent_in_call: bool = False

    @property
    def creates(self) -> bool:
        """A creating endpoint answers 201 Created (permissions, sessions, vendors, vendor keys)."""
        return self.status == 201

    def limited(self, method: str) -> bool:
        """Whether the rate limits can refuse this operation (429)."""
        return self.rate_limited and (not self.auth or (method == "POST" and self.creates))


class UndescribedRoute(Exception):
    """A route was added without `@describe`: the document would silently miss it."""


def describe(operation: Operation) -> Callable[[HandlerT], HandlerT]:
    """Attach `operation` to a handler (wrappers made with functools.wraps keep it)."""

    def attach(handler: HandlerT) -> HandlerT:
        setattr(handler, OPERATION_ATTRIBUTE, operation)
        return handler

    return attach


def operation_of(handler: Callable[..., Any]) -> Operation | None:
    return getattr(handler, OPERATION_ATTRIBUTE, None)


def page(handler: HandlerT) -> HandlerT:
    """Mark a handler as a page for people (HTML, an image), not part of the API: the document leaves it out."""
    setattr(handler, PAGE_ATTRIBUTE, True)
    return handler


def is_api_route(route: web.AbstractRoute) -> bool:
    """Every route but aiohttp's HEAD twins, static files and pages."""
    return (route.method != "HEAD" and route.resource is not None
            and not isinstance(route.resource, web.StaticResource)
            and not getattr(route.handler, PAGE_ATTRIBUTE, False))


# --- the document -----------------------------------------------------------------------------------------------

def described_routes(app: web.Application) -> list[tuple[str, str, Operation]]:
    """(method, path template, operation) of every API route (see `is_api_route`)."""
    found = []
    for route in app.router.routes():
        if not is_api_route(route):
            continue
        assert route.resource is not None
        path = route.resource.canonical
        operation = operation_of(route.handler)
        if operation is None:
            raise UndescribedRoute(f"{route.method} {path} has no @describe(Operation(...))")
        found.append((route.method, path, operation))
    return found


def openapi_document(app: web.Application) -> dict[str, Any]:
    routes = described_routes(app)
    schemas = _component_schemas(tuple(dict.fromkeys(_models(routes))))
    paths: dict[str, dict[str, Any]] = {}
    for method, path, operation in routes:
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, operation, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PayGo",
            "version": "1",
            "description": "Payment gateway for metered streaming. Amounts are exact decimal strings in answers "
                           "(and a JSON number or a decimal string in requests). Every error answers "
                           "`{\"error\": {\"code\", \"message\"}}`; clients switch on `code`. Every answer echoes "
                           "`X-Request-ID` (the caller's, or a new one). A POST with an `Idempotency-Key` header "
                           "is applied once; a repeat by the same caller within 24 hours answers the first answer "
                           "(`Idempotent-Replayed: true`). Rate-limited answers (429) carry `Retry-After` and the "
                           "`RateLimit` headers.",
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def _body_models(body: Body | None) -> tuple[type[BaseModel], ...]:
    if body is None or isinstance(body, Mapping):
        return ()
    return body if isinstance(body, tuple) else (body,)


def _models(routes: list[tuple[str, str, Operation]]) -> list[tuple[type[BaseModel], str]]:
    """Each model with the mode its schema is needed in: what clients send is validated, what they get serialized."""
    found: list[tuple[type[BaseModel], str]] = [(ErrorResponse, "serialization")]
    for _, _, operation in routes:
        found += [(model, "validation") for model in _body_models(operation.body)]
        answers = [operation.response, *(body for _, body in operation.other_responses.values())]
        found += [(model, "serialization") for answer in answers for model in _body_models(answer)]
    return found


@cache
def _component_schemas(models: tuple[tuple[type[BaseModel], str], ...]) -> dict[str, Any]:
    _, top = models_json_schema(models, ref_template=REF_TEMPLATE)  # type: ignore[arg-type]
    return top.get("$defs", {})


def _schema(body: Body) -> dict[str, Any]:
    if isinstance(body, Mapping):
        return dict(body)
    models = _body_models(body)
    refs = [{"$ref": REF_TEMPLATE.format(model=model.__name__)} for model in models]
    return refs[0] if len(refs) == 1 else {"allOf": refs}


def _operation(method: str, path: str, operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
         "description": operation.path_parameters.get(name, "")}
        for name in re.findall(r"{(\w+)}", path)
    ]
    parameters += [_parameter(parameter, "query") for parameter in operation.query]
    parameters += [_parameter(parameter, "header") for parameter in (*operation.headers, REQUEST_ID)]
    if method == "POST":
        shortest = 1 if operation.auth else MIN_ANONYMOUS_KEY_LENGTH
        parameters.append(_parameter(Parameter(
            "Idempotency-Key", "Apply this POST once: a repeat by the same caller with the same key and body answers "
                               "the first answer for 24 hours. Without credentials the key is the only secret: at "
                               f"least {MIN_ANONYMOUS_KEY_LENGTH} random characters.",
            {"type": "string", "minLength": shortest, "maxLength": 200}), "header"))
    described: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": operation.summary,
        "tags": [operation.tag or _default_tag(path)],
        "parameters": parameters,
        "security": [{scheme.value: []} for scheme in operation.auth],
        "responses": _responses(method, path, operation, schemas),
    }
    if operation.description:
        described["description"] = operation.description
    if operation.body is not None:
        schema = _schema(operation.body)
        described["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": schema, "example": example_of(schema, schemas)}},
        }
    return described


def _default_tag(path: str) -> str:
    """The first segment after /api/v1 (`zcash`, `sessions`, `vendor`, ...)."""
    return path.split("/")[3] if path.startswith("/api/v1/") else "operations"


def _parameter(parameter: Parameter, location: str) -> dict[str, Any]:
    return {"name": parameter.name, "in": location, "required": parameter.required, "schema": dict(parameter.schema),
            "description": parameter.description}


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[{}]", "", path.removeprefix("/api/v1/")).replace(".", "_").replace("-", "_").split("/")
    return method.lower() + "".join(word[:1].upper() + word[1:] for word in words if word)


def _error_statuses(method: str, path: str, operation: Operation) -> set[int]:
    statuses = set(operation.errors)
    if "{" in path or operation.query:
        statuses.add(422)  # a path or query the database cannot store (`%00`)
    if operation.auth:
        statuses.add(401)
    if Auth.OPERATOR_KEY in operation.auth:
        statuses.add(403)  # an X-API-Key that is not the operator key
    if method == "POST":
        statuses |= {409, 422}  # Idempotency-Key in progress, or reused with another body / malformed
    if operation.body is not None or method in ("POST", "PUT"):
        statuses |= {408, 413, 422}
    if operation.limited(method):
        statuses.add(429)
    if operation.uses_database:
        statuses.add(503)
    return statuses - set(operation.other_responses)


def _responses(method: str, path: str, operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    request_id = {"X-Request-ID": {"description": "The caller's X-Request-ID, or a new one",
                                   "schema": {"type": "string"}}}
    success: dict[str, Any] = {"description": operation.summary, "headers": request_id}
    if operation.response is not None:
        schema = _schema(operation.response)
        success["content"] = {media_type: _content(media_type, schema, schemas)
                              for media_type in operation.response_media_types}
    responses: dict[str, Any] = {str(operation.status): success}
    for status, (description, body) in operation.other_responses.items():
        schema = _schema(body)
        responses[str(status)] = {"description": description, "headers": request_id, "content": {
            "application/json": {"schema": schema, "example": example_of(schema, schemas)}}}
    error_schema = _schema(ErrorResponse)
    for status in sorted(_error_statuses(method, path, operation)):
        description, code = ERROR_STATUSES[status]
        headers = dict(request_id)
        if status in (429, 503):
            headers["Retry-After"] = {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}
        responses[str(status)] = {"description": description, "headers": headers, "content": {
            "application/json": {"schema": error_schema,
                                 "example": {"error": {"code": code, "message": description}}}}}
    return responses


def _content(media_type: str, schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """JSON as `schema` says; an event stream's events carry it as JSON in `data`; other media types are text (the
    CSV columns are the JSON's fields)."""
    if media_type == "application/json":
        return {"schema": schema, "example": example_of(schema, schemas)}
    if media_type == "text/event-stream":
        return {"schema": {"type": "object", "required": ["event", "data"], "properties": {
            "event": {"type": "string"}, "id": {"type": "string"},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}}}}
    return {"schema": {"type": "string"}}


def example_of(schema: Mapping[str, Any], schemas: Mapping[str, Any]) -> Any:
    """An example value for `schema`: the `examples` its fields carry, else the simplest value of their type."""
    if "$ref" in schema:
        return example_of(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas)
    if "examples" in schema:
        return schema["examples"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(example_of(part, schemas))
        return merged
    for alternatives in ("anyOf", "oneOf"):
        if alternatives in schema:
            options = [option for option in schema[alternatives] if option.get("type") != "null"]
            return example_of(options[0] if options else schema[alternatives][0], schemas)
    kind = schema.get("type", "object")
    if kind == "object":
        return {name: example_of(value, schemas) for name, value in schema.get("properties", {}).items()}
    if kind == "array":
        return [example_of(schema["items"], schemas)] if "items" in schema else []
    return {"string": "string", "integer": 0, "number": 1, "boolean": True, "null": None}[kind]


# --- the two endpoints ------------------------------------------------------------------------------------------

@describe(Operation(summary="This document: the OpenAPI 3.1 description of every endpoint", tag="docs",
                    response={"type": "object"}, uses_database=False))
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app))


@describe(Operation(summary="The API documentation (Swagger UI, served by the gateway: works offline)",
                    tag="docs", response={"type": "string"}, response_media_types=("text/html",),
                    uses_database=False))
async def docs_page(request: web.Request) -> web.Response:
    # Swagger UI sets style attributes as it renders; scripts and everything else stay same-origin only.
    return page_headers(aiohttp_jinja2.render_template("docs.html", request, {"openapi_path": OPENAPI_PATH}),
                        inline_styles=True)


routes = [web.get(OPENAPI_PATH, openapi_json), web.get(DOCS_PATH, docs_page)]
