"""Session change notices between processes, over Redis pub/sub, for the live balance stream.

A notice says only *which* sessions changed (`{"v": 1, "session_ids": [...]}` on one channel); a subscriber
re-reads those sessions from PostgreSQL, so the numbers it shows are always exact and a lost, duplicated or
stray notice costs at most one extra read. Writers (the billing tick, end_session, the payment watcher) publish
after their transaction commits. Redis is optional: without it, publishing does nothing and subscribers poll.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

SESSION_EVENTS_CHANNEL = "paygo:session-events"
NOTICE_VERSION = 1
IDS_PER_NOTICE = 500  # keeps each message small even when a tick touches 100k sessions


def encode_notice(session_ids: Sequence[UUID]) -> str:
    return json.dumps({"v": NOTICE_VERSION, "session_ids": [str(sid) for sid in session_ids]})


def decode_notice(raw: bytes | str) -> list[UUID]:
    """The session ids of a notice; an unreadable or foreign message yields none."""
    try:
        data: Any = json.loads(raw)
        return [UUID(sid) for sid in data["session_ids"]] if data.get("v") == NOTICE_VERSION else []
    except (ValueError, TypeError, KeyError, AttributeError):
        return []


async def publish_session_updates(redis: aioredis.Redis | None, session_ids: Sequence[UUID], *,
                                  channel: str = SESSION_EVENTS_CHANNEL) -> None:
    """Tell every subscriber that these sessions changed. Never raises: a missed notice is caught by polling."""
    if redis is None or not session_ids:
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(session_ids), IDS_PER_NOTICE):
                pipe.publish(channel, encode_notice(session_ids[start:start + IDS_PER_NOTICE]))
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("session update notice not published: %s", type(exc).__name__)
