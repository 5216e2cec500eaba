"""Live balance: `GET /api/v1/sessions/{session_code}/events`, a server-sent event stream of one session.

Each event (`event: session`) carries the session view (charged so far, remaining amount and hours, status) and is
sent when one of those changed: at connect, after every tick, and at the end; the stream closes after the
session's final state (`ended`, `exhausted`, `confirmed`; `pending_payment` waits for the direct charge).
Every event is read from PostgreSQL. Redis pub/sub (billing.events) only says when to read: one subscriber per
process fans notices out to the streams it serves. Without Redis, or if it fails, streams poll every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from uuid import UUID

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from billing.errors import Forbidden
from billing.events import SESSION_EVENTS_CHANNEL, decode_notice
from gateway.auth import token_permission
from gateway.keys import BILLING, REDIS
from gateway.models import SessionView
from gateway.openapi import Auth, Operation, describe
from gateway.views import session_view

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # without Redis notices
SAFETY_POLL_SECONDS = 10.0  # with them: a lost notice is noticed this late at worst
KEEPALIVE_SECONDS = 15.0
FINAL_STATUSES = frozenset({"ended", "exhausted", "confirmed"})
CHANGING_FIELDS = ("status", "charged_amount", "remaining_amount", "remaining_hours", "permission_status", "ended_at")


class SessionEventHub:
    """One Redis subscription per process; each stream waits on an asyncio.Event of its session."""

    def __init__(self, redis: aioredis.Redis | None, channel: str = SESSION_EVENTS_CHANNEL) -> None:
        self._redis = redis
        self._channel = channel
        self._waiters: dict[UUID, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.closing = asyncio.Event()

    @property
    def poll_seconds(self) -> float:
        return SAFETY_POLL_SECONDS if self.subscribed.is_set() else POLL_SECONDS

    def watch(self, session_id: UUID) -> asyncio.Event:
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen())
        event = asyncio.Event()
        self._waiters.setdefault(session_id, set()).add(event)
        return event

    def unwatch(self, session_id: UUID, event: asyncio.Event) -> None:
        waiting = self._waiters.get(session_id)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self._waiters[session_id]

    def _notify(self, session_ids: list[UUID]) -> None:
        for session_id in session_ids:
            for event in self._waiters.get(session_id, ()):
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
                await asyncio.wait_for(self.closing.wait(), timeout=5.0)

    async def close(self) -> None:
        self.closing.set()
        for waiting in self._waiters.values():
            for event in waiting:
                event.set()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener


EVENT_HUB = web.AppKey("session_event_hub", SessionEventHub)


async def session_event_hub(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx entry (after the runtime's, so it closes first): the hub, and its end on shutdown so that open
    streams finish instead of holding the server."""
    app[EVENT_HUB] = SessionEventHub(app[REDIS])

    async def stop_streams(_: web.Application) -> None:
        await app[EVENT_HUB].close()

    app.on_shutdown.append(stop_streams)
    yield
    await app[EVENT_HUB].close()


@describe(Operation(
    summary="Live balance of a session as server-sent events", tag="sessions", auth=(Auth.PERMISSION_TOKEN,),
    response=SessionView, response_media_types=("text/event-stream",), errors=(403, 404),
    path_parameters={"session_code": "The code `POST /api/v1/sessions` answered"},
    description="Each `event: session` carries the session view (as `GET /api/v1/sessions/{session_code}`) when "
                "it changed; the stream closes after the session's final state."))
async def session_events(request: web.Request) -> web.StreamResponse:
    billing = request.app[BILLING]
    hub = request.app[EVENT_HUB]
    permission_id = await token_permission(request)
    code = request.match_info["session_code"]
    session, permission, now = await billing.session_state(code)
    if session.permission_id != permission_id:
        raise Forbidden("this session belongs to another permission", code="forbidden")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    changed = hub.watch(session.id)
    sent: tuple[object, ...] | None = None
    version = 0
    quiet = 0.0
    try:
        while not hub.closing.is_set():
            changed.clear()
            session, permission, now = await billing.session_state(code)
            view = session_view(session, permission, billing.assets[permission.asset], now)
            state = tuple(getattr(view, name) for name in CHANGING_FIELDS)
            if state != sent:
                version += 1
                payload = json.dumps(view.model_dump(mode="json"), separators=(",", ":"))
                await response.write(f"id: {version}\nevent: session\ndata: {payload}\n\n".encode())
                sent, quiet = state, 0.0
            if session.status in FINAL_STATUSES:
                break
            wait = hub.poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=wait)
            quiet += wait
            if quiet >= KEEPALIVE_SECONDS:
                await response.write(b": keepalive\n\n")
                quiet = 0.0
    finally:
        hub.unwatch(session.id, changed)
    await response.write_eof()
    return response


routes = [web.get("/api/v1/sessions/{session_code}/events", session_events)]
