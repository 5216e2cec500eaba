"""The append-only ledger: settlements and every other money event of a permission.

A permission's `balance` is its live balance. The billing tick lowers it in place as sessions accrue charges
(`accrued_amount` grows by the same amount; a session's own charge then counts what accrued through the
permission's `accrued_at`, read through the view `live_sessions`, migrations/0014); a settlement turns a session's
accrued charge into one `charge` entry and writes that charge into the session's row. Every other entry (funding,
refund, adjustment, reversal) settles first, then updates `balance` and appends its row, in the caller's
transaction. So, exactly, for every permission:

    sum(ledger amounts) = balance + accrued_amount = the last entry's balance_after
    accrued_amount = sum over its sessions of (live charged_amount - settled_amount)

`recompute_balances` checks all three; CHECK (balance >= 0) makes an overdraft impossible.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

import asyncpg


class EntryKind(StrEnum):
    FUNDING = "funding"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    REVERSAL = "reversal"


async def settle_sessions(conn: asyncpg.Connection, permission_id: UUID, at: datetime | None = None) -> int:
    """Write what the permission's sessions accrued and the ledger does not record yet, one `charge` entry per
    session, and mark it settled; returns the amount settled. Run under the permission's row lock."""
    row = await conn.fetchrow(
        """
        WITH unsettled AS (
            SELECT s.id, s.started_at, s.charged_amount AS charged, s.charged_amount - s.settled_amount AS amount
              FROM live_sessions s WHERE s.permission_id = $1 AND s.charged_amount > s.settled_amount
        ), settled AS (
            UPDATE sessions s SET charged_amount = u.charged, settled_amount = u.charged,
                                  settled_at = coalesce($2, now())
              FROM unsettled u WHERE s.id = u.id
            RETURNING s.id
        ), entries AS (
            INSERT INTO ledger_entries (permission_id, kind, amount, balance_after, session_id)
            SELECT p.id, 'charge', -u.amount,
                   p.balance + p.accrued_amount - sum(u.amount) OVER (ORDER BY u.started_at, u.id), u.id
              FROM unsettled u CROSS JOIN permissions p
             WHERE p.id = $1
             ORDER BY u.started_at, u.id
            RETURNING 1
        ), total AS (
            SELECT coalesce(sum(amount), 0) AS amount FROM unsettled
        )
        UPDATE permissions p SET accrued_amount = p.accrued_amount - total.amount
          FROM total WHERE p.id = $1 AND total.amount > 0
        RETURNING total.amount
        """,
        permission_id, at,
    )
    return row["amount"] if row else 0


async def post_entry(
    conn: asyncpg.Connection,
    permission_id: UUID,
    kind: EntryKind,
    amount: int,
    *,
    session_id: UUID | None = None,
    payment_id: int | None = None,
    memo: str | None = None,
) -> int:
    """Apply a signed `amount` (credits > 0, debits < 0) to the permission and record it; returns the new balance.

    What the permission's sessions accrued is settled first, so the ledger's running balance (`balance_after`, the
    settled balance) reads in order. Must run inside a transaction under the permission's row lock.
    """
    if amount == 0:
        raise ValueError("a ledger entry moves a non-zero amount")
    await settle_sessions(conn, permission_id)
    row = await conn.fetchrow(
        """
        WITH updated AS (
            UPDATE permissions
               SET balance = balance + $2,
                   funded_amount = funded_amount + CASE WHEN $3 = 'funding' THEN $2 ELSE 0 END,
                   charged_amount = charged_amount - CASE WHEN $3 = 'charge' THEN $2 ELSE 0 END,
                   updated_at = now()
             WHERE id = $1
         RETURNING id, balance, balance + accrued_amount AS settled
        )
        INSERT INTO ledger_entries (permission_id, kind, amount, balance_after, session_id, payment_id, memo)
        SELECT id, $3, $2, settled, $4, $5, $6 FROM updated
        RETURNING (SELECT balance FROM updated) AS balance
        """,
        permission_id, amount, str(kind), session_id, payment_id, memo,
    )
    if row is None:
        raise LookupError(f"permission {permission_id} does not exist")
    return row["balance"]


async def recompute_balances(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Permissions whose stored money disagrees with what is recorded (an empty list means all agree):
    the sum of the ledger must be `balance + accrued_amount` and the last entry's `balance_after`, and
    `accrued_amount` must be what the sessions charged beyond what they settled."""
    return await conn.fetch(
        """
        SELECT p.id, p.balance, p.accrued_amount, l.ledger_sum, l.last_balance_after, s.unsettled
          FROM permissions p
          LEFT JOIN LATERAL (
                SELECT coalesce(sum(amount), 0) AS ledger_sum,
                       coalesce((SELECT balance_after FROM ledger_entries x WHERE x.permission_id = p.id
                                  ORDER BY id DESC LIMIT 1), 0) AS last_balance_after
                  FROM ledger_entries WHERE permission_id = p.id) l ON true
          LEFT JOIN LATERAL (
                SELECT coalesce(sum(charged_amount - settled_amount), 0) AS unsettled
                  FROM live_sessions WHERE permission_id = p.id) s ON true
         WHERE p.balance + p.accrued_amount <> l.ledger_sum
            OR l.last_balance_after <> l.ledger_sum
            OR p.accrued_amount <> s.unsettled
        """
    )
