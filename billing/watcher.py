"""The payment watcher: activates permissions and settles direct charges on its own, without a verify call.

A source that scans (`ScansPayments`: Zcash, Ethereum) costs, per pass, what changed on chain, not what waits in
the database:
1. one cheap call for the wallet's newest block and mempool; when both match the stored cursor, nothing new can be
   found and the pass moves on (an idle pass is that call and a few indexed statements);
2. otherwise one scan from the cursor (a wallet-wide listing for Zcash, the new blocks for Ethereum; see the
   sources), which also reports every payment still waiting for depth (so a reorged-out one is `orphaned`);
3. the payments are matched to permissions and direct charges in SQL (billing/chain_scan.py: by address, or by
   the paying wallet with the one-payment-one-permission rule) and applied in a few set-based statements per
   batch of permissions (billing.permissions.apply_payment_reports), each batch its own transaction, announced to
   the post-commit hook;
4. the cursor is stored only then. A pass that fails anywhere leaves it where it was: the next pass reads the same
   window (plus what the chain added meanwhile), never more.
Late payments need no re-querying of expired permissions: a payment to one that expired unpaid arrives after the
cursor like any other and is recorded as `late` (paid by address: always; paid by wallet: within
LATE_PAYMENT_LOOKBACK of its payment window, see billing/chain_scan.py).

A source that cannot scan (card checkouts) is still asked, in one batched `find_payments` call, about each
permission waiting for it (and, when its tip changed or is unknown, those holding a payment below the threshold
and those that expired unpaid in the last LATE_PAYMENT_LOOKBACK).

Each pass also settles direct charges whose amount became final after their payments were credited, and expires
pending permissions whose payment window (`payment_due_at`) passed with nothing received. Permissions with some
payment received stay pending until their own expiry (the expiry job's business).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from billing.chain_scan import (
    LATE_PAYMENT_LOOKBACK,
    Matched,
    load_cursor,
    match_payments,
    oldest_waiting_since,
    save_cursor,
    waiting_payments,
)
from billing.direct_payments import apply_direct_charge_payments, direct_charges_paid_in_full, settle_direct_charge
from billing.permissions import PaymentStatus, PermissionStatus, apply_payment_reports, apply_payments
from billing.sources import FundingSources
from billing.unit_of_work import Database
from kernel.errors import ServiceUnavailable
from kernel.funding import FundingSource, Payment, PaymentTarget, ScansPayments, ScanWindow

log = logging.getLogger(__name__)

PERMISSION_PREFIX = "permission:"
DIRECT_CHARGE_PREFIX = "direct_charge:"
APPLY_BATCH = 500  # permissions applied per transaction


@dataclass
class WatcherSummary:
    permissions_checked: int = 0  # permissions waiting for a payment that this pass covered
    direct_charges_checked: int = 0  # open direct charges with an address that this pass covered
    activated: list[UUID] = field(default_factory=list)
    direct_charges_paid: list[UUID] = field(default_factory=list)
    expired_unpaid: list[UUID] = field(default_factory=list)
    unreachable_sources: list[str] = field(default_factory=list)
    scanned: dict[str, ScanWindow] = field(default_factory=dict)  # the blocks each scanning source read
    behind: list[str] = field(default_factory=list)  # sources with blocks left for the next pass


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
    """Holds only the last tip seen per source that cannot scan (an optimisation); scan cursors live in PostgreSQL,
    so a new watcher (a restart, another replica) goes on where the last pass stopped."""

    def __init__(self, db: Database, sources: FundingSources) -> None:
        self.db = db
        self.sources = sources
        self._last_tips: dict[str, str] = {}

    async def run(self, *, now: datetime | None = None) -> WatcherSummary:
        """One pass over every source; `now` (the payment window's clock) defaults to the current time."""
        moment = now or datetime.now(UTC)
        summary = WatcherSummary()
        for name, source in self.sources.all.items():
            scanner = self.sources.scanners.get(name)
            try:
                if scanner is not None:
                    await self._scan(scanner, moment, summary)
                else:
                    await self._check_source(name, source, moment, summary)
            except ServiceUnavailable as exc:
                log.warning("payment watcher: %s unavailable: %s", name, exc.message)
                self._last_tips.pop(name, None)
                summary.unreachable_sources.append(name)
        await self._count_waiting(summary)
        summary.direct_charges_paid += await self._settle_paid_in_full(moment)
        summary.expired_unpaid = await expire_unpaid_permissions(self.db, now=moment)
        return summary

    # --- sources that scan -----------------------------------------------------------------------------------

    async def _scan(self, scanner: ScansPayments, now: datetime, summary: WatcherSummary) -> None:
        async with self.db.connection() as conn:
            cursor = await load_cursor(conn, scanner.name)
        tip = await scanner.chain_tip()
        if cursor is not None and cursor.unchanged_at(tip):
            return
        async with self.db.connection() as conn:
            waiting = await waiting_payments(conn, scanner.name)
            since = await oldest_waiting_since(conn, scanner.name) if cursor is None else None
        result = await scanner.scan(cursor, tip, [payment.known for payment in waiting], since)
        matched = await match_payments(self.db, scanner.name, scanner.matching, result.payments, waiting, now=now)
        await self._apply(matched, scanner.min_confirmations, now, summary)
        async with self.db.transaction() as work:
            await save_cursor(work.conn, scanner.name, result.cursor)
        summary.scanned[scanner.name] = result.window
        if not result.caught_up:
            summary.behind.append(scanner.name)

    async def _apply(self, matched: Matched, min_confirmations: int, now: datetime, summary: WatcherSummary) -> None:
        permission_ids = sorted(matched.permissions)
        for start in range(0, len(permission_ids), APPLY_BATCH):
            batch = permission_ids[start:start + APPLY_BATCH]
            async with self.db.transaction() as work:
                outcomes = await apply_payment_reports(work.conn, {pid: matched.permissions[pid] for pid in batch},
                                                       min_confirmations=min_confirmations)
                work.changed(permissions=batch)
            summary.activated += [outcome.permission_id for outcome in outcomes if outcome.activated]
        for charge_id, seen in matched.direct_charges.items():
            await self._apply_to_direct_charge(charge_id, seen, min_confirmations, now, summary)

    async def _count_waiting(self, summary: WatcherSummary) -> None:
        """Every permission and direct charge waiting on a scanning source is covered by its pass, changed or not."""
        scanning = list(self.sources.scanners)
        if not scanning:
            return
        async with self.db.connection() as conn:
            counts = await conn.fetchrow(
                """
                SELECT (SELECT count(*) FROM permissions
                         WHERE status = 'pending_payment' AND funding_source = ANY($1::text[])) AS permissions,
                       (SELECT count(*) FROM direct_charges
                         WHERE status IN ('accruing', 'pending_payment') AND payment_address IS NOT NULL
                           AND funding_source = ANY($1::text[])) AS direct_charges
                """,
                scanning,
            )
        summary.permissions_checked += counts["permissions"]
        summary.direct_charges_checked += counts["direct_charges"]

    async def _settle_paid_in_full(self, now: datetime) -> list[UUID]:
        paid = []
        async with self.db.connection() as conn:
            candidates = await direct_charges_paid_in_full(conn, list(self.sources.all))
        for charge_id, source_name in candidates:
            async with self.db.transaction() as work:
                outcome = await settle_direct_charge(
                    work.conn, charge_id, min_confirmations=self.sources.all[source_name].min_confirmations, now=now)
                if outcome.newly_paid:
                    work.changed(permissions=[outcome.permission_id], sessions=[outcome.session_id])
            if outcome.newly_paid:
                paid.append(charge_id)
        return paid

    async def _apply_to_direct_charge(self, charge_id: UUID, seen: list[Payment], min_confirmations: int,
                                      now: datetime, summary: WatcherSummary) -> None:
        async with self.db.transaction() as work:
            outcome = await apply_direct_charge_payments(work.conn, charge_id, seen,
                                                         min_confirmations=min_confirmations, now=now)
            if outcome.newly_paid:
                work.changed(permissions=[outcome.permission_id], sessions=[outcome.session_id])
        if outcome.newly_paid:
            summary.direct_charges_paid.append(charge_id)

    # --- sources that cannot scan: asked about each waiting permission ------------------------------------------

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
                await self._apply_to_direct_charge(charge_id, found.get(DIRECT_CHARGE_PREFIX + str(charge_id), []),
                                                   source.min_confirmations, now, summary)
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
                          payer=row["user_wallet_address"], hints=tuple(row["unsettled_txids"]))
            for row in permission_rows
        ] + [
            PaymentTarget(key=DIRECT_CHARGE_PREFIX + str(row["id"]), asset=row["asset"],
                          payment_address=row["payment_address"], locator=row["payment_locator"] or "")
            for row in charge_rows
        ]
        permissions = [_PermissionTarget(row["id"], row["status"], row["has_payments"]) for row in permission_rows]
        return targets, permissions, [row["id"] for row in charge_rows]
