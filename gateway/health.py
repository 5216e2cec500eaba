"""Health endpoints: `/health` (every dependency; the operator key or METRICS_TOKEN, since it names internal hosts
and errors), and the public, minimal `/health/live` (the process answers) and `/health/ready` (503 while the
gateway cannot take money safely: the database does not answer or its migrations are not all applied, so a load
balancer stops sending money traffic here).

`/health` also reports the schema, the read replica (which server serves the reads that may lag), each node's sync
and tip age, the scheduler's lag (from its `job_runs`) and the webhook backlog (from the outbox), the last two read
through the operator views `scheduler_health` and `webhook_backlog` once they exist. Only the database decides the
status code; the rest makes it "degraded".
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from billing.health_service import DatabaseHealth
from billing.replica import ReplicaHealth
from gateway.auth import require_metrics_reader
from gateway.http import json_response
from gateway.keys import SERVICES, SETTINGS
from gateway.models import HealthView, StatusView
from gateway.openapi import Auth, Operation, describe


def _database_checks(request: web.Request, found: DatabaseHealth) -> dict[str, dict[str, Any]]:
    """`database` and `migrations`; `scheduler` and `webhooks` where they were read, judged by the settings."""
    if not found.up:
        return {"database": {"ok": False, "error": found.error}}
    assert found.migrations is not None
    checks: dict[str, dict[str, Any]] = {
        "database": {"ok": True, "latency_ms": found.latency_ms},
        "migrations": {"ok": not found.migrations.pending, "applied": found.migrations.applied,
                       "pending": found.migrations.pending},
    }
    settings = request.app[SETTINGS]
    operations = settings.operations
    if found.scheduler is not None:
        max_lag = operations.scheduler_max_lag_seconds or 3 * settings.billing_interval_seconds
        lag = found.scheduler.lag_seconds
        checks["scheduler"] = {"ok": lag is not None and lag <= max_lag and not found.scheduler.failing_jobs,
                               "lag_seconds": lag, "max_lag_seconds": max_lag,
                               "failing_jobs": found.scheduler.failing_jobs}
    if found.webhooks is not None:
        oldest = found.webhooks.oldest_pending_age_seconds
        checks["webhooks"] = {"ok": oldest is None or oldest <= operations.webhook_backlog_max_age_seconds,
                              "pending": found.webhooks.pending, "dead": found.webhooks.dead,
                              "oldest_pending_age_seconds": oldest}
    return checks


def _replica_check(replica: ReplicaHealth) -> dict[str, Any]:
    """The read replica (DATABASE_READ_URL): while it is down, the reads that may lag go to the primary."""
    check: dict[str, Any] = {"ok": replica.up, "reads_from": "replica" if replica.up else "primary"}
    if replica.up:
        check.update(in_recovery=replica.in_recovery, replay_lsn=replica.replay_lsn)
    else:
        check["error"] = replica.error
    return check


@describe(Operation(summary="Every dependency: database, migrations, read replica, Redis, nodes, scheduler, webhooks",
                    description="For the operator (or a scraper with METRICS_TOKEN): it names internal hosts and "
                                "errors. Load balancers use the public /health/live and /health/ready.",
                    auth=(Auth.OPERATOR_KEY, Auth.METRICS_TOKEN), response=HealthView, uses_database=False,
                    other_responses={503: ("The database does not answer (the report says what else is down)",
                                           HealthView)}))
async def health(request: web.Request) -> web.Response:
    require_metrics_reader(request)
    health_service = request.app[SERVICES].health
    database, replica, redis, statuses = await asyncio.gather(
        health_service.database(full=True), health_service.read_replica(), health_service.redis_status(),
        health_service.source_statuses())
    database_checks = _database_checks(request, database)
    if replica is not None:
        database_checks["read_replica"] = _replica_check(replica)
    redis_check: dict[str, Any] = {"ok": redis.up, "enabled": redis.enabled, "breaker_open": redis.breaker_open}
    if redis.error is not None:
        redis_check["error"] = redis.error
    nodes = {
        status.name: {"ok": status.reachable and status.synced is not False and status.wallet_ready is not False,
                      "reachable": status.reachable, "height": status.height, "synced": status.synced,
                      "wallet_ready": status.wallet_ready, "tip_age_seconds": status.tip_age_seconds,
                      "detail": status.detail}
        for status in statuses
    }
    checks = {**database_checks, "redis": redis_check, **nodes}
    database_ok = database_checks["database"]["ok"]
    healthy = all(check["ok"] for check in checks.values())
    body = {"status": "ok" if healthy else ("down" if not database_ok else "degraded"), "checks": checks}
    return json_response(body, status=200 if database_ok else 503)


@describe(Operation(summary="The process answers", response=StatusView, uses_database=False, rate_limited=False))
async def live(_: web.Request) -> web.Response:
    return json_response({"status": "alive"})


@describe(Operation(summary="Ready to take money: the database answers and every migration is applied",
                    response=StatusView, rate_limited=False))
async def ready(request: web.Request) -> web.Response:
    checks = _database_checks(request, await request.app[SERVICES].health.database(full=False))
    if not checks["database"]["ok"]:
        return web.json_response(
            {"error": {"code": "database_unavailable", "message": "the database is not answering"}},
            status=503, headers={"Retry-After": "2"},
        )
    if not checks["migrations"]["ok"]:
        pending = ", ".join(checks["migrations"]["pending"])  # file names of this build: nothing internal
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
