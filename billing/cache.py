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

from billing.breaker import CircuitBreaker
from billing.unit_of_work import Changes

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 5


class PermissionCache:
    """Skips Redis while `breaker` is open (a hung Redis must not add its timeout to every request)."""

    def __init__(self, client: aioredis.Redis | None, breaker: CircuitBreaker | None = None,
                 prefix: str = "paygo:") -> None:
        self._client = client
        self._breaker = breaker or CircuitBreaker("Redis")
        self._prefix = prefix

    def _key(self, permission_id: UUID) -> str:
        return f"{self._prefix}permission:{permission_id}"

    def _usable(self) -> aioredis.Redis | None:
        return self._client if self._client is not None and self._breaker.allows else None

    def _failed(self, doing: str, exc: Exception) -> None:
        self._breaker.failed()
        log.warning("permission cache %s failed: %s", doing, type(exc).__name__)

    async def get(self, permission_id: UUID) -> bytes | None:
        client = self._usable()
        if client is None:
            return None
        try:
            raw = await client.get(self._key(permission_id))
        except (RedisError, OSError) as exc:
            self._failed("read", exc)
            return None
        self._breaker.succeeded()
        return raw.encode() if isinstance(raw, str) else raw

    async def put(self, permission_id: UUID, value: bytes) -> None:
        client = self._usable()
        if client is None:
            return
        try:
            await client.set(self._key(permission_id), value, ex=CACHE_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            self._failed("write", exc)
            return
        self._breaker.succeeded()

    async def invalidate(self, *permission_ids: UUID) -> None:
        """Drop entries. While the breaker is open this is skipped too: entries expire within CACHE_TTL_SECONDS."""
        client = self._usable()
        if client is None or not permission_ids:
            return
        try:
            await client.delete(*(self._key(pid) for pid in permission_ids))
        except (RedisError, OSError) as exc:
            self._failed("invalidation", exc)
            return
        self._breaker.succeeded()

    async def on_commit(self, changes: Changes) -> None:
        """The post-commit listener: drop every changed permission."""
        await self.invalidate(*changes.permission_ids)
