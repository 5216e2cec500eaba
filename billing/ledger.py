"""The append-only ledger: the only code that changes a permission's balance.

Each change updates `permissions.balance` and appends a `ledger_entries` row with the balance after it, in the
caller's transaction. `permissions.balance` is therefore always the sum of the permission's ledger amounts; the
CHECK (balance >= 0) constraint makes an overdraft impossible even if a caller computed wrongly.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

import asyncpg


class EntryKind(StrEnum):
    FUNDING = "funding"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    REVERSAL = "reversal"


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

    Must run inside a transaction. The UPDATE takes the permission's row lock, so concurrent postings serialise.
    """
    if amount == 0:
        raise ValueError("a ledger entry moves a non-zero amount")
    row = await conn.fetchrow(
        """
        WITH updated AS (
            UPDATE permissions
               SET balance = balance + $2,
                   funded_amount = funded_amount + CASE WHEN $3 = 'funding' THEN $2 ELSE 0 END,
                   charged_amount = charged_amount - CASE WHEN $3 = 'charge' THEN $2 ELSE 0 END,
                   updated_at = now()
             WHERE id = $1
         RETURNING id, balance
        )
        INSERT INTO ledger_entries (permission_id, kind, amount, balance_after, session_id, payment_id, memo)
        SELECT id, $3, $2, balance, $4, $5, $6 FROM updated
        RETURNING balance_after
        """,
        permission_id, amount, str(kind), session_id, payment_id, memo,
    )
    if row is None:
        raise LookupError(f"permission {permission_id} does not exist")
    return row["balance_after"]


async def recompute_balances(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Permissions whose stored balance differs from the sum of their ledger (an empty list means all agree)."""
    return await conn.fetch(
        """
        SELECT p.id, p.balance, coalesce(sum(l.amount), 0) AS ledger_sum,
               (SELECT balance_after FROM ledger_entries x WHERE x.permission_id = p.id ORDER BY id DESC LIMIT 1)
                   AS last_balance_after
          FROM permissions p LEFT JOIN ledger_entries l ON l.permission_id = p.id
         GROUP BY p.id
        HAVING p.balance <> coalesce(sum(l.amount), 0)
            OR p.balance <> coalesce((SELECT balance_after FROM ledger_entries x WHERE x.permission_id = p.id
                                       ORDER BY id DESC LIMIT 1), 0)
        """
    )
