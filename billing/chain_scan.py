"""Chain scans as billing keeps them: each scanning source's cursor, the payments still waiting for depth, and which
permission or direct charge each payment a scan found pays.

Matching is set-based and lives in PostgreSQL:
- a payment recorded before keeps its owner;
- by address (Zcash: every permission and direct charge has an address of its own): one statement joins the
  scan's outputs to permissions and direct charges on `payment_address`, whatever their status (a payment to an
  expired or closed permission is then recorded as `late`, a top-up of an active one is credited);
- by payer (Ethereum: every permission is paid to the service address), one payment funds exactly one
  permission: the **oldest pending permission of that wallet and asset (ties by id) not yet covered** by the
  payments already assigned to it (seen or credited), or the oldest pending one when all are covered (over-payment
  is credited in full). With no pending permission, the wallet's most recently created one of that asset that
  expired unpaid in the last LATE_PAYMENT_LOOKBACK gets it as `late`; otherwise the payment is not recorded (a
  `verify` naming its transaction still credits it). Payments are assigned one at a time in chain order, each by
  one statement, under the row locks of the wallets' candidate permissions (taken in id order), so the decision
  is the same whichever replica makes it, and a second replica finds the payment already assigned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from billing.unit_of_work import Database
from kernel.funding import BlockRef, KnownPayment, Payment, PaymentMatching, ReceivedPayment, ScanCursor

LATE_PAYMENT_LOOKBACK = timedelta(days=7)
MATCH_BATCH = 5_000  # payments matched per statement (a first scan may list a whole wallet)
SETTLED = ("credited", "late")


@dataclass(frozen=True, slots=True)
class WaitingPayment:
    """A recorded payment still waiting for depth, with what it pays."""

    known: KnownPayment
    permission_id: UUID | None
    direct_charge_id: UUID | None


@dataclass
class Matched:
    """What a scan reported for each permission and direct charge it touches. Every owner of a waiting payment
    is here, with an empty report if the scan no longer saw it (so that applying orphans it)."""

    permissions: dict[UUID, list[Payment]] = field(default_factory=dict)
    direct_charges: dict[UUID, list[Payment]] = field(default_factory=dict)

    def add(self, permission_id: UUID | None, direct_charge_id: UUID | None, payment: Payment | None) -> None:
        """Count `payment` (None: only the owner) in its owner's report; a payment owned by nothing is dropped."""
        if permission_id is not None:
            report = self.permissions.setdefault(permission_id, [])
        elif direct_charge_id is not None:
            report = self.direct_charges.setdefault(direct_charge_id, [])
        else:
            return
        if payment is not None:
            report.append(payment)


async def load_cursor(conn: asyncpg.Connection, funding_source: str) -> ScanCursor | None:
    rows = await conn.fetch(
        """
        SELECT c.mempool_digest, b.height, b.block_hash
          FROM chain_cursors c JOIN chain_cursor_blocks b USING (funding_source)
         WHERE c.funding_source = $1 ORDER BY b.height
        """,
        funding_source,
    )
    if not rows:
        return None
    return ScanCursor(tuple(BlockRef(row["height"], row["block_hash"]) for row in rows), rows[0]["mempool_digest"])


async def save_cursor(conn: asyncpg.Connection, funding_source: str, cursor: ScanCursor) -> None:
    """Replace the source's cursor (run in a transaction)."""
    await conn.execute(
        """
        INSERT INTO chain_cursors (funding_source, mempool_digest) VALUES ($1, $2)
        ON CONFLICT (funding_source) DO UPDATE SET mempool_digest = EXCLUDED.mempool_digest, scanned_at = now()
        """,
        funding_source, cursor.mempool,
    )
    await conn.execute("DELETE FROM chain_cursor_blocks WHERE funding_source = $1", funding_source)
    await conn.execute(
        "INSERT INTO chain_cursor_blocks (funding_source, height, block_hash)"
        " SELECT $1, height, block_hash FROM unnest($2::bigint[], $3::text[]) AS b(height, block_hash)",
        funding_source, [block.height for block in cursor.blocks], [block.hash for block in cursor.blocks],
    )


async def waiting_payments(conn: asyncpg.Connection, funding_source: str) -> list[WaitingPayment]:
    rows = await conn.fetch(
        """
        SELECT txid, output_index, asset, amount, block_height, block_hash, permission_id, direct_charge_id
          FROM payments WHERE funding_source = $1 AND status = 'seen'
        """,
        funding_source,
    )
    return [
        WaitingPayment(KnownPayment(row["txid"], row["output_index"], row["asset"], row["amount"],
                                    row["block_height"], row["block_hash"]),
                       row["permission_id"], row["direct_charge_id"])
        for row in rows
    ]


async def oldest_waiting_since(conn: asyncpg.Connection, funding_source: str) -> datetime | None:
    """When the oldest permission still waiting for its first payment was created (where a first scan starts)."""
    oldest: datetime | None = await conn.fetchval(
        "SELECT min(created_at) FROM permissions WHERE funding_source = $1 AND status = 'pending_payment'",
        funding_source,
    )
    return oldest


