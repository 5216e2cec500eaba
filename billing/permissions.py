"""Spending permissions: rows, states, and crediting payments to them.

A permission is created `pending_payment` with an address of its own. Payments seen at that address are
recorded (one row per chain output, owned by one permission only) and credited once they are deep enough;
the permission becomes `active` when what was credited reaches the amount to pay. Over-payment is credited in
full; under-payment stays pending with what it received; a payment to an expired or closed permission is
recorded as `late` and shown, never credited silently nor dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from uuid import UUID

import asyncpg

from billing.charging import refresh_stop_instants
from billing.ledger import settle_sessions
from billing.vendor_webhooks import enqueue_payment_confirmed
from kernel.funding import Payment, required_depth


class PermissionStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    ACTIVE = "active"
    EXHAUSTED = "exhausted"
    EXPIRED = "expired"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class PaymentStatus(StrEnum):
    """A payment's life: `seen` (not deep enough yet), `credited`, `late` (reached a permission that could no longer
    take it: recorded and shown, never credited), `orphaned` (left the chain or the mempool before it counted)."""

    SEEN = "seen"
    CREDITED = "credited"
    LATE = "late"
    ORPHANED = "orphaned"

    @classmethod
    def unsettled(cls) -> frozenset[PaymentStatus]:
        """Seen but not settled either way: re-checked on every pass."""
        return frozenset({cls.SEEN, cls.ORPHANED})

    @classmethod
    def received(cls) -> frozenset[PaymentStatus]:
        """Money that reached the permission's address and is still there."""
        return frozenset({cls.SEEN, cls.CREDITED, cls.LATE})


# States in which a confirmed payment is credited to the balance (top-ups revive an exhausted permission).
CREDITABLE_STATES = frozenset({PermissionStatus.PENDING_PAYMENT, PermissionStatus.ACTIVE, PermissionStatus.EXHAUSTED})


@dataclass(frozen=True, slots=True)
class Permission:
    id: UUID
    funding_source: str
    asset: str
    asset_decimals: int
    user_wallet_address: str
    approved_amount: int
    rate_per_hour: int
    duration_days: int
    status: PermissionStatus
    balance: int
    funded_amount: int
    charged_amount: int
    payment_address: str | None
    payment_locator: str | None
    checkout_url: str | None
    created_at: datetime
    activated_at: datetime | None
    expires_at: datetime
    notify_url: str | None = None  # receiver of the permission's reminders (signed webhooks)
    payment_due_at: datetime | None = None  # end of the payment window of a pending permission

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Permission:
        """From a row selected with PERMISSION_COLUMNS (extra columns, like a `now`, are ignored)."""
        values = {f.name: record[f.name] for f in fields(cls)}
        return cls(**{**values, "status": PermissionStatus(values["status"])})

    def is_expired_at(self, moment: datetime) -> bool:
        return self.expires_at <= moment

    def status_at(self, moment: datetime) -> PermissionStatus:
        """The status as of `moment`: an active or pending permission past its expiry reads as expired even
        before the scheduler has marked it."""
        if self.status in CREDITABLE_STATES and self.is_expired_at(moment):
            return PermissionStatus.EXPIRED
        return self.status


PERMISSION_COLUMNS = ", ".join(f.name for f in fields(Permission))


@dataclass(frozen=True, slots=True)
class NewPermission:
    id: UUID
    funding_source: str
    asset: str
    asset_decimals: int
    user_wallet_address: str
    token_hash: bytes
    approved_amount: int
    rate_per_hour: int
    duration_days: int
    payment_address: str | None
    payment_locator: str | None
    checkout_url: str | None = None
    notify_url: str | None = None
    payment_window_hours: int = 24  # payment_due_at = created_at + this (never after expiry)


