"""HTTP plumbing shared by every route: typed app keys, body parsing, JSON answers and the middlewares
(request id, error mapping, Idempotency-Key).

Every error leaves as `{"error": {"code": "...", "message": "..."}}`: 4xx for the client's fault, 503 with
Retry-After when the database or a node is down, and 500 only for a bug (logged with the request id).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from billing.db import DATABASE_DOWN_ERRORS, DATABASE_RETRY_AFTER_SECONDS
from gateway.keys import SERVICES
from kernel.errors import InvalidRequest, PayGoError, ServiceUnavailable

log = logging.getLogger("paygo.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ModelT = TypeVar("ModelT", bound=BaseModel)

REQUEST_ID_HEADER = "X-Request-ID"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REQUEST_ID_KEY = web.RequestKey("request_id", str)


UNSTORABLE_TEXT_MESSAGE = "text must not contain NUL characters or unpaired surrogates"


def _is_unstorable(text: str) -> bool:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot encode an unpaired surrogate (JSON's "\\ud800")."""
    return "\x00" in text or any("\ud800" <= char <= "\udfff" for char in text)


def _has_unstorable_text(value: Any) -> bool:
    if isinstance(value, str):
        return _is_unstorable(value)
    if isinstance(value, dict):
        return any(_is_unstorable(key) or _has_unstorable_text(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_unstorable_text(item) for item in value)
    return False


@web.middleware
async def unstorable_text_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a path or query that decodes to text the database cannot store (`%00`) before any handler reads it."""
    if _is_unstorable(request.path) or any(_is_unstorable(key) or _is_unstorable(value)
                                           for key, value in request.query.items()):
        raise InvalidRequest(f"the URL's {UNSTORABLE_TEXT_MESSAGE}", code="invalid_request")
    return await handler(request)


def _refuse_constant(name: str) -> Any:
    raise InvalidRequest(f"{name} is not a number", code="invalid_json")


async def read_body(request: web.Request, model: type[ModelT]) -> ModelT:
    """The request's JSON object validated into `model`; numbers with a fraction arrive as Decimal."""
    raw = await request.read()
    try:
        data = json.loads(raw or b"null", parse_float=Decimal, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_json")
    if _has_unstorable_text(data):
        raise InvalidRequest(UNSTORABLE_TEXT_MESSAGE, code="invalid_request")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise InvalidRequest(problems, code="invalid_request") from None


def route_name(request: web.Request) -> str:
    """The matched route's template (`/api/v1/sessions/{session_code}`) or "unmatched": what logs and metrics name
    a request by, never its path, which can carry a secret (a session code) and has unbounded variety."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def json_response(body: BaseModel | dict[str, Any], status: int = 200) -> web.Response:
    payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return web.json_response(payload, status=status, dumps=lambda obj: json.dumps(obj, default=str))


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Accept the caller's X-Request-ID (if sane) or make one; echo it on every answer."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PayGoError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, ServiceUnavailable) else None
        return error_response(exc.status, exc.code, exc.message, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status, "http_error")
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, code, exc.reason, allow)
    except DATABASE_DOWN_ERRORS as exc:
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(503, "database_unavailable", "the database is not answering; retry shortly",
                              {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", request.method, route_name(request),
                      request.get(REQUEST_ID_KEY))
        return error_response(500, "internal_error", f"internal error; request id {request.get(REQUEST_ID_KEY)}")


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Replay the first answer to a POST carrying an Idempotency-Key (per credential, path and key).

    The scope includes a hash of the credential the request carries, so two clients cannot see each other's
    answers by guessing keys; the request hash covers the body, so a reused key with another body is refused.
    """
    key = request.headers.get(IDEMPOTENCY_HEADER)
    services = request.app.get(SERVICES)
    if request.method != "POST" or key is None or services is None:
        return await handler(request)
    keys = services.idempotency
    credential = request.headers.get("Authorization", "") + "\n" + request.headers.get("X-API-Key", "")
    scope = f"{request.path}:{hashlib.sha256(credential.encode('utf-8', 'surrogateescape')).hexdigest()}"
    request_hash = hashlib.sha256(await request.read()).digest()
    stored = await keys.claim(scope, key, request_hash)
    if stored is not None:
        return web.Response(status=stored.status_code, text=stored.body, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    try:
        response = await handler(request)
    except BaseException:
        await keys.release(scope, key)
        raise
    if response.status >= 500 or not isinstance(response, web.Response):
        await keys.release(scope, key)
    else:
        await keys.complete(scope, key, response.status, response.text or "")
    return response
