"""Spending permissions: rows, states, and crediting payments to them.

A permission is created `pending_payment` with an address of its own. Payments seen at that address are
recorded (one row per chain output, owned by one permission only) and credited once they are deep enough;
the permission becomes `active` when what was credited reaches the amount to pay. Over-payment is credited in
full; under-payment stays pending with what it received; a payment to an expired or closed permission is
recorded as `late` and shown, never credited silently nor dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from uuid import UUID

import asyncpg

from billing.charging import refresh_stop_instants
from billing.ledger import EntryKind, post_entry
from billing.vendor_webhooks import enqueue_payment_confirmed
from kernel.funding import Payment, deep_enough


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


async def payments_of(conn: asyncpg.Connection, permission_id: UUID) -> list[PaymentRow]:
    records = await conn.fetch(
        """
        SELECT txid, output_index, amount, confirmations, block_height, status, first_seen_at, memo
          FROM payments WHERE permission_id = $1 ORDER BY first_seen_at, txid, output_index
        """,
        permission_id,
    )
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


async def apply_payments(
    conn: asyncpg.Connection,
    permission_id: UUID,
    seen: Sequence[Payment],
    *,
    min_confirmations: int,
) -> Permission:
    """Record what the funding source reports for the permission's address and credit what is deep enough.

    Runs in one transaction under the permission's row lock, so concurrent verifies, watchers and replicas
    credit each payment exactly once (the unique index on funding ledger entries is the last line of defence).
    A payment already owned by another permission is ignored here. A payment that was seen before but is no
    longer reported (reorged out, evicted) goes back to `orphaned` unless it was already credited.
    """
    async with conn.transaction():
        permission = await get_permission(conn, permission_id, lock=True)
        if permission is None:
            raise LookupError(f"permission {permission_id} does not exist")
        creditable = permission.status_at(await conn.fetchval("SELECT now()")) in CREDITABLE_STATES
        reported = {(p.txid, p.output_index) for p in seen}
        for payment in seen:
            await conn.execute(
                """
                INSERT INTO payments (funding_source, txid, output_index, asset, amount, permission_id, address,
                                      confirmations, block_height, block_hash, memo)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                ON CONFLICT (funding_source, txid, output_index) DO UPDATE
                   SET confirmations = EXCLUDED.confirmations, block_height = EXCLUDED.block_height,
                       block_hash = EXCLUDED.block_hash, updated_at = now(),
                       status = CASE WHEN payments.status = 'orphaned' THEN 'seen' ELSE payments.status END
                 WHERE payments.permission_id = EXCLUDED.permission_id
                """,
                permission.funding_source, payment.txid, payment.output_index, permission.asset,
                payment.amount_units, permission.id, permission.payment_address, payment.confirmations,
                payment.block_height, payment.block_hash, payment.memo,
            )
        known = await conn.fetch(
            "SELECT id, txid, output_index, amount, confirmations, status FROM payments WHERE permission_id = $1",
            permission.id,
        )
        credited: list[int] = []
        for row in known:
            key = (row["txid"], row["output_index"])
            if row["status"] in PaymentStatus.unsettled() and key not in reported:
                await conn.execute(
                    "UPDATE payments SET status = 'orphaned', confirmations = -1, updated_at = now() WHERE id = $1",
                    row["id"],
                )
                continue
            if row["status"] != PaymentStatus.SEEN or not deep_enough(row["confirmations"], min_confirmations):
                continue
            if not creditable:
                await conn.execute("UPDATE payments SET status = 'late', updated_at = now() WHERE id = $1", row["id"])
                continue
            await post_entry(conn, permission.id, EntryKind.FUNDING, row["amount"], payment_id=row["id"],
                             memo=f"payment {row['txid']}:{row['output_index']}")
            await conn.execute(
                "UPDATE payments SET status = 'credited', credited_at = now(), updated_at = now() WHERE id = $1",
                row["id"],
            )
            credited.append(row["id"])
        await conn.execute(
            """
            UPDATE permissions
               SET status = 'active', activated_at = coalesce(activated_at, now()), updated_at = now()
             WHERE id = $1 AND expires_at > now() AND balance > 0
               AND ((status = 'pending_payment' AND funded_amount >= approved_amount) OR status = 'exhausted')
            """,
            permission.id,
        )
        await refresh_stop_instants(conn, [permission.id])  # more money (or a revived permission) runs longer
        if credited:
            await enqueue_payment_confirmed(conn, credited)
        return await get_permission(conn, permission.id)  # type: ignore[return-value]
