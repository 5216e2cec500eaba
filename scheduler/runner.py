"""The scheduler: APScheduler 3 (AsyncIOScheduler) deciding *when* each job runs; billing.jobs decides *what*.

Jobs are safe to run in any number of processes at once (each settles its concurrency in PostgreSQL), so this only
decides when this process tries: `max_instances=1` and `coalesce=True` keep one process from piling up runs of the
same job. Each run is recorded in `job_runs` by billing; an observer (the gateway's metrics) may time it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from billing.jobs import JobService

log = logging.getLogger("paygo.scheduler")

# Told of each run: (job name, seconds it took, whether it succeeded).
RunObserver = Callable[[str, float, bool], None]


@dataclass(frozen=True)
class Intervals:
    """How often each job runs, in seconds."""

    billing_tick: int
    expiry: int
    watcher: int
    hard_stop: int
    prune: int


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    run: Callable[[], Awaitable[object]]
    every_seconds: int


def schedule(jobs: JobService, intervals: Intervals) -> list[ScheduledJob]:
    return [
        ScheduledJob("billing_tick", jobs.billing_tick, intervals.billing_tick),
        ScheduledJob("hard_stop", jobs.stop_due, intervals.hard_stop),
        ScheduledJob("expiry", jobs.expire, intervals.expiry),
        ScheduledJob("payment_watcher", jobs.watch_payments, intervals.watcher),
        ScheduledJob("refunds", jobs.refund, intervals.watcher),
        ScheduledJob("payout_watcher", jobs.watch_payouts, intervals.watcher),
        ScheduledJob("requote", jobs.requote, intervals.watcher),
        ScheduledJob("reminders", jobs.remind, intervals.expiry),
        ScheduledJob("outbox_delivery", jobs.deliver, intervals.watcher),
        ScheduledJob("prune", jobs.prune, intervals.prune),
    ]


@asynccontextmanager
async def running_scheduler(jobs: JobService, intervals: Intervals,
                            observe: RunObserver | None = None) -> AsyncIterator[AsyncIOScheduler]:
    """Start every job on an AsyncIOScheduler; stop it on exit."""
    scheduled = schedule(jobs, intervals)
    scheduler = AsyncIOScheduler(timezone=UTC)
    for job in scheduled:
        scheduler.add_job(
            _recorded(jobs, job, observe), "interval", seconds=job.every_seconds, id=job.name, name=job.name,
            max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
        )
    scheduler.start()
    log.info("scheduler started: %s", ", ".join(f"{j.name} every {j.every_seconds}s" for j in scheduled))
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def _recorded(jobs: JobService, job: ScheduledJob, observe: RunObserver | None) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        started = time.perf_counter()
        ok = False
        try:
            await jobs.recorded(job.name, job.run)
            ok = True
        except Exception:
            log.exception("job %s failed", job.name)
        finally:
            if observe is not None:
                observe(job.name, time.perf_counter() - started, ok)

    return run