async def insert_permission(conn: asyncpg.Connection, new: NewPermission) -> Permission:
    record = await conn.fetchrow(
        f"""
        INSERT INTO permissions (id, funding_source, asset, asset_decimals, user_wallet_address, token_hash,
                                 approved_amount, rate_per_hour, duration_days, payment_address, payment_locator,
                                 checkout_url, expires_at, notify_url, payment_due_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now() + make_interval(days => $9), $13,
                least(now() + make_interval(hours => $14), now() + make_interval(days => $9)))
        RETURNING {PERMISSION_COLUMNS}
        """,
        new.id, new.funding_source, new.asset, new.asset_decimals, new.user_wallet_address, new.token_hash,
        new.approved_amount, new.rate_per_hour, new.duration_days, new.payment_address, new.payment_locator,
        new.checkout_url, new.notify_url, new.payment_window_hours,
    )
    return Permission.from_record(record)


async def get_permission(conn: asyncpg.Connection, permission_id: UUID, *, lock: bool = False) -> Permission | None:
    record = await conn.fetchrow(
        f"SELECT {PERMISSION_COLUMNS} FROM permissions WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        permission_id,
    )
    return Permission.from_record(record) if record else None


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """Who a permission token belongs to: enough to authorize and validate a request without reading more."""

    permission_id: UUID
    funding_source: str


async def holder_of_token(conn: asyncpg.Connection, token_hash: bytes) -> TokenHolder | None:
    record = await conn.fetchrow("SELECT id, funding_source FROM permissions WHERE token_hash = $1", token_hash)
    return TokenHolder(record["id"], record["funding_source"]) if record else None


async def latest_permission_for_wallet(
    conn: asyncpg.Connection, funding_source: str, address: str
) -> Permission | None:
    """The wallet's permission that matters most: the newest active one, else the newest of any state."""
    record = await conn.fetchrow(
        f"""
        SELECT {PERMISSION_COLUMNS} FROM permissions
         WHERE funding_source = $1 AND user_wallet_address = $2
         ORDER BY (status = 'active' AND expires_at > now()) DESC, created_at DESC
         LIMIT 1
        """,
        funding_source, address,
    )
    return Permission.from_record(record) if record else None


@dataclass(frozen=True, slots=True)
class PaymentRow:
    txid: str
    output_index: int
    amount: int
    confirmations: int
    block_height: int | None
    status: PaymentStatus
    first_seen_at: datetime
    memo: str | None = None  # its ZIP 302 text memo (Zcash), as the wallet reported it


# A permission's payments ($1: the permission), oldest first; also read as part of its whole state (one statement).
PAYMENTS_OF = """
SELECT txid, output_index, amount, confirmations, block_height, status, first_seen_at, memo
  FROM payments WHERE permission_id = $1 ORDER BY first_seen_at, txid, output_index
"""


async def payments_of(conn: asyncpg.Connection, permission_id: UUID) -> list[PaymentRow]:
    records = await conn.fetch(PAYMENTS_OF, permission_id)
    return [PaymentRow(**{**dict(r), "status": PaymentStatus(r["status"])}) for r in records]


async def payments_claimed_elsewhere(conn: asyncpg.Connection, funding_source: str, txids: Sequence[str],
                                     permission_id: UUID) -> list[str]:
    """The txids among `txids` that already fund another permission (one payment funds one permission)."""
    rows = await conn.fetch(
        "SELECT DISTINCT txid FROM payments WHERE funding_source = $1 AND txid = ANY($2::text[])"
        " AND permission_id IS DISTINCT FROM $3 ORDER BY txid",
        funding_source, list(txids), permission_id,
    )
    return [row["txid"] for row in rows]


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """What applying a report did to one permission."""

    permission_id: UUID
    status_before: PermissionStatus
    status_after: PermissionStatus

    @property
    def activated(self) -> bool:
        return self.status_before != PermissionStatus.ACTIVE and self.status_after == PermissionStatus.ACTIVE


