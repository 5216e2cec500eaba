"""Who is calling: a wallet user (permission token), a vendor (X-API-Key) or the operator (ADMIN_API_KEY).

Secrets are compared as SHA-256 hashes: the database stores only hashes, and the operator key is hashed once at
start-up so that the plain key is not kept around in the app.
"""

from __future__ import annotations

import hmac
from uuid import UUID

from aiohttp import web

from billing.permissions import TokenHolder
from billing.secrets import secret_hash
from gateway.keys import ADMIN_KEY_HASH, SERVICES
from kernel.errors import Forbidden, NotFound, Unauthorized

API_KEY_HEADER = "X-API-Key"


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


async def token_holder(request: web.Request) -> TokenHolder:
    """The permission the Bearer token belongs to (and its funding source); 401 when missing or unknown."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("send the permission token as `Authorization: Bearer <permission_token>`",
                           code="missing_token")
    holder = await request.app[SERVICES].permissions.holder_of_token(token)
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


async def require_vendor(request: web.Request) -> UUID:
    key = request.headers.get(API_KEY_HEADER)
    if not key:
        raise Unauthorized("send the vendor API key in X-API-Key", code="missing_api_key")
    vendor_id = await request.app[SERVICES].vendors.vendor_for_key(key)
    if vendor_id is None:
        raise Unauthorized("the X-API-Key is not a valid vendor key", code="invalid_api_key")
    return vendor_id


def parse_uuid(raw: str, what: str) -> UUID:
    """An id from the path; a malformed one answers 404 as an unknown one would."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(f"no {what} with id {raw!r}", code=f"{what}_not_found") from None
