"""What a payer needs to pay a permission, and how far the payment has got: the checkout page's one source.

Public by design (the checkout page needs no credential): a permission's id is a random UUID, and the state says
only what paying needs — the amount, where to send it, the payments seen and their confirmations — never a token,
a balance after funding, or who the payer is (except for Ethereum, where the signing wallet itself must pay, so
the page has to name it).

The phase a payer sees, from the permission and its payments:
`waiting` (nothing seen) → `seen` (in the mempool, 0 confirmations) → `confirming` (n of N) → `active`;
`partial` when everything sent is deep enough but less than the amount; `expired` when the permission ended
before it was funded; other permission states (`exhausted`, `suspended`, `closed`) are shown as they are.
Beside the phase: what was received (seen or credited, not orphaned nor late), what is still missing, over-payment,
late payments (recorded after expiry, never credited) and orphaned ones (left the chain, count for nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from billing.card import card_details
from billing.payment_uri import eip681_uri, permission_memo, zip321_uri
from billing.permissions import PaymentRow, PaymentStatus, Permission, PermissionStatus, get_permission, payments_of
from billing.sources import FundingSources
from billing.unit_of_work import Database
from kernel.assets import Asset
from kernel.errors import NotFound
from kernel.money import parse_amount

FUNDED_STATES = frozenset({PermissionStatus.ACTIVE, PermissionStatus.EXHAUSTED, PermissionStatus.SUSPENDED,
                           PermissionStatus.CLOSED})


class CheckoutPhase(StrEnum):
    WAITING = "waiting"
    SEEN = "seen"
    CONFIRMING = "confirming"
    PARTIAL = "partial"
    ACTIVE = "active"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"
    SUSPENDED = "suspended"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class CheckoutProgress:
    """How far the payment of a permission has got (amounts in minor units of its asset)."""

    phase: CheckoutPhase
    received: int  # seen or credited, not orphaned nor late
    credited: int
    missing: int  # what still has to be sent: amount to pay minus received, never below 0
    overpaid: int  # received beyond the amount to pay (credited in full)
    late: int  # arrived after the permission expired: recorded, never credited
    orphaned_payments: int  # seen, then gone from the chain (a reorg): count for nothing
    confirmations_seen: int | None  # the least deep payment not credited yet (None when there is none)


COUNTED = frozenset({PaymentStatus.SEEN, PaymentStatus.CREDITED})


def received_amount(payments: Sequence[PaymentRow]) -> int:
    """What reached the permission and counts: payments seen or credited (not orphaned, not late)."""
    return sum(pay.amount for pay in payments if pay.status in COUNTED)


def checkout_progress(permission: Permission, payments: Sequence[PaymentRow], now: datetime,
                      confirmations_required: int) -> CheckoutProgress:
    received = received_amount(payments)
    credited = sum(pay.amount for pay in payments if pay.status == PaymentStatus.CREDITED)
    waiting = [pay.confirmations for pay in payments if pay.status == PaymentStatus.SEEN]
    status = permission.status_at(now)
    if status in FUNDED_STATES:
        phase = CheckoutPhase(status)
    elif status == PermissionStatus.EXPIRED:
        phase = CheckoutPhase.EXPIRED
    elif received == 0:
        phase = CheckoutPhase.WAITING
    elif waiting and min(waiting) <= 0:
        phase = CheckoutPhase.SEEN
    elif (waiting and min(waiting) < confirmations_required) or received >= permission.approved_amount:
        phase = CheckoutPhase.CONFIRMING  # deep enough but not credited yet: the next watcher pass activates it
    else:
        phase = CheckoutPhase.PARTIAL
    return CheckoutProgress(
        phase=phase,
        received=received,
        credited=credited,
        missing=max(0, permission.approved_amount - received),
        overpaid=max(0, received - permission.approved_amount),
        late=sum(pay.amount for pay in payments if pay.status == PaymentStatus.LATE),
        orphaned_payments=sum(1 for pay in payments if pay.status == PaymentStatus.ORPHANED),
        confirmations_seen=min(waiting) if waiting else None,
    )


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    uri: str  # ZIP-321 or EIP-681
    amount: int | None  # what it asks for, in minor units; None: any amount (a top-up)


@dataclass(frozen=True, slots=True)
class CheckoutState:
    permission: Permission
    asset: Asset
    payments: tuple[PaymentRow, ...]
    now: datetime
    confirmations_required: int
    progress: CheckoutProgress
    payment_request: PaymentRequest | None  # what to send now (see `payment_request`)
    unfunded_reason: str | None  # card: why Checkout did not fund it (expired, failed)


def payment_request(permission: Permission, payments: Sequence[PaymentRow], now: datetime,
                    sources: FundingSources) -> PaymentRequest | None:
    """What a payer should send now: what is still missing while the permission awaits payment, any amount (a
    top-up) while it is funded and can take more; None otherwise, and for card permissions."""
    status = permission.status_at(now)
    amount: int | None = None
    if status == PermissionStatus.PENDING_PAYMENT:
        amount = permission.approved_amount - received_amount(payments)
        if amount <= 0:
            return None
    elif status not in (PermissionStatus.ACTIVE, PermissionStatus.EXHAUSTED):
        return None
    uri = payment_uri(permission, amount, sources)
    return PaymentRequest(uri, amount) if uri is not None else None


def payment_uri(permission: Permission, amount_units: int | None, sources: FundingSources) -> str | None:
    """The ZIP-321 (with the memo naming the permission) or EIP-681 URI paying `amount_units` (None: any amount, a
    top-up) to the permission; None for card permissions, or when its chain is not configured here any more."""
    if permission.payment_address is None:
        return None
    if permission.funding_source == "zcash":
        return zip321_uri(permission.payment_address, amount_units, memo=permission_memo(permission.id).encode())
    signer = sources.authorizers.get(permission.funding_source)
    asset = sources.assets.get(permission.asset)
    if permission.funding_source == "ethereum" and signer is not None and asset is not None:
        return eip681_uri(permission.payment_address, signer.chain_id, amount_units, token_contract=asset.contract)
    return None


class CheckoutService:
    """A permission's checkout state, and the payment URI a QR code shows."""

    def __init__(self, db: Database, sources: FundingSources) -> None:
        self.db = db
        self.sources = sources

    async def state(self, permission_id: UUID) -> CheckoutState:
        async with self.db.connection() as conn:
            permission = await get_permission(conn, permission_id)
            if permission is None:
                raise NotFound("no permission with this id", code="permission_not_found")
            payments = await payments_of(conn, permission_id)
            now = await conn.fetchval("SELECT now()")
            unfunded_reason = ((await card_details(conn, permission_id)).unfunded_reason
                               if permission.funding_source == "card" else None)
        required = self.sources.confirmations_required(permission.funding_source)
        return CheckoutState(permission, _asset(permission), tuple(payments), now, required,
                             checkout_progress(permission, payments, now, required),
                             payment_request(permission, payments, now, self.sources), unfunded_reason)

    async def qr_uri(self, permission_id: UUID, amount: str | None) -> str:
        """The payment URI of the permission for `amount` (an exact decimal of its asset), or for any amount;
        404 for card permissions, which pay on Stripe's page."""
        async with self.db.connection() as conn:
            permission = await get_permission(conn, permission_id)
        if permission is None:
            raise NotFound("no permission with this id", code="permission_not_found")
        units = parse_amount(amount, _asset(permission), "amount") if amount is not None else None
        uri = payment_uri(permission, units, self.sources)
        if uri is None:
            raise NotFound("this permission is not paid on a chain", code="no_payment_uri")
        return uri


def _asset(permission: Permission) -> Asset:
    """The asset as the permission recorded it (its decimals are stored with it)."""
    return Asset(permission.asset, permission.asset_decimals, permission.funding_source)
