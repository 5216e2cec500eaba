"""Operator routes (X-API-Key: ADMIN_API_KEY): vendors, and the payouts of refunds."""

from __future__ import annotations

from aiohttp import web

from billing.refunds import PayoutStatus
from gateway.auth import parse_uuid, require_operator
from gateway.http import json_response, read_body
from gateway.keys import SERVICES
from gateway.models import (
    CreateVendorRequest,
    OfferPayoutTransactionRequest,
    PayoutListView,
    PayoutView,
    ResolvePayoutRequest,
    VendorCreatedView,
)
from gateway.openapi import Auth, Operation, Parameter, describe
from gateway.views import payout_view
from kernel.errors import InvalidRequest

PAYOUT_QUERY = ("status", "funding_source", "limit")
DEFAULT_PAYOUT_LIMIT = 100


@describe(Operation(summary="Create a vendor and its first API key (shown once)", auth=(Auth.OPERATOR_KEY,),
                    body=CreateVendorRequest, status=201, response=VendorCreatedView))
async def create_vendor(request: web.Request) -> web.Response:
    require_operator(request)
    body = await read_body(request, CreateVendorRequest)
    vendor = await request.app[SERVICES].vendors.create(body.name, body.direct_charge_grace_seconds)
    return json_response(VendorCreatedView(vendor_id=str(vendor.vendor_id), name=vendor.name,
                                           api_key=vendor.api_key), status=201)


@describe(Operation(
    summary="The payouts of refunds, newest first: Ethereum orders to pay, Zcash sends and their outcome",
    tag="admin", auth=(Auth.OPERATOR_KEY,), response=PayoutListView,
    query=(Parameter("status", "Comma list of statuses (e.g. `pending,unknown`)", {"type": "string"}),
           Parameter("funding_source", "zcash or ethereum", {"type": "string"}),
           Parameter("limit", "1 to 500 (default 100)", {"type": "string", "pattern": "^[0-9]+$"}))))
async def list_payouts(request: web.Request) -> web.Response:
    require_operator(request)
    query = request.query
    unknown = sorted(set(query) - set(PAYOUT_QUERY))
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r}", code="unknown_parameter")
    statuses = None
    if "status" in query:
        names = {name.strip() for name in query["status"].split(",") if name.strip()}
        if not names or not names <= set(PayoutStatus):
            raise InvalidRequest(f"status must be a comma list of {', '.join(PayoutStatus)}", code="invalid_status")
        statuses = frozenset(PayoutStatus(name) for name in names)
    raw_limit = query.get("limit", str(DEFAULT_PAYOUT_LIMIT))
    if not raw_limit.isdigit():
        raise InvalidRequest("limit must be a whole number", code="invalid_limit")
    payouts = await request.app[SERVICES].refunds.list(statuses=statuses, funding_source=query.get("funding_source"),
                                                       limit=int(raw_limit))
    return json_response(PayoutListView(payouts=[payout_view(payout) for payout in payouts]))


@describe(Operation(
    summary="Resolve a Zcash refund whose send the node cannot tell about (sent, or not sent: send it again)",
    tag="admin", auth=(Auth.OPERATOR_KEY,), body=ResolvePayoutRequest, response=PayoutView, errors=(404, 409, 422),
    path_parameters={"id": "The payout's id (`refund.payout_id`)"},
    description="Only for a send that is `sending`, `submitted` or `unknown`: the gateway reconciles those with "
                "the node by itself, and asks the operator only when the node cannot tell (a stuck operation, a "
                "node that lost its operations and the transaction). `not_sent` puts it back to `pending`: the "
                "refunds job sends it again, so say it only when it is certain."))
async def resolve_payout(request: web.Request) -> web.Response:
    require_operator(request)
    payout_id = parse_uuid(request.match_info["id"], "payout")
    body = await read_body(request, ResolvePayoutRequest)
    payout = await request.app[SERVICES].refunds.resolve(payout_id, sent=body.outcome == "sent", txid=body.txid,
                                                         note=body.note)
    return json_response(payout_view(payout))


@describe(Operation(
    summary="Name the transaction that paid an Ethereum payout order (checked on chain now)", tag="admin",
    auth=(Auth.OPERATOR_KEY,), body=OfferPayoutTransactionRequest, response=PayoutView, errors=(404, 409, 422, 503),
    path_parameters={"id": "The payout's id (`refund.payout_id`)"},
    description="It must be a successful transfer from the service address to the payout's destination of exactly "
                "its amount (ETH, or the token's contract), with ETH_MIN_CONFIRMATIONS. The payout watcher finds "
                "such a transaction by itself; a transaction pays one payout only (409 `payout_tx_already_used`)."))
async def offer_payout_transaction(request: web.Request) -> web.Response:
    require_operator(request)
    payout_id = parse_uuid(request.match_info["id"], "payout")
    body = await read_body(request, OfferPayoutTransactionRequest)
    return json_response(payout_view(await request.app[SERVICES].refunds.offer(payout_id, body.tx_hash)))


routes = [
    web.post("/api/v1/admin/vendors", create_vendor),
    web.get("/api/v1/admin/payouts", list_payouts),
    web.post("/api/v1/admin/payouts/{id}/resolve", resolve_payout),
    web.post("/api/v1/admin/payouts/{id}/verify", offer_payout_transaction),
]
