"""Read models of the dashboards: a wallet user's activity, a vendor's profile and key rotation, the operator's
overview, time series and one permission's audit trail.

One service over the database owns this SQL and returns frozen dataclasses with amounts in minor units and the
asset's decimals beside them (the gateway formats them as exact decimal strings). Every query here only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from billing.permission_service import PermissionService, PermissionState
from billing.unit_of_work import Database
from billing.vendor_keys import VendorKey, list_keys
from kernel.errors import InvalidRequest, NotFound

MAX_TIMESERIES_DAYS = 90
DEFAULT_LIST_LIMIT = 50


# --- a wallet user's activity ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OpenSessionLine:
    session_id: UUID
    vendor_id: UUID
    vendor_name: str
    started_at: datetime
    rate_per_hour: int
    charged_amount: int


@dataclass(frozen=True, slots=True)
class LedgerLine:
    id: int
    kind: str
    amount: int  # signed: a charge is negative
    balance_after: int
    session_id: UUID | None
    memo: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WalletActivity:
    state: PermissionState
    open_sessions: tuple[OpenSessionLine, ...]
    ledger: tuple[LedgerLine, ...]  # newest first


LEDGER_COLUMNS = "le.id, le.kind, le.amount, le.balance_after, le.session_id, le.memo, le.created_at"
WALLET_LEDGER_LINES = 100


# --- a vendor's own account ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class VendorProfile:
    vendor_id: UUID
    name: str
    webhook_url: str | None
    keys: tuple[VendorKey, ...]  # prefixes and dates only, newest first


# --- the operator ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PendingPayment:
    """A payment seen on a funding source and not credited yet."""

    permission_id: UUID | None
    funding_source: str
    asset: str
    asset_decimals: int
    txid: str
    output_index: int
    amount: int
    confirmations: int
    first_seen_at: datetime


@dataclass(frozen=True, slots=True)
class AwaitingPermission:
    """A permission waiting for its first payment, with what reached it so far."""

    permission_id: UUID
    funding_source: str
    asset: str
    asset_decimals: int
    amount_to_pay: int
    received: int
    created_at: datetime
    payment_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class BacklogLine:
    """One row of the `webhook_backlog` view: undelivered (pending) or given-up (dead) messages."""

    kind: str
    event_type: str | None
    status: str
    messages: int
    retried: int
    max_attempts: int
    oldest_age_seconds: int | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class JobLine:
    """One row of the `scheduler_health` view."""

    job_name: str
    last_succeeded_at: datetime | None
    seconds_since_success: int | None
    last_duration_ms: int | None
    runs: int
    failing: bool
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OperatorOverview:
    active_sessions: int
    active_permissions: int
    permissions_awaiting_payment: int
    awaiting: tuple[AwaitingPermission, ...]  # newest first, at most the limit
    pending_payments: tuple[PendingPayment, ...]  # oldest first, at most the limit
    webhook_backlog: tuple[BacklogLine, ...]
    jobs: tuple[JobLine, ...]


@dataclass(frozen=True, slots=True)
class ActiveSessionsPoint:
    hour: datetime  # the start of the hour
    sessions: int  # sessions active at some time during that hour


@dataclass(frozen=True, slots=True)
class RevenuePoint:
    day: date  # UTC
    vendor_id: UUID
    vendor_name: str
    funding_source: str
    asset: str
    asset_decimals: int
    amount: int  # net: charges minus reversals of the vendor's sessions that day


@dataclass(frozen=True, slots=True)
class OperatorTimeseries:
    days: int
    active_sessions: tuple[ActiveSessionsPoint, ...]  # one point per hour, oldest first
    revenue: tuple[RevenuePoint, ...]  # per day, vendor and asset, oldest first


@dataclass(frozen=True, slots=True)
class PermissionChange:
    action: str
    old_status: str | None
    new_status: str
    old_balance: int | None
    new_balance: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditTrail:
    permission_id: UUID
    funding_source: str
    asset: str
    asset_decimals: int
    status: str
    changes: tuple[PermissionChange, ...]  # oldest first, written by a trigger on every change
    ledger: tuple[LedgerLine, ...]  # oldest first


class DashboardService:
    """What the wallet view and the vendor and operator dashboards read."""

    def __init__(self, db: Database, permissions: PermissionService) -> None:
        self.db = db
        self.permissions = permissions

    async def wallet(self, permission_id: UUID) -> WalletActivity:
        """The permission's state, its open sessions (oldest first) and its latest ledger entries (newest first)."""
        state = await self.permissions.state(permission_id)
        async with self.db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            sessions = await conn.fetch(
                """
                SELECT s.id AS session_id, s.vendor_id, v.name AS vendor_name, s.started_at, s.rate_per_hour,
                       s.charged_amount
                  FROM live_sessions s JOIN vendors v ON v.id = s.vendor_id
                 WHERE s.permission_id = $1 AND s.status = 'active'
                 ORDER BY s.started_at, s.id
                """,
                permission_id,
            )
            ledger = await conn.fetch(
                f"SELECT {LEDGER_COLUMNS} FROM ledger_entries le WHERE le.permission_id = $1 ORDER BY le.id DESC "
                "LIMIT $2",
                permission_id, WALLET_LEDGER_LINES,
            )
        return WalletActivity(state, tuple(OpenSessionLine(**dict(row)) for row in sessions),
                              tuple(LedgerLine(**dict(row)) for row in ledger))

    async def vendor_account(self, vendor_id: UUID) -> VendorProfile:
        async with self.db.connection() as conn:
            row = await conn.fetchrow("SELECT name, webhook_url FROM vendors WHERE id = $1", vendor_id)
            if row is None:
                raise NotFound("no vendor with this id", code="vendor_not_found")
            keys = await list_keys(conn, vendor_id)
        return VendorProfile(vendor_id, row["name"], row["webhook_url"], tuple(keys))

    async def operator_overview(self, *, limit: int = DEFAULT_LIST_LIMIT) -> OperatorOverview:
        async with self.db.lagging_snapshot() as conn:
            counts = await conn.fetchrow(
                """
                SELECT (SELECT count(*) FROM sessions WHERE status = 'active') AS active_sessions,
                       (SELECT count(*) FROM permissions WHERE status = 'active' AND expires_at > now())
                           AS active_permissions,
                       (SELECT count(*) FROM permissions WHERE status = 'pending_payment' AND expires_at > now())
                           AS permissions_awaiting_payment
                """
            )
            awaiting = await conn.fetch(
                """
                SELECT p.id AS permission_id, p.funding_source, p.asset, p.asset_decimals,
                       p.approved_amount AS amount_to_pay,
                       coalesce((SELECT sum(q.amount) FROM payments q
                                  WHERE q.permission_id = p.id AND q.status IN ('seen', 'credited')), 0) AS received,
                       p.created_at, p.payment_due_at
                  FROM permissions p
                 WHERE p.status = 'pending_payment' AND p.expires_at > now()
                 ORDER BY p.created_at DESC LIMIT $1
                """,
                limit,
            )
            pending = await conn.fetch(
                """
                SELECT q.permission_id, q.funding_source, q.asset, p.asset_decimals,
                       q.txid, q.output_index, q.amount, q.confirmations, q.first_seen_at
                  FROM payments q JOIN permissions p ON p.id = q.owner_permission_id  -- a direct charge's too
                 WHERE q.status = 'seen'
                 ORDER BY q.first_seen_at, q.id LIMIT $1
                """,
                limit,
            )
            backlog = await conn.fetch(
                "SELECT kind, event_type, status, messages, retried, max_attempts, oldest_age_seconds, next_attempt_at"
                " FROM webhook_backlog ORDER BY status, messages DESC, kind, event_type"
            )
            jobs = await conn.fetch(
                "SELECT job_name, last_succeeded_at, seconds_since_success, last_duration_ms, runs, failing,"
                " last_error FROM scheduler_health ORDER BY job_name"
            )
        return OperatorOverview(
            active_sessions=counts["active_sessions"], active_permissions=counts["active_permissions"],
            permissions_awaiting_payment=counts["permissions_awaiting_payment"],
            awaiting=tuple(AwaitingPermission(**dict(row)) for row in awaiting),
            pending_payments=tuple(PendingPayment(**dict(row)) for row in pending),
            webhook_backlog=tuple(BacklogLine(**dict(row)) for row in backlog),
            jobs=tuple(JobLine(**dict(row)) for row in jobs),
        )

    async def operator_timeseries(self, days: int) -> OperatorTimeseries:
        """Active sessions per hour and net revenue per vendor per UTC day, over the last `days` days (today
        included)."""
        if isinstance(days, bool) or not 1 <= days <= MAX_TIMESERIES_DAYS:
            raise InvalidRequest(f"days must be a whole number from 1 to {MAX_TIMESERIES_DAYS}", code="invalid_days")
        async with self.db.lagging_snapshot() as conn:
            hours = await conn.fetch(
                """
                WITH hours AS (
                    SELECT generate_series(date_trunc('hour', now()) - make_interval(hours => $1 * 24 - 1),
                                           date_trunc('hour', now()), interval '1 hour') AS hour
                ), overlapping AS (  -- only sessions that were open at some time in the window
                    SELECT started_at, ended_at FROM sessions
                     WHERE ended_at IS NULL OR ended_at >= now() - make_interval(hours => $1 * 24)
                )
                SELECT h.hour, count(o.started_at) AS sessions
                  FROM hours h
                  LEFT JOIN overlapping o ON o.started_at < h.hour + interval '1 hour'
                                         AND (o.ended_at IS NULL OR o.ended_at >= h.hour)
                 GROUP BY h.hour ORDER BY h.hour
                """,
                days,
            )
            revenue = await conn.fetch(
                """
                SELECT (le.created_at AT TIME ZONE 'UTC')::date AS day, s.vendor_id, v.name AS vendor_name,
                       min(p.funding_source) AS funding_source, p.asset, min(p.asset_decimals) AS asset_decimals,
                       -sum(le.amount) AS amount
                  FROM ledger_entries le
                  JOIN sessions s ON s.id = le.session_id
                  JOIN vendors v ON v.id = s.vendor_id
                  JOIN permissions p ON p.id = le.permission_id
                 WHERE le.created_at >= (((now() AT TIME ZONE 'UTC')::date - ($1::integer - 1))::timestamp
                                          AT TIME ZONE 'UTC')
                 GROUP BY 1, s.vendor_id, v.name, p.asset
                 ORDER BY 1, v.name, s.vendor_id, p.asset
                """,
                days,
            )
        return OperatorTimeseries(days, tuple(ActiveSessionsPoint(**dict(row)) for row in hours),
                                  tuple(RevenuePoint(**dict(row)) for row in revenue))

    async def audit_trail(self, permission_id: UUID) -> AuditTrail:
        async with self.db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            permission = await conn.fetchrow(
                "SELECT funding_source, asset, asset_decimals, status FROM permissions WHERE id = $1", permission_id)
            if permission is None:
                raise NotFound("no permission with this id", code="permission_not_found")
            changes = await conn.fetch(
                "SELECT action, old_status, new_status, old_balance, new_balance, created_at FROM permission_changes"
                " WHERE permission_id = $1 ORDER BY created_at, id",
                permission_id,
            )
            ledger = await conn.fetch(
                f"SELECT {LEDGER_COLUMNS} FROM ledger_entries le WHERE le.permission_id = $1 ORDER BY le.id",
                permission_id,
            )
        return AuditTrail(permission_id, permission["funding_source"], permission["asset"],
                          permission["asset_decimals"], permission["status"],
                          tuple(PermissionChange(**dict(row)) for row in changes),
                          tuple(LedgerLine(**dict(row)) for row in ledger))
