"""Card credits: the rules for Stripe's webhook events, refunds, disputes and debts (domain and SQL).

Events are facts folded into the database in whatever order they arrive, each event id once:
- a paid Checkout Session funds its permission (the `payments` row is the PaymentIntent, credited through
  `apply_payments`, so a webhook and a verify can never fund twice), once: `card_checkout_payments` keys the one
  payment intent of each session, so events naming another one fund nothing;
- a failed or expired checkout leaves the permission unfunded with a reason (ignored once it is funded);
- `charge.refunded` carries the charge's cumulative `amount_refunded`; whatever of it is not yet accounted for
  (`refund_covered`) is reversed from the balance, and what the balance cannot cover becomes a debt that suspends
  the permission; our own refunds count as covered before Stripe is asked, so their webhook changes nothing;
- `charge.dispute.created` suspends the permission (sessions only charge `active` permissions).
Charge facts that arrive before their checkout's event are kept (`stripe_charges`) and applied when it comes.

Lock order, on every path: the PaymentIntent's advisory lock, then the permission row.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg

from billing.charging import charge_sessions, refresh_stop_instants
from billing.ledger import EntryKind, post_entry
from billing.permissions import Permission, PermissionStatus, apply_payments, get_permission
from kernel.errors import Conflict, InvalidEvent, NotFound
from kernel.funding import Payment, RefundReceipt

log = logging.getLogger(__name__)

CARD = "card"

PaymentOfCheckout = Callable[[Mapping[str, Any]], Payment | None]


class EventOutcome(StrEnum):
    APPLIED = "applied"  # facts recorded (and applied to a permission when it is known)
    IGNORED = "ignored"  # a type we do not use, or nothing of ours
    DUPLICATE = "duplicate"  # this event id was processed before


@dataclass(frozen=True, slots=True)
class EventResult:
    outcome: EventOutcome
    permission_id: UUID | None = None


IGNORED = EventResult(EventOutcome.IGNORED)


EventHandler = Callable[[asyncpg.Connection, Mapping[str, Any], PaymentOfCheckout], Awaitable[EventResult]]


@dataclass(frozen=True, slots=True)
class CardDetails:
    """What a card permission shows beyond the fields every permission has."""

    unfunded_reason: str | None
    refunded_amount: int
    debt_amount: int
    disputed_at: datetime | None
    refund_status: str | None


@dataclass(frozen=True, slots=True)
class RefundRecord:
    permission_id: UUID
    amount: int
    status: str  # requested (Stripe not yet answered), submitted, not_needed (nothing was left)
    stripe_refund_id: str | None
    stripe_status: str | None
    payment_intent: str | None


async def process_event(conn: asyncpg.Connection, event: Mapping[str, Any],
                        payment_of_checkout: PaymentOfCheckout) -> EventResult:
    """Apply one verified Stripe event in one transaction; an event id seen before changes nothing.
    `payment_of_checkout` reads a Checkout Session as the payment it is (the card adapter knows Stripe's shapes).

    The primary key of `stripe_events` settles concurrent deliveries of one event: the second insert waits for
    the first transaction and then finds the row."""
    event_id, event_type, created, obj = _event_parts(event)
    async with conn.transaction():
        inserted = await conn.fetchval(
            """
            INSERT INTO stripe_events (event_id, event_type, outcome, stripe_created)
            VALUES ($1, $2, 'ignored', to_timestamp($3)) ON CONFLICT (event_id) DO NOTHING RETURNING event_id
            """,
            event_id, event_type, created,
        )
        if inserted is None:
            return EventResult(EventOutcome.DUPLICATE)
        handler = _HANDLERS.get(event_type)
        result = await handler(conn, obj, payment_of_checkout) if handler else IGNORED
        if result.outcome == EventOutcome.APPLIED:
            await conn.execute("UPDATE stripe_events SET outcome = 'applied', permission_id = $2 WHERE event_id = $1",
                               event_id, result.permission_id)
        return result


def _event_parts(event: Mapping[str, Any]) -> tuple[str, str, int, Mapping[str, Any]]:
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if (event.get("object") != "event" or not isinstance(event_id, str) or not event_id
            or not isinstance(event_type, str) or not isinstance(created, int) or not isinstance(obj, Mapping)):
        raise InvalidEvent("the body is not a Stripe event (id, type, created, data.object)")
    return event_id, event_type, created, obj


async def _session_paid(conn: asyncpg.Connection, session: Mapping[str, Any],
                        payment_of_checkout: PaymentOfCheckout) -> EventResult:
    payment = payment_of_checkout(session)
    if payment is None:
        return IGNORED  # completed but not paid yet: an asynchronous payment method; its own event follows
    await _lock_payment_intent(conn, payment.txid)
    permission_id = await _checkout_permission(conn, session)
    if permission_id is None or not await _first_payment_of_checkout(conn, session["id"], permission_id, payment):
        return IGNORED
    await apply_payments(conn, permission_id, [payment], min_confirmations=1)
    await conn.execute("UPDATE card_permissions SET unfunded_reason = NULL, updated_at = now() "
                       "WHERE permission_id = $1", permission_id)
    await _reconcile(conn, permission_id, payment.txid)
    return EventResult(EventOutcome.APPLIED, permission_id)


async def _first_payment_of_checkout(conn: asyncpg.Connection, checkout_session_id: str, permission_id: UUID,
                                     payment: Payment) -> bool:
    """Whether `payment` is the one payment of its Checkout Session (recorded now, or the same one again). A
    Checkout Session is paid once: an event naming another payment intent for it funds nothing (the unique key on
    the session settles two such events arriving at once)."""
    recorded = await conn.fetchval(
        """
        INSERT INTO card_checkout_payments (checkout_session_id, permission_id, payment_intent) VALUES ($1, $2, $3)
        ON CONFLICT (checkout_session_id) DO NOTHING RETURNING payment_intent
        """,
        checkout_session_id, permission_id, payment.txid,
    ) or await conn.fetchval("SELECT payment_intent FROM card_checkout_payments WHERE checkout_session_id = $1",
                             checkout_session_id)
    if recorded != payment.txid:
        log.warning("checkout session of permission %s reported a second payment; it funds nothing", permission_id)
        return False
    return True


def _session_unfunded(reason: str) -> EventHandler:
    async def handle(conn: asyncpg.Connection, session: Mapping[str, Any], _: PaymentOfCheckout) -> EventResult:
        permission_id = await _checkout_permission(conn, session)
        if permission_id is None:
            return IGNORED
        permission = await get_permission(conn, permission_id, lock=True)
        assert permission is not None
        if permission.funded_amount > 0:
            return IGNORED  # a late "failed" or "expired" never unfunds a paid permission
        await conn.execute(
            """
            INSERT INTO card_permissions (permission_id, unfunded_reason) VALUES ($1, $2)
            ON CONFLICT (permission_id) DO UPDATE SET unfunded_reason = EXCLUDED.unfunded_reason, updated_at = now()
            """,
            permission_id, reason,
        )
        return EventResult(EventOutcome.APPLIED, permission_id)

    return handle


async def _charge_refunded(conn: asyncpg.Connection, charge: Mapping[str, Any], _: PaymentOfCheckout) -> EventResult:
    payment_intent, refunded = charge.get("payment_intent"), charge.get("amount_refunded")
    if not isinstance(payment_intent, str) or not isinstance(refunded, int) or refunded < 0:
        return IGNORED
    await _lock_payment_intent(conn, payment_intent)
    await conn.execute(
        """
        INSERT INTO stripe_charges (payment_intent, charge_id, amount_refunded) VALUES ($1, $2, $3)
        ON CONFLICT (payment_intent) DO UPDATE
           SET amount_refunded = greatest(stripe_charges.amount_refunded, EXCLUDED.amount_refunded),
               charge_id = EXCLUDED.charge_id, updated_at = now()
        """,
        payment_intent, charge.get("id"), refunded,
    )
    return await _apply_charge_facts(conn, payment_intent)


async def _dispute_created(conn: asyncpg.Connection, dispute: Mapping[str, Any],
                           _: PaymentOfCheckout) -> EventResult:
    payment_intent, created = dispute.get("payment_intent"), dispute.get("created")
    if not isinstance(payment_intent, str) or not isinstance(created, int):
        return IGNORED
    await _lock_payment_intent(conn, payment_intent)
    await conn.execute(
        """
        INSERT INTO stripe_charges (payment_intent, charge_id, dispute_id, disputed_at)
        VALUES ($1, $2, $3, to_timestamp($4))
        ON CONFLICT (payment_intent) DO UPDATE
           SET dispute_id = coalesce(stripe_charges.dispute_id, EXCLUDED.dispute_id),
               disputed_at = coalesce(stripe_charges.disputed_at, EXCLUDED.disputed_at), updated_at = now()
        """,
        payment_intent, dispute.get("charge"), dispute.get("id"), created,
    )
    return await _apply_charge_facts(conn, payment_intent)


async def _apply_charge_facts(conn: asyncpg.Connection, payment_intent: str) -> EventResult:
    """Apply the charge's facts to its permission, if its checkout has funded one already (else they wait)."""
    permission_id = await conn.fetchval(
        "SELECT permission_id FROM payments WHERE funding_source = $1 AND txid = $2 AND output_index = 0",
        CARD, payment_intent,
    )
    if permission_id is not None:
        await _reconcile(conn, permission_id, payment_intent)
    return EventResult(EventOutcome.APPLIED, permission_id)


async def _reconcile(conn: asyncpg.Connection, permission_id: UUID, payment_intent: str) -> None:
    """Bring the permission in line with its charge's refunds and dispute. Safe to run any number of times."""
    permission = await get_permission(conn, permission_id, lock=True)
    assert permission is not None
    credited = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM payments WHERE permission_id = $1 AND status = 'credited'",
        permission_id,
    )
    facts = await conn.fetchrow("SELECT amount_refunded, disputed_at FROM stripe_charges WHERE payment_intent = $1",
                                payment_intent)
    if credited == 0 or facts is None:
        return  # nothing was credited (yet, or ever: a late payment), so there is nothing to take back
    state = await conn.fetchrow(
        """
        INSERT INTO card_permissions (permission_id) VALUES ($1)
        ON CONFLICT (permission_id) DO UPDATE SET updated_at = now()
        RETURNING refund_covered, debt
        """,
        permission_id,
    )
    balance, debt = permission.balance, state["debt"]
    uncovered = facts["amount_refunded"] - state["refund_covered"]
    if uncovered > 0:
        reversed_amount = min(uncovered, balance)
        if reversed_amount > 0:
            balance = await post_entry(conn, permission_id, EntryKind.REVERSAL, -reversed_amount,
                                       memo=f"refunded on Stripe ({payment_intent})")
        debt += uncovered - reversed_amount
        await conn.execute(
            "UPDATE card_permissions SET refund_covered = $2, debt = $3, updated_at = now() WHERE permission_id = $1",
            permission_id, facts["amount_refunded"], debt,
        )
    status = _status_after(permission, disputed=facts["disputed_at"] is not None, debt=debt, balance=balance,
                           fully_refunded=facts["amount_refunded"] >= credited)
    if status != permission.status:
        await conn.execute("UPDATE permissions SET status = $2, updated_at = now() WHERE id = $1",
                           permission_id, str(status))
    await refresh_stop_instants(conn, [permission_id])


