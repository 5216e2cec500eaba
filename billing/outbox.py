"""The outbox: messages (reminders, vendor webhooks) written in the transaction that decided to send them, and
delivered later by the scheduler (billing/delivery.py).

Each message exists once (`dedupe_key` is unique, so enqueueing twice or from two replicas is harmless). Delivery
claims due rows with `FOR UPDATE SKIP LOCKED` and a lease (`locked_until`) and counts the attempt at claim time,
so any number of replicas send each message once per attempt and a crash mid-send costs one attempt, not a loop.
A result is recorded only by the holder of the lease (`attempts` still equal to the claimed attempt).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    event_type: str
    target_url: str
    payload: dict[str, Any]
    permission_id: UUID | None
    vendor_id: UUID | None
    attempts: int  # including the attempt being made


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: attempt n failed → wait min(cap, base × 2^(n-1)); `dead` after `max_attempts`."""

    max_attempts: int
    base_seconds: int
    cap_seconds: int

    def delay_after(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1)))


async def enqueue(
    conn: asyncpg.Connection,
    *,
    kind: str,
    event_type: str,
    dedupe_key: str,
    target_url: str,
    payload: dict[str, Any],
    permission_id: UUID | None = None,
    vendor_id: UUID | None = None,
) -> int | None:
    """Queue a message; returns its id, or None when a message with this `dedupe_key` already exists."""
    return await conn.fetchval(
        """
        INSERT INTO outbox (kind, event_type, dedupe_key, permission_id, vendor_id, target_url, payload)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING id
        """,
        kind, event_type, dedupe_key, permission_id, vendor_id, target_url, payload,
    )


async def claim_due(conn: asyncpg.Connection, *, now: datetime, limit: int, lease: timedelta) -> list[OutboxMessage]:
    """Take up to `limit` due messages for `lease`; rows other replicas hold (locked or leased) are skipped."""
    records = await conn.fetch(
        """
        UPDATE outbox o
           SET locked_until = $1::timestamptz + $3::interval, attempts = o.attempts + 1
          FROM (SELECT id FROM outbox
                 WHERE status = 'pending' AND next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until <= $1)
                 ORDER BY next_attempt_at, id
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED) due
         WHERE o.id = due.id
        RETURNING o.id, o.event_type, o.target_url, o.payload, o.permission_id, o.vendor_id, o.attempts
        """,
        now, limit, lease,
    )
    return [OutboxMessage(**dict(record)) for record in records]


async def mark_delivered(conn: asyncpg.Connection, message: OutboxMessage, *, now: datetime,
                         status_code: int | None) -> bool:
    """Record a 2xx answer; False when the lease was lost (another replica took the message over)."""
    updated = await conn.fetchval(
        """
        UPDATE outbox SET status = 'delivered', delivered_at = $3, locked_until = NULL, last_status_code = $4,
                          last_error = NULL
         WHERE id = $1 AND attempts = $2 AND status = 'pending'
        RETURNING id
        """,
        message.id, message.attempts, now, status_code,
    )
    return updated is not None


async def mark_failed(conn: asyncpg.Connection, message: OutboxMessage, *, now: datetime, policy: RetryPolicy,
                      error: str, status_code: int | None) -> str | None:
    """Record a failed attempt: retry later with backoff, or `dead` after the last attempt.
    Returns the new status, or None when the lease was lost."""
    dead = message.attempts >= policy.max_attempts
    return await conn.fetchval(
        """
        UPDATE outbox SET status = $3, next_attempt_at = $4, locked_until = NULL, last_error = $5,
                          last_status_code = $6
         WHERE id = $1 AND attempts = $2 AND status = 'pending'
        RETURNING status
        """,
        message.id, message.attempts, "dead" if dead else "pending", now + policy.delay_after(message.attempts),
        error[:500], status_code,
    )
