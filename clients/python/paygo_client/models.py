"""Typed results (pydantic, frozen). Money and hours are `Decimal`, parsed from the API's exact decimal strings;
no float exists at any point. Times are timezone-aware `datetime`s. Fields the gateway adds later are ignored, so
a newer gateway of the same major version does not break an older client.

Statuses stay plain strings (new ones may appear); their values are documented in the gateway's README:
permissions `pending_payment`, `active`, `exhausted`, `expired`, `suspended`, `closed`; sessions `active`, `ended`,
`exhausted`, `pending_payment`, `confirmed`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

FundingSource = Literal["zcash", "ethereum", "card"]

SESSION_FINAL_STATUSES = frozenset({"ended", "exhausted", "confirmed"})


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# --- permissions ---------------------------------------------------------------------------------------------------

class Payment(Model):
    """A payment seen for a permission: `seen` (not deep enough yet), `credited`, `late` (after expiry, not
    credited) or `orphaned` (gone in a reorg)."""

    txid: str
    output_index: int
    amount: Decimal
    confirmations: int
    block_height: int | None
    status: str


class Reminder(Model):
    kind: str
    queued_at: datetime
    delivery_status: str
    delivered_at: datetime | None


class Payout(Model):
    """The refund of a chain permission's unused balance: Zcash sends it (`gateway_send`: pending, sending,
    submitted, unknown, sent), Ethereum is an order the operator pays (`operator_payout`: pending, paid); `not_needed`
    when nothing was left to send."""

    payout_id: str
    permission_id: str
    funding_source: FundingSource
    asset: str
    method: str
    status: str
    destination: str
    refund_amount: Decimal
    network_fee: Decimal
    amount: Decimal
    memo: str | None
    txid: str | None
    block_height: int | None
    operation_id: str | None
    attempts: int
    last_error: str | None
    resolved_note: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class Payouts(Model):
    payouts: list[Payout]


class Quote(Model):
    """A rate of an asset in a fiat currency, locked until `locked_until` (for a USD-priced permission)."""

    quote_id: str
    asset: str
    pricing_currency: str
    rate: Decimal
    rate_source: str
    rate_time: datetime
    locked_until: datetime


class Permission(Model):
    """A spending permission as every permission endpoint shows it. The card fields are set for card permissions
    only."""

    permission_id: str
    funding_source: FundingSource
    asset: str
    status: str
    user_wallet_address: str
    approved_amount: Decimal
    amount_to_pay: Decimal
    rate_per_hour: Decimal
    remaining_amount: Decimal
    charged_amount: Decimal
    max_streaming_hours: Decimal
    remaining_hours: Decimal
    used_hours: Decimal
    payment_address: str | None
    amount_received: Decimal
    amount_confirmed: Decimal
    amount_missing: Decimal
    confirmations_required: int
    confirmations_seen: int | None
    payments: list[Payment]
    created_at: datetime
    activated_at: datetime | None
    expires_at: datetime
    payment_due_at: datetime | None = None
    notify_url: str | None = None
    renewal_due: bool = False
    projected_run_out_at: datetime | None = None
    reminders: list[Reminder] = []
    # where a payer pays: the gateway's checkout page (card: Stripe's Checkout page), and the ZIP-321 or EIP-681 URI
    # for a wallet or a QR code (what is still missing, or a top-up of any amount once funded; None for card)
    checkout_url: str | None = None
    payment_uri: str | None = None
    # card permissions only
    unfunded_reason: str | None = None
    refunded_amount: Decimal | None = None
    debt_amount: Decimal | None = None
    disputed_at: datetime | None = None
    refund_status: str | None = None
    # chain permissions, once refunded
    refund: Payout | None = None


class CreatedPermission(Permission):
    """The create answer: the permission with its secrets, shown only this once. Keep `permission_token` (it opens
    sessions and reads the permission) and `notify_secret` (it verifies reminders) somewhere safe."""

    permission_token: str
    notify_secret: str | None = None


class ZcashBalance(Model):
    """What the Zcash node can see of a wallet; shielded balances are unknown (None, with the reason)."""

    wallet_address: str
    asset: str
    transparent_balance: Decimal | None
    shielded_balance: Decimal | None
    shielded_balance_reason: str | None
    total_balance: Decimal | None
    visible_balance: Decimal
    can_stream: bool | None
    estimated_hours: Decimal | None


class EthereumBalance(Model):
    wallet_address: str
    asset: str
    total_balance: Decimal
    visible_balance: Decimal
    can_stream: bool | None
    estimated_hours: Decimal | None
    block_number: int


class Refund(Model):
    permission_id: str
    status: str
    remaining_amount: Decimal
    refund_amount: Decimal
    refund_status: str
    stripe_refund_id: str | None
    stripe_status: str | None


# --- checkout and the wallet view ----------------------------------------------------------------------------------

class CheckoutPayment(Model):
    """A payment to the permission as the checkout shows it: `seen`, `credited`, `late` or `orphaned`."""

    txid: str
    amount: Decimal
    confirmations: int
    status: str


class Checkout(Model):
    """What paying a permission needs and how far the payment got; public (no token, no balance, no payer but the
    Ethereum wallet that must pay). `phase`: `waiting` → `seen` (0 confirmations) → `confirming` → `active`, or
    `partial` (less than the amount arrived), `expired`, `exhausted`, `suspended`, `closed`. `payment_qr_url` is a
    path on the gateway (an SVG of `payment_uri`)."""

    permission_id: str
    funding_source: FundingSource
    asset: str
    status: str
    phase: str
    amount_to_pay: Decimal
    amount_received: Decimal
    amount_credited: Decimal
    amount_missing: Decimal
    amount_overpaid: Decimal
    amount_late: Decimal
    orphaned_payments: int
    confirmations_required: int
    confirmations_seen: int | None
    payments: list[CheckoutPayment]
    rate_per_hour: Decimal
    max_streaming_hours: Decimal
    payment_address: str | None
    payer_wallet: str | None
    payment_uri: str | None
    payment_qr_url: str | None
    card_checkout_url: str | None
    unfunded_reason: str | None
    payment_due_at: datetime | None
    payment_window_seconds: int | None
    expires_at: datetime
    server_time: datetime


class OpenSession(Model):
    session_id: str
    vendor_id: str
    vendor_name: str
    started_at: datetime
    rate_per_hour: Decimal
    charged_amount: Decimal


class LedgerEntry(Model):
    """One balance change of a permission (`funding`, `charge`, `refund`, `adjustment`, `reversal`): funding is
    positive, a charge negative; `balance_after` is the permission's balance after it."""

    id: int
    kind: str
    amount: Decimal
    balance_after: Decimal
    session_id: str | None
    memo: str | None
    created_at: datetime


