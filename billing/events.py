"""Change notices between processes, over Redis pub/sub, for the live balance streams.

A notice says only *which* sessions and permissions changed (`{"v": 1, "session_ids": [...], "permission_ids":
[...]}` on one channel); a stream re-reads its session from PostgreSQL, so what it shows is always exact and a
lost, duplicated or stray notice costs at most one extra read. The post-commit hook (billing.unit_of_work)
publishes after every committed change (`LiveNotices.on_commit`). Redis is optional: without it, publishing does
nothing and streams poll.

`SessionEventHub` is the receiving side: one Redis subscription per process, fanning notices out to the streams
it serves; a stream watching a session is woken when that session or its permission changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from billing.breaker import CircuitBreaker
from billing.unit_of_work import Changes

log = logging.getLogger(__name__)

SESSION_EVENTS_CHANNEL = "paygo:session-events"
NOTICE_VERSION = 1
IDS_PER_NOTICE = 500  # keeps each message small even when a tick touches 100k sessions
POLL_SECONDS = 1.0  # streams without Redis notices
SAFETY_POLL_SECONDS = 10.0  # with them: a lost notice is noticed this late at worst
RESUBSCRIBE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Notice:
    session_ids: tuple[UUID, ...] = ()
    permission_ids: tuple[UUID, ...] = ()


def encode_notice(session_ids: Sequence[UUID], permission_ids: Sequence[UUID] = ()) -> str:
    return json.dumps({"v": NOTICE_VERSION, "session_ids": [str(sid) for sid in session_ids],
                       "permission_ids": [str(pid) for pid in permission_ids]})


def decode_notice(raw: bytes | str) -> Notice:
    """The ids a notice names; an unreadable or foreign message names none."""
    try:
        data: Any = json.loads(raw)
        if data.get("v") != NOTICE_VERSION:
            return Notice()
        return Notice(tuple(UUID(sid) for sid in data.get("session_ids", ())),
                      tuple(UUID(pid) for pid in data.get("permission_ids", ())))
    except (ValueError, TypeError, KeyError, AttributeError):
        return Notice()


async def publish_session_updates(redis: aioredis.Redis | None, session_ids: Sequence[UUID],
                                  permission_ids: Sequence[UUID] = (), *,
                                  channel: str = SESSION_EVENTS_CHANNEL,
                                  breaker: CircuitBreaker | None = None) -> None:
    """Tell every subscriber that these sessions and permissions changed. Never raises: polling catches a miss.
    Skipped while `breaker` is open."""
    if redis is None or not (session_ids or permission_ids) or (breaker is not None and not breaker.allows):
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for start in range(0, max(len(session_ids), len(permission_ids)), IDS_PER_NOTICE):
                pipe.publish(channel, encode_notice(session_ids[start:start + IDS_PER_NOTICE],
                                                    permission_ids[start:start + IDS_PER_NOTICE]))
            await pipe.execute()
    except (RedisError, OSError) as exc:
        if breaker is not None:
            breaker.failed()
        log.warning("change notice not published: %s", type(exc).__name__)
        return
    if breaker is not None:
        breaker.succeeded()


class LiveNotices:
    """The post-commit listener that wakes live streams in every process."""

    def __init__(self, redis: aioredis.Redis | None, breaker: CircuitBreaker | None = None) -> None:
        self._redis = redis
        self._breaker = breaker

    async def on_commit(self, changes: Changes) -> None:
        await publish_session_updates(self._redis, sorted(changes.session_ids), sorted(changes.permission_ids),
                                      breaker=self._breaker)


class SessionEventHub:
    """One Redis subscription per process; each stream waits on an asyncio.Event of its session."""

    def __init__(self, redis: aioredis.Redis | None, channel: str = SESSION_EVENTS_CHANNEL) -> None:
        self._redis = redis
        self._channel = channel
        self._by_session: dict[UUID, set[asyncio.Event]] = {}
        self._by_permission: dict[UUID, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.closing = asyncio.Event()

    @property
    def poll_seconds(self) -> float:
        return SAFETY_POLL_SECONDS if self.subscribed.is_set() else POLL_SECONDS

    @property
    def streams(self) -> int:
        """How many streams this process serves."""
        return sum(len(waiting) for waiting in self._by_session.values())

    def streams_of(self, permission_id: UUID) -> int:
        return len(self._by_permission.get(permission_id, ()))

    def watch(self, session_id: UUID, permission_id: UUID) -> asyncio.Event:
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen())
        event = asyncio.Event()
        self._by_session.setdefault(session_id, set()).add(event)
        self._by_permission.setdefault(permission_id, set()).add(event)
        return event

    def unwatch(self, session_id: UUID, permission_id: UUID, event: asyncio.Event) -> None:
        for index, key in ((self._by_session, session_id), (self._by_permission, permission_id)):
            waiting = index.get(key)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del index[key]

    def _notify(self, notice: Notice) -> None:
        for index, keys in ((self._by_session, notice.session_ids), (self._by_permission, notice.permission_ids)):
            for key in keys:
                for event in index.get(key, ()):
                    event.set()

    async def _listen(self) -> None:
        """Subscribe and dispatch until closed; on a Redis failure, fall back to polling and retry later."""
        assert self._redis is not None
        while not self.closing.is_set():
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self.subscribed.set()
                    while not self.closing.is_set():
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None:
                            self._notify(decode_notice(message["data"]))
            except (RedisError, OSError) as exc:
                log.warning("session events: Redis subscription lost (%s); polling", type(exc).__name__)
            self.subscribed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), timeout=RESUBSCRIBE_SECONDS)

    async def close(self) -> None:
        self.closing.set()
        for waiting in [*self._by_session.values(), *self._by_permission.values()]:
            for event in waiting:
                event.set()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