async def apply_payments(
    conn: asyncpg.Connection,
    permission_id: UUID,
    seen: Sequence[Payment],
    *,
    min_confirmations: int,
) -> Permission:
    """Record what the funding source reports for the permission's address and credit what is deep enough (see
    `apply_payment_reports`); the permission as it is afterwards."""
    async with conn.transaction():
        if not await apply_payment_reports(conn, {permission_id: seen}, min_confirmations=min_confirmations):
            raise LookupError(f"permission {permission_id} does not exist")
        return await get_permission(conn, permission_id)  # type: ignore[return-value]


async def apply_payment_reports(
    conn: asyncpg.Connection,
    reports: Mapping[UUID, Sequence[Payment]],
    *,
    min_confirmations: int,
) -> list[PaymentOutcome]:
    """For each permission, record every payment its funding source reports for it and credit what is deep enough;
    a few set-based statements whatever the number of permissions (the payment watcher applies a whole block's
    payments at once).

    Runs in one transaction under the permissions' row locks (taken in id order), so concurrent verifies, watchers
    and replicas credit each payment exactly once (the unique index on funding ledger entries is the last line of
    defence). A report is complete: a payment seen before but no longer reported (reorged out, evicted) goes back
    to `orphaned` unless it was already settled. A payment already owned by another permission is ignored here. A
    deep-enough payment to a permission that can no longer take it (expired, closed, suspended) becomes `late`.
    What the permission's sessions accrued is settled before its funding entries, as `post_entry` does, so the
    ledger's running balance reads in order.
    """
    ids = sorted(reports)
    reported: dict[tuple[str, int], tuple[UUID, Payment]] = {}
    for permission_id in ids:
        for payment in reports[permission_id]:
            reported.setdefault((payment.txid, payment.output_index), (permission_id, payment))
    rows = list(reported.values())
    async with conn.transaction():
        before = {
            record["id"]: PermissionStatus(record["status"])
            for record in await conn.fetch(
                "SELECT id, status FROM permissions WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", ids)
        }
        ids = sorted(before)
        await conn.execute(
            """
            INSERT INTO payments (funding_source, txid, output_index, asset, amount, permission_id, address,
                                  confirmations, block_height, block_hash, memo)
            SELECT p.funding_source, r.txid, r.output_index, p.asset, r.amount, p.id, p.payment_address,
                   r.confirmations, r.block_height, r.block_hash, r.memo
              FROM unnest($1::uuid[], $2::text[], $3::int[], $4::numeric[], $5::int[], $6::bigint[], $7::text[],
                          $8::text[])
                   AS r(permission_id, txid, output_index, amount, confirmations, block_height, block_hash, memo)
              JOIN permissions p ON p.id = r.permission_id
            ON CONFLICT (funding_source, txid, output_index) DO UPDATE
               SET confirmations = EXCLUDED.confirmations, block_height = EXCLUDED.block_height,
                   block_hash = EXCLUDED.block_hash, updated_at = now(),
                   status = CASE WHEN payments.status = 'orphaned' THEN 'seen' ELSE payments.status END
             WHERE payments.permission_id = EXCLUDED.permission_id
            """,
            [pid for pid, _ in rows], [p.txid for _, p in rows], [p.output_index for _, p in rows],
            [p.amount_units for _, p in rows], [p.confirmations for _, p in rows], [p.block_height for _, p in rows],
            [p.block_hash for _, p in rows], [p.memo for _, p in rows],
        )
        await conn.execute(
            """
            UPDATE payments q SET status = 'orphaned', confirmations = -1, updated_at = now()
             WHERE q.permission_id = ANY($1::uuid[]) AND q.status IN ('seen', 'orphaned')
               AND NOT (q.status = 'orphaned' AND q.confirmations = -1)
               AND NOT EXISTS (SELECT 1 FROM unnest($2::uuid[], $3::text[], $4::int[]) AS r(permission_id, txid,
                                                                                           output_index)
                                WHERE r.permission_id = q.permission_id AND r.txid = q.txid
                                  AND r.output_index = q.output_index)
            """,
            ids, [pid for pid, _ in rows], [p.txid for _, p in rows], [p.output_index for _, p in rows],
        )
        depth = required_depth(min_confirmations)
        creditable = sorted(CREDITABLE_STATES)
        await conn.execute(
            """
            UPDATE payments q SET status = 'late', updated_at = now()
              FROM permissions p
             WHERE q.permission_id = ANY($1::uuid[]) AND q.status = 'seen' AND q.confirmations >= $2
               AND p.id = q.permission_id AND NOT (p.status = ANY($3::text[]) AND p.expires_at > now())
            """,
            ids, depth, creditable,
        )
        due = await conn.fetch(
            """
            SELECT q.id, q.permission_id, p.accrued_amount > 0 AS accrued
              FROM payments q JOIN permissions p ON p.id = q.permission_id
             WHERE q.permission_id = ANY($1::uuid[]) AND q.status = 'seen' AND q.confirmations >= $2
               AND p.status = ANY($3::text[]) AND p.expires_at > now()
            """,
            ids, depth, creditable,
        )
        for permission_id in sorted({row["permission_id"] for row in due if row["accrued"]}):
            await settle_sessions(conn, permission_id)
        credited = [row["id"] for row in due]
        if credited:
            await _post_funding_entries(conn, credited)
        await refresh_stop_instants(conn, ids)  # more money (or a revived permission) runs longer
        if credited:
            await enqueue_payment_confirmed(conn, credited)
        after = await conn.fetch("SELECT id, status FROM permissions WHERE id = ANY($1::uuid[])", ids)
    return [PaymentOutcome(record["id"], before[record["id"]], PermissionStatus(record["status"])) for record in after]


