"""A read-through cache of permission views in Redis, invalidated on every write; optional and fail-open.

Redis is never the source of truth: a missing, stale-by-TTL or unreachable cache only costs a database read.
Every write path calls `invalidate` after its transaction commits, and entries also expire after a few seconds,
so a crash between commit and invalidation cannot leave a stale balance for long.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 5


class PermissionCache:
    def __init__(self, client: aioredis.Redis | None, prefix: str = "paygo:") -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, permission_id: UUID) -> str:
        return f"{self._prefix}permission:{permission_id}"

    async def get(self, permission_id: UUID) -> dict[str, Any] | None:
        if self._client is None:
            return None
        try:
            raw = await self._client.get(self._key(permission_id))
        except (RedisError, OSError) as exc:
            log.warning("permission cache read failed: %s", type(exc).__name__)
            return None
        return json.loads(raw, parse_float=Decimal) if raw else None

    async def put(self, permission_id: UUID, value: dict[str, Any]) -> None:
        if self._client is None:
            return
        try:
            await self._client.set(self._key(permission_id), json.dumps(value, default=str), ex=CACHE_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            log.warning("permission cache write failed: %s", type(exc).__name__)

    async def invalidate(self, *permission_ids: UUID) -> None:
        if self._client is None or not permission_ids:
            return
        try:
            await self._client.delete(*(self._key(pid) for pid in permission_ids))
        except (RedisError, OSError) as exc:
            log.warning("permission cache invalidation failed: %s", type(exc).__name__)
