"""Refunds of a chain-funded permission's unused balance, as payouts (domain rules and SQL).

A refund closes the permission: its open sessions are ended and charged first, then its whole balance leaves it (a
`refund` ledger entry) and a payout row records what is owed to whom, all in one transaction under the permission's
row lock. Only then is anything sent. There is one payout per permission (UNIQUE), so asking again answers the same
refund.

Two ways money leaves:
- `gateway_send` (Zcash): the gateway sends `refund_amount - network_fee` from its service account. The send is
  claimed in a committed transaction (`pending` → `sending`, one more attempt) before the node is called, so two
  processes never both send; its outcome is recorded after (`sent` with the txid, `submitted` with the node's
  operation id, back to `pending` when certainly nothing was sent, or `unknown`). An `unknown` or `submitted` payout
  is reconciled by asking the node before anything is sent again; an operator can resolve one the node cannot tell.
- `operator_payout` (Ethereum): the gateway holds no key. The payout is an order (`pending`) that the operator pays
  from the service address with any tool; billing.payouts recognises the transaction and marks it `paid`.
A transaction pays one payout only (UNIQUE on the txid), and a payout keeps the one txid that paid it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

import asyncpg

from billing.charging import charge_sessions
from billing.ledger import EntryKind, post_entry
from billing.permissions import PermissionStatus, get_permission
from kernel.errors import Conflict, NotFound
from kernel.funding import OutgoingPayment, SendOutcome, SendState

# A permission in these states may be refunded (a pending one gives back what was credited of a partial payment).
REFUNDABLE_STATES = frozenset({PermissionStatus.PENDING_PAYMENT, PermissionStatus.ACTIVE, PermissionStatus.EXHAUSTED,
                               PermissionStatus.EXPIRED})


class PayoutMethod(StrEnum):
    GATEWAY_SEND = "gateway_send"
    OPERATOR_PAYOUT = "operator_payout"


class PayoutStatus(StrEnum):
    NOT_NEEDED = "not_needed"
    PENDING = "pending"
    SENDING = "sending"
    SUBMITTED = "submitted"
    UNKNOWN = "unknown"
    SENT = "sent"
    PAID = "paid"

    @classmethod
    def unresolved(cls) -> frozenset[PayoutStatus]:
        """A send whose outcome is not known yet: reconciled with the node, or resolved by the operator."""
        return frozenset({cls.SENDING, cls.SUBMITTED, cls.UNKNOWN})


@dataclass(frozen=True, slots=True)
class Payout:
    id: UUID
    permission_id: UUID
    funding_source: str
    asset: str
    asset_decimals: int
    method: PayoutMethod
    destination: str
    refund_amount: int
    network_fee: int
    amount: int
    memo: str | None
    status: PayoutStatus
    attempts: int
    operation_id: str | None
    send_height: int | None
    created_block: int | None
    txid: str | None
    block_height: int | None
    last_error: str | None
    resolved_note: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Payout:
        values = {f.name: record[f.name] for f in fields(cls)}
        return cls(**{**values, "method": PayoutMethod(values["method"]), "status": PayoutStatus(values["status"])})

    @property
    def payment(self) -> OutgoingPayment:
        return OutgoingPayment(self.destination, self.amount, self.memo)


PAYOUT_COLUMNS = ", ".join(f.name for f in fields(Payout))


@dataclass(frozen=True, slots=True)
class RefundTerms:
    """How a source refunds: by the gateway's own send (with the fee it keeps back) or by the operator."""

    method: PayoutMethod
    destination: str
    network_fee: int = 0
    memo: str | None = None
    created_block: int | None = None


def refund_memo(permission_id: UUID) -> str:
    """The ZIP 302 text memo of a refund: it names the permission (the wallet shows it)."""
    return f"PayGo refund of permission {permission_id}"


# The refund of a permission ($1), if it was asked for; also read as part of the permission's whole state.
PAYOUT_OF_PERMISSION = f"SELECT {PAYOUT_COLUMNS} FROM payouts WHERE permission_id = $1"


async def payout_of_permission(conn: asyncpg.Connection, permission_id: UUID) -> Payout | None:
    record = await conn.fetchrow(PAYOUT_OF_PERMISSION, permission_id)
    return Payout.from_record(record) if record else None


async def get_payout(conn: asyncpg.Connection, payout_id: UUID, *, lock: bool = False) -> Payout | None:
    record = await conn.fetchrow(f"SELECT {PAYOUT_COLUMNS} FROM payouts WHERE id = $1"
                                 + (" FOR UPDATE" if lock else ""), payout_id)
    return Payout.from_record(record) if record else None


