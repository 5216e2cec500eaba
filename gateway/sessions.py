"""Streaming-session routes: open (permission token), end (session code), show (permission token)."""

from __future__ import annotations

from aiohttp import web

from billing.errors import Forbidden
from billing.events import publish_session_updates
from gateway.auth import token_holder, token_permission
from gateway.http import json_response, read_body
from gateway.keys import BILLING, REDIS
from gateway.models import CreateSessionRequest, EndSessionRequest, SessionCreatedView, SessionEndView, SessionView
from gateway.openapi import Auth, Operation, describe
from gateway.permissions import parse_uuid
from gateway.views import iso, session_end_view, session_view


@describe(Operation(summary="Open a streaming session paid by the token's permission", auth=(Auth.PERMISSION_TOKEN,),
                    body=CreateSessionRequest, status=201, response=SessionCreatedView, errors=(402, 404, 409),
                    description="The `session_code` in the answer ends the session and reads it."))
async def open_session(request: web.Request) -> web.Response:
    billing = request.app[BILLING]
    holder = await token_holder(request)
    body = await read_body(request, CreateSessionRequest)
    vendor_id = parse_uuid(body.vendor_id, "vendor")
    wallet = billing.source(holder.funding_source).validate_address(body.user_wallet_address)
    opened = await billing.open_session(holder.permission_id, wallet, vendor_id)
    return json_response(SessionCreatedView(session_code=opened.session_code, session_id=str(opened.session.id),
                                            status=opened.session.status, started_at=iso(opened.session.started_at)),
                         status=201)


@describe(Operation(summary="End a session with its final charge", body=EndSessionRequest, response=SessionEndView,
                    errors=(404,), description="Ending it again answers the same and charges nothing. The "
                                               "session code is the credential."))
async def end_session(request: web.Request) -> web.Response:
    """End a session with its final charge; ending it again answers the same and charges nothing."""
    billing = request.app[BILLING]
    body = await read_body(request, EndSessionRequest)
    session, permission = await billing.end_session(body.session_code)
    await publish_session_updates(request.app[REDIS], [session.id])
    charge = await billing.direct_charge_of_session(session.id) if session.uncovered_amount else None
    return json_response(session_end_view(session, billing.assets[permission.asset], charge))


@describe(Operation(summary="A session's charges so far and what is left", auth=(Auth.PERMISSION_TOKEN,),
                    response=SessionView, errors=(403, 404),
                    path_parameters={"session_code": "The code `POST /api/v1/sessions` answered"}))
async def show_session(request: web.Request) -> web.Response:
    billing = request.app[BILLING]
    permission_id = await token_permission(request)
    session, permission, now = await billing.session_state(request.match_info["session_code"])
    if session.permission_id != permission_id:
        raise Forbidden("this session belongs to another permission", code="forbidden")
    charge = await billing.direct_charge_of_session(session.id) if session.uncovered_amount else None
    return json_response(session_view(session, permission, billing.assets[permission.asset], now, charge))


routes = [
    web.post("/api/v1/sessions", open_session),
    web.post("/api/v1/sessions/end", end_session),
    web.get("/api/v1/sessions/{session_code}", show_session),
]
