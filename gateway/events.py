"""Live balance: `GET /api/v1/sessions/{session_code}/events`, a server-sent event stream of one session.

Each event (`event: session`) carries the session view (charged so far, remaining amount and hours, status) and is
sent when one of those changed: at connect, after every tick, and at the end; the stream closes after the
session's final state (`ended`, `exhausted`, `confirmed`; `pending_payment` waits for the direct charge).
Every event is read from PostgreSQL. Redis pub/sub only says when to read (billing.events.SessionEventHub, one per
process); without Redis, or if it fails, streams poll every second.

Streams are capped per permission (MAX_STREAMS_PER_PERMISSION) and per process (MAX_STREAMS): past either, 429
`too_many_streams`. A client that hangs up simply ends its stream (nothing is logged as an error). A stream that
loses the database after it started ends with `event: error` (the error body as data) and closes: its status line
was sent long ago, so it cannot turn into a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from uuid import UUID

from aiohttp import web

from billing.db import DATABASE_DOWN_ERRORS
from billing.events import SessionEventHub
from gateway.auth import required_token
from gateway.http import client_gone
from gateway.keys import REDIS, SERVICES, SETTINGS
from gateway.models import SessionView
from gateway.openapi import Auth, Operation, describe
from gateway.views import session_view
from kernel.errors import PayGoError, TooManyRequests

KEEPALIVE_SECONDS = 15.0
STREAM_RETRY_AFTER_SECONDS = 30
HANGUP_CHECK_SECONDS = 1.0  # how soon a stream notices its client left (aiohttp does not cancel the handler)
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
    response=SessionView, response_media_types=("text/event-stream",), errors=(403, 404, 429),
    path_parameters={"session_code": "The code `POST /api/v1/sessions` answered"},
    description="Each `event: session` carries the session view (as `GET /api/v1/sessions/{session_code}`) when "
                "it changed; the stream closes after the session's final state. If the gateway loses its "
                "database meanwhile, an `event: error` (data: the error body) ends the stream. 429 "
                "`too_many_streams` past the live streams allowed per permission or per gateway."))
async def session_events(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SERVICES].sessions
    hub = request.app[EVENT_HUB]
    code = request.match_info["session_code"]
    state = await sessions.show(code, required_token(request), with_direct_charge=False)
    permission_id = state.session.permission_id
    _check_stream_caps(request, hub, permission_id)
    changed = hub.watch(state.session.id, permission_id)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    try:
        await response.prepare(request)
        await _stream(request, response, hub, changed, code, permission_id)
        await response.write_eof()
    except ConnectionResetError:
        if not client_gone(request):
            raise
    finally:
        hub.unwatch(state.session.id, permission_id, changed)
    return response


def _check_stream_caps(request: web.Request, hub: SessionEventHub, permission_id: UUID) -> None:
    perimeter = request.app[SETTINGS].perimeter
    if hub.streams >= perimeter.max_streams:
        raise TooManyRequests("this gateway serves as many live streams as it may; retry later",
                              code="too_many_streams", retry_after=STREAM_RETRY_AFTER_SECONDS)
    if hub.streams_of(permission_id) >= perimeter.max_streams_per_permission:
        raise TooManyRequests(f"this permission already has {perimeter.max_streams_per_permission} live streams; "
                              "close one first", code="too_many_streams", retry_after=STREAM_RETRY_AFTER_SECONDS)


async def _stream(request: web.Request, response: web.StreamResponse, hub: SessionEventHub, changed: asyncio.Event,
                  code: str, permission_id: UUID) -> None:
    """Send the session's view whenever it changed until its final state, the gateway's shutdown, or an error."""
    sessions = request.app[SERVICES].sessions
    sent: tuple[object, ...] | None = None
    version = 0
    quiet = 0.0
    while not hub.closing.is_set():
        changed.clear()
        try:
            state = await sessions.state(code, permission_id, with_direct_charge=False)
        except PayGoError as exc:
            await _end_with_error(response, exc.code, exc.message)
            return
        except DATABASE_DOWN_ERRORS:
            await _end_with_error(response, "database_unavailable", "the database is not answering; reconnect shortly")
            return
        view = session_view(state)
        current = tuple(getattr(view, name) for name in CHANGING_FIELDS)
        if current != sent:
            version += 1
            payload = json.dumps(view.model_dump(mode="json"), separators=(",", ":"))
            await response.write(f"id: {version}\nevent: session\ndata: {payload}\n\n".encode())
            sent, quiet = current, 0.0
        if state.session.status in FINAL_STATUSES:
            return
        waited = 0.0
        while waited < hub.poll_seconds and not changed.is_set():
            if client_gone(request):
                return  # the client hung up: nothing to send, nothing to log
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=HANGUP_CHECK_SECONDS)
            waited += HANGUP_CHECK_SECONDS
        quiet += waited
        if quiet >= KEEPALIVE_SECONDS:
            await response.write(b": keepalive\n\n")
            quiet = 0.0


async def _end_with_error(response: web.StreamResponse, code: str, message: str) -> None:
    error = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":"))
    await response.write(f"event: error\ndata: {error}\n\n".encode())


routes = [web.get("/api/v1/sessions/{session_code}/events", session_events)]
