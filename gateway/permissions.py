"""Spending-permission routes, the same family for every funding source: `/api/v1/{source}/permissions...`,
and the Zcash wallet balance."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from billing.permission_service import PermissionState
from gateway.auth import is_operator, parse_uuid, require_permission_access, required_token, token_permission
from gateway.faces import checkout_url
from gateway.http import json_response, read_body
from gateway.keys import SERVICES
from gateway.models import (
    BalanceView,
    CreatedPermissionView,
    CreatePermissionRequest,
    PermissionView,
    RefundRequest,
    VerifyRequest,
)
from gateway.openapi import Auth, Operation, Parameter, describe
from gateway.views import balance_view, permission_answer

DEFAULT_ASSET = {"zcash": "ZEC", "ethereum": "ETH", "card": "USD"}


def routes(funding_source: str, *, create_body: type[CreatePermissionRequest] = CreatePermissionRequest,
           verify_body: type[VerifyRequest] | None = None, extra_view: type[BaseModel] | None = None,
           refunds: bool = False) -> list[web.RouteDef]:
    """The routes for one funding source; each handler knows which source it serves. A source may read a richer
    create body (`create_body`: it builds the request billing checks) and name transactions to verify
    (`verify_body`); `extra_view` describes the fields its answers add (for the API description); `refunds` adds
    the refund of the unused balance (chain sources; card refunds have their own route)."""
    base = f"/api/v1/{funding_source}/permissions"
    extra = (extra_view,) if extra_view is not None else ()
    holder = (Auth.PERMISSION_TOKEN, Auth.OPERATOR_KEY)
    tag = funding_source
    path_id = {"id": "The permission's id (`permission_id`)"}
    default_asset = DEFAULT_ASSET[funding_source]

    @describe(Operation(summary=f"Create a {funding_source} spending permission", tag=tag, body=create_body,
                        status=201, response=(CreatedPermissionView, *extra), errors=(409, 422, 503),
                        description="Answers the permission with its `permission_token` (shown only here) and, "
                                    "for on-chain sources, the `payment_address` to fund."))
    async def create(request: web.Request) -> web.Response:
        body = await read_body(request, create_body)
        created = await request.app[SERVICES].permissions.create(body.permission_request(funding_source,
                                                                                        default_asset))
        view = _answer(request, created.state)
        answer: dict[str, Any] = {**(view.model_dump(mode="json") if isinstance(view, BaseModel) else view),
                                  "permission_token": created.permission_token, "notify_secret": created.notify_secret}
        return json_response(answer, status=201)

    async def accessible_state(request: web.Request) -> PermissionState:
        """The permission named in the path, for its token holder (one round trip with the token's check) or the
        operator, if it is this source's."""
        permission_id = parse_uuid(request.match_info["id"], "permission")
        permissions = request.app[SERVICES].permissions
        if is_operator(request):
            return await permissions.state(permission_id, funding_source)
        return await permissions.state_for_token(permission_id, required_token(request), funding_source)

    @describe(Operation(summary=f"Show a {funding_source} permission", tag=tag, auth=holder,
                        response=(PermissionView, *extra), errors=(403, 404),
                        path_parameters=path_id))
    async def show(request: web.Request) -> web.Response:
        return json_response(_answer(request, await accessible_state(request)))

    @describe(Operation(summary=f"Look for payments to a {funding_source} permission now and credit confirmed ones",
                        tag=tag, auth=holder, body=verify_body, body_required=False,
                        response=(PermissionView, *extra), errors=(403, 404, 409, 422, 503),
                        path_parameters=path_id))
    async def verify(request: web.Request) -> web.Response:
        state = await accessible_state(request)
        offered = (await read_body(request, verify_body)).tx_hashes if verify_body and await request.read() else []
        state = await request.app[SERVICES].permissions.verify(state.permission.id, funding_source, offered)
        return json_response(_answer(request, state))

    @describe(Operation(summary=f"The {funding_source} permission of a wallet", tag=tag, auth=holder,
                        response=(PermissionView, *extra), errors=(403, 404, 422),
                        path_parameters={"address": "The wallet address (card: the buyer's email)"},
                        description="The operator sees the wallet's newest permission that matters; a token "
                                    "holder sees their own permission, if it belongs to this wallet."))
    async def for_wallet(request: web.Request) -> web.Response:
        permissions = request.app[SERVICES].permissions
        address = request.match_info["address"]
        if is_operator(request):
            permission_id = await permissions.wallet_permission_id(funding_source, address)
        else:
            permission_id = await token_permission(request)
        return json_response(_answer(request, await permissions.state_for_wallet(permission_id, funding_source,
                                                                                  address)))

    @describe(Operation(
        summary=f"Refund the unused balance of a {funding_source} permission and close it", tag=tag, auth=holder,
        body=RefundRequest, body_required=False, response=(PermissionView, *extra), errors=(403, 404, 409, 422, 503),
        path_parameters=path_id,
        description="Open sessions are ended and charged first; then the whole balance leaves the permission (a "
                    "`refund` ledger entry) and the permission is `closed`. Zcash: the balance minus the network "
                    "fee (`refund.network_fee`) is sent from the service account to `refund_address` (default: "
                    "the wallet), once; `refund.txid` names the transaction. Ethereum: a payout order to the "
                    "signing wallet that the operator pays; `refund.status` turns `paid` when the gateway sees "
                    "it. Asking again answers the same refund."))
    async def refund(request: web.Request) -> web.Response:
        permission_id = parse_uuid(request.match_info["id"], "permission")
        await require_permission_access(request, permission_id)
        body = await read_body(request, RefundRequest) if await request.read() else RefundRequest()
        state = await request.app[SERVICES].refunds.refund(permission_id, funding_source, body.refund_address)
        return json_response(_answer(request, state))

    return [
        web.post(base, create),
        web.get(f"{base}/wallet/{{address}}", for_wallet),
        web.get(f"{base}/{{id}}", show),
        web.post(f"{base}/{{id}}/verify", verify),
        *([web.post(f"{base}/{{id}}/refund", refund)] if refunds else []),
    ]


def _answer(request: web.Request, state: PermissionState) -> PermissionView | dict[str, Any]:
    return permission_answer(state, checkout_url(request, state.permission.id))


@describe(Operation(
    summary="A wallet's visible ZEC balance and the streaming hours it could buy", tag="zcash", response=BalanceView,
    errors=(422, 503), path_parameters={"address": "A Zcash address (transparent, Sapling or unified)"},
    query=(Parameter("rate_per_hour", "ZEC per hour, to estimate the hours the balance buys",
                     {"type": "string", "examples": ["2.5"]}),)))
async def zcash_balance(request: web.Request) -> web.Response:
    """A wallet's visible ZEC and the streaming it could buy at `rate_per_hour`.

    The node sees transparent balances only (its address index); a shielded balance belongs to whoever holds the
    viewing key, so it is reported as unknown (null, with the reason), never as a made-up zero.
    """
    report = await request.app[SERVICES].permissions.wallet_balance(
        "zcash", request.match_info["address"], "ZEC", request.query.get("rate_per_hour"))
    return json_response(balance_view(report))


zcash_routes = [web.get("/api/v1/zcash/balance/{address}", zcash_balance)]
