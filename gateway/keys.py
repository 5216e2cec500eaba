"""Typed keys for what the application holds (aiohttp's AppKey)."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from billing.breaker import CircuitBreaker
from billing.services import Services
from paygo.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
REDIS = web.AppKey[aioredis.Redis | None]("redis")  # the live streams' change feed, the rate limits' counters
REDIS_BREAKER = web.AppKey("redis_breaker", CircuitBreaker)
ADMIN_KEY_HASH = web.AppKey[bytes | None]("admin_key_hash")
METRICS_TOKEN_HASH = web.AppKey[bytes | None]("metrics_token_hash")
