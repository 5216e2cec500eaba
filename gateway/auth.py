"""Who is calling: a wallet user (permission token), a vendor (X-API-Key) or the operator (ADMIN_API_KEY); and,
for the Idempotency-Key layer, which of the credentials a route accepts authenticates the caller.

Secrets are compared as SHA-256 hashes: the database stores only hashes, and the operator key is hashed once at
start-up so that the plain key is not kept around in the app. A lookup is made once per request (remembered on it).
"""

from __future__ import annotations

import hmac
from uuid import UUID

from aiohttp import web

from billing.idempotency import ANONYMOUS, Caller
from billing.permissions import TokenHolder
from billing.secrets import secret_hash
from gateway.keys import ADMIN_KEY_HASH, METRICS_TOKEN_HASH, SERVICES
from gateway.openapi import Auth, operation_of
from kernel.errors import Forbidden, NotFound, Unauthorized

API_KEY_HEADER = "X-API-Key"
_HOLDER = web.RequestKey[TokenHolder | None]("token_holder")
_VENDOR = web.RequestKey[UUID | None]("vendor_id")


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_operator(request: web.Request) -> bool:
    presented = request.headers.get(API_KEY_HEADER)
    expected = request.app[ADMIN_KEY_HASH]
    if not presented or expected is None:
        return False
    return hmac.compare_digest(secret_hash(presented), expected)


def require_operator(request: web.Request) -> None:
    if request.headers.get(API_KEY_HEADER) is None:
        raise Unauthorized("this endpoint needs the operator key in X-API-Key", code="missing_api_key")
    if not is_operator(request):
        raise Forbidden("the X-API-Key is not the operator key", code="invalid_api_key")


def require_metrics_reader(request: web.Request) -> None:
    """The operator key (X-API-Key), or METRICS_TOKEN as `Authorization: Bearer` (what Prometheus sends)."""
    if is_operator(request):
        return
    expected = request.app[METRICS_TOKEN_HASH]
    token = bearer_token(request)
    if token is not None and expected is not None and hmac.compare_digest(secret_hash(token), expected):
        return
    if request.headers.get(API_KEY_HEADER) is None and token is None:
        raise Unauthorized("this endpoint needs the operator key in X-API-Key (or the metrics token as "
                           "`Authorization: Bearer`)", code="missing_api_key")
    raise Forbidden("neither the operator key nor the metrics token", code="invalid_api_key")


async def _holder(request: web.Request, token: str) -> TokenHolder | None:
    if _HOLDER not in request:
        request[_HOLDER] = await request.app[SERVICES].permissions.holder_of_token(token)
    return request[_HOLDER]


def required_token(request: web.Request) -> str:
    """The Bearer token the request carries (401 when it carries none); whether it is valid is for the service
    that reads with it (one round trip for both)."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("send the permission token as `Authorization: Bearer <permission_token>`",
                           code="missing_token")
    return token


async def token_holder(request: web.Request) -> TokenHolder:
    """The permission the Bearer token belongs to (and its funding source); 401 when missing or unknown."""
    token = required_token(request)
    holder = await _holder(request, token)
    if holder is None:
        raise Unauthorized("the permission token is not valid", code="invalid_token")
    return holder


async def token_permission(request: web.Request) -> UUID:
    return (await token_holder(request)).permission_id


async def require_permission_access(request: web.Request, permission_id: UUID) -> None:
    """The operator, or the holder of this very permission's token."""
    if is_operator(request):
        return
    if await token_permission(request) != permission_id:
        raise Forbidden("the permission token does not grant access to this permission", code="forbidden")


async def _vendor(request: web.Request, key: str) -> UUID | None:
    if _VENDOR not in request:
        request[_VENDOR] = await request.app[SERVICES].vendors.vendor_for_key(key)
    return request[_VENDOR]


async def require_vendor(request: web.Request) -> UUID:
    key = request.headers.get(API_KEY_HEADER)
    if not key:
        raise Unauthorized("send the vendor API key in X-API-Key", code="missing_api_key")
    vendor_id = await _vendor(request, key)
    if vendor_id is None:
        raise Unauthorized("the X-API-Key is not a valid vendor key", code="invalid_api_key")
    return vendor_id


def accepted_credentials(request: web.Request) -> tuple[Auth, ...]:
    """The credentials the matched route accepts (its API description); none for an anonymous route."""
    operation = operation_of(request.match_info.route.handler)
    return operation.auth if operation is not None else ()


async def authenticated_caller(request: web.Request) -> Caller | None:
    """Who calls, by the first credential the route accepts that authenticates: the anonymous caller on a route
    without credentials; None when the route wants credentials and none given is valid (the handler then answers
    401 or 403 itself)."""
    accepted = accepted_credentials(request)
    if not accepted:
        return Caller(ANONYMOUS)
    token = bearer_token(request)
    key = request.headers.get(API_KEY_HEADER)
    for scheme in accepted:
        if scheme is Auth.OPERATOR_KEY and key and is_operator(request):
            return Caller("operator", key)
        if scheme is Auth.VENDOR_KEY and key and (vendor_id := await _vendor(request, key)) is not None:
            return Caller(f"vendor:{vendor_id}", key)
        if scheme is Auth.PERMISSION_TOKEN and token and (holder := await _holder(request, token)) is not None:
            return Caller(f"permission:{holder.permission_id}", token)
    return None


def parse_uuid(raw: str, what: str) -> UUID:
    """An id from the path; a malformed one answers 404 as an unknown one would."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(f"no {what} with id {raw!r}", code=f"{what}_not_found") from None
