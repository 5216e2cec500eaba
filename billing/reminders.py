"""Renewal reminders: before expiry and on a low balance, each at most once per permission, via the outbox.

`enqueue_due_reminders` is one set-based statement: it finds the active permissions with a `notify_url` that are
due a reminder they have not had, writes the outbox messages (unique `dedupe_key`) and records them in
`permission_reminders` (primary key `(permission_id, kind)`) atomically, so repeated or concurrent runs add
nothing. Kinds: `expires_in_<H>h` for each lead time H (only the nearest lead applies, so a permission created
with 30 hours left gets the 24 h reminder, not both), and `low_balance` when the remaining hours fall below
LOW_BALANCE_REMINDER_PERCENT of the permission's maximum streaming hours.

The pure functions at the end give the permission view its `renewal_due` and `projected_run_out_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.permissions import Permission, PermissionStatus
from billing.unit_of_work import Database
from kernel.money import SECONDS_PER_HOUR, owed_for

EXPIRY_EVENT = "permission.expiring"
LOW_BALANCE_EVENT = "permission.low_balance"
LOW_BALANCE_KIND = "low_balance"


@dataclass(frozen=True, slots=True)
class ReminderPolicy:
    lead_hours: tuple[int, ...] = (72, 24)
    low_balance_percent: int = 20  # 0: no low-balance reminder


@dataclass(frozen=True, slots=True)
class SentReminder:
    kind: str
    queued_at: datetime
    delivery_status: str  # the outbox message's: pending, delivered, dead
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class OpenSession:
    """What the run-out projection needs of an active session."""

    started_at: datetime
    rate_per_hour: int
    charged_amount: int
    uncovered_amount: int


async def enqueue_due_reminders(db: Database, *, policy: ReminderPolicy, now: datetime) -> int:
    """Queue every reminder due at `now`; returns how many were queued (0 when run again)."""
    leads = sorted(set(policy.lead_hours), reverse=True)
    next_leads = [*leads[1:], 0]
    async with db.transaction() as work:
        records = await work.conn.fetch(
            r"""
            WITH wanted AS (
                SELECT p.id, p.notify_url, p.asset, p.asset_decimals, p.balance, p.rate_per_hour, p.expires_at,
                       r.kind, r.event_type
                  FROM permissions p
                 CROSS JOIN LATERAL (
                       SELECT 'expires_in_' || lead.hours || 'h' AS kind, $5::text AS event_type
                         FROM unnest($2::int[], $3::int[]) AS lead (hours, next_hours)
                        WHERE p.expires_at - make_interval(hours => lead.hours) <= $1
                          AND p.expires_at - make_interval(hours => lead.next_hours) > $1
                       UNION ALL
                       SELECT $7::text, $6::text
                        WHERE $4::int > 0 AND p.balance * 100 < p.approved_amount * $4::int
                 ) r
                 WHERE p.status = 'active' AND p.notify_url IS NOT NULL AND p.expires_at > $1
                   AND NOT EXISTS (SELECT 1 FROM permission_reminders pr
                                    WHERE pr.permission_id = p.id AND pr.kind = r.kind)
            ), queued AS (
                INSERT INTO outbox (kind, event_type, dedupe_key, permission_id, target_url, payload,
                                    next_attempt_at, created_at)
                SELECT 'reminder', w.event_type, 'reminder:' || w.id || ':' || w.kind, w.id, w.notify_url,
                       jsonb_build_object(
                           'id', 'reminder:' || w.id || ':' || w.kind,
                           'type', w.event_type,
                           'created_at', to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                           'data', jsonb_build_object(
                               'permission_id', w.id::text,
                               'reminder', w.kind,
                               'asset', w.asset,
                               'remaining_amount', to_major(w.balance, w.asset_decimals)::text,
                               'remaining_hours', trunc(w.balance / w.rate_per_hour, 6)::text,
                               'expires_at', to_char(w.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))),
                       $1, $1
                  FROM wanted w
                ON CONFLICT (dedupe_key) DO NOTHING
                RETURNING id, permission_id, payload -> 'data' ->> 'reminder' AS kind
            ), recorded AS (
                INSERT INTO permission_reminders (permission_id, kind, outbox_id, created_at)
                SELECT permission_id, kind, id, $1 FROM queued
                ON CONFLICT DO NOTHING
                RETURNING permission_id
            )
            SELECT permission_id FROM recorded
            """,
            now, leads, next_leads, policy.low_balance_percent, EXPIRY_EVENT, LOW_BALANCE_EVENT, LOW_BALANCE_KIND,
        )
        work.changed(permissions=[record["permission_id"] for record in records])  # views show their reminders
    return len(records)


# A permission's reminders and its open sessions ($1: the permission), as its state shows them (read with the rest
# of the state in one statement: billing/permission_service.py).
REMINDERS_OF = """
SELECT r.kind, r.created_at AS queued_at, coalesce(o.status, r.delivery_status, 'pending') AS delivery_status,
       coalesce(o.delivered_at, r.delivered_at) AS delivered_at
  FROM permission_reminders r LEFT JOIN outbox o ON o.id = r.outbox_id  -- kept on r once o is pruned
 WHERE r.permission_id = $1
 ORDER BY r.created_at, r.kind
"""
OPEN_SESSIONS_OF = """
SELECT started_at, rate_per_hour, charged_amount, uncovered_amount
  FROM live_sessions WHERE permission_id = $1 AND status = 'active'
"""


def renewal_due(permission: Permission, now: datetime, policy: ReminderPolicy) -> bool:
    """Whether the holder should renew or top up now: exhausted, within the largest reminder lead of expiry,
    or below the low-balance threshold. Never for a permission that is pending, expired or closed."""
    if permission.status_at(now) == PermissionStatus.EXHAUSTED:
        return True
    if permission.status_at(now) != PermissionStatus.ACTIVE:
        return False
    lead = max(policy.lead_hours, default=0)
    if permission.expires_at - timedelta(hours=lead) <= now:
        return True
    return policy.low_balance_percent > 0 and permission.balance * 100 < permission.approved_amount * (
        policy.low_balance_percent
    )


def projected_run_out_at(permission: Permission, sessions: Sequence[OpenSession], now: datetime) -> datetime | None:
    """When the balance reaches zero if every open session keeps burning its rate: what is left after the
    not-yet-charged part of each session, divided by the sum of their rates (rounded down to the second).
    None when no session is open."""
    burn_per_hour = sum(session.rate_per_hour for session in sessions)
    if burn_per_hour == 0:
        return None
    accrued = sum(
        max(0, owed_for(s.rate_per_hour, int((now - s.started_at).total_seconds()))
            - s.charged_amount - s.uncovered_amount)
        for s in sessions
    )
    left = max(0, permission.balance - accrued)
    return now.replace(microsecond=0) + timedelta(seconds=left * SECONDS_PER_HOUR // burn_per_hour)
