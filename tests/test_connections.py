"""Bounded connections (issue 10, finding 7): live streams capped per permission and per process (429), slow
headers and slow bodies time out, a client hanging up is neither an error nor a 503, and a stream that loses the
database ends with `event: error` instead of a second HTTP answer inside its body."""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from billing.db import init_connection
from chains.jsonrpc import JsonRpcClient
from gateway.app import app_runner, create_app
from gateway.events import EVENT_HUB
from paygo.embedded import start_private_postgres
from paygo.logs import log_handler
from paygo.settings import Settings
from regtest.zcash_node import RunningNode
from tests.conftest import ADMIN_KEY, RPC_USER, Gateway, gateway_env
from tests.test_session_events import next_event


async def stream(gw: Gateway, permission: dict[str, Any], session_code: str) -> aiohttp.ClientResponse:
    return await gw.client.get(f"/api/v1/sessions/{session_code}/events",
                               headers={"Authorization": f"Bearer {permission['permission_token']}"})


async def open_session(gw: Gateway, vendor: dict[str, Any]) -> tuple[dict[str, Any], str]:
    permission = await gw.funded_permission("10", "2.5")
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201
    return permission, opened["session_code"]


async def test_live_streams_are_capped_per_permission_and_per_process(
        make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str]) -> None:
    node, password = zcash_regtest
    gw = await make_gateway(node, password, redis=False, MAX_STREAMS_PER_PERMISSION="2", MAX_STREAMS="3")
    vendor = await gw.create_vendor()
    first, first_code = await open_session(gw, vendor)
    opened = [await stream(gw, first, first_code) for _ in range(2)]
    assert [response.status for response in opened] == [200, 200]
    refused = await stream(gw, first, first_code)
    assert refused.status == 429 and (await refused.json())["error"]["code"] == "too_many_streams"
    assert int(refused.headers["Retry-After"]) > 0

    second, second_code = await open_session(gw, vendor)
    opened.append(await stream(gw, second, second_code))
    assert opened[-1].status == 200
    third, third_code = await open_session(gw, vendor)
    refused = await stream(gw, third, third_code)
    assert refused.status == 429 and (await refused.json())["error"]["code"] == "too_many_streams"

    opened.pop(0).close()  # one stream ends: room again
    hub = gw.client.app[EVENT_HUB]
    async with asyncio.timeout(5):
        while hub.streams > 2:
            await asyncio.sleep(0.05)
    again = await stream(gw, third, third_code)
    assert again.status == 200
    for response in [*opened, again]:
        response.close()


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged (ours and aiohttp's) while the test runs, through our JSON handler and its filters."""
    stream = io.StringIO()
    handler = log_handler("json", stream)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_a_client_hanging_up_is_not_an_error(make_gateway: Callable[..., Any],
                                                   zcash_regtest: tuple[RunningNode, str],
                                                   captured_logs: io.StringIO) -> None:
    node, password = zcash_regtest
    gw = await make_gateway(node, password, redis=False)
    vendor = await gw.create_vendor()
    permission, code = await open_session(gw, vendor)
    response = await stream(gw, permission, code)
    assert (await next_event(response))["status"] == "active"
    response.close()
    hub = gw.client.app[EVENT_HUB]
    async with asyncio.timeout(5):
        while hub.streams:
            await asyncio.sleep(0.05)
    metrics = await (await gw.client.get("/metrics", headers={"X-API-Key": ADMIN_KEY})).text()
    events_route = 'route="/api/v1/sessions/{session_code}/events"'
    assert [line for line in metrics.splitlines() if events_route in line and 'status="503"' in line] == []
    logged = captured_logs.getvalue()
    assert "database unavailable" not in logged and '"level": "ERROR"' not in logged


@pytest.fixture
async def served(make_gateway: Callable[..., Any], database_dsn: str, redis_url: str,
                 zcash_regtest: tuple[RunningNode, str]) -> AsyncIterator[tuple[str, int]]:
    """The gateway behind a real server as `paygo serve` runs it, with one-second header and body timeouts."""
    node, password = zcash_regtest
    settings = Settings.from_env(gateway_env(database_dsn, None, node, password, HTTP_IDLE_TIMEOUT_SECONDS="1",
                                             HTTP_BODY_TIMEOUT_SECONDS="1"))
    runner = app_runner(create_app(settings), settings)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield host, port
    await runner.cleanup()


async def test_slow_headers_are_cut_off(served: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*served)
    writer.write(b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\n")
    started = time.perf_counter()
    closed = False
    for _ in range(40):  # a header line every 0.2 s, never the blank line that ends the head
        writer.write(b"X-Slow: " + secrets.token_hex(4).encode() + b"\r\n")
        try:
            await writer.drain()
            closed = await asyncio.wait_for(reader.read(1), 0.2) == b""
        except TimeoutError:
            continue
        except ConnectionError:
            closed = True
        if closed:
            break
    writer.close()
    assert closed and time.perf_counter() - started < 3


async def test_a_slow_body_gets_408(served: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*served)
    writer.write(b"POST /api/v1/zcash/permissions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"user_wallet")
    await writer.drain()
    started = time.perf_counter()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 408") and b"Connection: close" in head
    assert time.perf_counter() - started < 3


async def test_a_stream_that_loses_the_database_ends_with_an_error_event(
        aiohttp_client: Callable[..., Any], services_state_dir: Path, zcash_regtest: tuple[RunningNode, str]) -> None:
    node, password = zcash_regtest
    server = await start_private_postgres(services_state_dir / f"stream-{secrets.token_hex(4)}", "paygo")
    rpc = [JsonRpcClient(url, user=RPC_USER, password=password) for url in (node.url, node.node_url)]
    try:
        settings = Settings.from_env(gateway_env(server.dsn, None, node, password))
        client = await aiohttp_client(create_app(settings))
        db = await asyncpg.create_pool(server.dsn, min_size=1, max_size=1, init=init_connection)
        gw = Gateway(client, node, rpc[0], rpc[1], db, settings)
        vendor = await gw.create_vendor()
        permission, code = await open_session(gw, vendor)
        await db.close()
        response = await stream(gw, permission, code)
        assert (await next_event(response))["status"] == "active"
        await server.stop()
        rest = (await asyncio.wait_for(response.content.read(), 10)).decode()
        assert rest.startswith("event: error\ndata: "), rest
        assert "HTTP/1.1" not in rest and '"code":"database_unavailable"' in rest
    finally:
        for client_rpc in rpc:
            await client_rpc.close()
        await server.stop()
