"""Read-only queries for vendors (their sessions and charges) and operators (counts for metrics and health).

Every vendor query takes the vendor's id and filters on it in SQL: a vendor can only ever read rows of its own
sessions. Sessions are listed newest first with keyset pagination on (started_at, id), so a page costs the same
however deep it is; `sessions_cursor` gives the same rows through a server-side cursor for CSV exports.
Amounts come back as integers of minor units with the permission's `asset_decimals` beside them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg

from kernel.assets import Asset
from kernel.errors import InvalidRequest

CURSOR_PREFETCH_ROWS = 500  # rows a server-side cursor fetches per round trip


class GroupBy(StrEnum):
    DAY = "day"
    ASSET = "asset"


@dataclass(frozen=True, slots=True)
class SessionFilters:
    """Which of a vendor's sessions to list; times bound `started_at` (from inclusive, to exclusive)."""

    statuses: tuple[str, ...] = ()
    started_from: datetime | None = None
    started_to: datetime | None = None
    wallet: str | None = None


@dataclass(frozen=True, slots=True)
class SessionCursor:
    """Where a page ended: the last row's (started_at, id). Sent to clients as an opaque base64url string."""

    started_at: datetime
    session_id: UUID

    def encode(self) -> str:
        raw = f"{self.started_at.isoformat()}|{self.session_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> SessionCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            started_at, _, session_id = raw.partition("|")
            moment = datetime.fromisoformat(started_at)
            if moment.tzinfo is None:
                raise ValueError("naive time")
            return cls(moment, UUID(session_id))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidRequest("cursor is not one this API gave out", code="invalid_cursor") from None


@dataclass(frozen=True, slots=True)
class VendorSessionRow:
    """One of a vendor's sessions with its permission's asset and payer."""

    session_id: UUID
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: int
    asset: Asset
    rate_per_hour: int
    charged_amount: int
    uncovered_amount: int
    permission_id: UUID
    user_wallet_address: str

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> VendorSessionRow:
        values = {name: record[name] for name in _SESSION_ROW_FIELDS}
        return cls(**values, asset=_asset(record))


_SESSION_ROW_FIELDS = tuple(f.name for f in fields(VendorSessionRow) if f.name != "asset")


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """A ledger entry of a session (amounts signed: a charge is negative)."""

    id: int
    kind: str
    amount: int
    memo: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SummaryRow:
    day: date | None
    asset: Asset
    charges: int
    sessions: int
    amount: int

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> SummaryRow:
        return cls(day=record.get("day"), asset=_asset(record), charges=record["charges"],
                   sessions=record["sessions"], amount=record["amount"])


def _asset(record: asyncpg.Record) -> Asset:
    """The asset as the permission recorded it (its decimals are stored with it)."""
    return Asset(record["asset"], record["asset_decimals"], record["funding_source"])


SESSION_COLUMNS = """
    s.id AS session_id, s.status, s.started_at, s.ended_at, s.rate_per_hour, s.charged_amount, s.uncovered_amount,
    floor(extract(epoch FROM coalesce(s.ended_at, now()) - s.started_at))::bigint AS duration_seconds,
    p.id AS permission_id, p.funding_source, p.asset, p.asset_decimals, p.user_wallet_address
"""


def _sessions_sql(vendor_id: UUID, filters: SessionFilters, after: SessionCursor | None,
                  limit: int | None) -> tuple[str, list[Any]]:
    args: list[Any] = [vendor_id]
    conditions = ["s.vendor_id = $1"]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if filters.statuses:
        conditions.append(f"s.status = ANY({arg(list(filters.statuses))}::text[])")
    if filters.started_from is not None:
        conditions.append(f"s.started_at >= {arg(filters.started_from)}")
    if filters.started_to is not None:
        conditions.append(f"s.started_at < {arg(filters.started_to)}")
    if filters.wallet is not None:
        conditions.append(f"p.user_wallet_address = {arg(filters.wallet)}")
    if after is not None:
        conditions.append(f"(s.started_at, s.id) < ({arg(after.started_at)}, {arg(after.session_id)})")
    sql = f"""
        SELECT {SESSION_COLUMNS}
          FROM live_sessions s JOIN permissions p ON p.id = s.permission_id
         WHERE {' AND '.join(conditions)}
         ORDER BY s.started_at DESC, s.id DESC
    """
    if limit is not None:
        sql += f" LIMIT {arg(limit)}"
    return sql, args


async def sessions_page(conn: asyncpg.Connection, vendor_id: UUID, filters: SessionFilters,
                        after: SessionCursor | None, limit: int) -> tuple[list[VendorSessionRow], SessionCursor | None]:
    """Up to `limit` of the vendor's sessions after `after`, and the cursor of the next page (None on the last)."""
    sql, args = _sessions_sql(vendor_id, filters, after, limit + 1)
    rows = [VendorSessionRow.from_record(record) for record in await conn.fetch(sql, *args)]
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], SessionCursor(last.started_at, last.session_id)


