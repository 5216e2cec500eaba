"""Health: every dependency as the operator's `/health` and a load balancer's `/health/ready` need it.

Only the database decides whether the gateway can take money; everything else makes it "degraded".
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from billing.breaker import CircuitBreaker
from billing.db import DATABASE_DOWN_ERRORS
from billing.replica import ReplicaHealth
from billing.reports import table_exists
from billing.schema import load_migrations
from billing.sources import FundingSources
from billing.unit_of_work import Database
from kernel.funding import SourceStatus

CHECK_TIMEOUT_SECONDS = 3


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    applied: int
    pending: list[str]


@dataclass(frozen=True, slots=True)
class SchedulerLag:
    lag_seconds: int | None  # since the last successful billing tick; None before the first
    failing_jobs: list[str]


@dataclass(frozen=True, slots=True)
class WebhookBacklog:
    pending: int
    dead: int
    oldest_pending_age_seconds: int | None


@dataclass(frozen=True, slots=True)
class DatabaseHealth:
    up: bool
    latency_ms: float | None = None
    error: str | None = None  # the failure's type name when down
    migrations: MigrationStatus | None = None
    scheduler: SchedulerLag | None = None  # None until its view exists, or when not asked for
    webhooks: WebhookBacklog | None = None


@dataclass(frozen=True, slots=True)
class RedisHealth:
    enabled: bool
    up: bool
    error: str | None = None
    breaker_open: bool = False  # requests skip Redis for a cool-down after failures


@functools.cache
def _expected_migrations() -> dict[int, str]:
    """The migration files this build ships (version → file name); they do not change while it runs."""
    return {migration.version: migration.name for migration in load_migrations(files("migrations"))}


class HealthService:
    def __init__(self, db: Database, sources: FundingSources, redis: aioredis.Redis | None,
                 redis_breaker: CircuitBreaker | None = None) -> None:
        self.db = db
        self.sources = sources
        self.redis = redis
        self.redis_breaker = redis_breaker or CircuitBreaker("Redis")

    async def database(self, *, full: bool) -> DatabaseHealth:
        """Whether the database answers and its migrations are applied; with `full`, also the scheduler's lag and
        the webhook backlog (where their views exist)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), self.db.connection() as conn:
                await conn.fetchval("SELECT 1")
                latency_ms = round((time.perf_counter() - started) * 1000, 1)
                applied: set[int] = set()
                if await table_exists(conn, "schema_migrations"):
                    applied = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
                pending = [name for version, name in sorted(_expected_migrations().items())
                           if version not in applied]
                scheduler = webhooks = None
                if full and await table_exists(conn, "scheduler_health"):
                    row = await conn.fetchrow(
                        """
                        SELECT min(seconds_since_success) FILTER (WHERE job_name = 'billing_tick') AS lag_seconds,
                               coalesce(array_agg(job_name ORDER BY job_name) FILTER (WHERE failing), '{}') AS failing
                          FROM scheduler_health
                        """
                    )
                    scheduler = SchedulerLag(row["lag_seconds"], list(row["failing"]))
                if full and await table_exists(conn, "webhook_backlog"):
                    row = await conn.fetchrow(
                        """
                        SELECT coalesce(sum(messages) FILTER (WHERE status = 'pending'), 0)::bigint AS pending,
                               coalesce(sum(messages) FILTER (WHERE status = 'dead'), 0)::bigint AS dead,
                               max(oldest_age_seconds) FILTER (WHERE status = 'pending') AS oldest
                          FROM webhook_backlog
                        """
                    )
                    webhooks = WebhookBacklog(row["pending"], row["dead"], row["oldest"])
        except DATABASE_DOWN_ERRORS as exc:
            return DatabaseHealth(up=False, error=type(exc).__name__)
        return DatabaseHealth(True, latency_ms, None, MigrationStatus(len(applied), pending), scheduler, webhooks)

    async def read_replica(self) -> ReplicaHealth | None:
        """Whether the read replica answers (and so serves the reads that may lag); None when none is configured."""
        return await self.db.replica.check() if self.db.replica is not None else None

    async def redis_status(self) -> RedisHealth:
        """Redis answers a PING (asked even while the breaker is open: health is how the operator sees it)."""
        if self.redis is None:
            return RedisHealth(enabled=False, up=True)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await self.redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return RedisHealth(enabled=True, up=False, error=type(exc).__name__,
                               breaker_open=self.redis_breaker.is_open)
        return RedisHealth(enabled=True, up=True, breaker_open=self.redis_breaker.is_open)

    async def source_statuses(self) -> Sequence[SourceStatus]:
        """Each funding source's reachability, tip and sync state (a source never raises here)."""
        return await asyncio.gather(*(source.status() for source in self.sources.all.values()))
