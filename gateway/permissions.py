"""Spending-permission routes, the same family for every funding source: `/api/v1/{source}/permissions...`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from billing.errors import NotFound, ServiceUnavailable
from billing.money import format_amount, format_hours, hours_for, parse_amount
from billing.service import BillingService, OnInsert, PermissionRequest, PermissionState
from chains.zcash import ZcashFundingSource
from chains.zcash_address import decode_address
from gateway.auth import is_operator, require_permission_access, token_permission
from gateway.faces import checkout_links
from gateway.http import json_response, read_body
from gateway.keys import BILLING
from gateway.models import BalanceView, CreatedPermissionView, CreatePermissionRequest, PermissionView
from gateway.openapi import Auth, Operation, Parameter, describe
from gateway.views import permission_view

DEFAULT_ASSET = {"zcash": "ZEC", "ethereum": "ETH", "card": "USD"}


def parse_uuid(raw: str, what: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(f"no {what} with id {raw!r}", code=f"{what}_not_found") from None


def _view(billing: BillingService, state: PermissionState, funding_source: str) -> PermissionView:
    asset = billing.assets[state.permission.asset]
    return permission_view(state, asset, billing.min_confirmations.get(funding_source, 1))


# A source's check of a create request before anything is stored (a wallet's signature, say); it may return a
# callback run in the transaction that inserts the permission (to record what authorized it).
Authorize = Callable[[web.Request, Any, PermissionRequest], Awaitable[OnInsert | None]]
# A source's hints for verify (transaction hashes the request names), given the permission's current state.
VerifyHints = Callable[[web.Request, PermissionState], Awaitable[tuple[str, ...]]]
# Source-specific options for prepare_funding taken from the create body (card: success_url, cancel_url).
FundingExtra = Callable[[Any], dict[str, str]]
# Fields a source adds to every answer about one of its permissions (card: checkout_url, refunds, debt).
ExtraFields = Callable[[web.Request, PermissionState], Awaitable[dict[str, Any]]]


def permission_routes(funding_source: str, *, create_body: type[CreatePermissionRequest] = CreatePermissionRequest,
                      authorize: Authorize | None = None,
                      verify_hints: VerifyHints | None = None, funding_extra: FundingExtra | None = None,
                      extra_fields: ExtraFields | None = None, verify_body: type[BaseModel] | None = None,
                      extra_fields_view: type[BaseModel] | None = None) -> list[web.RouteDef]:
    """The routes for one funding source; each handler knows which source it serves. A source may read a richer
    create body (`create_body`), check it (`authorize`) and name transactions to verify (`verify_hints`), pass
    options to its funding (`funding_extra`) and add fields to its answers (`extra_fields`). For the API
    description, `verify_body` is the optional body `verify_hints` reads and `extra_fields_view` the fields
    `extra_fields` adds."""
    base = f"/api/v1/{funding_source}/permissions"
    extra = (extra_fields_view,) if extra_fields_view is not None else ()
    holder = (Auth.PERMISSION_TOKEN, Auth.OPERATOR_KEY)
    tag = funding_source
    path_id = {"id": "The permission's id (`permission_id`)"}

    async def answer(request: web.Request, view: PermissionView, state: PermissionState,
                     status: int = 200) -> web.Response:
        view = view.model_copy(update=checkout_links(request, state))
        if extra_fields is None:
            return json_response(view, status=status)
        return json_response({**view.model_dump(mode="json"), **await extra_fields(request, state)}, status=status)

    @describe(Operation(summary=f"Create a {funding_source} spending permission", tag=tag, body=create_body,
                        status=201, response=(CreatedPermissionView, *extra), errors=(409, 422, 503),
                        description="Answers the permission with its `permission_token` (shown only here) and, "
                                    "for on-chain sources, the `payment_address` to fund."))
    async def create(request: web.Request) -> web.Response:
        billing = request.app[BILLING]
        body = await read_body(request, create_body)
        permission_request = PermissionRequest(
            funding_source=funding_source, asset=body.asset or DEFAULT_ASSET[funding_source],
            user_wallet_address=body.user_wallet_address, requested_amount=body.requested_amount,
            rate_per_hour=body.rate_per_hour, duration_days=body.duration_days, notify_url=body.notify_url,
            funding_extra=funding_extra(body) if funding_extra is not None else {},
        )
        on_insert = await authorize(request, body, permission_request) if authorize is not None else None
        created = await billing.create_permission(permission_request, on_insert=on_insert)
        state = await billing.permission_state(created.permission.id)
        view = _view(billing, state, funding_source)
        return await answer(request, CreatedPermissionView(**view.model_dump(),
                                                           permission_token=created.permission_token,
                                                           notify_secret=created.notify_secret),
                            state, status=201)

    async def accessible_state(request: web.Request) -> PermissionState:
        """The permission named in the path, for its token holder or the operator, if it is this source's."""
        permission_id = parse_uuid(request.match_info["id"], "permission")
        await require_permission_access(request, permission_id)
        state = await request.app[BILLING].permission_state(permission_id)
        _require_source(state.permission.funding_source, funding_source)
        return state

    @describe(Operation(summary=f"Show a {funding_source} permission", tag=tag, auth=holder,
                        response=(PermissionView, *extra), errors=(403, 404), path_parameters=path_id))
    async def show(request: web.Request) -> web.Response:
        state = await accessible_state(request)
        return await answer(request, _view(request.app[BILLING], state, funding_source), state)

    @describe(Operation(summary=f"Look for payments to a {funding_source} permission now and credit confirmed ones",
                        tag=tag, auth=holder, body=verify_body, body_required=False,
                        response=(PermissionView, *extra), errors=(403, 404, 409, 422, 503),
                        path_parameters=path_id))
    async def verify(request: web.Request) -> web.Response:
        billing = request.app[BILLING]
        state = await accessible_state(request)
        hints = await verify_hints(request, state) if verify_hints is not None else ()
        state = await billing.verify_permission(state.permission.id, hints)
        return await answer(request, _view(billing, state, funding_source), state)

    @describe(Operation(summary=f"The {funding_source} permission of a wallet", tag=tag, auth=holder,
                        response=(PermissionView, *extra), errors=(403, 404, 422),
                        path_parameters={"address": "The wallet address (card: the buyer's email)"},
                        description="The operator sees the wallet's newest permission that matters; a token "
                                    "holder sees their own permission, if it belongs to this wallet."))
    async def for_wallet(request: web.Request) -> web.Response:
        """The wallet's permission: the operator sees the newest that matters; a token holder sees their own."""
        billing = request.app[BILLING]
        address = request.match_info["address"]
        if is_operator(request):
            permission = await billing.wallet_permission(funding_source, address)
            if permission is None:
                raise NotFound("no permission for this wallet", code="permission_not_found")
            permission_id = permission.id
        else:
            permission_id = await token_permission(request)
        state = await billing.permission_state(permission_id)
        wallet = billing.source(funding_source).validate_address(address)
        if state.permission.user_wallet_address != wallet or state.permission.funding_source != funding_source:
            raise NotFound("no permission for this wallet under this token", code="permission_not_found")
        return await answer(request, _view(billing, state, funding_source), state)

    return [
        web.post(base, create),
        web.get(f"{base}/wallet/{{address}}", for_wallet),
        web.get(f"{base}/{{id}}", show),
        web.post(f"{base}/{{id}}/verify", verify),
    ]


