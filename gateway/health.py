"""Health endpoints: `/health` (every dependency), `/health/live` (the process answers), `/health/ready`
(503 while the database cannot be used, so a load balancer stops sending money traffic here)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from billing.db import DATABASE_DOWN_ERRORS
from gateway.http import json_response
from gateway.keys import BILLING, POOL, REDIS

CHECK_TIMEOUT_SECONDS = 3


async def _database(request: web.Request) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            async with request.app[POOL].acquire() as conn:
                await conn.fetchval("SELECT 1")
    except DATABASE_DOWN_ERRORS as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


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


async def health(request: web.Request) -> web.Response:
    sources = request.app[BILLING].sources
    database, redis_check, *statuses = await asyncio.gather(
        _database(request), _redis(request), *(source.status() for source in sources.values())
    )
    nodes = {
        status.name: {"ok": status.reachable and status.synced is not False, "reachable": status.reachable,
                      "height": status.height, "synced": status.synced, "tip_age_seconds": status.tip_age_seconds,
                      "detail": status.detail}
        for status in statuses
    }
    checks = {"database": database, "redis": redis_check, **nodes}
    healthy = all(check["ok"] for check in checks.values())
    body = {"status": "ok" if healthy else ("down" if not database["ok"] else "degraded"), "checks": checks}
    return json_response(body, status=200 if database["ok"] else 503)


async def live(_: web.Request) -> web.Response:
    return json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    database = await _database(request)
    if not database["ok"]:
        return web.json_response(
            {"error": {"code": "database_unavailable", "message": "the database is not answering"}},
            status=503, headers={"Retry-After": "2"},
        )
    return json_response({"status": "ready"})


routes = [
    web.get("/api/v1/health", health),
    web.get("/api/v1/health/live", live),
    web.get("/api/v1/health/ready", ready),
]
