"""Streaming sessions: open against an active permission, charge what they owe, end exactly once.

The charge rule (README, "Money rules") lives in billing/charging.py, shared by the billing tick and the final
charge here.
Locks are always taken permission first, then session, by every path (end, tick), so they cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

import asyncpg

from billing.charging import charge_sessions, refresh_stop_instants
from billing.permissions import PERMISSION_COLUMNS, Permission, PermissionStatus, get_permission
from billing.secrets import new_session_code, secret_hash
from kernel.errors import Forbidden, NotFound, PaymentRequired


class SessionStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"
    EXHAUSTED = "exhausted"
    PENDING_PAYMENT = "pending_payment"
    CONFIRMED = "confirmed"


@dataclass(frozen=True, slots=True)
class Session:
    id: UUID
    permission_id: UUID
    vendor_id: UUID
    status: SessionStatus
    rate_per_hour: int
    started_at: datetime
    ended_at: datetime | None
    charged_amount: int
    uncovered_amount: int

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Session:
        """From a row selected with SESSION_COLUMNS (extra columns, like a `now`, are ignored)."""
        return cls(**{name: record[name] for name in SESSION_FIELDS}, status=SessionStatus(record["status"]))

    def elapsed_seconds(self, until: datetime) -> int:
        """Whole seconds from start to `until` (or to the end, for an ended session)."""
        end = self.ended_at or until
        return max(0, int((end - self.started_at).total_seconds()))


SESSION_FIELDS = tuple(f.name for f in fields(Session) if f.name != "status")
SESSION_COLUMNS = ", ".join(f.name for f in fields(Session))


@dataclass(frozen=True, slots=True)
class OpenedSession:
    session: Session
    session_code: str  # shown once; only its hash is stored


async def open_session(
    conn: asyncpg.Connection, permission_id: UUID, *, user_wallet_address: str, vendor_id: UUID
) -> OpenedSession:
    """Open a session on a permission that can pay for it; 402 with a stable code when it cannot."""
    async with conn.transaction():
        locked = await conn.fetchrow(f"SELECT {PERMISSION_COLUMNS}, now() AS now FROM permissions WHERE id = $1 "
                                     "FOR UPDATE", permission_id)
        if locked is None:
            raise NotFound("permission not found", code="permission_not_found")
        permission = Permission.from_record(locked)
        if permission.user_wallet_address != user_wallet_address:
            raise Forbidden("the permission token belongs to another wallet", code="wallet_mismatch")
        _require_billable(permission, locked["now"])
        code = new_session_code()
        try:
            record = await _insert_session(conn, code, permission, vendor_id)
        except asyncpg.ForeignKeyViolationError:  # the only foreign key left to check is the vendor's
            raise NotFound("no vendor with this vendor_id is registered", code="vendor_not_found") from None
        await refresh_stop_instants(conn, [permission_id])  # one more session: the money runs out sooner
        return OpenedSession(Session.from_record(record), code)


async def _insert_session(conn: asyncpg.Connection, code: str, permission: Permission,
                          vendor_id: UUID) -> asyncpg.Record:
    """The session row, and its `session.started` vendor event in the same statement."""
    return await conn.fetchrow(
            f"""
            WITH opened AS (
                INSERT INTO sessions (id, code_hash, permission_id, vendor_id, rate_per_hour)
                VALUES ($1, $2, $3, $4, $5)
                RETURNING {SESSION_COLUMNS}
            ), started_event AS (  -- the vendor's webhook, if it has one, in this same transaction (outbox)
                INSERT INTO outbox (kind, event_type, dedupe_key, vendor_id, target_url, payload)
                SELECT 'vendor_webhook', 'session.started', 'session.started:' || o.id, o.vendor_id, v.webhook_url,
                       webhook_event('session.started:' || o.id, 'session.started', o.started_at, session_event_data(
                           o.id, o.permission_id, o.vendor_id, o.status, p.funding_source, p.asset,
                           p.asset_decimals, o.rate_per_hour, o.started_at))
                  FROM opened o
                  JOIN vendors v ON v.id = o.vendor_id
                  JOIN permissions p ON p.id = o.permission_id
                 WHERE v.webhook_url IS NOT NULL
                ON CONFLICT (dedupe_key) DO NOTHING
            )
            SELECT {SESSION_COLUMNS} FROM opened
            """,
            uuid4(), secret_hash(code), permission.id, vendor_id, permission.rate_per_hour,
        )


def _require_billable(permission: Permission, now: datetime) -> None:
    if permission.is_expired_at(now) or permission.status == PermissionStatus.EXPIRED:
        raise PaymentRequired("the spending permission has expired", code="permission_expired")
    if permission.status == PermissionStatus.PENDING_PAYMENT:
        raise PaymentRequired("the spending permission is not funded yet", code="permission_not_funded")
    if permission.status == PermissionStatus.EXHAUSTED or (
        permission.status == PermissionStatus.ACTIVE and permission.balance <= 0
    ):
        raise PaymentRequired("the spending permission has nothing left", code="permission_exhausted")
    if permission.status != PermissionStatus.ACTIVE:
        raise PaymentRequired(f"the spending permission is {permission.status}", code="permission_not_active")


async def session_by_code(conn: asyncpg.Connection, session_code: str) -> Session | None:
    record = await conn.fetchrow(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE code_hash = $1",
                                 secret_hash(session_code))
    return Session.from_record(record) if record else None


async def end_session(conn: asyncpg.Connection, session_code: str) -> tuple[Session, Permission]:
    """End a session with its final charge. Ending an ended session changes nothing and returns it as it is."""
    found = await session_by_code(conn, session_code)
    if found is None:
        raise NotFound("no session with this session_code", code="session_not_found")
    async with conn.transaction():
        await get_permission(conn, found.permission_id, lock=True)
        record = await conn.fetchrow(f"SELECT {SESSION_COLUMNS}, now() AS now FROM sessions WHERE id = $1 FOR UPDATE",
                                     found.id)
        if record["status"] == SessionStatus.ACTIVE:
            await charge_sessions(conn, [found.permission_id], record["now"], session_id=found.id, final=True)
            record = await conn.fetchrow(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1", found.id)
        permission = await get_permission(conn, found.permission_id)
        assert permission is not None  # sessions reference permissions with a foreign key
        return Session.from_record(record), permission