class Wallet(Model):
    """The token's permission with its open sessions and its latest 100 ledger entries, newest first (a running
    session's charges reach the ledger when they settle). `payment_qr_url` is a path on the gateway (an SVG of
    `permission.payment_uri`)."""

    permission: Permission
    open_sessions: list[OpenSession]
    ledger: list[LedgerEntry]
    payment_qr_url: str | None
    server_time: datetime


# --- sessions ------------------------------------------------------------------------------------------------------

class OpenedSession(Model):
    """`session_code` is the client's secret: it ends the session and reads it."""

    session_code: str
    session_id: str
    status: str
    started_at: datetime


class DirectCharge(Model):
    """What a session owes on chain after its permission ran dry (hybrid fallback)."""

    id: str
    status: str
    amount: Decimal
    paid_amount: Decimal
    payment_address: str | None


class EndedSession(Model):
    id: str
    session_id: str
    amount: Decimal
    asset: str
    duration_minutes: int
    duration_seconds: int
    status: str
    uncovered_amount: Decimal
    direct_charge: DirectCharge | None = None


class Session(Model):
    """A session's state: what it was charged so far and what is left on its permission."""

    session_id: str
    status: str
    asset: str
    rate_per_hour: Decimal
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: int
    charged_amount: Decimal
    owed_amount: Decimal
    remaining_amount: Decimal
    remaining_hours: Decimal
    permission_id: str
    permission_status: str
    direct_charge: DirectCharge | None = None

    @property
    def is_final(self) -> bool:
        """No further change will come (`pending_payment` still waits for its direct charge)."""
        return self.status in SESSION_FINAL_STATUSES


# --- vendors -------------------------------------------------------------------------------------------------------

class VendorSession(Model):
    """One of the vendor's sessions; also a row of the CSV export (same columns, same order)."""

    session_id: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: int
    asset: str
    rate_per_hour: Decimal
    charged_amount: Decimal
    uncovered_amount: Decimal
    funding_source: str
    permission_id: str
    user_wallet_address: str


class VendorSessionPage(Model):
    sessions: list[VendorSession]
    next_cursor: str | None


class ChargeLine(Model):
    """A ledger entry of the session; a charge is negative (money taken from the payer's permission)."""

    id: int
    kind: str
    amount: Decimal
    memo: str | None
    created_at: datetime


class VendorSessionDetail(VendorSession):
    charges: list[ChargeLine]


class ChargesSummaryRow(Model):
    day: date | None
    asset: str
    charges: int
    sessions: int
    amount: Decimal


class ChargesSummary(Model):
    group_by: str
    rows: list[ChargesSummaryRow]


