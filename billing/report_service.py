"""What vendors and operators read: a vendor's sessions and earnings (pages and CSV streams), the operator views
and the counts behind `/metrics`. All but a single session's detail may lag a little: they read the replica when
one is configured (billing.replica)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from billing.db import DATABASE_DOWN_ERRORS
from billing.reports import (
    ChargeLine,
    GroupBy,
    OperationalCounts,
    SessionCursor,
    SessionFilters,
    SummaryRow,
    VendorSessionRow,
    charges_summary,
    charges_summary_stream,
    operational_counts,
    session_charge_lines,
    sessions_page,
    sessions_stream,
    table_exists,
    vendor_session,
)
from billing.unit_of_work import Database
from kernel.errors import NotFound

log = logging.getLogger(__name__)

COUNTS_TIMEOUT_SECONDS = 3
OPERATOR_VIEWS = (  # each view with the order it is read in
    ("permission_statistics", "asset, status"),
    ("active_permissions_with_sessions", "oldest_session_started_at NULLS LAST, permission_id"),
    ("vendor_revenue_daily", "day DESC, vendor_name, asset"),
    ("scheduler_health", "job_name"),
    ("webhook_backlog", "status, kind, event_type"),
    ("permission_audit_log", "created_at DESC, id DESC"),
)
VIEW_NAMES = tuple(name for name, _ in OPERATOR_VIEWS)


@dataclass(frozen=True, slots=True)
class ViewRows:
    name: str
    columns: list[str]
    rows: list[tuple[object, ...]]
    truncated: bool


class ReportService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- vendors -----------------------------------------------------------------------------------------------

    async def sessions_page(self, vendor_id: UUID, filters: SessionFilters, after: SessionCursor | None,
                            limit: int) -> tuple[list[VendorSessionRow], SessionCursor | None]:
        return await self.db.lagging_read(lambda conn: sessions_page(conn, vendor_id, filters, after, limit))

    @asynccontextmanager
    async def sessions_export(self, vendor_id: UUID, filters: SessionFilters,
                              after: SessionCursor | None) -> AsyncIterator[AsyncIterator[VendorSessionRow]]:
        """Every matching session, streamed from a server-side cursor in one read-only snapshot. The connection is
        held before the caller writes anything, so a database outage still fails before an answer starts."""
        async with self.db.lagging_snapshot() as conn:
            yield sessions_stream(conn, vendor_id, filters, after)

    async def session(self, vendor_id: UUID, session_id: UUID) -> tuple[VendorSessionRow, list[ChargeLine]]:
        """The vendor's session with its charge lines; another vendor's session answers 404, as if it did not exist."""
        async with self.db.connection() as conn:
            row = await vendor_session(conn, vendor_id, session_id)
            if row is None:
                raise NotFound(f"no session with id {session_id}", code="session_not_found")
            return row, await session_charge_lines(conn, vendor_id, session_id)

    async def charges_summary(self, vendor_id: UUID, started_from: datetime | None, started_to: datetime | None,
                              group_by: GroupBy) -> list[SummaryRow]:
        return await self.db.lagging_read(
            lambda conn: charges_summary(conn, vendor_id, started_from, started_to, group_by))

    @asynccontextmanager
    async def charges_summary_export(self, vendor_id: UUID, started_from: datetime | None,
                                     started_to: datetime | None,
                                     group_by: GroupBy) -> AsyncIterator[AsyncIterator[SummaryRow]]:
        async with self.db.lagging_snapshot() as conn:
            yield charges_summary_stream(conn, vendor_id, started_from, started_to, group_by)

    # --- operators ---------------------------------------------------------------------------------------------

    async def operator_views(self, views: Sequence[str] = VIEW_NAMES, limit: int = 50) -> list[ViewRows]:
        """The chosen operator views, at most `limit` rows each; a view not migrated yet is skipped."""

        async def read(conn: asyncpg.Connection) -> list[ViewRows]:
            found = []
            for name, order_by in OPERATOR_VIEWS:
                if name not in views or not await table_exists(conn, name):
                    continue
                statement = await conn.prepare(f"SELECT * FROM {name} ORDER BY {order_by} LIMIT $1")
                rows = await statement.fetch(limit + 1)
                found.append(ViewRows(name, [attribute.name for attribute in statement.get_attributes()],
                                      [tuple(row) for row in rows[:limit]], len(rows) > limit))
            return found

        return await self.db.lagging_read(read)

    async def operational_counts(self) -> OperationalCounts | None:
        """The counts `/metrics` shows; None while the database does not answer (metrics still render)."""
        try:
            async with asyncio.timeout(COUNTS_TIMEOUT_SECONDS):
                return await self.db.lagging_read(operational_counts)
        except DATABASE_DOWN_ERRORS as exc:
            log.warning("metrics without the database: %s", type(exc).__name__)
            return None
