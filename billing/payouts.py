"""Recognising the operator's payouts where the gateway holds no key (Ethereum): a refund's payout order is paid by
the operator from the service address with any tool, and this module finds that transaction.

A transaction pays a payout when it is a successful transfer from the service address to the payout's destination
of exactly its amount, in its asset (ETH, or the token's contract), in a block after the payout was ordered, with
the source's confirmations. Each transaction pays one payout at most (the oldest of identical ones first), and a
payout is paid by one transaction: the UNIQUE txid of `payouts` settles it, across replicas.

The watcher scans blocks from its own cursor (`payout_scan_cursors`, per chain), only while payouts are pending:
blocks deep enough to be final move the cursor on; the newer ones are scanned again on the next pass, so a
transfer is counted once it is deep enough, and a reorg among the newest blocks is seen. The operator may also
name a transaction (`offer_transaction`), which is checked at once by the same rule.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from billing.refunds import PAYOUT_COLUMNS, Payout, PayoutMethod, PayoutStatus, get_payout, mark_paid
from billing.sources import FundingSources
from billing.unit_of_work import Database
from kernel.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from kernel.funding import OutgoingTransfer, ReadsOutgoingTransfers, required_depth

log = logging.getLogger(__name__)

MAX_BLOCKS_PER_PASS = 500  # bounds one pass (a long outage is caught up over several)


@dataclass
class PayoutWatchSummary:
    paid: list[UUID] = field(default_factory=list)
    blocks_scanned: int = 0
    unreachable_sources: list[str] = field(default_factory=list)


def pays(transfer: OutgoingTransfer, payout: Payout) -> bool:
    return (transfer.asset == payout.asset and transfer.to_address == payout.destination
            and transfer.amount_units == payout.amount and transfer.block_height > (payout.created_block or -1))


async def watch_payouts(db: Database, sources: FundingSources) -> PayoutWatchSummary:
    summary = PayoutWatchSummary()
    for name, reader in sources.payout_readers.items():
        try:
            await _watch(db, name, reader, summary)
        except ServiceUnavailable as error:
            log.warning("payout watcher: %s unavailable: %s", name, error.message)
            summary.unreachable_sources.append(name)
    return summary


async def _watch(db: Database, name: str, reader: ReadsOutgoingTransfers, summary: PayoutWatchSummary) -> None:
    async with db.connection() as conn:
        pending = await _pending(conn, name)
        cursor = await conn.fetchval("SELECT next_block FROM payout_scan_cursors WHERE funding_source = $1", name)
    if not pending:
        return
    start = max(cursor or 0, min((payout.created_block or 0) + 1 for payout in pending))
    tip = await reader.tip_height()
    end = min(tip, start + MAX_BLOCKS_PER_PASS - 1)
    if end < start:
        return
    found = await reader.outgoing_transfers(start, end)
    summary.blocks_scanned += end - start + 1
    depth = required_depth(reader.min_confirmations)
    deep = [transfer for transfer in found.transfers if transfer.confirmations >= depth]
    summary.paid += await _match(db, name, pending, deep)
    final_through = min(end, found.tip - depth + 1)  # these blocks have every confirmation they need
    if final_through >= start:
        async with db.connection() as conn:
            await conn.execute(
                """
                INSERT INTO payout_scan_cursors (funding_source, next_block) VALUES ($1, $2)
                ON CONFLICT (funding_source) DO UPDATE
                   SET next_block = greatest(payout_scan_cursors.next_block, EXCLUDED.next_block), updated_at = now()
                """,
                name, final_through + 1,
            )


async def _pending(conn: asyncpg.Connection, name: str) -> list[Payout]:
    records = await conn.fetch(
        f"SELECT {PAYOUT_COLUMNS} FROM payouts WHERE funding_source = $1 AND method = 'operator_payout' "
        "AND status = 'pending' ORDER BY created_at, id",
        name,
    )
    return [Payout.from_record(record) for record in records]


async def _match(db: Database, name: str, pending: list[Payout], transfers: Sequence[OutgoingTransfer]) -> list[UUID]:
    """Each transfer pays the oldest pending payout it fits, unless its transaction pays one already."""
    if not transfers:
        return []
    async with db.connection() as conn:
        used = {row["txid"] for row in await conn.fetch(
            "SELECT txid FROM payouts WHERE funding_source = $1 AND txid = ANY($2::text[])",
            name, [transfer.txid for transfer in transfers])}
    open_payouts = list(pending)
    paid: list[UUID] = []
    for transfer in transfers:
        if transfer.txid in used:
            continue
        payout = next((p for p in open_payouts if pays(transfer, p)), None)
        if payout is None:
            continue
        used.add(transfer.txid)
        async with db.transaction() as work:
            marked = await mark_paid(work.conn, payout.id, transfer.txid, transfer.block_height)
            if marked is not None:
                work.changed(permissions=[payout.permission_id])
        if marked is not None:
            open_payouts.remove(payout)
            paid.append(payout.id)
            log.info("payout %s paid by %s", payout.id, transfer.txid)
    return paid


async def offer_transaction(db: Database, reader: ReadsOutgoingTransfers, payout_id: UUID, txid: str) -> Payout:
    """The operator names the transaction that paid a payout: checked now, by the watcher's rule."""
    async with db.connection() as conn:
        payout = await get_payout(conn, payout_id)
    if payout is None or payout.funding_source != reader.name:
        raise NotFound("no payout with this id is paid on this chain", code="payout_not_found")
    if payout.method != PayoutMethod.OPERATOR_PAYOUT or payout.status != PayoutStatus.PENDING:
        raise Conflict(f"a {payout.status} payout takes no transaction", code="payout_not_pending")
    found = await reader.outgoing_transfers_in(txid)
    transfer = next((t for t in found.transfers if pays(t, payout)), None)
    if transfer is None:
        raise InvalidRequest(f"the transaction is not a successful transfer of exactly the payout's amount of "
                             f"{payout.asset} from the service address to {payout.destination}",
                             code="payout_tx_mismatch")
    if transfer.confirmations < required_depth(reader.min_confirmations):
        raise Conflict(f"the transaction has {transfer.confirmations} of {reader.min_confirmations} confirmations; "
                       "offer it again once it has them (the watcher also finds it)", code="payout_tx_unconfirmed")
    async with db.transaction() as work:
        marked = await mark_paid(work.conn, payout.id, transfer.txid, transfer.block_height)
        if marked is None:
            raise Conflict("this transaction already pays another payout", code="payout_tx_already_used")
        work.changed(permissions=[payout.permission_id])
    return marked
