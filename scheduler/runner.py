"""The scheduler: APScheduler 3 (AsyncIOScheduler) running the jobs, each recorded in `job_runs`.

Jobs are safe to run in any number of processes at once: every job settles its own concurrency in PostgreSQL
(row locks with SKIP LOCKED, unique keys, charges computed from time), so APScheduler only decides *when* this
process tries; `max_instances=1` and `coalesce=True` keep one process from piling up runs of the same job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import aiohttp
import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from billing.charging import billing_tick, expire_permissions
from billing.direct_charges import allocate_direct_charge_addresses
from billing.events import publish_session_updates
from billing.outbox import RetryPolicy
from billing.reminders import ReminderPolicy, enqueue_due_reminders
from paygo.metrics import Metrics
from paygo.wiring import Runtime
from scheduler.delivery import deliver_due
from scheduler.watcher import PaymentWatcher

log = logging.getLogger("paygo.scheduler")


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    run: Callable[[], Awaitable[object]]
    every_seconds: int


async def record_run(pool: asyncpg.Pool, name: str, run: Callable[[], Awaitable[object]]) -> object:
    """Run one job and record its start, success or error and duration in `job_runs`."""
    started = time.perf_counter()
    async with pool.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO job_runs (job_name, last_started_at, runs) VALUES ($1, now(), 1)
            ON CONFLICT (job_name) DO UPDATE SET last_started_at = now(), runs = job_runs.runs + 1
            """,
            name,
        )
    try:
        result = await run()
    except Exception as exc:
        async with pool.acquire() as conn:
            await conn.execute("UPDATE job_runs SET last_error = $2 WHERE job_name = $1", name,
                               f"{type(exc).__name__}: {exc}"[:500])
        raise
    duration_ms = int((time.perf_counter() - started) * 1000)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE job_runs SET last_succeeded_at = now(), last_error = NULL, last_duration_ms = $2 WHERE job_name = $1",
            name, duration_ms,
        )
    return result


class Jobs:
    """The jobs of one scheduler process, over its runtime, one HTTP client (webhooks) and one watcher."""

    def __init__(self, runtime: Runtime, http: aiohttp.ClientSession) -> None:
        self.runtime = runtime
        self.http = http
        self.watcher = PaymentWatcher()
        self.notifications = runtime.settings.notifications

    async def tick(self) -> object:
        """Charge every active session; then give new direct charges an address, drop stale cache entries and
        tell live streams to re-read."""
        result = await billing_tick(self.runtime.pool)
        await self._changed(result.permission_ids)
        await allocate_direct_charge_addresses(self.runtime.pool, self.runtime.sources)
        return result

    async def expire(self) -> object:
        charged, expired = await expire_permissions(self.runtime.pool)
        await self._changed([*charged.permission_ids, *expired])
        return expired

    async def watch(self) -> object:
        billing = self.runtime.billing
        return await self.watcher.run(self.runtime.pool, self.runtime.sources,
                                      min_confirmations=billing.min_confirmations, cache=billing.cache,
                                      redis=self.runtime.redis)

    async def remind(self) -> object:
        policy = ReminderPolicy(self.notifications.reminder_lead_hours,
                                self.notifications.low_balance_reminder_percent)
        return await enqueue_due_reminders(self.runtime.pool, policy=policy, now=datetime.now(UTC),
                                           cache=self.runtime.billing.cache)

    async def deliver(self) -> object:
        n = self.notifications
        return await deliver_due(
            self.runtime.pool, self.http, signing_key=n.webhook_signing_key,
            policy=RetryPolicy(n.outbox_max_attempts, n.outbox_backoff_base_seconds, n.outbox_backoff_cap_seconds),
            now=datetime.now(UTC), timeout_seconds=n.webhook_timeout_seconds, cache=self.runtime.billing.cache,
        )

    async def _changed(self, permission_ids: Sequence[UUID]) -> None:
        if not permission_ids:
            return
        await self.runtime.billing.cache.invalidate(*permission_ids)
        async with self.runtime.pool.acquire() as conn:
            sessions = await conn.fetch(
                """
                SELECT id FROM sessions
                 WHERE permission_id = ANY($1::uuid[]) AND (status = 'active' OR ended_at > now() - interval '1 hour')
                """,
                list(permission_ids),
            )
        await publish_session_updates(self.runtime.redis, [row["id"] for row in sessions])

    def schedule(self) -> list[ScheduledJob]:
        settings = self.runtime.settings
        every = self.notifications.watcher_interval_seconds
        return [
            ScheduledJob("billing_tick", self.tick, settings.billing_interval_seconds),
            ScheduledJob("expiry", self.expire, settings.scheduler.expiry_interval_seconds),
            ScheduledJob("payment_watcher", self.watch, every),
            ScheduledJob("reminders", self.remind, settings.scheduler.expiry_interval_seconds),
            ScheduledJob("outbox_delivery", self.deliver, every),
        ]


@asynccontextmanager
async def running_scheduler(runtime: Runtime, metrics: Metrics | None = None) -> AsyncIterator[AsyncIOScheduler]:
    """Start every job on an AsyncIOScheduler; stop it (and close its HTTP client) on exit."""
    async with aiohttp.ClientSession() as http:
        jobs = Jobs(runtime, http).schedule()
        scheduler = AsyncIOScheduler(timezone=UTC)
        for job in jobs:
            scheduler.add_job(
                _recorded(runtime.pool, job, metrics), "interval", seconds=job.every_seconds, id=job.name,
                name=job.name, max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
            )
        scheduler.start()
        log.info("scheduler started: %s", ", ".join(f"{j.name} every {j.every_seconds}s" for j in jobs))
        try:
            yield scheduler
        finally:
            scheduler.shutdown(wait=False)


def _recorded(pool: asyncpg.Pool, job: ScheduledJob, metrics: Metrics | None) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        started = time.perf_counter()
        ok = False
        try:
            await record_run(pool, job.name, job.run)
            ok = True
        except Exception:
            log.exception("job %s failed", job.name)
        finally:
            if metrics is not None:
                metrics.observe_tick(job.name, time.perf_counter() - started, ok)

    return run
