"""Charging sessions, set-based: the billing tick, the final charge of an ending session, and expiry.

One SQL statement (CHARGE_SESSIONS) charges any set of active sessions at an instant `at`, for permissions whose
rows the caller has locked. For each session it computes what it owes in total,
`div(rate_per_hour × whole elapsed seconds, 3600)` with elapsed measured up to min(at, expires_at), and charges
the difference from what it was charged (and left uncovered) before, never below zero. Running it twice, late,
or from two replicas therefore charges nothing extra, and each session's total is rounded once, down.

Within a permission, sessions are served in start order from the balance; what the balance cannot cover is the
session's shortfall. A short session either ends (`exhausted`), or, where its vendor allows a grace period, runs
on credit: the shortfall accrues as a direct charge paid on chain, and the session ends `pending_payment` when
the grace runs out, the client ends it, or the permission expires.

Locks: callers lock the permissions first (by id order), then the statement updates their sessions; every path
that touches a session holds its permission's lock, so a statement's snapshot (taken after the locks) is current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from billing.unit_of_work import Database

DEFAULT_BATCH_SIZE = 5000  # permissions per transaction: bounds lock time and memory
ONE_SECOND = timedelta(seconds=1)

# The common case of a tick, as plain in-place arithmetic: permissions whose money lasts well past `at` (a second
# before their stop instant, which is never later than the true one), not expiring, with no session on credit and
# none due a checkpoint. Each session is charged exactly what it owes now, with no allocation, no settlement and no
# event to write. The permission's totals follow from what its sessions now hold beyond what they settled. Returns
# the permissions it charged; the rest of the batch goes through CHARGE_SESSIONS.
ACCRUE_COVERED = """
WITH covered AS (
    SELECT p.id FROM permissions p
     WHERE p.id = ANY($1::uuid[]) AND p.status = 'active' AND p.expires_at > $2
       AND p.stops_at IS NOT NULL AND p.stops_at - interval '1 second' >= $2
       AND NOT EXISTS (SELECT 1 FROM sessions s
                        WHERE s.permission_id = p.id AND s.status = 'active'
                          AND (s.uncovered_amount > 0 OR s.exhausted_at IS NOT NULL
                               OR coalesce(s.settled_at, s.started_at) <= $2 - interval '1 hour'))
),
charged AS (
    -- every open session of a covered permission: charged what it owes now (never less than before)
    UPDATE sessions s SET charged_amount = greatest(session_owed(s.rate_per_hour, s.started_at, $2), s.charged_amount)
      FROM covered c
     WHERE s.permission_id = c.id AND s.status = 'active'
    RETURNING s.permission_id, s.charged_amount - s.settled_amount AS unsettled
),
totals AS (
    SELECT permission_id, sum(unsettled) AS accrued, count(*) AS sessions FROM charged GROUP BY permission_id
),
permission_updates AS (
    -- what accrued since the last tick moves from the balance to the accrued amount
    UPDATE permissions p
       SET balance = p.balance + p.accrued_amount - t.accrued, accrued_amount = t.accrued,
           charged_amount = p.charged_amount - p.accrued_amount + t.accrued, updated_at = now()
      FROM totals t WHERE p.id = t.permission_id AND t.accrued <> p.accrued_amount
)
SELECT ARRAY(SELECT id FROM covered) AS covered, (SELECT coalesce(sum(sessions), 0) FROM totals) AS sessions,
       (SELECT coalesce(sum(t.accrued - p.accrued_amount), 0)
          FROM totals t JOIN permissions p ON p.id = t.permission_id) AS charged  -- as before this statement
