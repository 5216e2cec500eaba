"""Health endpoints: `/health` (every dependency), `/health/live` (the process answers), `/health/ready`
(503 while the gateway cannot take money safely: the database does not answer or its migrations are not all
applied, so a load balancer stops sending money traffic here).

`/health` also reports the schema, each node's sync and tip age, the scheduler's lag (from its `job_runs`) and the
webhook backlog (from the outbox), the last two read through the operator views `scheduler_health` and
`webhook_backlog` once they exist. Only the database decides the status code; the rest makes it "degraded".
"""

from __future__ import annotations

import asyncio
import functools
import time
from importlib.resources import files
from typing import Any

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from billing.db import DATABASE_DOWN_ERRORS
from billing.reports import table_exists
from billing.schema import load_migrations
from gateway.http import json_response
from gateway.keys import BILLING, POOL, REDIS, SETTINGS
from gateway.models import HealthView, StatusView
from gateway.openapi import Operation, describe
from paygo.settings import OperationsSettings

CHECK_TIMEOUT_SECONDS = 3


@functools.cache
def _expected_migrations() -> dict[int, str]:
    """The migration files this build ships (version → file name); they do not change while it runs."""
    return {migration.version: migration.name for migration in load_migrations(files("migrations"))}


async def _migrations(conn: asyncpg.Connection) -> dict[str, Any]:
    applied = set()
    if await table_exists(conn, "schema_migrations"):
        applied = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    pending = [name for version, name in sorted(_expected_migrations().items()) if version not in applied]
    return {"ok": not pending, "applied": len(applied), "pending": pending}


async def _scheduler(conn: asyncpg.Connection, max_lag_seconds: int) -> dict[str, Any]:
    """Lag: seconds since the last successful billing tick (degraded past `max_lag_seconds`, by default three
    billing intervals); a job whose last run failed is named."""
    row = await conn.fetchrow(
        """
        SELECT min(seconds_since_success) FILTER (WHERE job_name = 'billing_tick') AS lag_seconds,
               coalesce(array_agg(job_name ORDER BY job_name) FILTER (WHERE failing), '{}') AS failing_jobs
          FROM scheduler_health
        """
    )
    lag = row["lag_seconds"]
    ok = lag is not None and lag <= max_lag_seconds and not row["failing_jobs"]
    return {"ok": ok, "lag_seconds": lag, "max_lag_seconds": max_lag_seconds,
            "failing_jobs": list(row["failing_jobs"])}


async def _webhooks(conn: asyncpg.Connection, operations: OperationsSettings) -> dict[str, Any]:
    """Backlog: messages waiting and the age of the oldest; dead ones are shown but do not fail the check."""
    row = await conn.fetchrow(
        """
        SELECT coalesce(sum(messages) FILTER (WHERE status = 'pending'), 0)::bigint AS pending,
               coalesce(sum(messages) FILTER (WHERE status = 'dead'), 0)::bigint AS dead,
               max(oldest_age_seconds) FILTER (WHERE status = 'pending') AS oldest_pending_age_seconds
          FROM webhook_backlog
        """
    )
    oldest = row["oldest_pending_age_seconds"]
    return {"ok": oldest is None or oldest <= operations.webhook_backlog_max_age_seconds,
            "pending": row["pending"], "dead": row["dead"], "oldest_pending_age_seconds": oldest}


async def _database_checks(request: web.Request, *, full: bool) -> dict[str, dict[str, Any]]:
    """`database` and `migrations`; with `full`, also `scheduler` and `webhooks` where their views exist."""
    settings = request.app[SETTINGS]
    operations = settings.operations
    max_lag = operations.scheduler_max_lag_seconds or 3 * settings.billing_interval_seconds
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            async with request.app[POOL].acquire() as conn:
                await conn.fetchval("SELECT 1")
                checks = {"database": {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)},
                          "migrations": await _migrations(conn)}
                if full and await table_exists(conn, "scheduler_health"):
                    checks["scheduler"] = await _scheduler(conn, max_lag)
                if full and await table_exists(conn, "webhook_backlog"):
                    checks["webhooks"] = await _webhooks(conn, operations)
                return checks
    except DATABASE_DOWN_ERRORS as exc:
        return {"database": {"ok": False, "error": type(exc).__name__}}


async def _redis(request: web.Request) -> dict[str, Any]:
    client = request.app[REDIS]
    if client is None:
        return {"ok": True, "enabled": False}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return {"ok": False, "enabled": True, "error": type(exc).__name__}
    return {"ok": True, "enabled": True}


@describe(Operation(summary="Every dependency: database, migrations, Redis, nodes, scheduler, webhooks",
                    response=HealthView, uses_database=False,
                    other_responses={503: ("The database does not answer (the report says what else is down)",
                                           HealthView)}))
async def health(request: web.Request) -> web.Response:
    sources = request.app[BILLING].sources
    database_checks, redis_check, *statuses = await asyncio.gather(
        _database_checks(request, full=True), _redis(request), *(source.status() for source in sources.values())
    )
    nodes = {
        status.name: {"ok": status.reachable and status.synced is not False, "reachable": status.reachable,
                      "height": status.height, "synced": status.synced, "tip_age_seconds": status.tip_age_seconds,
                      "detail": status.detail}
        for status in statuses
    }
    checks = {**database_checks, "redis": redis_check, **nodes}
    database_ok = database_checks["database"]["ok"]
    healthy = all(check["ok"] for check in checks.values())
    body = {"status": "ok" if healthy else ("down" if not database_ok else "degraded"), "checks": checks}
    return json_response(body, status=200 if database_ok else 503)


@describe(Operation(summary="The process answers", response=StatusView, uses_database=False))
async def live(_: web.Request) -> web.Response:
    return json_response({"status": "alive"})


@describe(Operation(summary="Ready to take money: the database answers and every migration is applied",
                    response=StatusView))
async def ready(request: web.Request) -> web.Response:
    checks = await _database_checks(request, full=False)
    if not checks["database"]["ok"]:
        return web.json_response(
            {"error": {"code": "database_unavailable", "message": "the database is not answering"}},
            status=503, headers={"Retry-After": "2"},
        )
    if not checks["migrations"]["ok"]:
        pending = ", ".join(checks["migrations"]["pending"])
        return web.json_response(
            {"error": {"code": "migrations_pending", "message": f"database migrations not applied: {pending}"}},
            status=503, headers={"Retry-After": "2"},
        )
    return json_response({"status": "ready"})


routes = [
    web.get("/api/v1/health", health),
    web.get("/api/v1/health/live", live),
    web.get("/api/v1/health/ready", ready),
]
