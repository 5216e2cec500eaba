"""Charging sessions, set-based: the billing tick, the final charge of an ending session, and expiry.

One SQL statement charges any set of active sessions at an instant `at`, for permissions whose rows the caller has
locked: the function `charge_sessions` (migrations/0013_scale.sql, revised in 0014; a SQL function so that ending a
session is one database call). For each session it computes what it owes in total,
`div(rate_per_hour × whole elapsed seconds, 3600)` with elapsed measured up to min(at, expires_at), and charges
the difference from what it was charged (and left uncovered) before, never below zero; "charged before" counts
what accrued in place (`accrued_charge`, migrations/0014), and the session's row is written out with it. Running
it twice, late, or from two replicas therefore charges nothing extra, and each session's total is rounded once,
down.

Within a permission, sessions are served in start order from the balance; what the balance cannot cover is the
session's shortfall. A short session either ends (`exhausted`), or, where its vendor allows a grace period, runs
on credit: the shortfall accrues as a direct charge paid on chain, and the session ends `pending_payment` when
the grace runs out, the client ends it, or the permission expires.

Locks: callers lock the permissions first (by id order), then the statement updates their sessions; every path
that touches a session holds its permission's lock, so a statement's snapshot (taken after the locks) is current.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from billing.unit_of_work import Database

DEFAULT_BATCH_SIZE = 5000  # permissions per transaction: bounds lock time and memory
DEFAULT_TICK_CONNECTIONS = 2  # batches charged at once (BILLING_TICK_CONNECTIONS)
ONE_SECOND = timedelta(seconds=1)

# The common case of a tick, as plain in-place arithmetic: permissions whose money lasts well past `at` (a second
# before their stop instant, which is never later than the true one), not expiring, with no session on credit and
# none due a checkpoint. Their sessions are only read: each owes exactly `session_owed` through `at` (no allocation,
# no settlement, no event), which the view `live_sessions` computes on read from the permission's `accrued_at`
# (migrations/0014). Only the permission's running totals are written: what accrued since the last tick moves from
# the balance to the accrued amount, and `accrued_at` becomes `at`. Returns the permissions it charged; the rest of
# the batch goes through charge_sessions().
ACCRUE_COVERED = """
WITH totals AS (
    -- one pass over the batch's open sessions: whether each permission may take the fast path, and what its
    -- sessions owe through `through` (`at`, never back before what already accrued) beyond what they settled
    SELECT s.permission_id, count(*) AS sessions, min(c.through) AS through, min(c.accrued_amount) AS accrued_before,
           bool_and(s.uncovered_amount = 0 AND s.exhausted_at IS NULL
                    AND coalesce(s.settled_at, s.started_at) > $2 - interval '1 hour') AS covered,
           sum(accrued_charge(s.charged_amount, s.uncovered_amount, s.exhausted_at, s.status, s.rate_per_hour,
                              s.started_at, c.through) - s.settled_amount) AS accrued
      FROM (SELECT p.id, p.accrued_amount, greatest($2, coalesce(p.accrued_at, $2)) AS through
              FROM permissions p
             WHERE p.id BETWEEN $3 AND $4 AND p.id = ANY($1::uuid[]) AND p.status = 'active' AND p.expires_at > $2
               AND p.stops_at IS NOT NULL AND p.stops_at - interval '1 second' >= $2) c
      JOIN sessions s ON s.permission_id = c.id AND s.status = 'active' AND s.permission_id BETWEEN $3 AND $4
     GROUP BY s.permission_id
),
permission_updates AS (
    UPDATE permissions p
       SET balance = p.balance + p.accrued_amount - t.accrued, accrued_amount = t.accrued,
           charged_amount = p.charged_amount - p.accrued_amount + t.accrued, accrued_at = t.through,
           updated_at = now()
      FROM totals t
     WHERE p.id BETWEEN $3 AND $4 AND p.id = t.permission_id AND t.covered AND t.accrued <> p.accrued_amount
)
SELECT ARRAY(SELECT permission_id FROM totals WHERE covered) AS covered,
       (SELECT coalesce(sum(sessions), 0) FROM totals WHERE covered) AS sessions,
       (SELECT coalesce(sum(accrued - accrued_before), 0) FROM totals WHERE covered) AS charged
