"""The payment watcher: activates permissions and settles direct charges on its own, without a verify call.

Each pass asks every funding source once, in one batched `find_payments` call, about
- permissions awaiting payment (`pending_payment`),
- open direct charges with an address (`accruing`, `pending_payment`),
- and, when the source's tip changed since the last pass (or is unknown, as after a restart), also every
  permission holding a payment still below the confirmation threshold (a top-up an explicit verify first saw) and
  unpaid permissions that expired in the last LATE_PAYMENT_LOOKBACK, so that late payments are recorded and shown.
Each target names the transactions already seen but not yet credited (`hints`): sources that cannot list
payments by address (Ethereum pays every permission to one service address) re-check exactly those.
Crediting goes through billing.permissions.apply_payments and billing.direct_payments, which lock rows, credit
once and orphan payments that stop being reported, so a reorged-out payment never activates anything. Each credit
is its own transaction, announced to the post-commit hook. The tip memory only saves work; a pass that fails
forgets it, so the next pass re-evaluates everything again.

After checking, permissions whose payment window (`payment_due_at`) has passed with nothing received expire.
Permissions with some payment received stay pending until their own expiry (the expiry job's business).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from billing.direct_payments import apply_direct_charge_payments
from billing.permissions import PaymentStatus, PermissionStatus, apply_payments
from billing.sources import FundingSources
from billing.unit_of_work import Database
from kernel.errors import ServiceUnavailable
from kernel.funding import FundingSource, Payment, PaymentTarget

log = logging.getLogger(__name__)

LATE_PAYMENT_LOOKBACK = timedelta(days=7)
PERMISSION_PREFIX = "permission:"
DIRECT_CHARGE_PREFIX = "direct_charge:"


@dataclass
class WatcherSummary:
    permissions_checked: int = 0
    direct_charges_checked: int = 0
    activated: list[UUID] = field(default_factory=list)
    direct_charges_paid: list[UUID] = field(default_factory=list)
    expired_unpaid: list[UUID] = field(default_factory=list)
    unreachable_sources: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _PermissionTarget:
    id: UUID
    status: str
    has_payments: bool


async def expire_unpaid_permissions(db: Database, *, now: datetime) -> list[UUID]:
    """Pending permissions past their payment window that received nothing (no payment seen or credited)."""
    async with db.transaction() as work:
        records = await work.conn.fetch(
            """
            UPDATE permissions p SET status = 'expired', updated_at = $1
             WHERE p.status = 'pending_payment' AND p.payment_due_at <= $1
               AND NOT EXISTS (SELECT 1 FROM payments q
                                WHERE q.permission_id = p.id AND q.status IN ('seen', 'credited'))
            RETURNING p.id
            """,
            now,
        )
        expired = [record["id"] for record in records]
        work.changed(permissions=expired)
    return expired


class PaymentWatcher:
    """Holds only the last tip seen per source (an optimisation); everything else is an argument of `run`."""

    def __init__(self, db: Database, sources: FundingSources) -> None:
        self.db = db
        self.sources = sources
        self._last_tips: dict[str, str] = {}

    async def run(self, *, now: datetime | None = None) -> WatcherSummary:
        """One pass over every source; `now` (the payment window's clock) defaults to the current time."""
        moment = now or datetime.now(UTC)
        summary = WatcherSummary()
        for name, source in self.sources.all.items():
            try:
                await self._check_source(name, source, moment, summary)
            except ServiceUnavailable as exc:
                log.warning("payment watcher: %s unavailable: %s", name, exc.message)
                self._last_tips.pop(name, None)
                summary.unreachable_sources.append(name)
        summary.expired_unpaid = await expire_unpaid_permissions(self.db, now=moment)
        return summary

    async def _check_source(self, name: str, source: FundingSource, now: datetime, summary: WatcherSummary) -> None:
        status = await source.status()
        if not status.reachable:
            raise ServiceUnavailable(status.detail or "unreachable")
        new_tip = status.tip_hash is None or self._last_tips.get(name) != status.tip_hash
        targets, permissions, charges = await self._targets(name, new_tip, now)
        if targets:
            found = await source.find_payments(targets)
            for permission in permissions:
                seen = found.get(PERMISSION_PREFIX + str(permission.id), [])
                if seen or permission.has_payments:
                    await self._apply_to_permission(permission, seen, source.min_confirmations, summary)
            for charge_id in charges:
                async with self.db.transaction() as work:
                    outcome = await apply_direct_charge_payments(
                        work.conn, charge_id, found.get(DIRECT_CHARGE_PREFIX + str(charge_id), []),
                        min_confirmations=source.min_confirmations, now=now,
                    )
                    if outcome.newly_paid:
                        work.changed(permissions=[outcome.permission_id], sessions=[outcome.session_id])
                if outcome.newly_paid:
                    summary.direct_charges_paid.append(charge_id)
            summary.permissions_checked += len(permissions)
            summary.direct_charges_checked += len(charges)
        if status.tip_hash is not None:
            self._last_tips[name] = status.tip_hash

    async def _apply_to_permission(self, permission: _PermissionTarget, seen: list[Payment],
                                   min_confirmations: int, summary: WatcherSummary) -> None:
        async with self.db.transaction() as work:
            updated = await apply_payments(work.conn, permission.id, seen, min_confirmations=min_confirmations)
            work.changed(permissions=[permission.id])
        if permission.status != PermissionStatus.ACTIVE and updated.status == PermissionStatus.ACTIVE:
            summary.activated.append(permission.id)

    async def _targets(self, source_name: str, new_tip: bool,
                       now: datetime) -> tuple[list[PaymentTarget], list[_PermissionTarget], list[UUID]]:
        async with self.db.connection() as conn:
            permission_rows = await conn.fetch(
                """
                SELECT p.id, p.status, p.asset, p.payment_address, p.payment_locator, p.user_wallet_address,
                       EXISTS (SELECT 1 FROM payments q WHERE q.permission_id = p.id) AS has_payments,
                       ARRAY(SELECT DISTINCT q.txid FROM payments q
                              WHERE q.permission_id = p.id AND q.status = ANY($4::text[])) AS unsettled_txids
                  FROM permissions p
                 WHERE p.funding_source = $1 AND (p.payment_address IS NOT NULL OR p.payment_locator IS NOT NULL)
                   AND (p.status = 'pending_payment'
                        OR ($2 AND p.status = 'expired' AND p.activated_at IS NULL
                            AND coalesce(p.payment_due_at, p.expires_at) > $3)
                        OR ($2 AND EXISTS (SELECT 1 FROM payments q
                                            WHERE q.permission_id = p.id AND q.status = 'seen')))
                """,
                source_name, new_tip, now - LATE_PAYMENT_LOOKBACK, sorted(PaymentStatus.unsettled()),
            )
            charge_rows = await conn.fetch(
                """
                SELECT id, asset, payment_address, payment_locator FROM direct_charges
                 WHERE funding_source = $1 AND status IN ('accruing', 'pending_payment')
                   AND payment_address IS NOT NULL
                """,
                source_name,
            )
        targets = [
            PaymentTarget(key=PERMISSION_PREFIX + str(row["id"]), asset=row["asset"],
                          payment_address=row["payment_address"], locator=row["payment_locator"] or "",
                          payer=row["user_wallet_address"], hints=tuple(row["unsettled_txids"]), discover=True)
            for row in permission_rows
        ] + [
            PaymentTarget(key=DIRECT_CHARGE_PREFIX + str(row["id"]), asset=row["asset"],
                          payment_address=row["payment_address"], locator=row["payment_locator"] or "")
            for row in charge_rows
        ]
        permissions = [_PermissionTarget(row["id"], row["status"], row["has_payments"]) for row in permission_rows]
        return targets, permissions, [row["id"] for row in charge_rows]