def _require_source(actual: str, expected: str) -> None:
    if actual != expected:
        raise NotFound(f"this permission is funded by {actual}, not {expected}", code="permission_not_found")


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
    billing = request.app[BILLING]
    source = billing.source("zcash")
    assert isinstance(source, ZcashFundingSource)
    asset = billing.assets["ZEC"]
    address = source.validate_address(request.match_info["address"])
    raw_rate = request.query.get("rate_per_hour")
    rate = parse_amount(raw_rate, asset, "rate_per_hour") if raw_rate is not None else None
    transparent = await source.transparent_balance(address)
    if transparent is None:
        raise ServiceUnavailable("the Zcash node's address index is disabled, so balances cannot be read",
                                 code="address_index_disabled", retry_after=3600)
    shielded_reason = (
        "shielded funds are visible only with the wallet's viewing key, which the gateway does not hold"
        if decode_address(address).is_shielded else None
    )
    estimated = hours_for(transparent, rate) if rate else None
    return json_response(BalanceView(
        wallet_address=address,
        asset=asset.code,
        transparent_balance=format_amount(transparent, asset),
        shielded_balance=None if shielded_reason else format_amount(0, asset),
        shielded_balance_reason=shielded_reason,
        total_balance=None if shielded_reason else format_amount(transparent, asset),
        visible_balance=format_amount(transparent, asset),
        can_stream=(transparent >= rate) if rate else None,
        estimated_hours=format_hours(estimated) if estimated is not None else None,
    ))
