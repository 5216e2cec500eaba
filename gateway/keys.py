"""Typed keys for what the application holds (aiohttp's AppKey)."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from billing.service import BillingService
from paygo.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis | None)
BILLING = web.AppKey("billing", BillingService)
ADMIN_KEY_HASH = web.AppKey("admin_key_hash", bytes | None)
