"""Operator routes for vendor API keys (X-API-Key: ADMIN_API_KEY): rotate with an overlap, revoke, list."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import parse_uuid, require_operator
from gateway.http import json_response, read_body
from gateway.keys import SERVICES
from gateway.openapi import Auth, Operation, describe
from gateway.vendor_models import (
    RevokedVendorKeysView,
    RevokeVendorKeyRequest,
    RotatedVendorKeyView,
    RotateVendorKeyRequest,
    VendorKeysView,
    VendorKeyView,
)
from gateway.views import iso
from kernel.errors import InvalidRequest

VENDOR_ID = {"vendor_id": "The vendor's id"}


@describe(Operation(summary="A new API key for the vendor (shown once); the current keys stay valid for an overlap",
                    tag="admin", auth=(Auth.OPERATOR_KEY,), body=RotateVendorKeyRequest, status=201,
                    response=RotatedVendorKeyView, errors=(404,), path_parameters=VENDOR_ID))
async def rotate(request: web.Request) -> web.Response:
    """A new key (shown once); the vendor's current keys stay valid for the overlap, then stop working."""
    require_operator(request)
    vendor_id = parse_uuid(request.match_info["vendor_id"], "vendor")
    body = await read_body(request, RotateVendorKeyRequest)
    rotated = await request.app[SERVICES].vendors.rotate_key(vendor_id, body.overlap_seconds)
    return json_response(RotatedVendorKeyView(vendor_id=str(vendor_id), api_key=rotated.api_key,
                                              key_prefix=rotated.key_prefix,
                                              previous_keys_expire_at=iso(rotated.previous_keys_expire_at)),
                         status=201)


@describe(Operation(summary="Revoke one key of the vendor (key_prefix) or all of them at once", tag="admin",
                    auth=(Auth.OPERATOR_KEY,), body=RevokeVendorKeyRequest, response=RevokedVendorKeysView,
                    errors=(404,), path_parameters=VENDOR_ID))
async def revoke(request: web.Request) -> web.Response:
    """Revoke at once one key (by `key_prefix`) or, with `"all": true`, every live key of the vendor."""
    require_operator(request)
    vendor_id = parse_uuid(request.match_info["vendor_id"], "vendor")
    body = await read_body(request, RevokeVendorKeyRequest)
    if (body.key_prefix is None) == (not body.all):
        raise InvalidRequest('send either "key_prefix" (one key) or "all": true (every key)', code="invalid_revocation")
    revoked = await request.app[SERVICES].vendors.revoke_keys(vendor_id, body.key_prefix)
    return json_response(RevokedVendorKeysView(vendor_id=str(vendor_id), revoked=revoked))


@describe(Operation(summary="The vendor's API keys (prefixes, never the keys)", tag="admin", auth=(Auth.OPERATOR_KEY,),
                    response=VendorKeysView, errors=(404,), path_parameters=VENDOR_ID))
async def keys(request: web.Request) -> web.Response:
    require_operator(request)
    vendor_id = parse_uuid(request.match_info["vendor_id"], "vendor")
    found = await request.app[SERVICES].vendors.keys(vendor_id)
    return json_response(VendorKeysView(vendor_id=str(vendor_id), keys=[
        VendorKeyView(key_prefix=key.key_prefix, created_at=iso(key.created_at), expires_at=iso(key.expires_at),
                      revoked_at=iso(key.revoked_at), live=key.live)
        for key in found
    ]))


routes = [
    web.get("/api/v1/admin/vendors/{vendor_id}/keys", keys),
    web.post("/api/v1/admin/vendors/{vendor_id}/keys/rotate", rotate),
    web.post("/api/v1/admin/vendors/{vendor_id}/keys/revoke", revoke),
]
