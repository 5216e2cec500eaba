"""A read-through cache of permission states in Redis, dropped after every committed change; optional, fail-open.

Redis is never the source of truth: a missing, stale-by-TTL or unreachable cache only costs a database read.
Entries are dropped by the post-commit hook (billing.unit_of_work) for every permission a transaction changed,
and also expire after a few seconds, so a crash between commit and invalidation cannot leave a stale balance
for long. What is stored is the service's own serialisation of the state (bytes); this class does not read it.
"""

from __future__ import annotations

import logging
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from billing.unit_of_work import Changes

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 5


class PermissionCache:
    def __init__(self, client: aioredis.Redis | None, prefix: str = "paygo:") -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, permission_id: UUID) -> str:
        return f"{self._prefix}permission:{permission_id}"

    async def get(self, permission_id: UUID) -> bytes | None:
        if self._client is None:
            return None
        try:
            raw = await self._client.get(self._key(permission_id))
        except (RedisError, OSError) as exc:
            log.warning("permission cache read failed: %s", type(exc).__name__)
            return None
        return raw.encode() if isinstance(raw, str) else raw

    async def put(self, permission_id: UUID, value: bytes) -> None:
        if self._client is None:
            return
        try:
            await self._client.set(self._key(permission_id), value, ex=CACHE_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            log.warning("permission cache write failed: %s", type(exc).__name__)

    async def invalidate(self, *permission_ids: UUID) -> None:
        if self._client is None or not permission_ids:
            return
        try:
            await self._client.delete(*(self._key(pid) for pid in permission_ids))
        except (RedisError, OSError) as exc:
            log.warning("permission cache invalidation failed: %s", type(exc).__name__)

    async def on_commit(self, changes: Changes) -> None:
        """The post-commit listener: drop every changed permission."""
        await self.invalidate(*changes.permission_ids)