def _status_after(permission: Permission, *, disputed: bool, debt: int, balance: int,
                  fully_refunded: bool) -> PermissionStatus:
    if permission.status == PermissionStatus.CLOSED:
        return PermissionStatus.CLOSED
    if disputed or debt > 0:
        return PermissionStatus.SUSPENDED
    if fully_refunded:
        return PermissionStatus.CLOSED
    if permission.status == PermissionStatus.ACTIVE and balance == 0:
        return PermissionStatus.EXHAUSTED
    return permission.status


async def _checkout_permission(conn: asyncpg.Connection, session: Mapping[str, Any]) -> UUID | None:
    """The card permission a Checkout Session was made for (its metadata names it; its locator must match)."""
    metadata = session.get("metadata")
    raw = metadata.get("permission_id") if isinstance(metadata, Mapping) else None
    try:
        permission_id = UUID(str(raw or session.get("client_reference_id")))
    except ValueError:
        return None
    return await conn.fetchval(
        "SELECT id FROM permissions WHERE id = $1 AND funding_source = $2 AND payment_locator = $3",
        permission_id, CARD, session.get("id"),
    )


async def _lock_payment_intent(conn: asyncpg.Connection, payment_intent: str) -> None:
    """Serialise every event about one payment, so a charge fact and its checkout's funding cannot miss each other
    (each reads what the other wrote)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"stripe-payment-intent:{payment_intent}")


_HANDLERS: dict[str, EventHandler] = {
    "checkout.session.completed": _session_paid,
    "checkout.session.async_payment_succeeded": _session_paid,
    "checkout.session.async_payment_failed": _session_unfunded("payment_failed"),
    "checkout.session.expired": _session_unfunded("checkout_expired"),
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
}


# A card permission's details ($1: the permission); also read as part of its whole state (one statement).
CARD_DETAILS = """
SELECT c.unfunded_reason, coalesce(c.refund_covered, 0) AS refunded_amount, coalesce(c.debt, 0) AS debt_amount,
       s.disputed_at, r.status AS refund_status
  FROM permissions p
  LEFT JOIN card_permissions c ON c.permission_id = p.id
  LEFT JOIN payments pay ON pay.permission_id = p.id AND pay.funding_source = 'card'
  LEFT JOIN stripe_charges s ON s.payment_intent = pay.txid
  LEFT JOIN card_refunds r ON r.permission_id = p.id
 WHERE p.id = $1
