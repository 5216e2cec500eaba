"""Turning billing values into response bodies (exact strings for every amount and hour count)."""

from __future__ import annotations

from datetime import datetime

from billing.assets import Asset
from billing.direct_charges import DirectCharge
from billing.money import format_amount, format_hours, hours_for, owed_for
from billing.permissions import Permission
from billing.reminders import projected_run_out_at
from billing.service import PermissionState
from billing.sessions import Session
from gateway.models import (
    DirectChargeView,
    PaymentView,
    PermissionView,
    ReminderView,
    SessionEndView,
    SessionView,
)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def permission_view(state: PermissionState, asset: Asset, confirmations_required: int) -> PermissionView:
    p = state.permission
    received = sum(pay.amount for pay in state.payments if pay.status != "orphaned")
    confirmed = sum(pay.amount for pay in state.payments if pay.status == "credited")
    live = [pay.confirmations for pay in state.payments if pay.status in ("seen", "credited")]
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
        confirmations_required=confirmations_required,
        confirmations_seen=min(live) if live else None,
        payments=[
            PaymentView(txid=pay.txid, output_index=pay.output_index, amount=format_amount(pay.amount, asset),
                        confirmations=pay.confirmations, block_height=pay.block_height, status=pay.status)
            for pay in state.payments
        ],
        created_at=iso(p.created_at),
        activated_at=iso(p.activated_at),
        expires_at=iso(p.expires_at),
        payment_due_at=iso(p.payment_due_at),
        notify_url=p.notify_url,
        renewal_due=state.renewal_due,
        projected_run_out_at=iso(projected_run_out_at(p, state.open_sessions, state.now)),
        reminders=[ReminderView(kind=r.kind, queued_at=iso(r.queued_at), delivery_status=r.delivery_status,
                                delivered_at=iso(r.delivered_at)) for r in state.reminders],
    )


def direct_charge_view(charge: DirectCharge | None, asset: Asset) -> DirectChargeView | None:
    if charge is None:
        return None
    return DirectChargeView(id=str(charge.id), status=charge.status, amount=format_amount(charge.amount, asset),
                            paid_amount=format_amount(charge.paid_amount, asset),
                            payment_address=charge.payment_address)


def session_end_view(session: Session, asset: Asset, charge: DirectCharge | None = None) -> SessionEndView:
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


def session_view(session: Session, permission: Permission, asset: Asset, now: datetime,
                 charge: DirectCharge | None = None) -> SessionView:
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
