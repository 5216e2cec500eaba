"""The scheduler's jobs, as billing decides them: what each run does (the scheduler only decides *when*).

Every job is safe to run in any number of processes at once: each settles its own concurrency in PostgreSQL (row
locks with SKIP LOCKED, unique keys, charges computed from time). Each run is recorded in `job_runs` (start,
success or error, duration), which health and the `scheduler_health` view read.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import UUID

from billing.charging import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TICK_CONNECTIONS,
    ChargeResult,
    billing_tick,
    expire_permissions,
    stop_due,
)
from billing.delivery import DeliverySummary, deliver_due
from billing.direct_charges import allocate_direct_charge_addresses
from billing.outbound import WebhookSender
from billing.outbox import RetryPolicy
from billing.payouts import PayoutWatchSummary
from billing.pricing import PricingService, RequoteSummary
from billing.refund_service import RefundRunSummary, RefundService
from billing.reminders import ReminderPolicy, enqueue_due_reminders
from billing.retention import PruneSummary, RetentionPolicy, prune
from billing.sources import FundingSources
from billing.unit_of_work import Database
from billing.watcher import PaymentWatcher, WatcherSummary

MAX_ERROR_LENGTH = 500


class JobService:
    def __init__(self, db: Database, sources: FundingSources, sender: WebhookSender, *,
                 refunds: RefundService, pricing: PricingService, reminder_policy: ReminderPolicy,
                 retry_policy: RetryPolicy, webhook_signing_key: str | None, webhook_timeout_seconds: int,
                 retention: RetentionPolicy, tick_connections: int = DEFAULT_TICK_CONNECTIONS) -> None:
        self.db = db
        self.sources = sources
        self.sender = sender
        self.retention = retention
        self.refunds = refunds
        self.pricing = pricing
        self.reminder_policy = reminder_policy
        self.retry_policy = retry_policy
        self.webhook_signing_key = webhook_signing_key
        self.webhook_timeout_seconds = webhook_timeout_seconds
        self.watcher = PaymentWatcher(db, sources)
        self.tick_connections = tick_connections

    async def billing_tick(self, *, at: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> ChargeResult:
        """Charge every active session what it owes (at `at`, database time when None); then give new direct
        charges an address."""
        result = await billing_tick(self.db, at=at, batch_size=batch_size, connections=self.tick_connections)
        await self.allocate_direct_charge_addresses()
        return result

    async def stop_due(self, *, at: datetime | None = None) -> ChargeResult:
        """The hard stop: permissions whose money runs out (or which expire) now are charged now, not at the next
        tick; then new direct charges (a vendor's grace) get an address."""
        result = await stop_due(self.db, at=at)
        if result.direct_charges:
            await self.allocate_direct_charge_addresses()
        return result

    async def allocate_direct_charge_addresses(self) -> int:
        """Give open direct charges without an address one from their funding source; how many got one."""
        return await allocate_direct_charge_addresses(self.db.pool, self.sources.all)

    async def expire(self, *, at: datetime | None = None) -> tuple[ChargeResult, list[UUID]]:
        return await expire_permissions(self.db, at=at)

    async def watch_payments(self, *, now: datetime | None = None) -> WatcherSummary:
        return await self.watcher.run(now=now)

    async def refund(self) -> RefundRunSummary:
        """Send pending Zcash refunds; reconcile with the node the sends whose outcome is not known."""
        return await self.refunds.send_and_reconcile()

    async def watch_payouts(self) -> PayoutWatchSummary:
        """Recognise the operator's transactions paying Ethereum payout orders."""
        return await self.refunds.watch_payouts()

    async def requote(self) -> RequoteSummary:
        """A new quote for unpaid fiat-priced permissions whose lock window has passed."""
        return await self.pricing.requote()

    async def remind(self, *, now: datetime | None = None, policy: ReminderPolicy | None = None) -> int:
        return await enqueue_due_reminders(self.db, policy=policy or self.reminder_policy, now=now or datetime.now(UTC))

    async def deliver(self, *, now: datetime | None = None) -> DeliverySummary:
        return await deliver_due(self.db, self.sender, signing_key=self.webhook_signing_key,
                                 policy=self.retry_policy, now=now or datetime.now(UTC),
                                 timeout_seconds=self.webhook_timeout_seconds)

    async def prune(self, *, now: datetime | None = None) -> PruneSummary:
        """Delete what has outlived its use (billing/retention.py); the ledger, payments and audit trail stay."""
        return await prune(self.db, self.retention, now=now or datetime.now(UTC))

    async def recorded(self, name: str, run: Callable[[], Awaitable[object]]) -> object:
        """Run one job and record its start, success or error and duration in `job_runs`."""
        started = time.perf_counter()
        async with self.db.connection() as conn:
            await conn.execute(
                """
                INSERT INTO job_runs (job_name, last_started_at, runs, last_runner) VALUES ($1, now(), 1, $2)
                ON CONFLICT (job_name) DO UPDATE
                   SET last_started_at = now(), runs = job_runs.runs + 1, last_runner = EXCLUDED.last_runner
                """,
                name, f"{socket.gethostname()}:{os.getpid()}",  # which process ran it last
            )
        try:
            result = await run()
        except Exception as exc:
            async with self.db.connection() as conn:
                await conn.execute("UPDATE job_runs SET last_error = $2 WHERE job_name = $1", name,
                                   f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH])
            raise
        duration_ms = int((time.perf_counter() - started) * 1000)
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE job_runs SET last_succeeded_at = now(), last_error = NULL, last_duration_ms = $2 "
                "WHERE job_name = $1",
                name, duration_ms,
            )
        return result
