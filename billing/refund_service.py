"""Refunds of chain-funded permissions as the gateway, the scheduler and the CLI ask for them: refund a permission,
send and reconcile the gateway's own sends, recognise the operator's payouts, list them, and let the operator
resolve a send whose outcome the node cannot tell (rules and SQL in billing/refunds.py and billing/payouts.py).

Nothing here holds a database connection across a call to a node. The order of a send: claim it in a committed
transaction, call the node once, record what came back; an answer that never came is reconciled with the node (its
operation, then the wallet's transactions) before anything is sent again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from uuid import UUID

from billing.payouts import PayoutWatchSummary, offer_transaction, watch_payouts
from billing.permission_service import PermissionService, PermissionState
from billing.refunds import (
    Payout,
    PayoutMethod,
    PayoutStatus,
    RefundTerms,
    claim_refund,
    get_payout,
    list_payouts,
    mark_checked,
    mark_unknown,
    payouts_to_reconcile,
    payouts_to_send,
    record_outcome,
    refund_memo,
    resolve,
    start_send,
)
from billing.sources import FundingSources
from billing.unit_of_work import Database
from kernel.errors import InvalidRequest, NotFound, PayGoError
from kernel.funding import SendsRefunds

log = logging.getLogger(__name__)

RETRY_SEND_SECONDS = 60  # a send the node refused (or could not take) is tried again after this
STALE_SENDING_SECONDS = 120  # a send claimed this long ago without an outcome: its process died during the call
RECONCILE_EVERY_SECONDS = 60  # how often the node is asked again about one unresolved send
MAX_LIST_LIMIT = 500
_TXID = re.compile(r"(0x)?[0-9a-f]{64}")


@dataclass
class RefundRunSummary:
    sent: list[UUID] = field(default_factory=list)
    still_unresolved: list[UUID] = field(default_factory=list)


class RefundService:
    def __init__(self, db: Database, sources: FundingSources, permissions: PermissionService) -> None:
        self.db = db
        self.sources = sources
        self.permissions = permissions

    async def refund(self, permission_id: UUID, funding_source: str, refund_address: str | None) -> PermissionState:
        """Close the permission and refund its unused balance: Zcash sends it now (to `refund_address`, default the
        wallet), Ethereum orders a payout from the operator to the signing wallet. Asking again answers the same
        refund (and tries a send again only if certainly nothing was sent). The payments that reached the permission
        are looked at first (as a verify does), so money still confirming is not forgotten: 409 until it counts."""
        state = await self.permissions.verify(permission_id, funding_source)
        terms = await self._terms(state, funding_source, refund_address)
        async with self.db.transaction() as work:
            payout = await claim_refund(work.conn, permission_id, funding_source, terms)
            work.changed(permissions=[permission_id])
        if payout.method == PayoutMethod.GATEWAY_SEND and payout.status == PayoutStatus.PENDING:
            await self._send(self.sources.refund_senders[funding_source], payout)
        return await self.permissions.state(permission_id)

    async def _terms(self, state: PermissionState, funding_source: str, refund_address: str | None) -> RefundTerms:
        source = self.sources.source(funding_source)
        wallet = state.permission.user_wallet_address
        sender = self.sources.refund_senders.get(funding_source)
        if sender is not None:
            address = source.validate_address(refund_address) if refund_address is not None else wallet
            if not sender.can_receive(address):
                raise InvalidRequest(f"{address} cannot receive a refund from a shielded wallet: give a refund_address",
                                     code="refund_address_required" if refund_address is None
                                     else "invalid_refund_address")
            return RefundTerms(PayoutMethod.GATEWAY_SEND, address, sender.refund_fee_units(address),
                               memo=refund_memo(state.permission.id))
        reader = self.sources.ability(self.sources.payout_readers, funding_source)
        if refund_address is not None and source.validate_address(refund_address) != wallet:
            raise InvalidRequest("the refund goes to the wallet that signed the permission; omit refund_address",
                                 code="refund_address_not_allowed")
        return RefundTerms(PayoutMethod.OPERATOR_PAYOUT, wallet, created_block=await reader.tip_height())

    async def _send(self, sender: SendsRefunds, payout: Payout) -> Payout:
        """One attempt: claim it (committed), call the node once, record the outcome."""
        try:
            height = await sender.chain_height()
        except PayGoError as error:
            log.warning("refund %s not sent: %s", payout.id, error.message)
            return payout
        async with self.db.transaction() as work:
            claimed = await start_send(work.conn, payout.id, height)
        if claimed is None:
            return payout  # another process is sending it, or it was sent
        outcome = await sender.send(claimed.payment)
        async with self.db.transaction() as work:
            recorded = await record_outcome(work.conn, claimed, outcome, RETRY_SEND_SECONDS)
            work.changed(permissions=[claimed.permission_id])
        log.info("refund %s: attempt %d %s %s", recorded.id, claimed.attempts, outcome.state,
                 outcome.txid or outcome.detail or "")
        return recorded

    # --- jobs ----------------------------------------------------------------------------------------------------

    async def send_and_reconcile(self) -> RefundRunSummary:
        """The refunds job: send pending refunds, and ask the node about sends whose outcome is not known."""
        summary = RefundRunSummary()
        async with self.db.connection() as conn:
            to_send = await payouts_to_send(conn)
            to_reconcile = await payouts_to_reconcile(conn, STALE_SENDING_SECONDS, RECONCILE_EVERY_SECONDS)
        for payout in to_send:
            sender = self.sources.refund_senders.get(payout.funding_source)
            if sender is not None:
                self._note(summary, await self._send(sender, payout))
        for payout in to_reconcile:
            sender = self.sources.refund_senders.get(payout.funding_source)
            if sender is not None:
                self._note(summary, await self._reconcile(sender, payout))
        return summary

    @staticmethod
    def _note(summary: RefundRunSummary, payout: Payout | None) -> None:
        if payout is None:
            return
        if payout.status == PayoutStatus.SENT:
            summary.sent.append(payout.id)
        elif payout.status in PayoutStatus.unresolved():
            summary.still_unresolved.append(payout.id)

    async def _reconcile(self, sender: SendsRefunds, payout: Payout) -> Payout | None:
        if payout.status == PayoutStatus.SENDING:
            async with self.db.transaction() as work:
                unknown = await mark_unknown(work.conn, payout, "the process sending it stopped before recording "
                                                                "the outcome")
                work.changed(permissions=[payout.permission_id])
            if unknown is None:
                return None
            payout = unknown
        outcome = await sender.send_outcome(payout.payment, operation_id=payout.operation_id,
                                            since_height=payout.send_height or 0)
        async with self.db.transaction() as work:
            await mark_checked(work.conn, payout.id)
            recorded = await record_outcome(work.conn, payout, outcome, RETRY_SEND_SECONDS)
            work.changed(permissions=[payout.permission_id])
        log.info("refund %s reconciled: %s %s", payout.id, outcome.state, outcome.txid or outcome.detail or "")
        return recorded

    async def watch_payouts(self) -> PayoutWatchSummary:
        """The payout watcher job: recognise the operator's transactions that pay pending payout orders."""
        return await watch_payouts(self.db, self.sources)

    # --- the operator --------------------------------------------------------------------------------------------

    async def list(self, *, statuses: frozenset[PayoutStatus] | None = None, funding_source: str | None = None,
                   limit: int = 100) -> list[Payout]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidRequest(f"limit must be from 1 to {MAX_LIST_LIMIT}", code="invalid_limit")
        async with self.db.connection() as conn:
            return await list_payouts(conn, statuses=statuses, funding_source=funding_source, limit=limit)

    async def resolve(self, payout_id: UUID, *, sent: bool, txid: str | None, note: str) -> Payout:
        """The operator's word on a send the node cannot tell about (a stuck operation, a lost node): `sent` in
        `txid`, or not sent (it is sent again by the refunds job)."""
        if sent and (txid is None or not _TXID.fullmatch(txid.strip().lower())):
            raise InvalidRequest("a sent payout needs its txid (64 hex digits)", code="invalid_txid")
        async with self.db.transaction() as work:
            payout = await resolve(work.conn, payout_id, sent_txid=txid.strip().lower() if sent and txid else None,
                                   note=note)
            work.changed(permissions=[payout.permission_id])
        log.info("payout %s resolved by the operator as %s", payout_id, payout.status)
        return payout

    async def offer(self, payout_id: UUID, txid: str) -> Payout:
        """The operator names the transaction that paid a payout order; checked on chain now."""
        async with self.db.connection() as conn:
            payout = await get_payout(conn, payout_id)
        if payout is None:
            raise NotFound("no payout with this id", code="payout_not_found")
        reader = self.sources.ability(self.sources.payout_readers, payout.funding_source)
        return await offer_transaction(self.db, reader, payout_id, txid)
