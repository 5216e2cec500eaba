"""Retention: the prune job deletes, in small batches, what has outlived its use, so no table grows without bound
from traffic alone. The ledger, payments and the permission audit trail are never pruned.

- Idempotency records older than their 24 hours (billing/idempotency.py): nothing can replay them any more.
- Outbox messages `delivered` or `dead` for OUTBOX_RETENTION_DAYS, with their delivery log; a reminder keeps the
  outcome of its message (`permission_reminders.delivery_status`).
- Never-paid permissions (no payment ever seen, never activated) expired UNPAID_PERMISSION_GRACE_DAYS after their
  payment window closed: the row is kept, with its payment address (a later payment can still be matched to it)
  and its audit trail, but marked `pruned_at` and stripped of its token hash (the token stops working) and its
  URLs. A permission that received anything, even late, is never pruned.

Each batch is one short transaction that locks its rows `FOR UPDATE SKIP LOCKED`, so the job runs beside traffic
and in any number of scheduler replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from billing.idempotency import KEY_TTL
from billing.unit_of_work import Database

DEFAULT_BATCH_SIZE = 1000


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    outbox_retention_days: int = 30
    unpaid_permission_grace_days: int = 30
    batch_size: int = DEFAULT_BATCH_SIZE


@dataclass(frozen=True, slots=True)
class PruneSummary:
    idempotency_keys: int
    outbox_messages: int
    permissions: int


async def _prune_idempotency_keys(conn: asyncpg.Connection, *, before: datetime, limit: int) -> int:
    return len(await conn.fetch(
        """
        DELETE FROM idempotency_keys k
         USING (SELECT scope, key_id FROM idempotency_keys WHERE created_at <= $1
                 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) old
         WHERE k.scope = old.scope AND k.key_id = old.key_id
        RETURNING 1
        """,
        before, limit,
    ))


async def _prune_outbox(conn: asyncpg.Connection, *, before: datetime, limit: int) -> int:
    ids = [row["id"] for row in await conn.fetch(
        """
        SELECT id FROM outbox
         WHERE status <> 'pending' AND coalesce(delivered_at, next_attempt_at) <= $1
         ORDER BY coalesce(delivered_at, next_attempt_at) LIMIT $2 FOR UPDATE SKIP LOCKED
        """,
        before, limit,
    )]
    if not ids:
        return 0
    await conn.execute(
        """
        UPDATE permission_reminders r SET outbox_id = NULL, delivery_status = o.status, delivered_at = o.delivered_at
          FROM outbox o WHERE o.id = r.outbox_id AND o.id = ANY($1::bigint[])
        """,
        ids,
    )
    await conn.execute("DELETE FROM webhook_deliveries WHERE outbox_id = ANY($1::bigint[])", ids)
    await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)
    return len(ids)


async def _prune_unpaid_permissions(conn: asyncpg.Connection, *, now: datetime, before: datetime,
                                    limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        UPDATE permissions p SET pruned_at = $1, token_hash = NULL, checkout_url = NULL, notify_url = NULL
          FROM (SELECT id FROM permissions q
                 WHERE q.status = 'expired' AND q.activated_at IS NULL AND q.pruned_at IS NULL
                   AND q.payment_due_at <= $2
                   AND NOT EXISTS (SELECT 1 FROM payments pay WHERE pay.permission_id = q.id)
                 ORDER BY q.payment_due_at LIMIT $3 FOR UPDATE SKIP LOCKED) unpaid
         WHERE p.id = unpaid.id
        RETURNING p.id
        """,
        now, before, limit,
    )


async def prune(db: Database, policy: RetentionPolicy, *, now: datetime) -> PruneSummary:
    """Prune every kind in batches of `policy.batch_size` until a batch comes back short."""
    keys = messages = permissions = 0
    while True:
        async with db.transaction() as work:
            pruned = await _prune_idempotency_keys(work.conn, before=now - KEY_TTL, limit=policy.batch_size)
        keys += pruned
        if pruned < policy.batch_size:
            break
    while True:
        async with db.transaction() as work:
            pruned = await _prune_outbox(work.conn, before=now - timedelta(days=policy.outbox_retention_days),
                                         limit=policy.batch_size)
        messages += pruned
        if pruned < policy.batch_size:
            break
    while True:
        async with db.transaction() as work:
            rows = await _prune_unpaid_permissions(
                work.conn, now=now, before=now - timedelta(days=policy.unpaid_permission_grace_days),
                limit=policy.batch_size)
            work.changed(permissions=[row["id"] for row in rows])
        permissions += len(rows)
        if len(rows) < policy.batch_size:
            break
    return PruneSummary(keys, messages, permissions)
