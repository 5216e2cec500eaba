"""HTTP plumbing shared by every route: typed app keys, body parsing, JSON answers and the middlewares
(request id, error mapping, Idempotency-Key).

Every error leaves as `{"error": {"code": "...", "message": "..."}}`: 4xx for the client's fault, 503 with
Retry-After when the database or a node is down, and 500 only for a bug (logged with the request id).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from billing.db import DATABASE_DOWN_ERRORS, DATABASE_RETRY_AFTER_SECONDS
from billing.idempotency import IdempotentCall
from gateway.auth import authenticated_caller
from gateway.keys import SERVICES, SETTINGS
from gateway.openapi import operation_of
from kernel.errors import InvalidRequest, PayGoError
from kernel.money import JsonNumber

log = logging.getLogger("paygo.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ModelT = TypeVar("ModelT", bound=BaseModel)

REQUEST_ID_HEADER = "X-Request-ID"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
MAX_INTEGER_DIGITS = 80
CLIENT_CLOSED_REQUEST = 499  # the client went away before the answer (nginx's convention)


UNSTORABLE_TEXT_MESSAGE = "text must not contain NUL characters or unpaired surrogates"


def _is_unstorable(text: str) -> bool:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot encode an unpaired surrogate (JSON's "\\ud800"). ASCII text
    (nearly every path, query and field) has no surrogate: checked in C, not character by character in Python."""
    return "\x00" in text or (not text.isascii() and any("\ud800" <= char <= "\udfff" for char in text))


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