async def claim_refund(conn: asyncpg.Connection, permission_id: UUID, funding_source: str,
                       terms: RefundTerms) -> Payout:
    """Close the permission and record what it is owed, once (the caller's transaction). Open sessions are ended and
    charged first; then the whole balance leaves it: a `refund` entry, or, when it does not even cover the network
    fee, an `adjustment` (nothing is worth sending)."""
    permission = await get_permission(conn, permission_id, lock=True)
    if permission is None or permission.funding_source != funding_source:
        raise NotFound(f"no {funding_source} permission with this id", code="permission_not_found")
    existing = await payout_of_permission(conn, permission_id)
    if existing is not None:
        return existing
    if permission.status not in REFUNDABLE_STATES:
        raise Conflict(f"a {permission.status} permission cannot be refunded", code="permission_not_refundable")
    confirming = await conn.fetchval("SELECT count(*) FROM payments WHERE permission_id = $1 AND status = 'seen'",
                                     permission_id)
    if confirming:
        raise Conflict("a payment to this permission is still confirming: refund it once it is credited",
                       code="payment_confirming")
    await charge_sessions(conn, [permission_id], await conn.fetchval("SELECT now()"), final=True)
    balance = (await get_permission(conn, permission_id)).balance  # type: ignore[union-attr]
    fee = min(terms.network_fee, balance)
    amount = balance - fee
    status = PayoutStatus.PENDING if amount > 0 else PayoutStatus.NOT_NEEDED
    if amount > 0:
        await post_entry(conn, permission_id, EntryKind.REFUND, -balance, memo=f"refund to {terms.destination}")
    elif balance > 0:
        await post_entry(conn, permission_id, EntryKind.ADJUSTMENT, -balance,
                         memo="unused balance below the network fee of a refund: nothing sent")
    record = await conn.fetchrow(
        f"""
        INSERT INTO payouts (id, permission_id, funding_source, asset, asset_decimals, method, destination,
                             refund_amount, network_fee, amount, memo, status, created_block)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        RETURNING {PAYOUT_COLUMNS}
        """,
        uuid4(), permission_id, funding_source, permission.asset, permission.asset_decimals, str(terms.method),
        terms.destination, balance, fee, amount, terms.memo if amount > 0 else None, str(status),
        terms.created_block,
    )
    await conn.execute("UPDATE permissions SET status = 'closed', stops_at = NULL, updated_at = now() WHERE id = $1",
                       permission_id)
    return Payout.from_record(record)


async def start_send(conn: asyncpg.Connection, payout_id: UUID, send_height: int) -> Payout | None:
    """Claim the next send of a pending payout (committed before the node is called); None when another process
    has it, or it is no longer pending."""
    record = await conn.fetchrow(
        f"""
        UPDATE payouts SET status = 'sending', attempts = attempts + 1, send_height = $2, operation_id = NULL,
                           updated_at = now()
         WHERE id = $1 AND status = 'pending' AND method = 'gateway_send'
        RETURNING {PAYOUT_COLUMNS}
        """,
        payout_id, send_height,
    )
    return Payout.from_record(record) if record else None


_NEXT_STATUS = {
    SendState.SENT: PayoutStatus.SENT,
    SendState.PENDING: PayoutStatus.SUBMITTED,
    SendState.NOT_SENT: PayoutStatus.PENDING,  # certainly nothing went out: it may be sent again
    SendState.UNKNOWN: PayoutStatus.UNKNOWN,
}


async def record_outcome(conn: asyncpg.Connection, payout: Payout, outcome: SendOutcome,
                         retry_after_seconds: int) -> Payout:
    """Record what became of the payout's current attempt, unless something else already moved it on (another
    process, the operator): only a payout still in the state it was read in, at the same attempt, changes. One that
    was certainly not sent is tried again after `retry_after_seconds`. A transaction that already pays another
    payout is never recorded twice: the payout stays unresolved."""
    status = _NEXT_STATUS[outcome.state]
    try:
        async with conn.transaction():
            record = await conn.fetchrow(
                f"""
                UPDATE payouts
                   SET status = $4, txid = $5, operation_id = coalesce($6, operation_id),
                       last_error = $7, updated_at = now(),
                       completed_at = CASE WHEN $4 = 'sent' THEN now() END,
                       retry_at = CASE WHEN $4 = 'pending' THEN now() + make_interval(secs => $8) END
                 WHERE id = $1 AND status = $2 AND attempts = $3
                RETURNING {PAYOUT_COLUMNS}
                """,
                payout.id, str(payout.status), payout.attempts, str(status),
                outcome.txid if status == PayoutStatus.SENT else None,
                outcome.operation_id, None if status == PayoutStatus.SENT else outcome.detail, retry_after_seconds,
            )
    except asyncpg.UniqueViolationError:
        record = await conn.fetchrow(
            f"""
            UPDATE payouts SET status = 'unknown', last_error = $2, updated_at = now()
             WHERE id = $1 RETURNING {PAYOUT_COLUMNS}
            """,
            payout.id, f"transaction {outcome.txid} already pays another payout: the operator must resolve this one",
        )
    if record is None:
        return await get_payout(conn, payout.id)  # type: ignore[return-value]
    return Payout.from_record(record)


