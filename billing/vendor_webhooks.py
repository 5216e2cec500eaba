"""Vendor webhooks: each vendor's receiver, the events it gets, the delivery log and redelivery.

Events are outbox rows (billing/outbox.py) of kind `vendor_webhook`, written in the very transaction that makes
them true, only for vendors with a `webhook_url`, and delivered, signed with the vendor's derived secret, by the
scheduler's delivery job (billing/delivery.py) like every other outbox message:

- `session.started`: billing/sessions.py `open_session`, to the session's vendor.
- `session.ended`: billing/charging.py (the charging statement), when a session leaves `active` (ended, exhausted,
  pending_payment), to the session's vendor.
- `permission.exhausted`: billing/charging.py, when a permission's balance runs out, to each vendor with sessions
  charged on it at that moment (`data.session_ids`: that vendor's).
- `payment.confirmed`: billing/permissions.py `apply_payments`, one per payment credited to a permission, to each
  vendor that has ever had a session on that permission (a top-up matters most to a vendor whose sessions were
  just exhausted, so ended sessions count too). The first payment of a fresh permission has no recipient.
- `direct_charge.paid`: billing/direct_payments.py, when a direct charge (hybrid fallback) is paid, to the
  session's vendor.

Each event exists once: its id (`dedupe_key`, also `id` in the payload) names what happened, and the outbox keeps it
unique, so re-running a tick, two ticks at once or a crash and retry never lose or duplicate it. The payload is
`{"id", "type", "created_at", "data"}`, amounts as exact decimal strings in whole units of the asset.

Redelivery puts a `delivered` or `dead` message back to `pending` with its attempts reset to 0 (the same message,
the same event id, so a receiver that already processed it can recognise it), to the vendor's current URL. A message
still `pending` is refused (409): it is already being retried. (Resetting the attempts has one corner: a deliverer
whose lease ran out long ago and whose attempt number comes round again may record its result on the redelivered
message. Both sends happened and receivers drop repeated event ids, so this costs at most one extra delivery.)
Each attempt of any message is one row of the delivery log (`webhook_deliveries`), written with the attempt's
result by the delivery job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from kernel.errors import Conflict, NotFound

VENDOR_WEBHOOK_KIND = "vendor_webhook"
VENDOR_EVENTS = ("session.started", "session.ended", "permission.exhausted", "payment.confirmed",
                 "direct_charge.paid")
DELIVERY_STATUSES = ("pending", "delivered", "dead")
URL_REMOVED_ERROR = "the vendor's webhook URL was removed"


# --- events written outside the charging statement ---------------------------------------------------------------

async def enqueue_payment_confirmed(conn: asyncpg.Connection, payment_ids: Sequence[int]) -> None:
    """`payment.confirmed` for these just-credited payments (call in the crediting transaction, after the permission
    row took its new balance and status)."""
    await conn.execute(
        """
        INSERT INTO outbox (kind, event_type, dedupe_key, vendor_id, target_url, payload)
        SELECT $2, 'payment.confirmed', e.event_id, e.vendor_id, e.webhook_url,
               webhook_event(e.event_id, 'payment.confirmed', e.credited_at, jsonb_build_object(
                   'permission_id', e.permission_id::text,
                   'funding_source', e.funding_source,
                   'asset', e.asset,
                   'txid', e.txid,
                   'output_index', e.output_index,
                   'amount', to_major(e.amount, e.asset_decimals)::text,
                   'permission_status', e.permission_status,
                   'remaining_amount', to_major(e.balance, e.asset_decimals)::text,
                   'credited_at', webhook_time(e.credited_at)))
          FROM (SELECT q.permission_id, q.txid, q.output_index, q.amount, q.credited_at, p.funding_source, p.asset,
                       p.asset_decimals, p.status AS permission_status, p.balance, v.id AS vendor_id, v.webhook_url,
                       'payment.confirmed:' || q.id || ':' || v.id AS event_id
                  FROM payments q
                  JOIN permissions p ON p.id = q.permission_id
                  JOIN vendors v ON v.id IN (SELECT s.vendor_id FROM sessions s WHERE s.permission_id = p.id)
                 WHERE q.id = ANY($1::bigint[]) AND q.status = 'credited' AND v.webhook_url IS NOT NULL) e
        ON CONFLICT (dedupe_key) DO NOTHING
        """,
        list(payment_ids), VENDOR_WEBHOOK_KIND,
    )


async def enqueue_direct_charge_paid(conn: asyncpg.Connection, direct_charge_id: UUID) -> None:
    """`direct_charge.paid` for a charge just marked paid (call in the settling transaction)."""
    await conn.execute(
        """
        INSERT INTO outbox (kind, event_type, dedupe_key, vendor_id, target_url, payload)
        SELECT $2, 'direct_charge.paid', 'direct_charge.paid:' || d.id, s.vendor_id, v.webhook_url,
               webhook_event('direct_charge.paid:' || d.id, 'direct_charge.paid', d.paid_at, jsonb_build_object(
                   'direct_charge_id', d.id::text,
                   'session_id', d.session_id::text,
                   'permission_id', d.permission_id::text,
                   'vendor_id', s.vendor_id::text,
                   'funding_source', d.funding_source,
                   'asset', d.asset,
                   'amount', to_major(d.amount, p.asset_decimals)::text,
                   'paid_amount', to_major(d.paid_amount, p.asset_decimals)::text,
                   'payment_address', d.payment_address,
                   'paid_at', webhook_time(d.paid_at)))
          FROM direct_charges d
          JOIN sessions s ON s.id = d.session_id
          JOIN vendors v ON v.id = s.vendor_id
          JOIN permissions p ON p.id = d.permission_id
         WHERE d.id = $1 AND d.status = 'paid' AND v.webhook_url IS NOT NULL
        ON CONFLICT (dedupe_key) DO NOTHING
        """,
        direct_charge_id, VENDOR_WEBHOOK_KIND,
    )


# --- the vendor's receiver -----------------------------------------------------------------------------------------

async def set_webhook_url(conn: asyncpg.Connection, vendor_id: UUID, url: str | None) -> bool:
    """Set (an already validated URL) or clear (None) the vendor's receiver; False when the vendor does not exist.

    Messages still pending follow the change: they go to the new URL, or, when the URL is cleared, become `dead`
    (they can be redelivered once a URL is set again)."""
    async with conn.transaction():
        if await conn.fetchval("UPDATE vendors SET webhook_url = $2 WHERE id = $1 RETURNING id", vendor_id,
                               url) is None:
            return False
        if url is None:
            await conn.execute(
                """
                UPDATE outbox SET status = 'dead', locked_until = NULL, last_error = $3
                 WHERE vendor_id = $1 AND kind = $2 AND status = 'pending'
                """,
                vendor_id, VENDOR_WEBHOOK_KIND, URL_REMOVED_ERROR,
            )
        else:
            await conn.execute(
                "UPDATE outbox SET target_url = $3 WHERE vendor_id = $1 AND kind = $2 AND status = 'pending'",
                vendor_id, VENDOR_WEBHOOK_KIND, url,
            )
    return True


# --- the delivery log ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LoggedAttempt:
    """One delivery attempt and what became of the message (delivered, retrying, dead, superseded)."""

    outbox_id: int
    attempt: int
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    attempt: int
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """An outbox message as its owner sees it, with every attempt made to deliver it (oldest first)."""

    id: int
    event_type: str
    event_id: str
    status: str
    attempts: int
    redeliveries: int
    target_url: str
    payload: dict[str, Any]
    created_at: datetime
    next_attempt_at: datetime | None  # only while pending
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    log: tuple[DeliveryAttempt, ...]


DELIVERY_COLUMNS = """
    o.id, o.event_type, o.payload ->> 'id' AS event_id, o.status, o.attempts, o.redeliveries, o.target_url,
    o.payload, o.created_at, CASE WHEN o.status = 'pending' THEN o.next_attempt_at END AS next_attempt_at,
    o.delivered_at, o.last_status_code, o.last_error
