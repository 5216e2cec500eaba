"""Live balance: `GET /api/v1/sessions/{session_code}/events`, a server-sent event stream of one session.

Each event (`event: session`) carries the session view (charged so far, remaining amount and hours, status) and is
sent when one of those changed: at connect, after every tick, and at the end; the stream closes after the
session's final state (`ended`, `exhausted`, `confirmed`; `pending_payment` waits for the direct charge).
Every event is read from PostgreSQL. Redis pub/sub only says when to read (billing.events.SessionEventHub, one per
process); without Redis, or if it fails, streams poll every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web

from billing.events import SessionEventHub
from gateway.auth import token_permission
from gateway.keys import REDIS, SERVICES
from gateway.models import SessionView
from gateway.openapi import Auth, Operation, describe
from gateway.views import session_view

KEEPALIVE_SECONDS = 15.0
FINAL_STATUSES = frozenset({"ended", "exhausted", "confirmed"})
CHANGING_FIELDS = ("status", "charged_amount", "remaining_amount", "remaining_hours", "permission_status", "ended_at")

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
    sessions = request.app[SERVICES].sessions
    hub = request.app[EVENT_HUB]
    permission_id = await token_permission(request)
    code = request.match_info["session_code"]
    state = await sessions.state(code, permission_id, with_direct_charge=False)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    changed = hub.watch(state.session.id, permission_id)
    sent: tuple[object, ...] | None = None
    version = 0
    quiet = 0.0
    try:
        while not hub.closing.is_set():
            changed.clear()
            state = await sessions.state(code, permission_id, with_direct_charge=False)
            view = session_view(state)
            current = tuple(getattr(view, name) for name in CHANGING_FIELDS)
            if current != sent:
                version += 1
                payload = json.dumps(view.model_dump(mode="json"), separators=(",", ":"))
                await response.write(f"id: {version}\nevent: session\ndata: {payload}\n\n".encode())
                sent, quiet = current, 0.0
            if state.session.status in FINAL_STATUSES:
                break
            wait = hub.poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=wait)
            quiet += wait
            if quiet >= KEEPALIVE_SECONDS:
                await response.write(b": keepalive\n\n")
                quiet = 0.0
    finally:
        hub.unwatch(state.session.id, permission_id, changed)
    await response.write_eof()
    return response


routes = [web.get("/api/v1/sessions/{session_code}/events", session_events)]