async def _post_funding_entries(conn: asyncpg.Connection, payment_ids: Sequence[int]) -> None:
    """Credit these deep-enough payments: one `funding` ledger entry each, in id order per permission, with the
    balance after it; the balance and funded amount grow by the same total (`post_entry`'s arithmetic, for many
    entries in one statement), and a permission this funds (pending, now paid in full) or revives (exhausted)
    becomes active in the same row update. The permissions' accruals are settled already."""
    await conn.execute(
        """
        WITH due AS (
            SELECT q.id, q.permission_id, q.amount, q.txid, q.output_index,
                   sum(q.amount) OVER (PARTITION BY q.permission_id ORDER BY q.id) AS running
              FROM payments q WHERE q.id = ANY($1::bigint[])
        ), totals AS (
            SELECT permission_id, sum(amount) AS amount FROM due GROUP BY permission_id
        ), funded AS (
            UPDATE permissions p
               SET balance = p.balance + t.amount, funded_amount = p.funded_amount + t.amount, updated_at = now(),
                   status = CASE WHEN p.expires_at > now()
                                      AND ((p.status = 'pending_payment'
                                            AND p.funded_amount + t.amount >= p.approved_amount)
                                           OR p.status = 'exhausted')
                                 THEN 'active' ELSE p.status END,
                   activated_at = CASE WHEN p.expires_at > now() AND p.status = 'pending_payment'
                                            AND p.funded_amount + t.amount >= p.approved_amount
                                       THEN coalesce(p.activated_at, now()) ELSE p.activated_at END
              FROM totals t WHERE p.id = t.permission_id
            RETURNING p.id, p.balance + p.accrued_amount - t.amount AS settled_before
        ), credited AS (
            UPDATE payments q SET status = 'credited', credited_at = now(), updated_at = now()
              FROM due WHERE q.id = due.id
        )
        INSERT INTO ledger_entries (permission_id, kind, amount, balance_after, payment_id, memo)
        SELECT d.permission_id, 'funding', d.amount, f.settled_before + d.running, d.id,
               'payment ' || d.txid || ':' || d.output_index
          FROM due d JOIN funded f ON f.id = d.permission_id
         ORDER BY d.permission_id, d.id
        """,
        list(payment_ids),
    )
