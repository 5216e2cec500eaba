"""Retries: a dropped connection is retried with the same Idempotency-Key and the gateway applies the call once; a
live stream that drops is reopened; 429 and 503 are retried honouring Retry-After; the API version is checked.

Scripted 429 and 503 answers come from a minimal local aiohttp server (exact Retry-After values and exhausted retries);
`test_the_gateways_own_rate_limit_is_honoured` shows the same against the real gateway's rate limits.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from paygo_client import APIVersionWarning, RetryPolicy, errors

from tests.client.proxy import DroppingProxy
from tests.conftest import ADMIN_KEY, MIN_CONFIRMATIONS, Gateway, new_wallet

VENDOR = {"vendor_id": "9b2f7c1e-0d4a-4f7e-8c55-2f1d3a6b7c80", "name": "stand-in", "api_key": "pgv_stand_in_key"}


@pytest.fixture
async def proxy_to(gw: Gateway) -> AsyncIterator[Callable[..., Any]]:
    proxies: list[DroppingProxy] = []

    async def start(**options: Any) -> tuple[DroppingProxy, str]:
        proxy = DroppingProxy(gw.client.port, **options)
        proxies.append(proxy)
        return proxy, await proxy.start()

    yield start
    for proxy in proxies:
        await proxy.stop()


async def test_a_dropped_connection_is_retried_with_the_same_key_and_applied_once(
        gw: Gateway, proxy_to: Callable[..., Any], client_for: Any) -> None:
    proxy, url = await proxy_to(drop_first_answer=True)
    paygo = client_for(url, check_api_version=False)

    created = await paygo.create_zcash_permission(new_wallet(), "10", "2.5")

    assert proxy.connections == 2
    first, retry = proxy.requests
    assert (first.method, first.path) == (retry.method, retry.path) == ("POST", "/api/v1/zcash/permissions")
    assert first.headers["idempotency-key"] == retry.headers["idempotency-key"]
    assert len(first.headers["idempotency-key"]) >= 32 and first.body == retry.body
    rows = await gw.db.fetch("SELECT id FROM permissions")
    assert [str(row["id"]) for row in rows] == [created.permission_id]
    assert created.permission_token.startswith("pgp_")  # the first answer, replayed whole


async def test_a_live_stream_that_drops_is_reopened(gw: Gateway, proxy_to: Callable[..., Any],
                                                    client_for: Any) -> None:
    direct = client_for(gw.client, operator_key=ADMIN_KEY)
    vendor = await direct.create_vendor("viewer")
    created = await direct.create_zcash_permission(new_wallet(), "10", "2.5")
    await gw.pay(created.payment_address, "10")
    await gw.mine(MIN_CONFIRMATIONS)
    await direct.wait_until_active(created, timeout=10, interval=0.05)
    opened = await direct.open_session(created.user_wallet_address, vendor.vendor_id,
                                       token=created.permission_token)
    proxy, url = await proxy_to()
    watcher = client_for(url, permission_token=created.permission_token, check_api_version=False)

    updates = watcher.live(opened.session_code)
    first = await asyncio.wait_for(anext(updates), 10)
    assert first.status == "active" and first.charged_amount == Decimal("0")
    following = asyncio.ensure_future(anext(updates))
    proxy.cut()
    await _until(lambda: proxy.connections == 2 and b"event: session" in proxy.answers[1])
    assert not following.done()  # the reopened stream's first state is the one already seen
    await direct.end_session(opened.session_code)
    final = await asyncio.wait_for(following, 10)
    assert final.status == "ended" and proxy.connections == 2
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(updates), 10)


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@dataclass
class StandIn:
    """A minimal gateway stand-in: answers each request to any path with the next scripted (status, headers,
    body), the last one forever; records each request's Idempotency-Key and arrival time."""

    url: str = ""
    script: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    seen: list[tuple[str | None, float]] = field(default_factory=list)
    version: str | None = "1"

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == "/api/v1/openapi.json":
            if self.version is None:
                return web.json_response({"error": {"code": "not_found", "message": "no"}}, status=404)
            return web.json_response({"openapi": "3.1.0", "info": {"title": "PayGo", "version": self.version}})
        self.seen.append((request.headers.get("Idempotency-Key"), time.monotonic()))
        status, headers, body = self.script[min(len(self.seen), len(self.script)) - 1]
        return web.json_response(body, status=status, headers=headers)


def refusal(code: str, status: int, retry_after: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return status, headers, {"error": {"code": code, "message": f"{code}, try again later"}}


@pytest.fixture
async def stand_in(aiohttp_server: Callable[..., Any]) -> StandIn:
    stand_in = StandIn()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stand_in.handle)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    stand_in.url = str(server.make_url("")).rstrip("/")
    return stand_in


