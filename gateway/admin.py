"""Operator routes (X-API-Key: ADMIN_API_KEY)."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import require_operator
from gateway.http import json_response, read_body
from gateway.keys import SERVICES
from gateway.models import CreateVendorRequest, VendorCreatedView
from gateway.openapi import Auth, Operation, describe


@describe(Operation(summary="Create a vendor and its first API key (shown once)", auth=(Auth.OPERATOR_KEY,),
                    body=CreateVendorRequest, status=201, response=VendorCreatedView))
async def create_vendor(request: web.Request) -> web.Response:
    require_operator(request)
    body = await read_body(request, CreateVendorRequest)
    vendor = await request.app[SERVICES].vendors.create(body.name, body.direct_charge_grace_seconds)
    return json_response(VendorCreatedView(vendor_id=str(vendor.vendor_id), name=vendor.name,
                                           api_key=vendor.api_key), status=201)


routes = [web.post("/api/v1/admin/vendors", create_vendor)]
