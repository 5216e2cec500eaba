"""Rate limits (issue 10, finding 5) and the Redis circuit breaker (finding 9): a burst past the limit gets 429 with
Retry-After and the RateLimit headers while another client is unaffected, in Redis and in-process; X-Forwarded-For
counts only from a trusted proxy; per credential; a hung Redis stops slowing requests once the breaker opens."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from billing.breaker import CircuitBreaker
from regtest.zcash_node import RunningNode
from tests.conftest import ADMIN_KEY, Gateway, new_wallet

CREATE = "/api/v1/zcash/permissions"


def client_address() -> str:
    """A documentation address (RFC 3849, 2001:db8::/32) of this test's own, random in 64 bits, so counters in the
    shared Redis never meet, whatever else runs against it."""
    groups = secrets.token_bytes(8).hex()
    return "2001:db8::" + ":".join(groups[i:i + 4] for i in range(0, 16, 4))


@pytest.fixture(params=["redis", "in-process"])
async def limited_gw(request: pytest.FixtureRequest, make_gateway: Callable[..., Any],
                     zcash_regtest: tuple[RunningNode, str]) -> Gateway:
    node, password = zcash_regtest
    return await make_gateway(node, password, redis=request.param == "redis", RATE_LIMIT_CREATE="3/minute",
                              RATE_LIMIT_ANONYMOUS="5/minute", TRUSTED_PROXIES="127.0.0.1")


async def create(gw: Gateway, forwarded_for: str, **headers: str) -> Any:
    body = {"user_wallet_address": new_wallet(), "requested_amount": "1", "rate_per_hour": "1"}
    return await gw.client.post(CREATE, json=body, headers={"X-Forwarded-For": forwarded_for, **headers})


async def test_a_burst_gets_429_while_another_client_is_unaffected(limited_gw: Gateway) -> None:
    gw = limited_gw
    flooder, bystander = client_address(), client_address()
    answers = [await create(gw, flooder) for _ in range(5)]
    assert [answer.status for answer in answers] == [201, 201, 201, 429, 429]
    refused = answers[3]
    body = await refused.json()
    assert body["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Policy"] == "3;w=60"
    assert refused.headers["RateLimit"].startswith("limit=3, remaining=0, reset=")
    assert refused.headers["RateLimit-Limit"] == "3" and refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) >= 1
    assert answers[0].headers["RateLimit-Remaining"] == "2"
    assert await gw.db.fetchval("SELECT count(*) FROM permissions") == 3

    assert (await create(gw, bystander)).status == 201


async def test_anonymous_reads_are_limited_per_address(limited_gw: Gateway) -> None:
    address = client_address()
    statuses = [(await limited_gw.client.get("/api/v1/openapi.json", headers={"X-Forwarded-For": address})).status
                for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2


async def test_forwarded_for_counts_only_from_a_trusted_proxy(make_gateway: Callable[..., Any],
                                                              zcash_regtest: tuple[RunningNode, str]) -> None:
    """Without TRUSTED_PROXIES a client cannot escape its limit by writing X-Forwarded-For."""
    node, password = zcash_regtest
    gw = await make_gateway(node, password, redis=False, RATE_LIMIT_CREATE="2/minute")
    statuses = [(await create(gw, client_address())).status for _ in range(3)]
    assert statuses == [201, 201, 429]


async def test_the_right_most_untrusted_hop_is_the_client(limited_gw: Gateway) -> None:
    """Behind a trusted proxy, what the client wrote to the left of its real address does not count."""
    real = client_address()
    statuses = [(await create(limited_gw, f"{client_address()}, {real}")).status for _ in range(4)]
    assert statuses == [201, 201, 201, 429]


async def test_creating_is_limited_per_credential(limited_gw: Gateway) -> None:
    """One operator key from many addresses still counts as one."""
    statuses = []
    for _ in range(4):
        response = await limited_gw.client.post("/api/v1/admin/vendors", json={"name": "v"}, headers={
            "X-API-Key": ADMIN_KEY, "X-Forwarded-For": client_address()})
        statuses.append(response.status)
    assert statuses == [201, 201, 201, 429]


async def test_health_for_load_balancers_is_never_limited(limited_gw: Gateway) -> None:
    address = client_address()
    for path in ("/api/v1/health/live", "/api/v1/health/ready"):
        statuses = {(await limited_gw.client.get(path, headers={"X-Forwarded-For": address})).status
                    for _ in range(8)}
        assert statuses == {200}


@pytest.fixture
async def hung_redis() -> AsyncIterator[str]:
    """A Redis that accepts connections and never answers (as a SIGSTOPped one does)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()


async def test_a_hung_redis_stops_slowing_requests_once_the_breaker_opens(
        make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str], hung_redis: str) -> None:
    node, password = zcash_regtest
    gw = await make_gateway(node, password, redis=False, REDIS_URL=hung_redis, REDIS_BREAKER_FAILURES="2",
                            REDIS_BREAKER_COOLDOWN_SECONDS="300")
    durations = []
    for _ in range(6):
        started = time.perf_counter()
        response = await gw.client.get("/api/v1/openapi.json")  # anonymous: counted by the rate limits
        durations.append(time.perf_counter() - started)
        assert response.status == 200
    assert all(seconds >= 0.9 for seconds in durations[:2])  # each waited out the Redis timeout
    assert all(seconds < 0.3 for seconds in durations[2:]), durations  # then Redis is skipped
    _status, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
    assert health["checks"]["redis"]["ok"] is False and health["checks"]["redis"]["breaker_open"] is True


def test_the_breaker_opens_after_failures_and_tries_again_after_the_cool_down() -> None:
    now = [0.0]
    breaker = CircuitBreaker("Redis", failures=2, cooldown_seconds=10, clock=lambda: now[0])
    breaker.failed()
    assert breaker.allows
    breaker.failed()
    assert not breaker.allows
    now[0] = 10.0
    assert breaker.allows  # a trial
    breaker.failed()
    assert not breaker.allows  # the trial failed: another cool-down
    now[0] = 20.0
    breaker.succeeded()
    assert breaker.allows and not breaker.is_open