async def sessions_stream(conn: asyncpg.Connection, vendor_id: UUID, filters: SessionFilters,
                          after: SessionCursor | None = None) -> AsyncIterator[VendorSessionRow]:
    """Every matching session through a server-side cursor; iterate it inside a transaction."""
    sql, args = _sessions_sql(vendor_id, filters, after, None)
    async for record in conn.cursor(sql, *args, prefetch=CURSOR_PREFETCH_ROWS):
        yield VendorSessionRow.from_record(record)


async def vendor_session(conn: asyncpg.Connection, vendor_id: UUID, session_id: UUID) -> VendorSessionRow | None:
    """The session if it is this vendor's; None otherwise (another vendor's session is not revealed)."""
    record = await conn.fetchrow(
        f"""
        SELECT {SESSION_COLUMNS}
          FROM live_sessions s JOIN permissions p ON p.id = s.permission_id
         WHERE s.id = $1 AND s.vendor_id = $2
        """,
        session_id, vendor_id,
    )
    return VendorSessionRow.from_record(record) if record else None


async def session_charge_lines(conn: asyncpg.Connection, vendor_id: UUID, session_id: UUID) -> list[ChargeLine]:
    """Every ledger entry of the vendor's session, oldest first (amounts signed: a charge is negative)."""
    records = await conn.fetch(
        """
        SELECT le.id, le.kind, le.amount, le.memo, le.created_at
          FROM ledger_entries le JOIN sessions s ON s.id = le.session_id
         WHERE le.session_id = $1 AND s.vendor_id = $2
         ORDER BY le.id
        """,
        session_id, vendor_id,
    )
    return [ChargeLine(**dict(record)) for record in records]


def _summary_sql(vendor_id: UUID, started_from: datetime | None, started_to: datetime | None,
                 group_by: GroupBy) -> tuple[str, list[Any]]:
    day = "(le.created_at AT TIME ZONE 'UTC')::date"
    keys = f"{day} AS day, p.asset" if group_by is GroupBy.DAY else "p.asset"
    order = "day, p.asset" if group_by is GroupBy.DAY else "p.asset"
    return (
        f"""
        SELECT {keys}, min(p.asset_decimals) AS asset_decimals, min(p.funding_source) AS funding_source,
               count(*) FILTER (WHERE le.kind = 'charge') AS charges,
               count(DISTINCT le.session_id) AS sessions,
               -sum(le.amount) AS amount
          FROM sessions s
          JOIN ledger_entries le ON le.session_id = s.id
          JOIN permissions p ON p.id = le.permission_id
         WHERE s.vendor_id = $1
           AND ($2::timestamptz IS NULL OR le.created_at >= $2)
           AND ($3::timestamptz IS NULL OR le.created_at < $3)
         GROUP BY {order}
         ORDER BY {order}
        """,
        [vendor_id, started_from, started_to],
    )


async def charges_summary(conn: asyncpg.Connection, vendor_id: UUID, started_from: datetime | None,
                          started_to: datetime | None, group_by: GroupBy) -> list[SummaryRow]:
    """What the vendor earned from session ledger entries made in [from, to), net (charges minus reversals),
    per asset or per UTC day and asset."""
    sql, args = _summary_sql(vendor_id, started_from, started_to, group_by)
    return [SummaryRow.from_record(record) for record in await conn.fetch(sql, *args)]


async def charges_summary_stream(conn: asyncpg.Connection, vendor_id: UUID, started_from: datetime | None,
                                 started_to: datetime | None, group_by: GroupBy) -> AsyncIterator[SummaryRow]:
    """The rows of `charges_summary` through a server-side cursor; iterate it inside a transaction."""
    sql, args = _summary_sql(vendor_id, started_from, started_to, group_by)
    async for record in conn.cursor(sql, *args, prefetch=CURSOR_PREFETCH_ROWS):
        yield SummaryRow.from_record(record)


@dataclass(frozen=True, slots=True)
class OperationalCounts:
    active_sessions: int
    pending_payments: int  # payments seen on chain, not credited yet
    permissions_awaiting_payment: int  # pending_payment and not expired
    outbox: dict[tuple[str, str], int] | None  # (kind, status) → messages pending or dead; None without an outbox


async def table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)


async def operational_counts(conn: asyncpg.Connection) -> OperationalCounts:
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM sessions WHERE status = 'active') AS active_sessions,
               (SELECT count(*) FROM payments WHERE status = 'seen') AS pending_payments,
               (SELECT count(*) FROM permissions WHERE status = 'pending_payment' AND expires_at > now())
                   AS permissions_awaiting_payment
        """
    )
    outbox = None
    if await table_exists(conn, "outbox"):
        rows = await conn.fetch(
            "SELECT kind, status, count(*) AS messages FROM outbox WHERE status IN ('pending', 'dead') GROUP BY 1, 2"
        )
        outbox = {(r["kind"], r["status"]): r["messages"] for r in rows}
    return OperationalCounts(row["active_sessions"], row["pending_payments"], row["permissions_awaiting_payment"],
                             outbox)