"""


async def card_details(conn: asyncpg.Connection, permission_id: UUID) -> CardDetails:
    return CardDetails(**dict(await conn.fetchrow(CARD_DETAILS, permission_id)))


async def record_refund_submitted(conn: asyncpg.Connection, permission_id: UUID,
                                  receipt: RefundReceipt) -> RefundRecord:
    await conn.execute(
        """
        UPDATE card_refunds SET status = 'submitted', stripe_refund_id = $2, stripe_status = $3, updated_at = now()
         WHERE permission_id = $1
        """,
        permission_id, receipt.refund_id, receipt.status,
    )
    return await _refund_record(conn, permission_id)  # type: ignore[return-value]


async def claim_refund(conn: asyncpg.Connection, permission_id: UUID) -> RefundRecord:
    """End the permission's open sessions (charged what they owe now), take the unused balance off it (ledger kind
    `refund`) and close it, once; the Stripe refund is counted as covered before Stripe is asked, so its
    `charge.refunded` event takes nothing more."""
    async with conn.transaction():
        permission = await get_permission(conn, permission_id, lock=True)
        if permission is None or permission.funding_source != CARD:
            raise NotFound("no card permission with this id", code="permission_not_found")
        existing = await _refund_record(conn, permission_id)
        if existing is not None:
            return existing
        if permission.status not in (PermissionStatus.ACTIVE, PermissionStatus.EXHAUSTED, PermissionStatus.EXPIRED):
            raise Conflict(f"a {permission.status} permission cannot be refunded", code="permission_not_refundable")
        # its open sessions end now, charged what they owe: what is refunded is what is left after them
        await charge_sessions(conn, [permission_id], await conn.fetchval("SELECT now()"), final=True)
        amount = (await get_permission(conn, permission_id)).balance  # type: ignore[union-attr]
        await conn.execute(
            "INSERT INTO card_refunds (permission_id, amount, status) VALUES ($1, $2, $3)",
            permission_id, amount, "requested" if amount > 0 else "not_needed",
        )
        if amount > 0:
            await post_entry(conn, permission_id, EntryKind.REFUND, -amount, memo="unused balance refunded to the card")
            await conn.execute(
                """
                INSERT INTO card_permissions (permission_id, refund_covered) VALUES ($1, $2)
                ON CONFLICT (permission_id) DO UPDATE
                   SET refund_covered = card_permissions.refund_covered + EXCLUDED.refund_covered, updated_at = now()
                """,
                permission_id, amount,
            )
        await conn.execute("UPDATE permissions SET status = 'closed', stops_at = NULL, updated_at = now() "
                           "WHERE id = $1", permission_id)
        return await _refund_record(conn, permission_id)  # type: ignore[return-value]


async def _refund_record(conn: asyncpg.Connection, permission_id: UUID) -> RefundRecord | None:
    row = await conn.fetchrow(
        """
        SELECT r.permission_id, r.amount, r.status, r.stripe_refund_id, r.stripe_status,
               (SELECT txid FROM payments WHERE permission_id = r.permission_id AND status = 'credited'
                 ORDER BY id LIMIT 1) AS payment_intent
          FROM card_refunds r WHERE r.permission_id = $1
        """,
        permission_id,
    )
    return RefundRecord(**dict(row)) if row else None