async def match_payments(db: Database, funding_source: str, matching: PaymentMatching,
                         found: Sequence[ReceivedPayment], waiting: Sequence[WaitingPayment], *,
                         now: datetime) -> Matched:
    """Who each payment a scan found pays (see the module's rules); payments already settled are left out."""
    matched = Matched()
    for start in range(0, len(found), MATCH_BATCH):
        batch = found[start:start + MATCH_BATCH]
        async with db.connection() as conn:
            existing = await _recorded_owners(conn, funding_source, batch)
            new = [received for index, received in enumerate(batch) if index not in existing]
            by_address = (await _owners_by_address(conn, funding_source, new)
                          if matching is PaymentMatching.BY_ADDRESS else None)
        owners = by_address if by_address is not None else await _assign_by_payer(db, funding_source, new, now=now)
        for index, (permission_id, direct_charge_id, status) in existing.items():
            if status not in SETTLED:
                matched.add(permission_id, direct_charge_id, batch[index].payment)
        for received, (permission_id, direct_charge_id) in zip(new, owners, strict=True):
            matched.add(permission_id, direct_charge_id, received.payment)
    for payment in waiting:
        matched.add(payment.permission_id, payment.direct_charge_id, None)
    return matched


async def _recorded_owners(conn: asyncpg.Connection, funding_source: str, batch: Sequence[ReceivedPayment],
                           ) -> dict[int, tuple[UUID | None, UUID | None, str]]:
    rows = await conn.fetch(
        """
        SELECT r.i, q.permission_id, q.direct_charge_id, q.status
          FROM unnest($2::text[], $3::int[]) WITH ORDINALITY AS r(txid, output_index, i)
          JOIN payments q ON q.funding_source = $1 AND q.txid = r.txid AND q.output_index = r.output_index
        """,
        funding_source, [r.payment.txid for r in batch], [r.payment.output_index for r in batch],
    )
    return {row["i"] - 1: (row["permission_id"], row["direct_charge_id"], row["status"]) for row in rows}


async def _owners_by_address(conn: asyncpg.Connection, funding_source: str, new: Sequence[ReceivedPayment],
                             ) -> list[tuple[UUID | None, UUID | None]]:
    rows = await conn.fetch(
        """
        SELECT r.i, p.id AS permission_id, d.id AS direct_charge_id
          FROM unnest($2::text[]) WITH ORDINALITY AS r(address, i)
          LEFT JOIN permissions p ON p.funding_source = $1 AND p.payment_address = r.address
          LEFT JOIN direct_charges d ON p.id IS NULL AND d.funding_source = $1 AND d.payment_address = r.address
         WHERE p.id IS NOT NULL OR d.id IS NOT NULL
        """,
        funding_source, [received.address for received in new],
    )
    by_index = {row["i"] - 1: (row["permission_id"], row["direct_charge_id"]) for row in rows}
    return [by_index.get(index, (None, None)) for index in range(len(new))]


async def _assign_by_payer(db: Database, funding_source: str, new: Sequence[ReceivedPayment], *,
                           now: datetime) -> list[tuple[UUID | None, UUID | None]]:
    """Record each new payment for the permission the rule picks, in one transaction, in the order the scan found
    them (chain order)."""
    if not new:
        return []
    owners: list[tuple[UUID | None, UUID | None]] = []
    async with db.transaction() as work:
        await work.conn.execute(
            """
            SELECT p.id FROM permissions p
             WHERE p.funding_source = $1 AND p.activated_at IS NULL AND p.status IN ('pending_payment', 'expired')
               AND (p.user_wallet_address, p.asset) IN (SELECT * FROM unnest($2::text[], $3::text[]))
             ORDER BY p.id FOR UPDATE
            """,
            funding_source, [received.payer for received in new], [received.asset for received in new],
        )
        for received in new:
            payment = received.payment
            permission_id = await work.conn.fetchval(
                """
                INSERT INTO payments (funding_source, txid, output_index, asset, amount, permission_id, address,
                                      confirmations, block_height, block_hash, memo)
                SELECT $1, $2, $3, $4, $5, c.id, c.payment_address, $6, $7, $8, $9
                  FROM (SELECT p.id, p.payment_address, p.created_at,
                               p.status = 'pending_payment' AND p.expires_at > now() AS live,
                               (SELECT coalesce(sum(q.amount), 0) FROM payments q
                                 WHERE q.permission_id = p.id AND q.status IN ('seen', 'credited'))
                                   >= p.approved_amount AS covered
                          FROM permissions p
                         WHERE p.funding_source = $1 AND p.user_wallet_address = $10 AND p.asset = $4
                           AND p.activated_at IS NULL
                           AND (p.status = 'pending_payment'
                                OR (p.status = 'expired' AND coalesce(p.payment_due_at, p.expires_at) > $11))) c
                 ORDER BY c.live DESC, c.covered, CASE WHEN c.live THEN c.created_at END, c.created_at DESC, c.id
                 LIMIT 1
                ON CONFLICT (funding_source, txid, output_index) DO NOTHING
                RETURNING permission_id
                """,
                funding_source, payment.txid, payment.output_index, received.asset, payment.amount_units,
                payment.confirmations, payment.block_height, payment.block_hash, payment.memo, received.payer,
                now - LATE_PAYMENT_LOOKBACK,
            )
            owners.append((permission_id, None))
        work.changed(permissions=[owner for owner, _ in owners if owner is not None])
    return owners