"""


async def record_attempts(conn: asyncpg.Connection, attempts: Sequence[LoggedAttempt], *, at: datetime) -> None:
    """Append attempts made at `at` to the delivery log (one statement for a delivery batch)."""
    if not attempts:
        return
    await conn.execute(
        """
        INSERT INTO webhook_deliveries (outbox_id, attempt, outcome, status_code, error, duration_ms, attempted_at)
        SELECT a.outbox_id, a.attempt, a.outcome, a.status_code, left(a.error, 500), a.duration_ms, $7
          FROM unnest($1::bigint[], $2::int[], $3::text[], $4::int[], $5::text[], $6::int[])
               AS a (outbox_id, attempt, outcome, status_code, error, duration_ms)
        """,
        [a.outbox_id for a in attempts], [a.attempt for a in attempts], [a.outcome for a in attempts],
        [a.status_code for a in attempts], [a.error for a in attempts], [a.duration_ms for a in attempts], at,
    )


async def _with_log(conn: asyncpg.Connection, records: Sequence[asyncpg.Record]) -> list[Delivery]:
    ids = [record["id"] for record in records]
    logged: dict[int, list[DeliveryAttempt]] = {outbox_id: [] for outbox_id in ids}
    for row in await conn.fetch(
        """
        SELECT outbox_id, attempt, outcome, status_code, error, duration_ms, attempted_at
          FROM webhook_deliveries WHERE outbox_id = ANY($1::bigint[]) ORDER BY outbox_id, id
        """,
        ids,
    ):
        logged[row["outbox_id"]].append(DeliveryAttempt(**{k: v for k, v in dict(row).items() if k != "outbox_id"}))
    return [Delivery(**dict(record), log=tuple(logged[record["id"]])) for record in records]


async def vendor_deliveries(conn: asyncpg.Connection, vendor_id: UUID, *, statuses: Sequence[str] = (),
                            event_type: str | None = None, before_id: int | None = None,
                            limit: int) -> list[Delivery]:
    """The vendor's own messages, newest first, `limit` of them with an id below `before_id` (the page cursor)."""
    records = await conn.fetch(
        f"""
        SELECT {DELIVERY_COLUMNS} FROM outbox o
         WHERE o.vendor_id = $1 AND o.kind = $2
           AND (cardinality($3::text[]) = 0 OR o.status = ANY($3::text[]))
           AND ($4::text IS NULL OR o.event_type = $4) AND ($5::bigint IS NULL OR o.id < $5)
         ORDER BY o.id DESC
         LIMIT $6
        """,
        vendor_id, VENDOR_WEBHOOK_KIND, list(statuses), event_type, before_id, limit,
    )
    return await _with_log(conn, records)


