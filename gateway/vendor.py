"""The vendor API (X-API-Key: a vendor key): the vendor's own sessions, their charge lines, and earnings summaries.

Every query filters on the calling vendor's id in SQL; another vendor's session answers 404, as if it did not
exist. Lists answer JSON, or CSV with `?format=csv` or `Accept: text/csv`; CSV is streamed from a server-side
cursor in one read-only snapshot, so a year of sessions is never held in memory. Query parameters are checked
strictly: an unknown or malformed one answers 422 with a code naming it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from billing.reports import GroupBy, SessionCursor, SessionFilters, SummaryRow, VendorSessionRow
from billing.sessions import SessionStatus
from gateway.auth import parse_uuid, require_vendor
from gateway.http import bounded_int, json_response
from gateway.keys import SERVICES
from gateway.openapi import Auth, Operation, Parameter, describe
from gateway.vendor_models import (
    ChargeLineView,
    ChargesSummaryRow,
    ChargesSummaryView,
    VendorSessionDetailView,
    VendorSessionPage,
    VendorSessionView,
)
from gateway.views import iso
from kernel.errors import InvalidRequest
from kernel.money import format_amount

RowT = TypeVar("RowT")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_WALLET_LENGTH = 512
MAX_CURSOR_LENGTH = 200
MAX_MOMENT_LENGTH = 64
CSV_CHUNK_BYTES = 64 * 1024

SESSION_PARAMETERS = frozenset({"status", "from", "to", "wallet", "limit", "cursor", "format"})
SUMMARY_PARAMETERS = frozenset({"from", "to", "group_by", "format"})

TIME_RANGE = (
    Parameter("from", "Sessions started at or after this ISO 8601 date or date-time (UTC unless it says otherwise)",
              {"type": "string", "examples": ["2024-05-01"]}),
    Parameter("to", "Sessions started before this ISO 8601 date or date-time", {"type": "string",
                                                                               "examples": ["2024-06-01"]}),
)
FORMAT = Parameter("format", "json (default) or csv; `Accept: text/csv` also selects CSV",
                   {"type": "string", "enum": ["json", "csv"]})


# --- query parameters -------------------------------------------------------------------------------------------

def check_parameters(request: web.Request, accepted: frozenset[str]) -> None:
    unknown = sorted(set(request.query) - accepted)
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r} (accepted: {', '.join(sorted(accepted))})",
                             code="unknown_parameter")
    repeated = sorted(name for name in accepted if len(request.query.getall(name, [])) > 1)
    if repeated:
        raise InvalidRequest(f"query parameter {repeated[0]!r} is given more than once", code=f"invalid_{repeated[0]}")


def _moment(request: web.Request, name: str) -> datetime | None:
    """An ISO 8601 date (midnight UTC) or date-time (UTC unless it says otherwise)."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        if len(raw) > MAX_MOMENT_LENGTH:
            raise ValueError("too long")
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 date or date-time such as 2024-05-01 or "
                             f"2024-05-01T12:00:00Z, got {raw!r}", code=f"invalid_{name}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _time_range(request: web.Request) -> tuple[datetime | None, datetime | None]:
    started_from, started_to = _moment(request, "from"), _moment(request, "to")
    if started_from is not None and started_to is not None and started_from >= started_to:
        raise InvalidRequest("from must be earlier than to (from is inclusive, to exclusive)", code="invalid_range")
    return started_from, started_to


def _statuses(request: web.Request) -> tuple[str, ...]:
    raw = request.query.get("status")
    if raw is None:
        return ()
    wanted = tuple(dict.fromkeys(part.strip() for part in raw.split(",")))
    known = [status.value for status in SessionStatus]
    if not wanted or any(status not in known for status in wanted):
        raise InvalidRequest(f"status must be one or more (comma-separated) of {', '.join(known)}, got {raw!r}",
                             code="invalid_status")
    return wanted


def _wallet(request: web.Request) -> str | None:
    """The wallet as stored: normalised by the funding source that accepts it (addresses are case-sensitive on some
    chains and not on others), or as given when no configured source knows its format."""
    raw = request.query.get("wallet")
    if raw is None:
        return None
    wallet = raw.strip()
    if not wallet or len(wallet) > MAX_WALLET_LENGTH:
        raise InvalidRequest(f"wallet must be 1 to {MAX_WALLET_LENGTH} characters", code="invalid_wallet")
    return request.app[SERVICES].sources.normalise_wallet(wallet)


def page_limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    limit = bounded_int(raw, MAX_PAGE_SIZE)
    if limit is None or limit < 1:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}", code="invalid_limit")
    return limit


def _wants_csv(request: web.Request) -> bool:
    given = request.query.get("format")
    if given is not None:
        if given not in ("json", "csv"):
            raise InvalidRequest("format must be json or csv", code="invalid_format")
        return given == "csv"
    return "text/csv" in request.headers.get("Accept", "")


def _group_by(request: web.Request) -> GroupBy:
    raw = request.query.get("group_by", GroupBy.ASSET.value)
    try:
        return GroupBy(raw)
    except ValueError:
        raise InvalidRequest("group_by must be day or asset", code="invalid_group_by") from None


def _session_filters(request: web.Request) -> SessionFilters:
    started_from, started_to = _time_range(request)
    return SessionFilters(statuses=_statuses(request), started_from=started_from, started_to=started_to,
                          wallet=_wallet(request))


# --- rows to views ----------------------------------------------------------------------------------------------