def _integer(text: str) -> int | JsonNumber:
    """A JSON integer: a Python int when it is short enough to be any value we accept (uint256 has 78 digits),
    else its text, which every field refuses with its own message (never a 500 from a 5,000-digit number)."""
    return int(text) if len(text) <= MAX_INTEGER_DIGITS else JsonNumber(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice is refused (which one wins differs between parsers)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            shown = key if len(key) <= 40 and key.isprintable() else "(a key)"
            raise InvalidRequest(f"{shown}: given more than once in one object", code="duplicate_key")
        found[key] = value
    return found


def decode_json(raw: bytes) -> Any:
    """A request body as JSON, strictly: numbers with a fraction or an exponent (and very long integers) stay text
    (kernel.money.JsonNumber) for the field's own grammar, duplicate keys and NaN/Infinity are refused."""
    try:
        return json.loads(raw or b"null", parse_float=JsonNumber, parse_int=_integer,
                          parse_constant=_refuse_constant, object_pairs_hook=_object)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise InvalidRequest("the body is nested too deeply", code="invalid_json") from None


async def read_body(request: web.Request, model: type[ModelT]) -> ModelT:
    """The request's JSON object validated into `model` (see decode_json for how numbers arrive)."""
    data = decode_json(await request.read())
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


def bounded_int(raw: str, maximum: int) -> int | None:
    """`raw` as a whole number from 0 to `maximum`, if it is ASCII digits short enough to be one (the length is
    checked before any conversion); else None."""
    text = raw.strip()
    if not text or len(text) > len(str(maximum)) or not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= maximum else None


def route_name(request: web.Request) -> str:
    """The matched route's template (`/api/v1/sessions/{session_code}`) or "unmatched": what logs and metrics name
    a request by, never its path, which can carry a secret (a session code) and has unbounded variety."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def client_gone(request: web.Request) -> bool:
    """The client hung up: its connection is closed or closing (a write then fails with ConnectionResetError)."""
    transport = request.transport
    return transport is None or transport.is_closing()


_JSON_ENCODER = json.JSONEncoder(default=str)  # one for every answer (json.dumps with options makes one per call)


def json_response(body: BaseModel | dict[str, Any], status: int = 200, *, replayed: bool = False) -> web.Response:
    """A JSON answer; `replayed` marks it as the answer an Idempotency-Key recorded, given again."""
    text = body.model_dump_json() if isinstance(body, BaseModel) else _JSON_ENCODER.encode(body)
    return web.Response(text=text, status=status, content_type="application/json",
                        headers={REPLAYED_HEADER: "true"} if replayed else None)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


_REQUEST_ID_PREFIX = secrets.token_hex(10)  # this process's: ids are unique across processes and restarts
_REQUEST_COUNT = itertools.count(1)


def new_request_id() -> str:
    """32 hex characters, like a UUID's, unique rather than unpredictable: a random prefix per process and a
    counter (a uuid4 per request read the kernel's random source each time, 1.5 % of a request's CPU)."""
    return f"{_REQUEST_ID_PREFIX}{next(_REQUEST_COUNT) % 16**12:012x}"


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Accept the caller's X-Request-ID (if sane) or make one; echo it on every answer."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if 0 < len(given) <= 128 and given.isprintable() else new_request_id()
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
        headers = {**exc.headers, REPLAYED_HEADER: "true"} if exc.replayed else exc.headers
        return error_response(exc.status, exc.code, exc.message, headers or None)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status, "http_error")
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, code, exc.reason, allow)
    except DATABASE_DOWN_ERRORS as exc:
        if isinstance(exc, ConnectionResetError) and client_gone(request):
            log.debug("client hung up on %s %s", request.method, route_name(request))
            return web.Response(status=CLIENT_CLOSED_REQUEST)  # never sent; the access log and metrics say 499
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(503, "database_unavailable", "the database is not answering; retry shortly",
                              {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", request.method, route_name(request),
                      request.get(REQUEST_ID_KEY))
        return error_response(500, "internal_error", f"internal error; request id {request.get(REQUEST_ID_KEY)}")


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read a request's body before anything else does, within HTTP_BODY_TIMEOUT_SECONDS (408 past it): a client
    that sends its body slowly holds a connection, never a handler (aiohttp keeps what was read for the handler)."""
    if request.can_read_body:
        try:
            async with asyncio.timeout(request.app[SETTINGS].perimeter.http_body_timeout_seconds):
                await request.read()
        except TimeoutError:
            return error_response(408, "body_timeout", "the request body did not arrive in time",
                                  {"Connection": "close"})
    return await handler(request)


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Replay the first answer to a POST carrying an Idempotency-Key, to the same caller only.

    The caller is authenticated first, with the credentials the route accepts: a replay never reaches someone whose
    credential is not (or no longer) valid (the handler answers them 401), and each caller has a scope of their own.
    On a route without credentials the key itself is the secret, so it must be long (billing/idempotency.py).
    """
    key = request.headers.get(IDEMPOTENCY_HEADER)
    services = request.app.get(SERVICES)
    if request.method != "POST" or key is None or services is None or request.match_info.http_exception is not None:
        return await handler(request)  # not an idempotent request, or no route (404, 405) to apply it to
    operation = operation_of(request.match_info.route.handler)
    if operation is not None and operation.idempotent_in_call:
        return await handler(request)  # its service claims the key in the call doing the work
    caller = await authenticated_caller(request)
    if caller is None:
        return await handler(request)
    keys = services.idempotency
    claimed, stored = await keys.claim(f"{request.method} {request.path}", caller, key, await request.read())
    if stored is not None:
        return web.Response(status=stored.status_code, text=stored.body, content_type="application/json",
                            headers={REPLAYED_HEADER: "true"})
    try:
        response = await handler(request)
    except BaseException:
        await keys.release(claimed)
        raise
    if response.status >= 500 or not isinstance(response, web.Response):
        await keys.release(claimed)
    else:
        await keys.complete(claimed, response.status, response.text or "")
    return response


async def idempotent_call(request: web.Request) -> IdempotentCall | None:
    """The request's Idempotency-Key, for a route whose service applies it in its one database call
    (`Operation.idempotent_in_call`); None without one."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    return None if key is None else IdempotentCall(f"{request.method} {request.path}", key, await request.read())