async def redeliver(conn: asyncpg.Connection, outbox_id: int, *, vendor_id: UUID | None) -> Delivery:
    """Put a delivered or dead message back to `pending`, attempts reset, due now. `vendor_id`: the caller's vendor
    (only its own vendor webhooks exist for it: any other id answers 404); None: the operator (any message)."""
    async with conn.transaction():
        found = await conn.fetchrow(
            """
            SELECT o.kind, o.status, o.vendor_id, v.webhook_url FROM outbox o LEFT JOIN vendors v ON v.id = o.vendor_id
             WHERE o.id = $1 FOR UPDATE OF o
            """,
            outbox_id,
        )
        if found is None or (vendor_id is not None
                             and (found["vendor_id"] != vendor_id or found["kind"] != VENDOR_WEBHOOK_KIND)):
            raise NotFound(f"no webhook delivery with id {outbox_id}", code="delivery_not_found")
        if found["status"] == "pending":
            raise Conflict("this delivery is still pending: it is retried on its own, see next_attempt_at",
                           code="delivery_pending")
        if found["kind"] == VENDOR_WEBHOOK_KIND and found["webhook_url"] is None:
            raise Conflict("the vendor has no webhook URL: set one first", code="webhook_url_not_set")
        record = await conn.fetchrow(
            f"""
            UPDATE outbox o
               SET status = 'pending', attempts = 0, next_attempt_at = now(), locked_until = NULL,
                   delivered_at = NULL, last_error = NULL, last_status_code = NULL,
                   redeliveries = o.redeliveries + 1, target_url = coalesce($2, o.target_url)
             WHERE o.id = $1
            RETURNING {DELIVERY_COLUMNS}
            """,
            outbox_id, found["webhook_url"] if found["kind"] == VENDOR_WEBHOOK_KIND else None,
        )
        [delivery] = await _with_log(conn, [record])
    return delivery
