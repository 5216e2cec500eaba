"""The JSON behind the pages: a permission's public checkout state, the wallet view, a vendor's own account and key
rotation, and the operator's overview, time series and audit trail. Each handler parses, authenticates, calls one
service method and formats; amounts leave as exact decimal strings.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from billing.checkout import CheckoutPhase, CheckoutState
from billing.dashboards import MAX_TIMESERIES_DAYS, LedgerLine
from gateway.auth import parse_uuid, require_operator, require_vendor, token_holder
from gateway.dashboard_models import (
    ActiveSessionsPointView,
    AuditTrailView,
    AwaitingPermissionView,
    BacklogView,
    CheckoutPaymentView,
    CheckoutView,
    JobView,
    LedgerEntryView,
    OpenSessionView,
    OperatorOverviewView,
    OperatorTimeseriesView,
    PendingPaymentView,
    PermissionChangeView,
    RevenuePointView,
    VendorAccountView,
    WalletView,
)
from gateway.faces import checkout_url, qr_path
from gateway.http import json_response, read_body
from gateway.keys import SERVICES
from gateway.models import PermissionView
from gateway.openapi import Auth, Operation, Parameter, describe
from gateway.vendor_models import RotatedVendorKeyView, RotateVendorKeyRequest, VendorKeyView
from gateway.views import iso, permission_answer
from kernel.assets import Asset
from kernel.errors import InvalidRequest
from kernel.money import format_amount, format_hours, hours_for

DEFAULT_TIMESERIES_DAYS = 7
AWAITING_PHASES = frozenset({CheckoutPhase.WAITING, CheckoutPhase.SEEN, CheckoutPhase.CONFIRMING,
                             CheckoutPhase.PARTIAL})


def _ledger_view(line: LedgerLine, asset: Asset) -> LedgerEntryView:
    return LedgerEntryView(id=line.id, kind=line.kind, amount=format_amount(line.amount, asset),
                           balance_after=format_amount(line.balance_after, asset),
                           session_id=str(line.session_id) if line.session_id else None, memo=line.memo,
                           created_at=iso(line.created_at))


def _seconds_until(moment: datetime | None, now: datetime) -> int | None:
    return None if moment is None else max(0, int((moment - now).total_seconds()))


# --- checkout (public) -----------------------------------------------------------------------------------------

def checkout_view(state: CheckoutState) -> CheckoutView:
    """The checkout state as the page and its JSON show it."""
    p, asset, progress = state.permission, state.asset, state.progress
    request = state.payment_request
    awaiting = progress.phase in AWAITING_PHASES
    return CheckoutView(
        permission_id=str(p.id),
        funding_source=p.funding_source,
        asset=asset.code,
        status=p.status_at(state.now),
        phase=progress.phase.value,
        amount_to_pay=format_amount(p.approved_amount, asset),
        amount_received=format_amount(progress.received, asset),
        amount_credited=format_amount(progress.credited, asset),
        amount_missing=format_amount(progress.missing, asset),
        amount_overpaid=format_amount(progress.overpaid, asset),
        amount_late=format_amount(progress.late, asset),
        orphaned_payments=progress.orphaned_payments,
        confirmations_required=state.confirmations_required,
        confirmations_seen=progress.confirmations_seen,
        payments=[CheckoutPaymentView(txid=pay.txid, amount=format_amount(pay.amount, asset),
                                      confirmations=pay.confirmations, status=pay.status)
                  for pay in state.payments],
        rate_per_hour=format_amount(p.rate_per_hour, asset),
        max_streaming_hours=format_hours(hours_for(p.approved_amount, p.rate_per_hour)),
        payment_address=p.payment_address,
        payer_wallet=p.user_wallet_address if p.funding_source == "ethereum" else None,
        payment_uri=request.uri if request is not None and awaiting else None,
        payment_qr_url=(qr_path(p.id, format_amount(request.amount, asset) if request.amount is not None else None)
                        if request is not None and awaiting else None),
        card_checkout_url=p.checkout_url if p.funding_source == "card" and awaiting else None,
        unfunded_reason=state.unfunded_reason,
        payment_due_at=iso(p.payment_due_at),
        payment_window_seconds=_seconds_until(p.payment_due_at, state.now) if awaiting else None,
        expires_at=iso(p.expires_at),
        server_time=iso(state.now),
    )


@describe(Operation(
    summary="What paying a permission needs and how far the payment got (public: the checkout page reads it)",
    tag="checkout", response=CheckoutView, errors=(404,),
    path_parameters={"permission_id": "The permission's id"},
    description="No credential: it shows only what paying needs (amount, address, payment URI, payments and their "
                "confirmations), never a token or a balance. `phase`: waiting → seen → confirming → active, or "
                "partial, expired. The payment watcher updates payments every few seconds."))
async def show_checkout(request: web.Request) -> web.Response:
    permission_id = parse_uuid(request.match_info["permission_id"], "permission")
    return json_response(checkout_view(await request.app[SERVICES].checkout.state(permission_id)))


# --- the wallet view (permission token) ------------------------------------------------------------------------

@describe(Operation(
    summary="The token's permission with its open sessions and latest balance changes (the wallet page)",
    tag="wallet", auth=(Auth.PERMISSION_TOKEN,), response=WalletView, errors=(404,)))
async def show_wallet(request: web.Request) -> web.Response:
    holder = await token_holder(request)
    wallet = await request.app[SERVICES].dashboards.wallet(holder.permission_id)
    state, asset = wallet.state, wallet.state.asset
    payment = state.payment_request
    return json_response(WalletView(
        permission=PermissionView.model_validate(permission_answer(state, checkout_url(request, holder.permission_id))),
        open_sessions=[OpenSessionView(session_id=str(s.session_id), vendor_id=str(s.vendor_id),
                                       vendor_name=s.vendor_name, started_at=iso(s.started_at),
                                       rate_per_hour=format_amount(s.rate_per_hour, asset),
                                       charged_amount=format_amount(s.charged_amount, asset))
                       for s in wallet.open_sessions],
        ledger=[_ledger_view(line, asset) for line in wallet.ledger],
        payment_qr_url=(qr_path(holder.permission_id,
                                format_amount(payment.amount, asset) if payment.amount is not None else None)
                        if payment is not None else None),
        server_time=iso(state.now),
    ))


# --- the vendor's own account (vendor key) ---------------------------------------------------------------------

@describe(Operation(summary="The calling vendor: name, webhook URL and key prefixes", tag="vendor",
                    auth=(Auth.VENDOR_KEY,), response=VendorAccountView))
async def vendor_account(request: web.Request) -> web.Response:
    vendor_id = await require_vendor(request)
    profile = await request.app[SERVICES].dashboards.vendor_account(vendor_id)
    return json_response(VendorAccountView(
        vendor_id=str(profile.vendor_id), name=profile.name, webhook_url=profile.webhook_url,
        keys=[VendorKeyView(key_prefix=key.key_prefix, created_at=iso(key.created_at), expires_at=iso(key.expires_at),
                            revoked_at=iso(key.revoked_at), live=key.live) for key in profile.keys]))


@describe(Operation(
    summary="A new API key for the calling vendor (shown once); its current keys stay valid for an overlap",
    tag="vendor", auth=(Auth.VENDOR_KEY,), body=RotateVendorKeyRequest, body_required=False, status=201,
    response=RotatedVendorKeyView,
    description="The key that calls this and the vendor's other live keys keep working for `overlap_seconds` "
                "(default: the gateway's VENDOR_KEY_ROTATION_OVERLAP_SECONDS), so servers can switch without an "
                "outage. 422 `invalid_overlap` outside 0 to 30 days."))
async def rotate_own_key(request: web.Request) -> web.Response:
    vendor_id = await require_vendor(request)
    overlap = (await read_body(request, RotateVendorKeyRequest)).overlap_seconds if await request.read() else None
    rotated = await request.app[SERVICES].vendors.rotate_key(vendor_id, overlap)
    return json_response(RotatedVendorKeyView(vendor_id=str(vendor_id), api_key=rotated.api_key,
                                              key_prefix=rotated.key_prefix,
                                              previous_keys_expire_at=iso(rotated.previous_keys_expire_at)),
                         status=201)


# --- the operator (operator key) -------------------------------------------------------------------------------

def _asset(code: str, decimals: int, funding_source: str) -> Asset:
    return Asset(code, decimals, funding_source)


@describe(Operation(
    summary="Active sessions and permissions, payments awaiting confirmation, the webhook backlog and the "
            "scheduler's jobs", tag="admin", auth=(Auth.OPERATOR_KEY,), response=OperatorOverviewView))
async def operator_overview(request: web.Request) -> web.Response:
    require_operator(request)
    overview = await request.app[SERVICES].dashboards.operator_overview()
    return json_response(OperatorOverviewView(
        active_sessions=overview.active_sessions,
        active_permissions=overview.active_permissions,
        permissions_awaiting_payment=overview.permissions_awaiting_payment,
        awaiting=[AwaitingPermissionView(
            permission_id=str(a.permission_id), funding_source=a.funding_source, asset=a.asset,
            amount_to_pay=format_amount(a.amount_to_pay, _asset(a.asset, a.asset_decimals, a.funding_source)),
            amount_received=format_amount(a.received, _asset(a.asset, a.asset_decimals, a.funding_source)),
            created_at=iso(a.created_at), payment_due_at=iso(a.payment_due_at)) for a in overview.awaiting],
        pending_payments=[PendingPaymentView(
            permission_id=str(q.permission_id) if q.permission_id else None, funding_source=q.funding_source,
            asset=q.asset, txid=q.txid, output_index=q.output_index,
            amount=format_amount(q.amount, _asset(q.asset, q.asset_decimals, q.funding_source)),
            confirmations=q.confirmations, first_seen_at=iso(q.first_seen_at)) for q in overview.pending_payments],
        webhook_backlog=[BacklogView(kind=b.kind, event_type=b.event_type, status=b.status,
                                     messages=b.messages, retried=b.retried, max_attempts=b.max_attempts,
                                     oldest_age_seconds=b.oldest_age_seconds, next_attempt_at=iso(b.next_attempt_at))
                         for b in overview.webhook_backlog],
        jobs=[JobView(job_name=j.job_name, last_succeeded_at=iso(j.last_succeeded_at),
                      seconds_since_success=j.seconds_since_success, last_duration_ms=j.last_duration_ms, runs=j.runs,
                      failing=j.failing, last_error=j.last_error) for j in overview.jobs],
    ))


def _days(request: web.Request) -> int:
    unknown = sorted(set(request.query) - {"days"})
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r} (accepted: days)", code="unknown_parameter")
    raw = request.query.get("days", str(DEFAULT_TIMESERIES_DAYS)).strip()
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_TIMESERIES_DAYS:
        raise InvalidRequest(f"days must be a whole number from 1 to {MAX_TIMESERIES_DAYS}", code="invalid_days")
    return int(raw)


@describe(Operation(
    summary="Active sessions per hour and net revenue per vendor per UTC day, over the last `days` days",
    tag="admin", auth=(Auth.OPERATOR_KEY,), response=OperatorTimeseriesView, errors=(422,),
    query=(Parameter("days", f"1 to {MAX_TIMESERIES_DAYS} (default {DEFAULT_TIMESERIES_DAYS}), today included",
                     {"type": "string", "pattern": "^[0-9]+$", "examples": ["7"]}),)))
async def operator_timeseries(request: web.Request) -> web.Response:
    require_operator(request)
    series = await request.app[SERVICES].dashboards.operator_timeseries(_days(request))
    return json_response(OperatorTimeseriesView(
        days=series.days,
        active_sessions=[ActiveSessionsPointView(hour=iso(point.hour), sessions=point.sessions)
                         for point in series.active_sessions],
        revenue=[RevenuePointView(day=point.day.isoformat(), vendor_id=str(point.vendor_id),
                                  vendor_name=point.vendor_name, asset=point.asset,
                                  amount=format_amount(point.amount, _asset(point.asset, point.asset_decimals,
                                                                            point.funding_source)))
                 for point in series.revenue],
    ))


@describe(Operation(
    summary="The audit trail of one permission: every change of its status and balance, and every ledger entry",
    tag="admin", auth=(Auth.OPERATOR_KEY,), response=AuditTrailView, errors=(404,),
    path_parameters={"permission_id": "The permission's id"}))
async def permission_audit(request: web.Request) -> web.Response:
    require_operator(request)
    permission_id = parse_uuid(request.match_info["permission_id"], "permission")
    trail = await request.app[SERVICES].dashboards.audit_trail(permission_id)
    asset = _asset(trail.asset, trail.asset_decimals, trail.funding_source)
    return json_response(AuditTrailView(
        permission_id=str(trail.permission_id), funding_source=trail.funding_source, asset=trail.asset,
        status=trail.status,
        changes=[PermissionChangeView(
            action=c.action, old_status=c.old_status, new_status=c.new_status,
            old_balance=format_amount(c.old_balance, asset) if c.old_balance is not None else None,
            new_balance=format_amount(c.new_balance, asset), created_at=iso(c.created_at)) for c in trail.changes],
        ledger=[_ledger_view(line, asset) for line in trail.ledger],
    ))


routes = [
    web.get("/api/v1/checkout/{permission_id}", show_checkout),
    web.get("/api/v1/wallet", show_wallet),
    web.get("/api/v1/vendor/account", vendor_account),
    web.post("/api/v1/vendor/keys/rotate", rotate_own_key),
    web.get("/api/v1/admin/overview", operator_overview),
    web.get("/api/v1/admin/timeseries", operator_timeseries),
    web.get("/api/v1/admin/permissions/{permission_id}/audit", permission_audit),
]
