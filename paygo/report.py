"""`paygo report`: the operator views as aligned text tables for a terminal.

Each view is read with its own order and a row limit; a view whose migration is not applied yet is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from billing.reports import table_exists


@dataclass(frozen=True, slots=True)
class OperatorView:
    name: str
    order_by: str


OPERATOR_VIEWS = (
    OperatorView("permission_statistics", "asset, status"),
    OperatorView("active_permissions_with_sessions", "oldest_session_started_at NULLS LAST, permission_id"),
    OperatorView("vendor_revenue_daily", "day DESC, vendor_name, asset"),
    OperatorView("scheduler_health", "job_name"),
    OperatorView("webhook_backlog", "status, kind, event_type"),
    OperatorView("permission_audit_log", "created_at DESC, id DESC"),
)
VIEW_NAMES = tuple(view.name for view in OPERATOR_VIEWS)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, numbers right-aligned, a rule under the header."""
    cells = [[_cell(value) for value in row] for row in rows]
    numeric = [bool(rows) and all(isinstance(row[i], int | Decimal) or row[i] is None for row in rows)
               for i in range(len(columns))]
    widths = [max([len(column)] + [len(row[i]) for row in cells]) for i, column in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.rjust(width) if is_number else value.ljust(width)
                         for value, width, is_number in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(columns), line(["-" * width for width in widths]), *(line(row) for row in cells)])


async def operator_report(conn: asyncpg.Connection, views: Sequence[str] = VIEW_NAMES, limit: int = 50) -> str:
    """The chosen views, each under its name, at most `limit` rows each."""
    sections = []
    for view in OPERATOR_VIEWS:
        if view.name not in views or not await table_exists(conn, view.name):
            continue
        statement = await conn.prepare(f"SELECT * FROM {view.name} ORDER BY {view.order_by} LIMIT $1")
        columns = [attribute.name for attribute in statement.get_attributes()]
        rows = await statement.fetch(limit + 1)
        more = "" if len(rows) <= limit else f"\n(first {limit} rows; more with --limit)"
        body = format_table(columns, [tuple(row) for row in rows[:limit]]) if rows else "(no rows)"
        sections.append(f"== {view.name} ==\n{body}{more}")
    return "\n\n".join(sections) + "\n"