@pytest.mark.rate_limit_stand_in
async def test_429_is_retried_after_retry_after_with_the_same_key(stand_in: StandIn, client_for: Any) -> None:
    stand_in.script = [refusal("rate_limited", 429, "1"), (201, {}, VENDOR)]
    operator = client_for(stand_in.url, operator_key=ADMIN_KEY)

    vendor = await operator.create_vendor("stand-in")

    assert vendor.vendor_id == VENDOR["vendor_id"]
    (first_key, first_at), (second_key, second_at) = stand_in.seen
    assert first_key == second_key and first_key is not None
    assert second_at - first_at >= 0.95  # Retry-After: 1 was honoured


@pytest.mark.rate_limit_stand_in
async def test_rate_limited_is_raised_with_retry_after_when_retries_are_spent(stand_in: StandIn,
                                                                            client_for: Any) -> None:
    stand_in.script = [refusal("rate_limited", 429, "1")]
    operator = client_for(stand_in.url, operator_key=ADMIN_KEY, retry=RetryPolicy(max_retries=1))
    with pytest.raises(errors.RateLimited) as limited:
        await operator.create_vendor("stand-in")
    assert limited.value.retry_after == 1 and limited.value.code == "rate_limited" and len(stand_in.seen) == 2

    stand_in.seen.clear()
    stand_in.script = [refusal("rate_limited", 429, "3600")]  # longer than the client waits: raised at once
    with pytest.raises(errors.RateLimited) as limited:
        await operator.create_vendor("stand-in")
    assert limited.value.retry_after == 3600 and len(stand_in.seen) == 1


@pytest.mark.rate_limit_stand_in
async def test_503_and_a_running_first_attempt_are_retried_with_the_same_key(stand_in: StandIn,
                                                                            client_for: Any) -> None:
    stand_in.script = [refusal("database_unavailable", 503), refusal("idempotency_key_in_progress", 409),
                       (201, {}, VENDOR)]
    operator = client_for(stand_in.url, operator_key=ADMIN_KEY)
    assert (await operator.create_vendor("stand-in")).name == "stand-in"
    assert len(stand_in.seen) == 3 and len({key for key, _ in stand_in.seen}) == 1

    stand_in.seen.clear()
    stand_in.script = [refusal("database_unavailable", 503)]
    with pytest.raises(errors.DatabaseUnavailable):
        await operator.create_vendor("stand-in")
    assert len(stand_in.seen) == 5  # the first attempt and FAST_RETRIES' four retries


async def test_an_answer_the_client_cannot_read_is_an_unexpected_response(stand_in: StandIn,
                                                                          client_for: Any) -> None:
    stand_in.script = [(201, {}, {"vendor_id": "v", "name": "no api_key"})]
    with pytest.raises(errors.UnexpectedResponse, match="CreatedVendor"):
        await client_for(stand_in.url, operator_key=ADMIN_KEY).create_vendor("stand-in")


async def test_a_major_version_mismatch_warns_once(stand_in: StandIn, client_for: Any) -> None:
    stand_in.script = [(201, {}, VENDOR)]
    for version, warned in (("1.4", False), ("2.0", True), (None, True)):
        stand_in.version = version
        operator = client_for(stand_in.url, operator_key=ADMIN_KEY)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await operator.create_vendor("stand-in")
            await operator.create_vendor("stand-in")
        assert [w.category for w in caught] == ([APIVersionWarning] if warned else []), version


async def test_the_real_gateway_speaks_this_clients_version(gw: Gateway, client_for: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await client_for(gw.client).health_live()
    assert not [w for w in caught if issubclass(w.category, APIVersionWarning)]


async def test_the_gateways_own_rate_limit_is_honoured(make_gateway: Callable[..., Any],
                                                        zcash_regtest: tuple[Any, str], client_for: Any) -> None:
    """Against the real gateway with a low creation limit: a burst gets 429 with Retry-After; the client waits
    for it and retries with the same key, so exactly one permission is created per call; with no retries left it
    raises RateLimited carrying Retry-After."""
    node, password = zcash_regtest
    gw = await make_gateway(node, password, RATE_LIMIT_CREATE="2/second")
    patient = client_for(gw.client)
    wallet = new_wallet()
    started = time.monotonic()
    created = [await patient.create_zcash_permission(wallet, "1", "1") for _ in range(3)]
    assert time.monotonic() - started >= 0.5  # the third waited for the window to pass
    assert len({c.permission_id for c in created}) == 3
    assert await gw.db.fetchval("SELECT count(*) FROM permissions") == 3

    impatient = client_for(gw.client, retry=RetryPolicy(max_retries=0))
    with pytest.raises(errors.RateLimited) as limited:
        for _ in range(3):
            await impatient.create_zcash_permission(wallet, "1", "1")
    assert limited.value.code == "rate_limited" and limited.value.retry_after is not None