async def mark_unknown(conn: asyncpg.Connection, payout: Payout, detail: str) -> Payout | None:
    """A send claimed long ago with no outcome recorded: its process died during the call."""
    record = await conn.fetchrow(
        f"""
        UPDATE payouts SET status = 'unknown', last_error = $3, updated_at = now()
         WHERE id = $1 AND status = 'sending' AND attempts = $2
        RETURNING {PAYOUT_COLUMNS}
        """,
        payout.id, payout.attempts, detail,
    )
    return Payout.from_record(record) if record else None


async def payouts_to_send(conn: asyncpg.Connection) -> list[Payout]:
    """Pending gateway sends: never tried, resolved as not sent by the operator, or due for another try."""
    records = await conn.fetch(
        f"""
        SELECT {PAYOUT_COLUMNS} FROM payouts
         WHERE method = 'gateway_send' AND status = 'pending' AND (retry_at IS NULL OR retry_at <= now())
         ORDER BY created_at
        """
    )
    return [Payout.from_record(record) for record in records]


async def payouts_to_reconcile(conn: asyncpg.Connection, stale_sending_seconds: int,
                               every_seconds: int) -> list[Payout]:
    """Gateway sends whose outcome is not known: submitted or unknown ones not asked about for `every_seconds`, and
    sends claimed more than `stale_sending_seconds` ago whose process never recorded an outcome."""
    records = await conn.fetch(
        f"""
        SELECT {PAYOUT_COLUMNS} FROM payouts
         WHERE method = 'gateway_send'
           AND ((status IN ('submitted', 'unknown')
                 AND (checked_at IS NULL OR checked_at <= now() - make_interval(secs => $2)))
                OR (status = 'sending' AND updated_at <= now() - make_interval(secs => $1)))
         ORDER BY created_at
        """,
        stale_sending_seconds, every_seconds,
    )
    return [Payout.from_record(record) for record in records]


async def mark_checked(conn: asyncpg.Connection, payout_id: UUID) -> None:
    await conn.execute("UPDATE payouts SET checked_at = now() WHERE id = $1", payout_id)


async def list_payouts(conn: asyncpg.Connection, *, statuses: frozenset[PayoutStatus] | None,
                       funding_source: str | None, limit: int) -> list[Payout]:
    records = await conn.fetch(
        f"""
        SELECT {PAYOUT_COLUMNS} FROM payouts
         WHERE ($1::text[] IS NULL OR status = ANY($1::text[])) AND ($2::text IS NULL OR funding_source = $2)
         ORDER BY created_at DESC, id LIMIT $3
        """,
        sorted(statuses) if statuses is not None else None, funding_source, limit,
    )
    return [Payout.from_record(record) for record in records]


async def resolve(conn: asyncpg.Connection, payout_id: UUID, *, sent_txid: str | None, note: str) -> Payout:
    """The operator's word on a send whose outcome the node cannot tell: sent (in `sent_txid`), or not sent (it
    goes back to `pending` and is sent again)."""
    payout = await get_payout(conn, payout_id, lock=True)
    if payout is None:
        raise NotFound("no payout with this id", code="payout_not_found")
    if payout.method != PayoutMethod.GATEWAY_SEND or payout.status not in PayoutStatus.unresolved():
        raise Conflict(f"a {payout.status} payout has nothing to resolve", code="payout_not_unresolved")
    status = PayoutStatus.SENT if sent_txid is not None else PayoutStatus.PENDING
    try:
        async with conn.transaction():
            record = await conn.fetchrow(
                f"""
                UPDATE payouts SET status = $2, txid = $3, resolved_note = $4, last_error = NULL, updated_at = now(),
                                   completed_at = CASE WHEN $2 = 'sent' THEN now() END, retry_at = NULL
                 WHERE id = $1 RETURNING {PAYOUT_COLUMNS}
                """,
                payout_id, str(status), sent_txid, note,
            )
    except asyncpg.UniqueViolationError:
        raise Conflict("this transaction already pays another payout", code="payout_tx_already_used") from None
    return Payout.from_record(record)


async def mark_paid(conn: asyncpg.Connection, payout_id: UUID, txid: str, block_height: int) -> Payout | None:
    """An operator payout paid by `txid`; None when it is not pending any more or the transaction already pays
    another payout."""
    try:
        async with conn.transaction():
            record = await conn.fetchrow(
                f"""
                UPDATE payouts SET status = 'paid', txid = $2, block_height = $3, completed_at = now(),
                                   updated_at = now()
                 WHERE id = $1 AND status = 'pending' AND method = 'operator_payout'
                RETURNING {PAYOUT_COLUMNS}
                """,
                payout_id, txid, block_height,
            )
    except asyncpg.UniqueViolationError:
        return None
    return Payout.from_record(record) if record else None