"""

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

CHARGE_SESSIONS = """
WITH base AS (
    SELECT s.id AS session_id, s.permission_id, s.vendor_id, s.rate_per_hour, s.charged_amount, s.uncovered_amount,
           s.settled_amount, s.settled_at, s.started_at, s.exhausted_at AS session_exhausted_at,
           p.balance, p.accrued_amount, p.status AS permission_status, p.expires_at, p.funding_source, p.asset,
           p.asset_decimals,
           v.direct_charge_grace_seconds AS grace, v.webhook_url,
           $2::timestamptz AS at, least($2::timestamptz, p.expires_at) AS end_at
      FROM sessions s
      JOIN permissions p ON p.id = s.permission_id
      JOIN vendors v ON v.id = s.vendor_id
     WHERE s.status = 'active' AND s.permission_id = ANY($1::uuid[]) AND ($3::uuid IS NULL OR s.id = $3)
),
owed AS (
    SELECT b.*,
           greatest(session_owed(b.rate_per_hour, b.started_at, b.end_at) - b.charged_amount - b.uncovered_amount, 0)
               AS due
      FROM base b
),
allocated AS (
    -- The balance pays the queue greedily, so through each session it has paid least(balance, what the queue owes
    -- through it): one window pass gives each session's charge.
    SELECT o.*,
           CASE WHEN o.permission_status = 'active'
                THEN greatest(0, least(o.due, o.balance - (sum(o.due) OVER queue - o.due)))
                ELSE 0 END AS charge,
           -- the balance is used up at `at` (exactly or with some left unpaid): every session stops now
           (o.permission_status = 'active' AND sum(o.due) OVER (PARTITION BY o.permission_id) >= o.balance)
               AS drained
      FROM owed o
    WINDOW queue AS (PARTITION BY o.permission_id ORDER BY o.started_at, o.session_id)
),
outcome AS (
    SELECT a.*,
           a.uncovered_amount + a.due - a.charge AS uncovered_after,
           (a.grace > 0 AND a.permission_status IN ('active', 'exhausted')) AS runs_on_credit,
           CASE WHEN a.due > a.charge OR a.session_exhausted_at IS NOT NULL OR a.drained
                THEN coalesce(a.session_exhausted_at, a.at) END AS exhausted_after
      FROM allocated a
),
decided AS (
    SELECT o.*,
           CASE
             WHEN o.uncovered_after = 0 AND ($4 OR o.at >= o.expires_at) THEN 'ended'
             WHEN o.uncovered_after = 0 AND NOT o.drained THEN 'active'
             WHEN o.runs_on_credit THEN
               CASE WHEN $4 OR o.at >= o.expires_at OR o.at >= o.exhausted_after + make_interval(secs => o.grace)
                    THEN 'pending_payment' ELSE 'active' END
             ELSE 'exhausted'
           END AS new_status
      FROM outcome o
),
settling AS (
    -- A session settles (its unsettled charge becomes one ledger entry) when it leaves `active`, and at least
    -- hourly while it runs (a checkpoint); otherwise its charge only accrues in place.
    SELECT d.*,
           CASE WHEN d.new_status <> 'active' OR coalesce(d.settled_at, d.started_at) <= d.at - interval '1 hour'
                THEN d.charged_amount + d.charge - d.settled_amount ELSE 0 END AS settle
      FROM decided d
),
session_updates AS (
    UPDATE sessions s
       SET charged_amount = s.charged_amount + x.charge,
           uncovered_amount = x.uncovered_after,
           exhausted_at = x.exhausted_after,
           status = x.new_status,
           ended_at = CASE WHEN x.new_status = 'active' THEN NULL ELSE x.end_at END,
           settled_amount = s.settled_amount + x.settle,
           settled_at = CASE WHEN x.settle > 0 OR x.new_status <> 'active' THEN x.at ELSE s.settled_at END
      FROM settling x
     WHERE s.id = x.session_id
       AND (x.charge > 0 OR x.new_status <> 'active' OR x.uncovered_after <> x.uncovered_amount OR x.settle > 0)
    RETURNING s.id
),
ledger AS (
    -- balance_after is the settled balance (the sum of the ledger): what was settled before, less each settlement.
    INSERT INTO ledger_entries (permission_id, kind, amount, balance_after, session_id)
    SELECT x.permission_id, 'charge', -x.settle,
           x.balance + x.accrued_amount
               - sum(x.settle) OVER (PARTITION BY x.permission_id ORDER BY x.started_at, x.session_id),
           x.session_id
      FROM settling x
     WHERE x.settle > 0
     ORDER BY x.permission_id, x.started_at, x.session_id
    RETURNING 1
),
totals AS (
    SELECT x.permission_id, sum(x.charge) AS charged, sum(x.settle) AS settled, min(x.at) AS at,
           bool_or(x.new_status <> 'active') AS sessions_ended
      FROM settling x GROUP BY x.permission_id
),
permission_updates AS (
    UPDATE permissions p
       SET balance = p.balance - t.charged,
           accrued_amount = p.accrued_amount + t.charged - t.settled,
           charged_amount = p.charged_amount + t.charged,
           status = CASE WHEN p.status = 'active' AND p.balance = t.charged THEN 'exhausted' ELSE p.status END,
           exhausted_at = CASE WHEN p.status = 'active' AND p.balance = t.charged THEN t.at ELSE p.exhausted_at END,
           stops_at = CASE WHEN p.status = 'active' AND p.balance = t.charged THEN NULL ELSE p.stops_at END,
           updated_at = now()
      FROM totals t
     WHERE p.id = t.permission_id
       AND (t.charged > 0 OR t.settled > 0 OR (p.status = 'active' AND p.balance = 0))
    RETURNING p.id, p.status, p.exhausted_at, p.funding_source, p.asset, p.asset_decimals, p.approved_amount,
              p.charged_amount, p.expires_at
),
direct AS (
    INSERT INTO direct_charges (session_id, permission_id, funding_source, asset, amount, status, finalized_at)
    SELECT d.session_id, d.permission_id, d.funding_source, d.asset, d.uncovered_after,
           CASE WHEN d.new_status = 'pending_payment' THEN 'pending_payment' ELSE 'accruing' END,
           CASE WHEN d.new_status = 'pending_payment' THEN d.at END
      FROM decided d
     WHERE d.runs_on_credit AND d.uncovered_after > 0
    ON CONFLICT (session_id) DO UPDATE
       SET amount = EXCLUDED.amount, status = EXCLUDED.status, finalized_at = EXCLUDED.finalized_at
    RETURNING 1
),
-- Vendor webhooks (outbox rows, written in this same transaction), only for vendors with a webhook_url: each
-- session leaving `active`, and each permission that became exhausted, to every vendor with sessions charged on it.
session_ended_events AS (
    INSERT INTO outbox (kind, event_type, dedupe_key, vendor_id, target_url, payload)
    SELECT 'vendor_webhook', 'session.ended', 'session.ended:' || d.session_id, d.vendor_id, d.webhook_url,
           webhook_event('session.ended:' || d.session_id, 'session.ended', d.at, session_event_data(
               d.session_id, d.permission_id, d.vendor_id, d.new_status, d.funding_source, d.asset, d.asset_decimals,
               d.rate_per_hour, d.started_at) || jsonb_build_object(
               'charged_amount', to_major(d.charged_amount + d.charge, d.asset_decimals)::text,
               'uncovered_amount', to_major(d.uncovered_after, d.asset_decimals)::text,
               'ended_at', webhook_time(d.end_at),
               'duration_seconds', greatest(floor(extract(epoch FROM d.end_at - d.started_at)), 0)::bigint))
      FROM decided d
     WHERE d.new_status <> 'active' AND d.webhook_url IS NOT NULL
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING 1
),
exhausted_events AS (
    -- Only active permissions are updated above, so a row that reads `exhausted` here became exhausted now.
    INSERT INTO outbox (kind, event_type, dedupe_key, vendor_id, target_url, payload)
    SELECT 'vendor_webhook', 'permission.exhausted', e.event_id, e.vendor_id, e.webhook_url,
           webhook_event(e.event_id, 'permission.exhausted', e.exhausted_at, jsonb_build_object(
               'permission_id', e.id::text,
               'funding_source', e.funding_source,
               'asset', e.asset,
               'approved_amount', to_major(e.approved_amount, e.asset_decimals)::text,
               'charged_amount', to_major(e.charged_amount, e.asset_decimals)::text,
               'remaining_amount', to_major(0, e.asset_decimals)::text,
               'exhausted_at', webhook_time(e.exhausted_at),
               'expires_at', webhook_time(e.expires_at),
               'session_ids', e.session_ids))
      FROM (SELECT pu.*, sv.vendor_id, sv.webhook_url, sv.session_ids,
                   'permission.exhausted:' || pu.id || ':' || webhook_time(pu.exhausted_at) || ':' || sv.vendor_id
                       AS event_id
              FROM permission_updates pu
              JOIN (SELECT d.permission_id, d.vendor_id, d.webhook_url,
                           jsonb_agg(d.session_id::text ORDER BY d.started_at, d.session_id) AS session_ids
                      FROM decided d
                     WHERE d.webhook_url IS NOT NULL
                     GROUP BY d.permission_id, d.vendor_id, d.webhook_url) sv ON sv.permission_id = pu.id
             WHERE pu.status = 'exhausted') e
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM decided) AS sessions,
       -- permissions whose open sessions changed: their stop instant is computed again after this statement
       ARRAY(SELECT t.permission_id FROM totals t WHERE t.sessions_ended) AS stops_changed,
       (SELECT coalesce(sum(charge), 0) FROM decided) AS charged,
       (SELECT count(*) FROM ledger) AS ledger_entries,
       (SELECT count(*) FROM session_updates) AS sessions_changed,
       (SELECT count(*) FROM decided WHERE new_status <> 'active') AS sessions_ended,
       (SELECT count(*) FROM permission_updates) AS permissions_changed,
       (SELECT count(*) FROM direct) AS direct_charges,
       (SELECT count(*) FROM session_ended_events) + (SELECT count(*) FROM exhausted_events) AS webhook_events
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
    whose open sessions changed get their stop instant computed again."""
    record = await conn.fetchrow(CHARGE_SESSIONS, list(permission_ids), at, session_id, final)
    if record["stops_changed"]:
        await refresh_stop_instants(conn, record["stops_changed"])
    return record


async def refresh_stop_instants(conn: asyncpg.Connection, permission_ids: Sequence[UUID], *,
                                not_before: datetime | None = None) -> None:
    """Compute again when each (locked) permission runs dry; `not_before` puts off one that is still running at
    an instant already passed (its sessions' amounts round down, so its money lasts a little longer)."""
    await conn.execute(
        """
        UPDATE permissions p SET stops_at = CASE WHEN s.stops_at IS NULL OR $2::timestamptz IS NULL THEN s.stops_at
                                                 ELSE greatest(s.stops_at, $2) END
          FROM (SELECT id, permission_stops_at(id) AS stops_at FROM permissions WHERE id = ANY($1::uuid[])) s
         WHERE p.id = s.id AND p.stops_at IS DISTINCT FROM
               CASE WHEN s.stops_at IS NULL OR $2::timestamptz IS NULL THEN s.stops_at ELSE greatest(s.stops_at, $2) END
        """,
        list(permission_ids), not_before,
    )


async def _lock_batch(conn: asyncpg.Connection, candidates: list[UUID]) -> list[UUID]:
    """Lock what is free of the candidate permissions; rows another replica or an ending session holds are
    skipped now and charged next tick (charges depend only on time, so nothing is lost by waiting)."""
    rows = await conn.fetch(
        "SELECT id FROM permissions WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE SKIP LOCKED", candidates
    )
    return [row["id"] for row in rows]


async def billing_tick(
    db: Database, *, at: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
    only_expired: bool = False,
) -> ChargeResult:
    """Charge every active session what it owes at `at` (database time when None), in batches of permissions,
    each batch one transaction (announced to the post-commit hook once committed)."""
    result = ChargeResult()
    last: UUID | None = None
    while True:
        async with db.transaction() as work:
            conn = work.conn
            moment = at or await conn.fetchval("SELECT now()")
            found = (await conn.fetch(EXPIRED_CANDIDATES, last, batch_size, moment) if only_expired
                     else await conn.fetch(CANDIDATES, last, batch_size))
            candidates = [row["permission_id"] for row in found]
            if not candidates:
                return result
            last = candidates[-1]
            locked = await _lock_batch(conn, candidates)
            if locked:
                covered = await conn.fetchrow(ACCRUE_COVERED, locked, moment)
                result.sessions += covered["sessions"]
                result.charged += covered["charged"]
                handled = set(covered["covered"])
                rest = [pid for pid in locked if pid not in handled]
                if rest:
                    result.add(await charge_sessions(conn, rest, moment), [])
                result.permission_ids.extend(locked)
                work.changed(permissions=locked)


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
