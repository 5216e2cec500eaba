"""Crediting on-chain payments to direct charges (the hybrid fallback's bills).

A direct charge is paid when what was received at its address with enough confirmations reaches its amount and
its amount is final (`pending_payment`; an `accruing` charge still grows while its session runs). Its session,
ended `pending_payment`, then becomes `confirmed`. Payments are recorded like a permission's (one row per chain
output, owned by one charge only); one that stops being reported before it was credited goes back to `orphaned`,
so a reorged-out payment never pays anything.

Locks follow the order of every other path: the permission, then the direct charge, then the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from billing.vendor_webhooks import enqueue_direct_charge_paid
from kernel.funding import Payment, required_depth


@dataclass(frozen=True, slots=True)
class DirectChargeOutcome:
    direct_charge_id: UUID
    session_id: UUID
    permission_id: UUID
    status: str  # the charge's: accruing, pending_payment, paid, waived
    paid_amount: int
    newly_paid: bool  # this call marked it paid and confirmed its session


async def apply_direct_charge_payments(
    conn: asyncpg.Connection,
    direct_charge_id: UUID,
    seen: Sequence[Payment],
    *,
    min_confirmations: int,
    now: datetime,
) -> DirectChargeOutcome:
    """Record what the funding source reports for the charge's address and settle the charge when it is paid."""
    async with conn.transaction():
        charge = await _locked(conn, direct_charge_id)
        for payment in seen:
            await conn.execute(
                """
                INSERT INTO payments (funding_source, txid, output_index, asset, amount, direct_charge_id, address,
                                      confirmations, block_height, block_hash, memo, first_seen_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
                ON CONFLICT (funding_source, txid, output_index) DO UPDATE
                   SET confirmations = EXCLUDED.confirmations, block_height = EXCLUDED.block_height,
                       block_hash = EXCLUDED.block_hash, updated_at = EXCLUDED.updated_at,
                       status = CASE WHEN payments.status = 'orphaned' THEN 'seen' ELSE payments.status END
                 WHERE payments.direct_charge_id = EXCLUDED.direct_charge_id
                """,
                charge["funding_source"], payment.txid, payment.output_index, charge["asset"], payment.amount_units,
                direct_charge_id, charge["payment_address"], payment.confirmations, payment.block_height,
                payment.block_hash, payment.memo, now,
            )
        reported_txids = [p.txid for p in seen]
        reported_outputs = [p.output_index for p in seen]
        await conn.execute(
            """
            UPDATE payments SET status = 'orphaned', confirmations = -1, updated_at = $4
             WHERE direct_charge_id = $1 AND status IN ('seen', 'orphaned')
               AND (txid, output_index) NOT IN (SELECT * FROM unnest($2::text[], $3::int[]))
            """,
            direct_charge_id, reported_txids, reported_outputs, now,
        )
        return await _settle(conn, direct_charge_id, charge, min_confirmations=min_confirmations, now=now)


async def direct_charges_paid_in_full(conn: asyncpg.Connection,
                                      funding_sources: Sequence[str]) -> list[tuple[UUID, str]]:
    """Charges (with their funding source) whose amount became final (`pending_payment`) after what was credited
    to them already covered it: nothing new happens on chain, so only this finds them."""
    rows = await conn.fetch(
        "SELECT id, funding_source FROM direct_charges WHERE status = 'pending_payment' AND paid_amount >= amount"
        " AND funding_source = ANY($1::text[]) ORDER BY id",
        list(funding_sources),
    )
    return [(row["id"], row["funding_source"]) for row in rows]


async def settle_direct_charge(conn: asyncpg.Connection, direct_charge_id: UUID, *, min_confirmations: int,
                               now: datetime) -> DirectChargeOutcome:
    """Settle the charge from the payments already recorded for it (none is added or orphaned here)."""
    async with conn.transaction():
        charge = await _locked(conn, direct_charge_id)
        return await _settle(conn, direct_charge_id, charge, min_confirmations=min_confirmations, now=now)


async def _locked(conn: asyncpg.Connection, direct_charge_id: UUID) -> asyncpg.Record:
    """The charge, locked after its permission (the lock order of every path)."""
    permission_id = await conn.fetchval("SELECT permission_id FROM direct_charges WHERE id = $1", direct_charge_id)
    if permission_id is None:
        raise LookupError(f"direct charge {direct_charge_id} does not exist")
    await conn.execute("SELECT 1 FROM permissions WHERE id = $1 FOR UPDATE", permission_id)
    return await conn.fetchrow(
        "SELECT session_id, permission_id, funding_source, asset, payment_address, status FROM direct_charges"
        " WHERE id = $1 FOR UPDATE",
        direct_charge_id,
    )


async def _settle(conn: asyncpg.Connection, direct_charge_id: UUID, charge: asyncpg.Record, *,
                  min_confirmations: int, now: datetime) -> DirectChargeOutcome:
    """Credit the charge's deep-enough payments and mark it paid (its session `confirmed`) once they cover it."""
    await conn.execute(
        """
        UPDATE payments SET status = 'credited', credited_at = $3, updated_at = $3
         WHERE direct_charge_id = $1 AND status = 'seen' AND confirmations >= $2
        """,
        direct_charge_id, required_depth(min_confirmations), now,
    )
    settled = await conn.fetchrow(
        """
        UPDATE direct_charges d
           SET paid_amount = credited.total,
               status = CASE WHEN d.status = 'pending_payment' AND credited.total >= d.amount
                             THEN 'paid' ELSE d.status END,
               paid_at = CASE WHEN d.status = 'pending_payment' AND credited.total >= d.amount
                              THEN $2 ELSE d.paid_at END
          FROM (SELECT coalesce(sum(amount), 0) AS total FROM payments
                 WHERE direct_charge_id = $1 AND status = 'credited') credited
         WHERE d.id = $1
        RETURNING d.status, d.paid_amount, (d.status = 'paid' AND $3 <> 'paid') AS newly_paid
        """,
        direct_charge_id, now, charge["status"],
    )
    if settled["newly_paid"]:
        await conn.execute("UPDATE sessions SET status = 'confirmed' WHERE id = $1 AND status = 'pending_payment'",
                           charge["session_id"])
        await enqueue_direct_charge_paid(conn, direct_charge_id)
    return DirectChargeOutcome(direct_charge_id, charge["session_id"], charge["permission_id"], settled["status"],
                               settled["paid_amount"], settled["newly_paid"])
