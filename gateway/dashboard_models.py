"""Bodies of the checkout, wallet, vendor-account and operator-dashboard endpoints (pydantic). Amounts are exact
decimal strings, times ISO 8601 in UTC."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gateway.models import AmountString, HoursString, PermissionView
from gateway.vendor_models import VendorKeyView

CheckoutPhaseName = Literal["waiting", "seen", "confirming", "partial", "active", "expired", "exhausted",
                            "suspended", "closed"]


class CheckoutPaymentView(BaseModel):
    txid: str
    amount: AmountString
    confirmations: int
    status: Literal["seen", "credited", "late", "orphaned"]


class CheckoutView(BaseModel):
    """What paying a permission needs, and how far it got. Public: no token, no balance, no payer (except the
    Ethereum wallet that must pay)."""

    permission_id: str
    funding_source: str
    asset: str
    status: str = Field(description="The permission's status")
    phase: CheckoutPhaseName = Field(description="waiting → seen (0 confirmations) → confirming (n of N) → active; "
                                                 "partial when less than the amount arrived")
    amount_to_pay: AmountString
    amount_received: AmountString = Field(description="Seen or credited (not orphaned, not late)")
    amount_credited: AmountString
    amount_missing: AmountString = Field(description="Still to send: amount_to_pay minus amount_received")
    amount_overpaid: AmountString = Field(description="Received beyond amount_to_pay (credited in full)")
    amount_late: AmountString = Field(description="Arrived after the permission expired: recorded, not credited")
    orphaned_payments: int = Field(description="Payments that left the chain (a reorg) and count for nothing")
    confirmations_required: int
    confirmations_seen: int | None = Field(description="Of the least deep payment not credited yet")
    payments: list[CheckoutPaymentView]
    rate_per_hour: AmountString
    max_streaming_hours: HoursString
    payment_address: str | None
    payer_wallet: str | None = Field(description="Ethereum: the wallet that signed the permission, which must pay")
    payment_uri: str | None = Field(description="ZIP-321 or EIP-681 URI for what to send now (null: nothing to "
                                                "send, or card)", examples=["zcash:u1qqq...?amount=10"])
    payment_qr_url: str | None = Field(description="The QR code of payment_uri as SVG (a path on this gateway)")
    card_checkout_url: str | None = Field(description="Card: the Stripe Checkout page")
    unfunded_reason: str | None = Field(description="Card: why Checkout did not fund it")
    payment_due_at: str | None
    payment_window_seconds: int | None = Field(
        description="Seconds left to pay while the permission awaits payment (0 once the window closed)")
    expires_at: str
    server_time: str


class OpenSessionView(BaseModel):
    session_id: str
    vendor_id: str
    vendor_name: str
    started_at: str
    rate_per_hour: AmountString
    charged_amount: AmountString


class LedgerEntryView(BaseModel):
    """One balance change of the permission: funding is positive, a charge negative."""

    id: int
    kind: Literal["funding", "charge", "refund", "adjustment", "reversal"]
    amount: AmountString
    balance_after: AmountString
    session_id: str | None
    memo: str | None
    created_at: str


class WalletView(BaseModel):
    """The token's permission with its open sessions and latest balance changes, for the wallet page."""

    permission: PermissionView
    open_sessions: list[OpenSessionView]
    ledger: list[LedgerEntryView] = Field(description="The latest 100 ledger entries, newest first")
    payment_qr_url: str | None = Field(description="The QR code (SVG) of permission.payment_uri: what is missing, "
                                                   "or a top-up of any amount once funded")
    server_time: str


class VendorAccountView(BaseModel):
    vendor_id: str
    name: str
    webhook_url: str | None
    keys: list[VendorKeyView] = Field(description="Prefixes and dates of the vendor's keys, newest first")


class AwaitingPermissionView(BaseModel):
    permission_id: str
    funding_source: str
    asset: str
    amount_to_pay: AmountString
    amount_received: AmountString
    created_at: str
    payment_due_at: str | None


class PendingPaymentView(BaseModel):
    permission_id: str | None
    funding_source: str
    asset: str
    txid: str
    output_index: int
    amount: AmountString
    confirmations: int
    first_seen_at: str


class BacklogView(BaseModel):
    kind: str
    event_type: str | None
    status: Literal["pending", "dead"]
    messages: int
    retried: int
    max_attempts: int
    oldest_age_seconds: int | None
    next_attempt_at: str | None


class JobView(BaseModel):
    job_name: str
    last_succeeded_at: str | None
    seconds_since_success: int | None
    last_duration_ms: int | None
    runs: int
    failing: bool
    last_error: str | None


class OperatorOverviewView(BaseModel):
    active_sessions: int
    active_permissions: int
    permissions_awaiting_payment: int
    awaiting: list[AwaitingPermissionView] = Field(description="The newest 50 permissions awaiting payment")
    pending_payments: list[PendingPaymentView] = Field(description="The oldest 50 payments not credited yet")
    webhook_backlog: list[BacklogView]
    jobs: list[JobView] = Field(description="Each scheduler job's last run (the scheduler lag)")


class ActiveSessionsPointView(BaseModel):
    hour: str = Field(description="Start of the hour (UTC)")
    sessions: int = Field(description="Sessions active at some time during the hour")


class RevenuePointView(BaseModel):
    day: str = Field(description="YYYY-MM-DD (UTC)")
    vendor_id: str
    vendor_name: str
    asset: str
    amount: AmountString = Field(description="Net: charges minus reversals of the vendor's sessions that day")


class OperatorTimeseriesView(BaseModel):
    days: int
    active_sessions: list[ActiveSessionsPointView]
    revenue: list[RevenuePointView]


class PermissionChangeView(BaseModel):
    action: str = Field(examples=["created", "status_changed", "balance_changed"])
    old_status: str | None
    new_status: str
    old_balance: AmountString | None
    new_balance: AmountString
    created_at: str


class AuditTrailView(BaseModel):
    permission_id: str
    funding_source: str
    asset: str
    status: str
    changes: list[PermissionChangeView] = Field(description="Every change, oldest first (written by a trigger)")
    ledger: list[LedgerEntryView] = Field(description="Every ledger entry, oldest first")
