"""Spending-permission routes, the same family for every funding source: `/api/v1/{source}/permissions...`."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from billing.errors import NotFound, ServiceUnavailable
from billing.money import format_amount, format_hours, hours_for, parse_amount
from billing.service import BillingService, PermissionRequest, PermissionState
from chains.zcash import ZcashFundingSource
from chains.zcash_address import decode_address
from gateway.auth import is_operator, require_permission_access, token_permission
from gateway.http import json_response, read_body
from gateway.keys import BILLING
from gateway.models import BalanceView, CreatedPermissionView, CreatePermissionRequest, PermissionView
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


def permission_routes(funding_source: str) -> list[web.RouteDef]:
    """The routes for one funding source; each handler knows which source it serves."""
    base = f"/api/v1/{funding_source}/permissions"

    async def create(request: web.Request) -> web.Response:
        billing = request.app[BILLING]
        body = await read_body(request, CreatePermissionRequest)
        created = await billing.create_permission(PermissionRequest(
            funding_source=funding_source, asset=body.asset or DEFAULT_ASSET[funding_source],
            user_wallet_address=body.user_wallet_address, requested_amount=body.requested_amount,
            rate_per_hour=body.rate_per_hour, duration_days=body.duration_days,
        ))
        state = await billing.permission_state(created.permission.id)
        view = _view(billing, state, funding_source)
        return json_response(CreatedPermissionView(**view.model_dump(), permission_token=created.permission_token),
                             status=201)

    async def show(request: web.Request) -> web.Response:
        billing = request.app[BILLING]
        permission_id = parse_uuid(request.match_info["id"], "permission")
        await require_permission_access(request, permission_id)
        state = await billing.permission_state(permission_id)
        _require_source(state.permission.funding_source, funding_source)
        return json_response(_view(billing, state, funding_source))

    async def verify(request: web.Request) -> web.Response:
        billing = request.app[BILLING]
        permission_id = parse_uuid(request.match_info["id"], "permission")
        await require_permission_access(request, permission_id)
        state = await billing.permission_state(permission_id)
        _require_source(state.permission.funding_source, funding_source)
        state = await billing.verify_permission(permission_id)
        return json_response(_view(billing, state, funding_source))

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
        return json_response(_view(billing, state, funding_source))

    return [
        web.post(base, create),
        web.get(f"{base}/wallet/{{address}}", for_wallet),
        web.get(f"{base}/{{id}}", show),
        web.post(f"{base}/{{id}}/verify", verify),
    ]


def _require_source(actual: str, expected: str) -> None:
    if actual != expected:
        raise NotFound(f"this permission is funded by {actual}, not {expected}", code="permission_not_found")


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