def _session_view(row: VendorSessionRow) -> VendorSessionView:
    asset = row.asset
    return VendorSessionView(
        session_id=str(row.session_id),
        status=row.status,
        started_at=iso(row.started_at),
        ended_at=iso(row.ended_at),
        duration_seconds=row.duration_seconds,
        asset=asset.code,
        rate_per_hour=format_amount(row.rate_per_hour, asset),
        charged_amount=format_amount(row.charged_amount, asset),
        uncovered_amount=format_amount(row.uncovered_amount, asset),
        funding_source=asset.funding_source,
        permission_id=str(row.permission_id),
        user_wallet_address=row.user_wallet_address,
    )


def _summary_row(row: SummaryRow) -> ChargesSummaryRow:
    return ChargesSummaryRow(
        day=row.day.isoformat() if row.day is not None else None,
        asset=row.asset.code,
        charges=row.charges,
        sessions=row.sessions,
        amount=format_amount(row.amount, row.asset),
    )


async def _stream_csv(request: web.Request, filename: str, columns: Sequence[str],
                      export: AbstractAsyncContextManager[AsyncIterator[RowT]],
                      to_view: Callable[[RowT], BaseModel]) -> web.StreamResponse:
    """Rows of an export (a server-side cursor) as CSV, written in chunks as they arrive.

    The answer starts only once the export holds its database connection, so an outage still answers 503 JSON."""
    response = web.StreamResponse(headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    response.content_type = "text/csv"
    response.charset = "utf-8"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    async with export as rows:
        await response.prepare(request)
        async for row in rows:
            values = to_view(row).model_dump()
            writer.writerow("" if values[column] is None else values[column] for column in columns)
            if buffer.tell() >= CSV_CHUNK_BYTES:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


# --- handlers ---------------------------------------------------------------------------------------------------

@describe(Operation(
    summary="The vendor's sessions, newest first, with cursor pagination (JSON) or all of them (CSV)",
    auth=(Auth.VENDOR_KEY,), response=VendorSessionPage, response_media_types=("application/json", "text/csv"),
    errors=(422,),
    query=(Parameter("status", "Comma-separated session statuses", {"type": "string", "examples": ["ended"]}),
           *TIME_RANGE,
           Parameter("wallet", "Only this payer's sessions", {"type": "string"}),
           Parameter("limit", f"Page size, 1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE})",
                     {"type": "string", "pattern": "^[0-9]+$"}),
           Parameter("cursor", "`next_cursor` of the previous page"),
           FORMAT)))
async def list_sessions(request: web.Request) -> web.StreamResponse:
    vendor_id = await require_vendor(request)
    check_parameters(request, SESSION_PARAMETERS)
    filters = _session_filters(request)
    limit = page_limit(request)
    raw_cursor = request.query.get("cursor")
    if raw_cursor is not None and len(raw_cursor) > MAX_CURSOR_LENGTH:
        raise InvalidRequest("cursor is not one this API gave out", code="invalid_cursor")
    after = SessionCursor.decode(raw_cursor) if raw_cursor is not None else None
    reports = request.app[SERVICES].reports
    if _wants_csv(request):
        return await _stream_csv(request, "sessions.csv", list(VendorSessionView.model_fields),
                                 reports.sessions_export(vendor_id, filters, after), _session_view)
    rows, next_cursor = await reports.sessions_page(vendor_id, filters, after, limit)
    return json_response(VendorSessionPage(sessions=[_session_view(row) for row in rows],
                                           next_cursor=next_cursor.encode() if next_cursor else None))


@describe(Operation(summary="One of the vendor's sessions with every charge line", auth=(Auth.VENDOR_KEY,),
                    response=VendorSessionDetailView, errors=(404,),
                    path_parameters={"session_id": "The session's id"}))
async def show_session(request: web.Request) -> web.Response:
    vendor_id = await require_vendor(request)
    session_id = parse_uuid(request.match_info["session_id"], "session")
    row, lines = await request.app[SERVICES].reports.session(vendor_id, session_id)
    charges = [ChargeLineView(id=line.id, kind=line.kind, amount=format_amount(line.amount, row.asset),
                              memo=line.memo, created_at=iso(line.created_at)) for line in lines]
    return json_response(VendorSessionDetailView(**_session_view(row).model_dump(), charges=charges))


@describe(Operation(
    summary="Net earnings per asset, or per UTC day and asset", auth=(Auth.VENDOR_KEY,), response=ChargesSummaryView,
    response_media_types=("application/json", "text/csv"), errors=(422,),
    query=(*TIME_RANGE, Parameter("group_by", "asset (default) or day", {"type": "string", "enum": ["asset", "day"]}),
           FORMAT)))
async def charges_summary_view(request: web.Request) -> web.StreamResponse:
    vendor_id = await require_vendor(request)
    check_parameters(request, SUMMARY_PARAMETERS)
    started_from, started_to = _time_range(request)
    group_by = _group_by(request)
    reports = request.app[SERVICES].reports
    if _wants_csv(request):
        columns = [name for name in ChargesSummaryRow.model_fields if name != "day" or group_by is GroupBy.DAY]
        return await _stream_csv(request, f"charges-by-{group_by}.csv", columns,
                                 reports.charges_summary_export(vendor_id, started_from, started_to, group_by),
                                 _summary_row)
    rows = await reports.charges_summary(vendor_id, started_from, started_to, group_by)
    return json_response(ChargesSummaryView(group_by=group_by.value, rows=[_summary_row(row) for row in rows]))


routes = [
    web.get("/api/v1/vendor/sessions", list_sessions),
    web.get("/api/v1/vendor/sessions/{session_id}", show_session),
    web.get("/api/v1/vendor/charges/summary", charges_summary_view),
]
