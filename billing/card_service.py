"""Card credits as the gateway asks for them: Stripe's signed webhook events, and refunds of the unused balance.

The domain rules (events folded in any order, refunds, disputes, debts) are in billing/card.py; the card adapter
verifies signatures and reads Stripe's shapes (its `ReadsCardEvents` and `RefundsPayments` abilities).
"""

from __future__ import annotations

from uuid import UUID

from billing.card import CARD, EventResult, RefundRecord, claim_refund, process_event, record_refund_submitted
from billing.sources import FundingSources
from billing.unit_of_work import Database


class CardService:
    def __init__(self, db: Database, sources: FundingSources) -> None:
        self.db = db
        self.sources = sources

    async def handle_webhook(self, payload: bytes, signature_header: str) -> EventResult:
        """Verify the raw body's signature before anything is parsed (a bad one writes nothing), then apply the
        event once per event id."""
        events = self.sources.ability(self.sources.card_events, CARD)
        event = events.verified_event(payload, signature_header)
        async with self.db.transaction() as work:
            result = await process_event(work.conn, event, events.payment_of_checkout)
            if result.permission_id is not None:
                work.changed(permissions=[result.permission_id])
        return result

    async def refund_unused(self, permission_id: UUID) -> RefundRecord:
        """Close a card permission and give its unused balance back to the card. Calling it again returns the same
        refund; if Stripe did not answer, calling it again asks Stripe again with the same idempotency key."""
        refunds = self.sources.ability(self.sources.refunds, CARD)
        async with self.db.transaction() as work:
            record = await claim_refund(work.conn, permission_id)
            work.changed(permissions=[permission_id])
        if record.status != "requested":
            return record
        assert record.payment_intent is not None
        receipt = await refunds.refund(record.payment_intent, record.amount, reference=str(permission_id))
        async with self.db.transaction() as work:
            submitted = await record_refund_submitted(work.conn, permission_id, receipt)
            work.changed(permissions=[permission_id])
        return submitted
