"""Turning billing values into response bodies (exact strings for every amount and hour count)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing.direct_charges import DirectCharge
from billing.payment_uri import permission_named_by
from billing.permission_service import BalanceReport, PermissionState
from billing.permissions import PaymentRow, PaymentStatus
from billing.pricing import Pricing, Quote
from billing.refunds import Payout
from billing.reminders import projected_run_out_at
from billing.session_service import SessionState
from gateway.models import (
    BalanceView,
    CardPermissionFields,
    DirectChargeView,
    PaymentView,
    PayoutView,
    PermissionView,
    PricingView,
    QuoteView,
    ReminderView,
    SessionEndView,
    SessionView,
)
from kernel.assets import Asset
from kernel.money import format_amount, format_hours, hours_for, owed_for


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def permission_answer(state: PermissionState, checkout_url: str) -> PermissionView | dict[str, Any]:
    """The permission view with where a payer pays (`checkout_url`, the gateway's checkout page; `payment_uri`, for
    what to send now): the model itself (pydantic serializes it), or for a card permission the view with the card's
    own fields over it (its `checkout_url` is Stripe's page)."""
    asset = state.asset
    view = permission_view(state, asset, checkout_url=checkout_url,
                           payment_uri=state.payment_request.uri if state.payment_request is not None else None)
    if state.card is None:
        return view
    card = state.card
    return {**view.model_dump(mode="json"), **CardPermissionFields(
        checkout_url=state.permission.checkout_url, unfunded_reason=card.unfunded_reason,
        refunded_amount=format_amount(card.refunded_amount, asset),
        debt_amount=format_amount(card.debt_amount, asset), disputed_at=iso(card.disputed_at),
        refund_status=card.refund_status,
    ).model_dump(mode="json")}


def permission_view(state: PermissionState, asset: Asset, *, checkout_url: str | None = None,
                    payment_uri: str | None = None) -> PermissionView:
    p = state.permission
    received = sum(pay.amount for pay in state.payments if pay.status != PaymentStatus.ORPHANED)
    confirmed = sum(pay.amount for pay in state.payments if pay.status == PaymentStatus.CREDITED)
    live = [pay.confirmations for pay in state.payments if pay.status in (PaymentStatus.SEEN, PaymentStatus.CREDITED)]
    used = format_hours(hours_for(p.charged_amount, p.rate_per_hour))
    return PermissionView(
        id=str(p.id),
        permission_id=str(p.id),
        funding_source=p.funding_source,
        asset=p.asset,
        status=p.status_at(state.now),
        user_wallet_address=p.user_wallet_address,
        approved_amount=format_amount(p.approved_amount, asset),
        amount_to_pay=format_amount(p.approved_amount, asset),
        rate_per_hour=format_amount(p.rate_per_hour, asset),
        remaining_amount=format_amount(p.balance, asset),
        charged_amount=format_amount(p.charged_amount, asset),
        max_streaming_hours=format_hours(hours_for(p.approved_amount, p.rate_per_hour)),
        remaining_hours=format_hours(hours_for(p.balance, p.rate_per_hour)),
        used_hours=used,
        used_streaming_hours=used,
        payment_address=p.payment_address,
        amount_received=format_amount(received, asset),
        amount_confirmed=format_amount(confirmed, asset),
        amount_missing=format_amount(max(0, p.approved_amount - p.funded_amount), asset),
        confirmations_required=state.confirmations_required,
        confirmations_seen=min(live) if live else None,
        payments=[payment_view(pay, asset) for pay in state.payments],
        created_at=iso(p.created_at),
        activated_at=iso(p.activated_at),
        expires_at=iso(p.expires_at),
        payment_due_at=iso(p.payment_due_at),
        notify_url=p.notify_url,
        renewal_due=state.renewal_due,
        projected_run_out_at=iso(projected_run_out_at(p, state.open_sessions, state.now)),
        reminders=[ReminderView(kind=r.kind, queued_at=iso(r.queued_at), delivery_status=r.delivery_status,
                                delivered_at=iso(r.delivered_at)) for r in state.reminders],
        refund=payout_view(state.payout) if state.payout is not None else None,
        pricing=pricing_view(state.pricing, p.approved_amount, asset, state.now) if state.pricing else None,
        checkout_url=checkout_url,
        payment_uri=payment_uri,
    )


def payment_view(pay: PaymentRow, asset: Asset) -> PaymentView:
    named = permission_named_by(pay.memo)
    return PaymentView(txid=pay.txid, output_index=pay.output_index, amount=format_amount(pay.amount, asset),
                       confirmations=pay.confirmations, block_height=pay.block_height, status=pay.status,
                       memo=pay.memo, memo_permission_id=str(named) if named is not None else None)


def payout_view(payout: Payout) -> PayoutView:
    asset = Asset(payout.asset, payout.asset_decimals, payout.funding_source)
    return PayoutView(
        payout_id=str(payout.id), permission_id=str(payout.permission_id), funding_source=payout.funding_source,
        asset=payout.asset, method=payout.method, status=payout.status, destination=payout.destination,
        refund_amount=format_amount(payout.refund_amount, asset), network_fee=format_amount(payout.network_fee, asset),
        amount=format_amount(payout.amount, asset), memo=payout.memo, txid=payout.txid,
        block_height=payout.block_height, operation_id=payout.operation_id, attempts=payout.attempts,
        last_error=payout.last_error, resolved_note=payout.resolved_note, created_at=iso(payout.created_at) or "",
        updated_at=iso(payout.updated_at) or "", completed_at=iso(payout.completed_at),
    )


def quote_view(quote: Quote) -> QuoteView:
    return QuoteView(quote_id=str(quote.id), asset=quote.asset, pricing_currency=quote.currency,
                     rate=format(quote.rate, "f"), rate_source=quote.source, rate_time=iso(quote.rate_time) or "",
                     locked_until=iso(quote.locked_until) or "")


def pricing_view(pricing: Pricing, amount_due: int, asset: Asset, now: datetime) -> PricingView:
    money = pricing.currency_asset
    return PricingView(
        pricing_currency=pricing.currency, requested_amount=format_amount(pricing.requested_amount, money),
        rate_per_hour=format_amount(pricing.rate_per_hour, money), quote=quote_view(pricing.quote),
        locked=now < pricing.quote.locked_until, requotes=pricing.requotes,
        amount_due=format_amount(amount_due, asset),
    )


def direct_charge_view(charge: DirectCharge | None, asset: Asset) -> DirectChargeView | None:
    if charge is None:
        return None
    return DirectChargeView(id=str(charge.id), status=charge.status, amount=format_amount(charge.amount, asset),
                            paid_amount=format_amount(charge.paid_amount, asset),
                            payment_address=charge.payment_address)


def session_end_view(state: SessionState) -> SessionEndView:
    session, asset, charge = state.session, state.asset, state.direct_charge
    seconds = session.elapsed_seconds(session.ended_at or session.started_at)
    return SessionEndView(
        id=str(session.id),
        session_id=str(session.id),
        amount=format_amount(session.charged_amount, asset),
        asset=asset.code,
        duration_minutes=seconds // 60,
        duration_seconds=seconds,
        status="confirmed" if session.status == "ended" else session.status,
        uncovered_amount=format_amount(session.uncovered_amount, asset),
        direct_charge=direct_charge_view(charge, asset),
    )


def session_view(state: SessionState) -> SessionView:
    session, permission, asset, now, charge = (state.session, state.permission, state.asset, state.now,
                                               state.direct_charge)
    seconds = session.elapsed_seconds(now)
    return SessionView(
        session_id=str(session.id),
        status=session.status,
        asset=asset.code,
        rate_per_hour=format_amount(session.rate_per_hour, asset),
        started_at=iso(session.started_at),
        ended_at=iso(session.ended_at),
        duration_seconds=seconds,
        charged_amount=format_amount(session.charged_amount, asset),
        owed_amount=format_amount(owed_for(session.rate_per_hour, seconds), asset),
        remaining_amount=format_amount(permission.balance, asset),
        remaining_hours=format_hours(hours_for(permission.balance, permission.rate_per_hour)),
        permission_id=str(permission.id),
        permission_status=permission.status_at(now),
        direct_charge=direct_charge_view(charge, asset),
    )


def balance_view(report: BalanceReport) -> BalanceView:
    """A wallet's balance: what its node sees; a part only a viewing key sees is unknown (null, with why)."""
    asset, balance, rate = report.asset, report.balance, report.rate_per_hour
    visible = balance.units if balance.units is not None else 0
    hidden_reason = (
        "shielded funds are visible only with the wallet's viewing key, which the gateway does not hold"
        if balance.hidden else None
    )
    return BalanceView(
        wallet_address=report.wallet_address,
        asset=asset.code,
        transparent_balance=format_amount(visible, asset),
        shielded_balance=None if hidden_reason else format_amount(0, asset),
        shielded_balance_reason=hidden_reason,
        total_balance=None if hidden_reason else format_amount(visible, asset),
        visible_balance=format_amount(visible, asset),
        can_stream=(visible >= rate) if rate else None,
        estimated_hours=format_hours(hours_for(visible, rate)) if rate else None,
    )