class DeliveryAttempt(Model):
    attempt: int
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


class Delivery(Model):
    """One webhook message and every attempt to deliver it. `payload` is the event exactly as sent."""

    id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    redeliveries: int
    target_url: str
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any]
    log: list[DeliveryAttempt]


class DeliveryPage(Model):
    deliveries: list[Delivery]
    next_cursor: str | None


# --- operator ------------------------------------------------------------------------------------------------------

class CreatedVendor(Model):
    vendor_id: str
    name: str
    api_key: str


class RotatedVendorKey(Model):
    vendor_id: str
    api_key: str
    key_prefix: str
    previous_keys_expire_at: datetime | None


class RevokedVendorKeys(Model):
    vendor_id: str
    revoked: int


class VendorKey(Model):
    key_prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    live: bool


class VendorKeys(Model):
    vendor_id: str
    keys: list[VendorKey]


class VendorAccount(Model):
    """The calling vendor; its keys' prefixes and dates (never the keys), newest first."""

    vendor_id: str
    name: str
    webhook_url: str | None
    keys: list[VendorKey]


class WebhookSetting(Model):
    """The vendor's webhook; `secret` verifies its deliveries (`verify_webhook`)."""

    vendor_id: str
    url: str | None
    secret: str | None
    signature_header: str
    events: list[str]


class AwaitingPermission(Model):
    permission_id: str
    funding_source: FundingSource
    asset: str
    amount_to_pay: Decimal
    amount_received: Decimal
    created_at: datetime
    payment_due_at: datetime | None


class PendingPayment(Model):
    """A payment seen on a funding source and not credited yet (`permission_id` None: it matched none)."""

    permission_id: str | None
    funding_source: FundingSource
    asset: str
    txid: str
    output_index: int
    amount: Decimal
    confirmations: int
    first_seen_at: datetime


class WebhookBacklog(Model):
    """Outbox messages not delivered, per kind, event type and status (`pending` or `dead`)."""

    kind: str
    event_type: str | None
    status: str
    messages: int
    retried: int
    max_attempts: int
    oldest_age_seconds: int | None
    next_attempt_at: datetime | None


class Job(Model):
    """A scheduler job's last run; `seconds_since_success` is the scheduler's lag."""

    job_name: str
    last_succeeded_at: datetime | None
    seconds_since_success: int | None
    last_duration_ms: int | None
    runs: int
    failing: bool
    last_error: str | None


class OperatorOverview(Model):
    """What runs and what waits: counts, the newest 50 permissions awaiting payment, the oldest 50 payments not
    credited yet, the webhook backlog and the scheduler's jobs."""

    active_sessions: int
    active_permissions: int
    permissions_awaiting_payment: int
    awaiting: list[AwaitingPermission]
    pending_payments: list[PendingPayment]
    webhook_backlog: list[WebhookBacklog]
    jobs: list[Job]


class ActiveSessionsPoint(Model):
    """Sessions active at some time during the hour that starts at `hour` (UTC)."""

    hour: datetime
    sessions: int


class RevenuePoint(Model):
    """A vendor's net revenue on one UTC day in one asset: charges minus reversals of its sessions."""

    day: date
    vendor_id: str
    vendor_name: str
    asset: str
    amount: Decimal


class OperatorTimeseries(Model):
    """Over the last `days` days (today included): active sessions per hour, oldest first, and revenue per vendor
    per day."""

    days: int
    active_sessions: list[ActiveSessionsPoint]
    revenue: list[RevenuePoint]


class PermissionChange(Model):
    """One change of a permission's status or balance (`created`, `status_changed`, `balance_changed`, ...)."""

    action: str
    old_status: str | None
    new_status: str
    old_balance: Decimal | None
    new_balance: Decimal
    created_at: datetime


class AuditTrail(Model):
    """Every change of one permission and every ledger entry, oldest first."""

    permission_id: str
    funding_source: FundingSource
    asset: str
    status: str
    changes: list[PermissionChange]
    ledger: list[LedgerEntry]


class HealthCheck(Model):
    """One dependency's check; the other fields depend on the check (latency_ms, height, lag_seconds, ...)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    ok: bool


class Health(Model):
    status: str
    checks: dict[str, HealthCheck]


class Status(Model):
    status: str


# --- webhooks ------------------------------------------------------------------------------------------------------

class WebhookEvent(Model):
    """A verified webhook: a reminder (`permission.expiring`, `permission.low_balance`) or a vendor event
    (`session.started`, `session.ended`, ...). `id` stays the same on redelivery: drop ids already processed.
    Amounts in `data` are the exact decimal strings the gateway sent."""

    id: str
    type: str
    created_at: datetime
    data: dict[str, Any]
    delivery_id: str | None = None
