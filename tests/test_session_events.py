"""The live balance stream (server-sent events): pushed on a Redis notice, by polling without Redis, final state
then end of stream, and the session's authentication."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

from billing.events import publish_session_updates
from billing.ledger import EntryKind, post_entry
from gateway.events import EVENT_HUB
from gateway.keys import REDIS
from regtest.zcash_node import RunningNode
from tests.conftest import Gateway

EVENT_TIMEOUT = 5.0  # below the 10 s safety poll: an event this fast with Redis came from a notice


async def next_event(response: aiohttp.ClientResponse) -> dict[str, Any] | None:
    """The next `session` event's data, or None at the end of the stream."""
    data = None
    while True:
        line = await asyncio.wait_for(response.content.readline(), EVENT_TIMEOUT)
        if not line:
            return None
        text = line.decode().rstrip("\n")
        if text.startswith("data: "):
            data = json.loads(text[len("data: "):])
        elif text == "" and data is not None:
            return data


async def charge(gw: Gateway, permission_id: str, session_id: str, amount: int) -> None:
    """What a billing tick's settlement does to one session (the tick itself is the scheduler's; here the change is
    made by hand)."""
    async with gw.db.acquire() as conn, conn.transaction():
        await post_entry(conn, permission_id, EntryKind.CHARGE, -amount, session_id=session_id)
        await conn.execute("UPDATE sessions SET charged_amount = charged_amount + $2, "
                           "settled_amount = settled_amount + $2 WHERE id = $1", session_id, amount)


async def _stream_a_session(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    path = f"/api/v1/sessions/{opened['session_code']}/events"
    redis = gw.client.app[REDIS]
    response = await gw.client.get(path, headers={"Authorization": f"Bearer {permission['permission_token']}"})
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"

    first = await next_event(response)
    assert first["status"] == "active" and first["charged_amount"] == "0.00000000"
    assert first["remaining_amount"] == "10.00000000" and first["remaining_hours"] == "4.000000"

    if redis is not None:
        await asyncio.wait_for(gw.client.app[EVENT_HUB].subscribed.wait(), EVENT_TIMEOUT)
    await charge(gw, permission["permission_id"], opened["session_id"], 125_000_000)
    await publish_session_updates(redis, [opened["session_id"]])
    ticked = await next_event(response)
    assert ticked["status"] == "active" and ticked["charged_amount"] == "1.25000000"
    assert ticked["remaining_amount"] == "8.75000000" and ticked["remaining_hours"] == "3.500000"

    await gw.backdate_session(opened["session_id"], 3600)
    _, ended = await gw.end_session(opened["session_code"])
    await publish_session_updates(redis, [opened["session_id"]])
    final = await next_event(response)
    assert final["status"] == "ended" and final["charged_amount"] == ended["amount"]
    assert ended["amount"].startswith("2.50")  # an hour and the seconds the test took
    assert final["remaining_hours"] <= "3.000000" and final["permission_status"] == "active"
    assert await next_event(response) is None  # the stream ends after the final state
    response.close()


async def test_stream_with_redis_notices(gw: Gateway) -> None:
    assert gw.client.app[REDIS] is not None
    await _stream_a_session(gw)


async def test_stream_without_redis_polls(make_gateway: Callable[..., Any],
                                          zcash_regtest: tuple[RunningNode, str]) -> None:
    node, password = zcash_regtest
    gw = await make_gateway(node, password, redis=False)
    assert gw.client.app[REDIS] is None
    await _stream_a_session(gw)


async def test_stream_needs_the_sessions_permission_token(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("1", "1")
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    path = f"/api/v1/sessions/{opened['session_code']}/events"
    other = await gw.create_permission()
    assert (await gw.call("GET", path))[0] == 401
    assert (await gw.call("GET", path, token=other["permission_token"]))[0] == 403
    status, body = await gw.call("GET", "/api/v1/sessions/NOSUCHCODE/events", token=permission["permission_token"])
    assert status == 404 and body["error"]["code"] == "session_not_found"
