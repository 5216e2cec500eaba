"""Streaming-session routes: open (permission token), end (session code), show (permission token). Each is one
database round trip: the credential, and an Idempotency-Key if sent, go into the statement that does the work
(billing/session_service.py)."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import parse_uuid, required_token
from gateway.http import idempotent_call, json_response, read_body
from gateway.keys import SERVICES
from gateway.models import CreateSessionRequest, EndSessionRequest, SessionCreatedView, SessionEndView, SessionView
from gateway.openapi import Auth, Operation, describe
from gateway.views import iso, session_end_view, session_view


@describe(Operation(summary="Open a streaming session paid by the token's permission", auth=(Auth.PERMISSION_TOKEN,),
                    body=CreateSessionRequest, status=201, response=SessionCreatedView, errors=(402, 404, 409),
                    description="The `session_code` in the answer ends the session and reads it.",
                    idempotent_in_call=True))
async def open_session(request: web.Request) -> web.Response:
    token = required_token(request)
    body = await read_body(request, CreateSessionRequest)
    vendor_id = parse_uuid(body.vendor_id, "vendor")
    opened = await request.app[SERVICES].sessions.open(token, body.user_wallet_address, vendor_id,
                                                        await idempotent_call(request))
    return json_response(SessionCreatedView(session_code=opened.session_code, session_id=str(opened.session.id),
                                            status=opened.session.status, started_at=iso(opened.session.started_at)),
                         status=201, replayed=opened.replayed)


@describe(Operation(summary="End a session with its final charge", body=EndSessionRequest, response=SessionEndView,
                    errors=(404,), description="Ending it again answers the same and charges nothing. The "
                                               "session code is the credential.", idempotent_in_call=True))
async def end_session(request: web.Request) -> web.Response:
    """End a session with its final charge; ending it again answers the same and charges nothing."""
    body = await read_body(request, EndSessionRequest)
    ended = await request.app[SERVICES].sessions.end(body.session_code, await idempotent_call(request))
    return json_response(session_end_view(ended), replayed=ended.replayed)


@describe(Operation(summary="A session's charges so far and what is left", auth=(Auth.PERMISSION_TOKEN,),
                    response=SessionView, errors=(403, 404),
                    path_parameters={"session_code": "The code `POST /api/v1/sessions` answered"}))
async def show_session(request: web.Request) -> web.Response:
    token = required_token(request)
    state = await request.app[SERVICES].sessions.show(request.match_info["session_code"], token)
    return json_response(session_view(state))


routes = [
    web.post("/api/v1/sessions", open_session),
    web.post("/api/v1/sessions/end", end_session),
    web.get("/api/v1/sessions/{session_code}", show_session),
]