"""

# For each batch's transaction: a plan made for this batch's ids (a prepared statement's generic plan, which
# PostgreSQL switches to after five runs, cannot see that a batch is a narrow id range and scans whole tables: 10x
# slower at 1,000,000 sessions), and room to sort and hash a batch's sessions in memory.
TICK_TRANSACTION_SETTINGS = "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL work_mem = '64MB'"

# The next batch of permissions with open sessions, in id order (an index-only walk that stops at the batch size).
CANDIDATES = """
SELECT DISTINCT permission_id FROM sessions
 WHERE status = 'active' AND ($1::uuid IS NULL OR permission_id > $1)
 ORDER BY permission_id LIMIT $2
"""
EXPIRED_CANDIDATES = """
SELECT DISTINCT s.permission_id FROM sessions s JOIN permissions p ON p.id = s.permission_id
 WHERE s.status = 'active' AND ($1::uuid IS NULL OR s.permission_id > $1) AND p.expires_at <= $3
 ORDER BY s.permission_id LIMIT $2
"""


@dataclass
class ChargeResult:
    sessions: int = 0
    charged: int = 0
    sessions_ended: int = 0
    direct_charges: int = 0
    permission_ids: list[UUID] = field(default_factory=list)

    def add(self, record: asyncpg.Record, permission_ids: Sequence[UUID]) -> None:
        self.sessions += record["sessions"]
        self.charged += record["charged"]
        self.sessions_ended += record["sessions_ended"]
        self.direct_charges += record["direct_charges"]
        self.permission_ids.extend(permission_ids)


async def charge_sessions(
    conn: asyncpg.Connection,
    permission_ids: Sequence[UUID],
    at: datetime,
    *,
    session_id: UUID | None = None,
    final: bool = False,
) -> asyncpg.Record:
    """Charge the active sessions of these (already locked) permissions at `at`; `final` ends them. Permissions
    whose open sessions changed get their stop instant computed again. The statement is the SQL function
    `charge_sessions` (migrations/0013_scale.sql), so that ending a session is one call (`end_session` there)."""
    return await conn.fetchrow("SELECT * FROM charge_sessions($1, $2, $3, $4)", list(permission_ids), at,
                               session_id, final)


async def refresh_stop_instants(conn: asyncpg.Connection, permission_ids: Sequence[UUID], *,
                                not_before: datetime | None = None) -> None:
    """Compute again when each (locked) permission runs dry; `not_before` puts off one that is still running at
    an instant already passed (its sessions' amounts round down, so its money lasts a little longer)."""
    await conn.execute("SELECT refresh_stop_instants($1, $2)", list(permission_ids), not_before)


async def _lock_batch(conn: asyncpg.Connection, candidates: list[UUID]) -> list[UUID]:
    """Lock what is free of the candidate permissions; rows another replica or an ending session holds are
    skipped now and charged next tick (charges depend only on time, so nothing is lost by waiting)."""
    rows = await conn.fetch(
        "SELECT id FROM permissions WHERE id BETWEEN $2 AND $3 AND id = ANY($1::uuid[]) ORDER BY id "
        "FOR UPDATE SKIP LOCKED",
        candidates, candidates[0], candidates[-1],  # candidates come in id order
    )
    return [row["id"] for row in rows]


class _BatchCursor:
    """Hands out the tick's batches of candidate permissions, in id order, to its connections one at a time."""

    def __init__(self, batch_size: int, only_expired: bool) -> None:
        self.batch_size = batch_size
        self.only_expired = only_expired
        self.last: UUID | None = None
        self.done = False
        self.lock = asyncio.Lock()

    async def next(self, conn: asyncpg.Connection, moment: datetime) -> list[UUID]:
        async with self.lock:
            if self.done:
                return []
            found = (await conn.fetch(EXPIRED_CANDIDATES, self.last, self.batch_size, moment) if self.only_expired
                     else await conn.fetch(CANDIDATES, self.last, self.batch_size))
            candidates = [row["permission_id"] for row in found]
            if candidates:
                self.last = candidates[-1]
            else:
                self.done = True
            return candidates


async def _charge_batches(db: Database, at: datetime | None, batches: _BatchCursor, result: ChargeResult) -> None:
    """Charge batch after batch on one connection, each batch one transaction, until none is left."""
    while True:
        async with db.transaction() as work:
            conn = work.conn
            await conn.execute(TICK_TRANSACTION_SETTINGS)
            moment = at or await conn.fetchval("SELECT now()")
            candidates = await batches.next(conn, moment)
            if not candidates:
                return
            locked = await _lock_batch(conn, candidates)
            if locked:
                covered = await conn.fetchrow(ACCRUE_COVERED, locked, moment, locked[0], locked[-1])
                result.sessions += covered["sessions"]
                result.charged += covered["charged"]
                handled = set(covered["covered"])
                rest = [pid for pid in locked if pid not in handled]
                if rest:
                    result.add(await charge_sessions(conn, rest, moment), [])
                result.permission_ids.extend(locked)
                work.changed(permissions=locked)


async def billing_tick(
    db: Database, *, at: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
    only_expired: bool = False, connections: int = DEFAULT_TICK_CONNECTIONS,
) -> ChargeResult:
    """Charge every active session what it owes at `at` (database time when None), in batches of permissions,
    each batch one transaction (announced to the post-commit hook once committed). `connections` batches run at
    once, on as many connections of the pool: the work is PostgreSQL's CPU, so one per core it may use. Batches
    hold disjoint permissions, so they never wait for each other."""
    result = ChargeResult()
    batches = _BatchCursor(batch_size, only_expired)
    try:
        async with asyncio.TaskGroup() as group:  # one failing connection stops the others
            for _ in range(connections):
                group.create_task(_charge_batches(db, at, batches, result))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None  # what the job records: the first failure, as raised
    return result


async def stop_due(db: Database, *, at: datetime | None = None,
                   batch_size: int = DEFAULT_BATCH_SIZE) -> ChargeResult:
    """The hard stop: charge, at `at` (database time when None), every active permission whose stop instant has
    come — its balance runs out at the current rate, or it expires — so its sessions end `exhausted` (or go on a
    vendor's direct-charge grace) within a second of the money running out, and the permission covers exactly its
    balance. One still running (amounts round down, so money may last a second longer) is looked at again a
    second later."""
    result = ChargeResult()
    while True:
        async with db.transaction() as work:
            conn = work.conn
            moment = at or await conn.fetchval("SELECT now()")
            due = [row["id"] for row in await conn.fetch(
                """
                SELECT id FROM permissions WHERE status = 'active' AND stops_at <= $1
                 ORDER BY stops_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
                """,
                moment, batch_size,
            )]
            if not due:
                return result
            result.add(await charge_sessions(conn, due, moment), due)
            await refresh_stop_instants(conn, due, not_before=moment + ONE_SECOND)
            work.changed(permissions=due)


async def expire_permissions(db: Database, *, at: datetime | None = None) -> tuple[ChargeResult, list[UUID]]:
    """Close the open sessions of permissions past their expiry (charged up to the expiry instant), then mark
    those permissions `expired`. Returns the charge result and the permissions that expired."""
    charged = await billing_tick(db, at=at, only_expired=True)
    async with db.transaction() as work:
        rows = await work.conn.fetch(
            """
            UPDATE permissions p SET status = 'expired', updated_at = now()
             WHERE p.status IN ('active', 'exhausted', 'pending_payment')
               AND p.expires_at <= coalesce($1::timestamptz, now())
               AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.permission_id = p.id AND s.status = 'active')
            RETURNING p.id
            """,
            at,
        )
        work.changed(permissions=[row["id"] for row in rows])
    return charged, [row["id"] for row in rows]
