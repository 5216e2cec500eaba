"""Direct charges (hybrid fallback): what a session owes on chain after its permission ran dry.

The charging statement (billing/charging.py) creates and accrues them; this module gives each one its own
payment address (a funding-source call, so outside any transaction) and reads them for the API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from kernel.errors import PayGoError
from kernel.funding import FundingRequest, FundingSource

log = logging.getLogger(__name__)

ALLOCATION_BATCH = 100

DIRECT_CHARGE_COLUMNS = """
    id, session_id, permission_id, funding_source, asset, amount, status, payment_address, payment_locator,
    paid_amount, created_at, finalized_at, paid_at
"""


@dataclass(frozen=True, slots=True)
class DirectCharge:
    id: UUID
    session_id: UUID
    permission_id: UUID
    funding_source: str
    asset: str
    amount: int
    status: str
    payment_address: str | None
    payment_locator: str | None
    paid_amount: int
    created_at: datetime
    finalized_at: datetime | None
    paid_at: datetime | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> DirectCharge:
        return cls(**dict(record))


async def direct_charge_of_session(conn: asyncpg.Connection, session_id: UUID) -> DirectCharge | None:
    record = await conn.fetchrow(f"SELECT {DIRECT_CHARGE_COLUMNS} FROM direct_charges WHERE session_id = $1",
                                 session_id)
    return DirectCharge.from_record(record) if record else None


async def allocate_direct_charge_addresses(
    pool: asyncpg.Pool, sources: dict[str, FundingSource], *, only: UUID | None = None
) -> int:
    """Give open direct charges without an address one from their funding source; returns how many got one.

    Safe with replicas: the address is stored only if the row still has none (a second replica's address is
    simply never used). A source that is down leaves the charge for the next run.
    """
    async with pool.acquire() as conn:
        waiting = await conn.fetch(
            f"""
            SELECT {DIRECT_CHARGE_COLUMNS} FROM direct_charges
             WHERE payment_address IS NULL AND status IN ('accruing', 'pending_payment')
               AND ($1::uuid IS NULL OR id = $1)
             ORDER BY created_at LIMIT {ALLOCATION_BATCH}
            """,
            only,
        )
    allocated = 0
    for charge in map(DirectCharge.from_record, waiting):
        source = sources.get(charge.funding_source)
        if source is None:
            continue
        try:
            instructions = await source.prepare_funding(FundingRequest(
                reference=f"direct-charge:{charge.id}", asset=charge.asset, amount_units=charge.amount))
        except PayGoError as exc:
            log.warning("no address for direct charge %s yet: %s", charge.id, exc.code)
            continue
        async with pool.acquire() as conn:
            updated = await conn.execute(
                """
                UPDATE direct_charges SET payment_address = $2, payment_locator = $3
                 WHERE id = $1 AND payment_address IS NULL
                """,
                charge.id, instructions.payment_address, instructions.locator,
            )
        allocated += updated.endswith(" 1")
    return allocated
